/**
 * A small DAV client for protocol tests: one method per HTTP method, Basic
 * credentials of one test user, and response bodies kept as raw bytes so
 * tests can compare exactly what the server sent.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Response } from 'superagent';
import type { TestApp } from './app';
import { CARDDAV, CS, DAV, parseMultistatusDocument, type Multistatus } from './multistatus';

export interface DavReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** Collects the response body as bytes, whatever its media type. In Node, superagent passes the response stream. */
function bytesParser(res: Response, callback: (error: Error | null, body: Buffer) => void): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
}

function toReply(res: Response): DavReply {
  const body = Buffer.isBuffer(res.body) ? res.body : Buffer.alloc(0);
  return { status: res.status, headers: res.headers, body, text: body.toString('utf8') };
}

export class DavClient {
  /** `user` undefined sends no Authorization header. */
  constructor(
    private readonly app: TestApp,
    readonly user?: string,
  ) {}

  async request(method: string, path: string, options: RequestOptions = {}): Promise<DavReply> {
    const agent = this.app.http();
    const start = (agent as unknown as Record<string, (url: string) => ReturnType<typeof agent.get>>)[method.toLowerCase()];
    if (!start) throw new Error(`supertest has no method ${method}`);
    let test = start.call(agent, path).buffer(true).parse(bytesParser);
    if (this.user !== undefined) test = test.set('Authorization', this.app.auth(this.user));
    for (const [name, value] of Object.entries(options.headers ?? {})) test = test.set(name, value);
    const res = options.body === undefined ? await test : await test.send(options.body);
    return toReply(res);
  }

  propfind(path: string, depth: string | undefined, body?: string, headers: Record<string, string> = {}): Promise<DavReply> {
    const all: Record<string, string> = { ...headers };
    if (depth !== undefined) all.Depth = depth;
    if (body !== undefined) all['Content-Type'] ??= 'application/xml';
    return this.request('PROPFIND', path, { headers: all, body });
  }

  proppatch(path: string, body: string): Promise<DavReply> {
    return this.request('PROPPATCH', path, { headers: { 'Content-Type': 'application/xml' }, body });
  }

  report(path: string, body: string, headers: Record<string, string> = {}): Promise<DavReply> {
    return this.request('REPORT', path, { headers: { 'Content-Type': 'application/xml', ...headers }, body });
  }

  mkcol(path: string, body?: string): Promise<DavReply> {
    const headers: Record<string, string> = body === undefined ? {} : { 'Content-Type': 'application/xml' };
    return this.request('MKCOL', path, { headers, body });
  }

  put(path: string, card: string | Buffer, headers: Record<string, string> = {}): Promise<DavReply> {
    return this.request('PUT', path, { headers: { 'Content-Type': 'text/vcard; charset=utf-8', ...headers }, body: card });
  }

  get(path: string, headers: Record<string, string> = {}): Promise<DavReply> {
    return this.request('GET', path, { headers });
  }

  head(path: string): Promise<DavReply> {
    return this.request('HEAD', path);
  }

  delete(path: string, headers: Record<string, string> = {}): Promise<DavReply> {
    return this.request('DELETE', path, { headers });
  }

  options(path: string): Promise<DavReply> {
    return this.request('OPTIONS', path);
  }

  /** Sends a sync-collection REPORT and parses the 207 it must return. */
  async sync(bookPath: string, token: string, options: { limit?: number; props?: string[] } = {}): Promise<Multistatus> {
    const reply = await this.report(bookPath, syncCollectionBody(token, options));
    if (reply.status !== 207) throw new Error(`sync-collection returned ${reply.status}: ${reply.text}`);
    return parseMultistatusDocument(reply.text);
  }

  /** Creates an address book with a plain MKCOL; throws unless the server returns 201. */
  async createBook(path: string): Promise<void> {
    const reply = await this.mkcol(path);
    if (reply.status !== 201) throw new Error(`MKCOL ${path} returned ${reply.status}: ${reply.text}`);
  }

