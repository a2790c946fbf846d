/**
 * Requests for the query and address-data tests, sent with supertest to an
 * in-process server, and the cards they share.
 */
import type { TestApp } from '../helpers/app';

export const BOOK = '/dav/addressbooks/alice/contacts/';
export const XMLNS = 'xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"';

export interface Reply {
  status: number;
  text: string;
  headers: Record<string, string>;
}

export async function report(app: TestApp, body: string, path = BOOK): Promise<Reply> {
  const res = await app
    .http()
    .report(path)
    .set('Authorization', app.auth('alice'))
    .set('Content-Type', 'application/xml')
    .set('Depth', '1')
    .send(body);
  return { status: res.status, text: res.text, headers: res.headers as Record<string, string> };
}

export async function put(app: TestApp, name: string, body: string, contentType = 'text/vcard; charset=utf-8', path = BOOK): Promise<Reply> {
  const res = await app.http().put(path + name).set('Authorization', app.auth('alice')).set('Content-Type', contentType).send(body);
  return { status: res.status, text: res.text, headers: res.headers as Record<string, string> };
}

export async function get(app: TestApp, name: string, accept?: string, path = BOOK): Promise<Reply> {
  let request = app.http().get(path + name).set('Authorization', app.auth('alice'));
  if (accept !== undefined) request = request.set('Accept', accept);
  // Bodies of every media type are read as text, jCard included.
  const res = await request.buffer(true).parse((response, callback) => {
    let text = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => (text += chunk));
    response.on('end', () => callback(null, text));
  });
  return { status: res.status, text: res.body as string, headers: res.headers as Record<string, string> };
}

/** Joins content lines with CRLF and ends the card with one. */
export function card(lines: string[]): string {
  return lines.join('\r\n') + '\r\n';
}

/** An addressbook-query body; `inner` contains the filter and any limit. */
export function queryBody(inner: string, prop = '<d:getetag/>'): string {
  return `<?xml version="1.0" encoding="utf-8"?><card:addressbook-query ${XMLNS}><d:prop>${prop}</d:prop>${inner}</card:addressbook-query>`;
}

export function multigetBody(names: string[], prop: string, path = BOOK): string {
  const hrefs = names.map((name) => `<d:href>${path}${name}</d:href>`).join('');
  return `<?xml version="1.0" encoding="utf-8"?><card:addressbook-multiget ${XMLNS}><d:prop>${prop}</d:prop>${hrefs}</card:addressbook-multiget>`;
}
