/**
 * Shared tools for the robustness tests: a raw HTTP client that sends bytes
 * exactly as given, a strict XML reader for response bodies, DAV:error checks,
 * and a check that reads a whole address book through every listing method.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { SaxesParser } from 'saxes';
import type { TestApp } from '../helpers/app';

export const DAV = 'DAV:';
export const CARDDAV = 'urn:ietf:params:xml:ns:carddav';
export const XMLNS = 'xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"';

/** Clark notation of a DAV element, `{DAV:}local`. */
export const dav = (local: string): string => `{${DAV}}${local}`;
/** Clark notation of a CardDAV element. */
export const carddav = (local: string): string => `{${CARDDAV}}${local}`;

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

export function basicAuth(name: string, password: string): string {
  return 'Basic ' + Buffer.from(`${name}:${password}`).toString('base64');
}

export function portOf(app: TestApp): number {
  return (app.server.address() as AddressInfo).port;
}

/**
 * An HTTP client for one user on 127.0.0.1. Bodies are sent as given, with a
 * Content-Length unless the caller sets the framing, and response bodies are
 * kept as bytes.
 */
export class Client {
  constructor(
    readonly port: number,
    readonly authorization?: string,
    private readonly agent: http.Agent | false = false,
  ) {}

  request(method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string | string[]> = {};
    if (this.authorization !== undefined) headers.Authorization = this.authorization;
    Object.assign(headers, options.headers ?? {});
    // Node sends a GET or DELETE body without framing unless a length is set.
    const framed = Object.keys(headers).some((name) => /^(content-length|transfer-encoding)$/i.test(name));
    if (options.body !== undefined && !framed) headers['Content-Length'] = String(Buffer.byteLength(options.body));
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, method, path, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(options.body);
    });
  }

  put(path: string, card: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
    return this.request('PUT', path, { headers: { 'Content-Type': 'text/vcard; charset=utf-8', ...headers }, body: card });
  }

  get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    return this.request('GET', path, { headers });
  }

  delete(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    return this.request('DELETE', path, { headers });
  }

  propfind(path: string, depth: string, body?: string | Buffer): Promise<Reply> {
    const headers: Record<string, string> = { Depth: depth };
    if (body !== undefined) headers['Content-Type'] = 'application/xml; charset=utf-8';
    return this.request('PROPFIND', path, { headers, body });
  }

  proppatch(path: string, body: string | Buffer): Promise<Reply> {
    return this.request('PROPPATCH', path, { headers: { 'Content-Type': 'application/xml; charset=utf-8' }, body });
  }

  report(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
    return this.request('REPORT', path, { headers: { 'Content-Type': 'application/xml; charset=utf-8', ...headers }, body });
  }

  mkcol(path: string, body?: string): Promise<Reply> {
    const headers: Record<string, string> = body === undefined ? {} : { 'Content-Type': 'application/xml; charset=utf-8' };
    return this.request('MKCOL', path, { headers, body });
  }
}

/**
 * Writes `data` to a new TCP connection, half-closes it and returns all bytes
 * the server sent until it closed the connection.
 */
export function rawExchange(port: number, data: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(data));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
  });
}