  /** Stores a card; throws unless the server returns 201 or 204. */
  async putCard(path: string, card: string | Buffer): Promise<DavReply> {
    const reply = await this.put(path, card);
    if (reply.status !== 201 && reply.status !== 204) throw new Error(`PUT ${path} returned ${reply.status}: ${reply.text}`);
    return reply;
  }
}

/** Sends a request over a plain socket with the body as separate chunks and no Content-Length, so it goes out chunked. */
export function sendChunked(
  app: TestApp,
  method: string,
  path: string,
  headers: Record<string, string>,
  chunks: Buffer[],
): Promise<DavReply> {
  const { port } = app.server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

const NAMESPACE_PREFIXES: [string, string][] = [
  [DAV, 'd'],
  [CARDDAV, 'card'],
  [CS, 'cs'],
];

/** Turns a Clark name into an empty element, with a local namespace declaration for namespaces without a prefix. */
export function emptyElement(name: string): string {
  const end = name.indexOf('}');
  const ns = name.slice(1, end);
  const local = name.slice(end + 1);
  const prefix = NAMESPACE_PREFIXES.find(([uri]) => uri === ns)?.[1];
  return prefix ? `<${prefix}:${local}/>` : `<${local} xmlns="${ns}"/>`;
}

export const XMLNS = 'xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav" xmlns:cs="http://calendarserver.org/ns/"';

/** Builds a PROPFIND body that requests the named properties (Clark names). */
export function propfindBody(...names: string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?><d:propfind ${XMLNS}><d:prop>${names.map(emptyElement).join('')}</d:prop></d:propfind>`;
}

export function syncCollectionBody(token: string, options: { limit?: number; props?: string[] } = {}): string {
  const props = (options.props ?? ['{DAV:}getetag']).map(emptyElement).join('');
  const limit = options.limit === undefined ? '' : `<d:limit><d:nresults>${options.limit}</d:nresults></d:limit>`;
  return (
    `<?xml version="1.0" encoding="utf-8"?><d:sync-collection ${XMLNS}>` +
    `<d:sync-token>${token}</d:sync-token><d:sync-level>1</d:sync-level>${limit}<d:prop>${props}</d:prop>` +
    '</d:sync-collection>'
  );
}

/** Builds an addressbook-multiget body that requests `props` (getetag and address-data by default) of each href. */
export function multigetBody(hrefs: string[], props: string[] = ['{DAV:}getetag', `{${CARDDAV}}address-data`]): string {
  const hrefXml = hrefs.map((href) => `<d:href>${href.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</d:href>`).join('');
  return (
    `<?xml version="1.0" encoding="utf-8"?><card:addressbook-multiget ${XMLNS}>` +
    `<d:prop>${props.map(emptyElement).join('')}</d:prop>${hrefXml}</card:addressbook-multiget>`
  );
}

export interface CardFields {
  uid?: string;
  fn?: string;
  version?: string;
  /** Content lines placed after FN, without line ends. */
  lines?: string[];
}

/** Builds a vCard with CRLF line ends; UID and FN are left out when undefined. */
export function vcard(fields: CardFields): string {
  const lines = ['BEGIN:VCARD', `VERSION:${fields.version ?? '3.0'}`];
  if (fields.uid !== undefined) lines.push(`UID:${fields.uid}`);
  if (fields.fn !== undefined) lines.push(`FN:${fields.fn}`);
  lines.push(...(fields.lines ?? []), 'END:VCARD');
  return lines.join('\r\n') + '\r\n';
}

/** Builds a valid vCard 3.0 with N derived from FN. */
export function person(uid: string, fn: string, extra: string[] = []): string {
  const [given, ...rest] = fn.split(' ');
  return vcard({ uid, fn, lines: [`N:${rest.join(' ')};${given};;;`, ...extra] });
}