/** Splits a raw HTTP/1.1 response into status, headers and body; only the first response in `text` is read. */
export function parseRawResponse(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete HTTP response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!match) throw new Error(`invalid status line: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = text.slice(end + 4);
  if (headers['content-length'] !== undefined) body = body.slice(0, Number(headers['content-length']));
  return { status: Number(match[1]), headers, body };
}

/** An element with its name in Clark notation. */
export interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  /** Text directly inside this element, with references resolved. */
  text: string;
  children: XmlNode[];
}

/** Parses a whole document with a strict namespace-aware XML 1.0 parser; throws on anything a client's parser would reject. */
export function parseXml(body: string): XmlNode {
  const parser = new SaxesParser({ xmlns: true });
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  parser.on('opentag', (tag) => {
    const attrs: Record<string, string> = {};
    for (const attr of Object.values(tag.attributes)) {
      if (typeof attr === 'string') continue;
      if (attr.prefix === 'xmlns' || attr.name === 'xmlns') continue;
      attrs[attr.uri ? `{${attr.uri}}${attr.local}` : attr.local] = attr.value;
    }
    const node: XmlNode = { name: `{${tag.uri ?? ''}}${tag.local ?? tag.name}`, attrs, text: '', children: [] };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(node);
    else root = node;
    stack.push(node);
  });
  const onText = (text: string): void => {
    const current = stack[stack.length - 1];
    if (current) current.text += text;
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.write(body).close();
  if (!root) throw new Error('the body contains no XML element');
  return root;
}

export function childNamed(node: XmlNode, name: string): XmlNode | undefined {
  return node.children.find((c) => c.name === name);
}

export interface PropStat {
  status: number;
  props: Map<string, XmlNode>;
}

export interface MultistatusResponse {
  href: string;
  /** The status of a response that has no propstat. */
  status?: number;
  propstats: PropStat[];
}

export interface Multistatus {
  responses: MultistatusResponse[];
  syncToken?: string;
}

function statusCode(line: string | undefined): number {
  const match = /^HTTP\/\d\.\d (\d{3})/.exec((line ?? '').trim());
  if (!match) throw new Error(`invalid status line: ${JSON.stringify(line)}`);
  return Number(match[1]);
}

/**
 * Parses a 207 body. Throws when the XML is not well-formed, the root is not
 * DAV:multistatus, or a response has neither a status nor a propstat
 * (RFC 4918 section 14.24 requires one of them).
 */
export function parseMultistatus(body: string): Multistatus {
  const root = parseXml(body);
  if (root.name !== dav('multistatus')) throw new Error(`expected DAV:multistatus, got ${root.name}`);
  const responses = root.children
    .filter((c) => c.name === dav('response'))
    .map((node): MultistatusResponse => {
      const href = childNamed(node, dav('href'));
      if (!href) throw new Error('a DAV:response has no DAV:href');
      const statusLine = childNamed(node, dav('status'));
      const propstats = node.children
        .filter((c) => c.name === dav('propstat'))
        .map((propstat) => {
          const props = new Map<string, XmlNode>();
          for (const prop of childNamed(propstat, dav('prop'))?.children ?? []) props.set(prop.name, prop);
          return { status: statusCode(childNamed(propstat, dav('status'))?.text), props };
        });
      if (!statusLine && propstats.length === 0) throw new Error(`the DAV:response for ${href.text} has neither a status nor a propstat`);
      return { href: href.text, status: statusLine ? statusCode(statusLine.text) : undefined, propstats };
    });
  return { responses, syncToken: childNamed(root, dav('sync-token'))?.text };
}

/** Returns a property of the 200 propstat, or undefined. */
export function okProp(response: MultistatusResponse, name: string): XmlNode | undefined {
  return response.propstats.find((p) => p.status === 200)?.props.get(name);
}

/**
 * Checks that a reply is an error response as the RFCs require: the status,
 * an application/xml body with a DAV:error root, the named condition element
 * when one is given, and no stack trace or source path in any 5xx body.
 */
export function expectDavError(reply: Reply, status: number, condition?: string): XmlNode {
  expect({ status: reply.status, body: reply.text.slice(0, 500) }).toEqual({ status, body: expect.any(String) });
  expect(reply.headers['content-type']).toMatch(/^application\/xml\b/);
  const root = parseXml(reply.text);
  expect(root.name).toBe(dav('error'));
  if (condition !== undefined) expect(root.children.map((c) => c.name)).toContain(condition);
  if (status >= 500) expectNoInternals(reply.text);
  return root;
}

/** Fails when a body contains what looks like a stack frame, a source path or an exception name. */
export function expectNoInternals(body: string): void {
  expect(body).not.toMatch(/\bat \S+ \(|\bat \/|\.(ts|js):\d+/);
  expect(body).not.toMatch(/\/(work|home|tmp|usr|node_modules)\//);
  expect(body).not.toMatch(/\b(SqliteError|TypeError|RangeError|ReferenceError|ContentLineError|SQLITE_\w+)\b/);
}

export interface CardFields {
  uid?: string;
  fn?: string;
  version?: string;
  /** Content lines after FN, without line ends. */
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

/** Builds a valid vCard 3.0 that the server stores unchanged. */
export function person(uid: string, fn = 'Ada Lovelace', lines: string[] = []): string {
  return vcard({ uid, fn, lines: ['N:Lovelace;Ada;;;', ...lines] });
}

export function escapeXmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function multigetBody(hrefs: string[]): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?><card:addressbook-multiget ${XMLNS}>` +
    '<d:prop><d:getetag/><card:address-data/></d:prop>' +
    hrefs.map((href) => `<d:href>${escapeXmlText(href)}</d:href>`).join('') +
    '</card:addressbook-multiget>'
  );
}

export function syncBody(token: string, options: { addressData?: boolean; limit?: number } = {}): string {
  const limit = options.limit === undefined ? '' : `<d:limit><d:nresults>${options.limit}</d:nresults></d:limit>`;
  const data = options.addressData ? '<card:address-data/>' : '';
  return (
    `<?xml version="1.0" encoding="utf-8"?><d:sync-collection ${XMLNS}>` +
    `<d:sync-token>${escapeXmlText(token)}</d:sync-token><d:sync-level>1</d:sync-level>${limit}` +
    `<d:prop><d:getetag/>${data}</d:prop></d:sync-collection>`
  );
}

export const PROPFIND_ETAG = `<?xml version="1.0" encoding="utf-8"?><d:propfind ${XMLNS}><d:prop><d:getetag/></d:prop></d:propfind>`;

/** Sends a sync-collection REPORT and parses its 207. */
export async function syncCollection(client: Client, bookPath: string, token: string, options: { addressData?: boolean; limit?: number } = {}): Promise<Multistatus> {
  const reply = await client.report(bookPath, syncBody(token, options));
  if (reply.status !== 207) throw new Error(`sync-collection returned ${reply.status}: ${reply.text}`);
  return parseMultistatus(reply.text);
}

/** Returns the current sync token of a book. */
export async function currentSyncToken(client: Client, bookPath: string): Promise<string> {
  const reply = await client.propfind(bookPath, '0', `<d:propfind ${XMLNS}><d:prop><d:sync-token/></d:prop></d:propfind>`);
  const response = parseMultistatus(reply.text).responses[0];
  const token = okProp(response, dav('sync-token'))?.text;
  if (!token) throw new Error(`the book has no sync-token: ${reply.text}`);
  return token;
}

export interface StoredCard {
  etag: string;
  data: string;
}

/**
 * Reads every card of a book through PROPFIND Depth 1, GET, multiget,
 * sync-collection and an unfiltered addressbook-query, and checks that all of
 * them parse and agree on the hrefs, ETags and card data. Returns the cards by href.
 */
export async function readWholeBook(client: Client, bookPath: string): Promise<Map<string, StoredCard>> {
  const listing = await client.propfind(bookPath, '1', PROPFIND_ETAG);
  expect(listing.status).toBe(207);
  const etags = new Map<string, string>();
  for (const response of parseMultistatus(listing.text).responses) {
    if (response.href === bookPath) continue;
    const etag = okProp(response, dav('getetag'))?.text;
    expect({ href: response.href, etag }).toEqual({ href: response.href, etag: expect.stringMatching(/^"[^"]+"$/) });
    etags.set(response.href, etag as string);
  }

  const cards = new Map<string, StoredCard>();
  for (const [href, etag] of etags) {
    const reply = await client.get(href);
    expect({ href, status: reply.status, etag: reply.headers.etag }).toEqual({ href, status: 200, etag });
    cards.set(href, { etag, data: reply.text });
  }

  const multiget = await client.report(bookPath, multigetBody([...etags.keys()]));
  expect(multiget.status).toBe(207);
  const fetched = parseMultistatus(multiget.text).responses;
  expect(fetched.map((r) => r.href).sort()).toEqual([...etags.keys()].sort());
  for (const response of fetched) {
    const expected = cards.get(response.href) as StoredCard;
    expect({ href: response.href, etag: okProp(response, dav('getetag'))?.text }).toEqual({ href: response.href, etag: expected.etag });
    expect({ href: response.href, data: okProp(response, carddav('address-data'))?.text }).toEqual({ href: response.href, data: expected.data });
  }

  const sync = await syncCollection(client, bookPath, '', { addressData: true });
  expect(sync.syncToken).toMatch(/\S/);
  expect(sync.responses.map((r) => r.href).sort()).toEqual([...etags.keys()].sort());
  for (const response of sync.responses) {
    const expected = cards.get(response.href) as StoredCard;
    expect({ href: response.href, data: okProp(response, carddav('address-data'))?.text }).toEqual({ href: response.href, data: expected.data });
  }

  const query = await client.report(
    bookPath,
    `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/><card:address-data/></d:prop></card:addressbook-query>`,
  );
  expect(query.status).toBe(207);
  expect(parseMultistatus(query.text).responses.map((r) => r.href).sort()).toEqual([...etags.keys()].sort());
  return cards;
}
