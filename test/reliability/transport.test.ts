/**
 * Hostile clients at the connection level. They send bodies far over the
 * limits, headers or a body a byte at a time, too many or too large headers
 * and URLs, and paths built to reach outside the requested resource. The server rejects an oversized body from its
 * declared length without reading it. It closes connections it will not
 * read on. It times slow clients out with 408 within its configured
 * timeouts and never responds with a 5xx. No path returns or changes
 * another user's or another book's cards.
 *
 * test/robustness/transport.test.ts covers chunked bodies over the limit and
 * cut-off uploads, test/robustness/faults.test.ts a 20 KB header and path,
 * and test/robustness/paths.test.ts dot segments and malformed escapes.
 * The tests on `cardinal serve` need `npm run build` first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import fc from 'fast-check';
import { startTestApp, type TestApp } from '../helpers/app';
import { ConfigError, loadConfig } from '../../server/config';
import {
  basicAuth,
  carddav,
  Client,
  expectDavError,
  multigetBody,
  parseMultistatus,
  parseRawResponse,
  parseXml,
  person,
  portOf,
  PROPFIND_ETAG,
  rawExchange,
  readWholeBook,
  type Reply,
} from '../robustness/support';
import { addUser, LONG_MODE, propertySeed, removeConfigs, startCardinal, stopCardinal, storeSnapshot, writeConfigFile, type CardinalProcess } from './support';

jest.setTimeout(LONG_MODE ? 1_800_000 : 120_000);

const BOOK = '/dav/addressbooks/alice/contacts/';
const CARD_LIMIT = 4096;
const XML_LIMIT = 65536;
/** Bound for a response or a close the server should send at once: far above the time it takes, far below any timeout in play. */
const PROMPT_MS = 5_000;

interface RawResult {
  /** Everything the server sent, as latin1. */
  text: string;
  /** Bytes of the request this client wrote before the server closed the connection. */
  sent: number;
  /** Milliseconds from connecting to the server closing the connection, or undefined if it stayed open. */
  closedAfterMs?: number;
  /** Milliseconds from connecting to the first byte of the response. */
  answeredAfterMs?: number;
}

/**
 * Writes `head`, then calls `next` for more data until it returns
 * undefined, waiting `intervalMs` between writes. Stops writing once the
 * server closes the connection, or once it responds unless
 * `writeAfterAnswer` is set. Resolves when the connection is closed or
 * `giveUpMs` has passed.
 */
function feed(
  port: number,
  head: string | Buffer,
  next: (sent: number) => Buffer | undefined,
  intervalMs: number,
  giveUpMs: number,
  writeAfterAnswer = false,
): Promise<RawResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let sent = 0;
    let answeredAfterMs: number | undefined;
    let finished = false;
    const socket = net.connect(port, '127.0.0.1');
    const finish = (closed: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), sent, closedAfterMs: closed ? Date.now() - started : undefined, answeredAfterMs });
    };
    const giveUp = setTimeout(() => finish(false), giveUpMs);
    const write = (): void => {
      if (finished || (answeredAfterMs !== undefined && !writeAfterAnswer)) return;
      const data = next(sent);
      if (data === undefined) return;
      const flushed = socket.write(data, () => undefined);
      sent += data.length;
      if (intervalMs > 0) setTimeout(write, intervalMs);
      else if (flushed) setImmediate(write);
      else socket.once('drain', write);
    };
    socket.on('connect', () => {
      socket.write(head);
      sent += Buffer.byteLength(head);
      write();
    });
    socket.on('data', (chunk: Buffer) => {
      if (answeredAfterMs === undefined) answeredAfterMs = Date.now() - started;
      chunks.push(chunk);
    });
    // A write after the server closed fails with EPIPE or ECONNRESET; the close that follows ends the exchange.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
  });
}

function requestHead(method: string, path: string, authorization: string, headers: string[]): string {
  return [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', `Authorization: ${authorization}`, ...headers, '', ''].join('\r\n');
}

function rootName(body: string): string {
  try {
    return parseXml(body).name;
  } catch (error) {
    return `not XML: ${(error as Error).message}: ${JSON.stringify(body.slice(0, 100))}`;
  }
}

describe('bodies over the limit', () => {
  let app: TestApp;
  let auth: string;

  beforeAll(async () => {
    // In-process with Node's default timeouts (300 s for a request), so only the limit can close a connection here.
    app = await startTestApp({ maxResourceSize: CARD_LIMIT, maxXmlBody: XML_LIMIT });
    await app.addUser('alice');
    auth = app.auth('alice');
  });

  afterAll(() => app?.close());

  const declared: [string, string, string, number, string | undefined][] = [
    ['PUT', `${BOOK}declared.vcf`, 'text/vcard', 403, carddav('max-resource-size')],
    ['PROPFIND', BOOK, 'application/xml', 413, undefined],
    ['PROPPATCH', BOOK, 'application/xml', 413, undefined],
    ['REPORT', BOOK, 'application/xml', 413, undefined],
    ['MKCOL', '/dav/addressbooks/alice/declared/', 'application/xml', 413, undefined],
  ];

  test.each(declared)('%s declaring 1 GB is answered without the body', async (method, path, type, status, condition) => {
    const head = requestHead(method, path, auth, [`Content-Type: ${type}`, 'Content-Length: 1073741824', 'Depth: 0']);
    const result = await feed(portOf(app), head, () => undefined, 0, PROMPT_MS);
    const response = parseRawResponse(result.text);
    expect({ status: response.status, root: rootName(response.body) }).toEqual({ status, root: '{DAV:}error' });
    if (condition) expect(response.body).toContain('max-resource-size');
    expect(response.headers.connection).toBe('close');
    // The server closes the connection instead of waiting for a gigabyte it would discard.
    expect(result.closedAfterMs).toBeLessThan(PROMPT_MS);
  });

  test.each([
    ['PUT', `${BOOK}streamed.vcf`, 'text/vcard', 403],
    ['PROPPATCH', BOOK, 'application/xml', 413],
    ['REPORT', BOOK, 'application/xml', 413],
  ])('%s streaming 256 MB chunked is cut off early', async (method, path, type, status) => {
    const total = 256 * 1024 * 1024;
    const chunk = Buffer.from(`4000\r\n${'<'.repeat(0x4000)}\r\n`);
    const head = requestHead(method, path, auth, [`Content-Type: ${type}`, 'Transfer-Encoding: chunked']);
    // The client goes on writing after the response, as an upload tool does, to see whether the server reads on.
    const result = await feed(portOf(app), head, (sent) => (sent < total ? chunk : undefined), 0, 60_000, true);
    const response = parseRawResponse(result.text);
    process.stdout.write(
      `${method} chunked over the limit: answered after ${result.answeredAfterMs} ms, ${result.sent} bytes written before the close after ${result.closedAfterMs} ms\n`,
    );
    expect({ status: response.status, root: rootName(response.body) }).toEqual({ status, root: '{DAV:}error' });
    expect(response.headers.connection).toBe('close');
    expect(result.closedAfterMs).toBeDefined();
    // Loopback socket buffers hold a few MB; a server that read on to the end would take all 256 MB.
    expect(result.sent).toBeLessThan(total / 8);
  });

  test('the book is unchanged after the refused bodies', async () => {
    const client = new Client(portOf(app), auth);
    expect((await readWholeBook(client, BOOK)).size).toBe(0);
    expect((await client.propfind('/dav/addressbooks/alice/declared/', '0', PROPFIND_ETAG)).status).toBe(404);
  });
});

describe('configured timeouts', () => {
  test('invalid timeouts are rejected', () => {
    const cases: [Record<string, number>, RegExp][] = [
      [{ headersSeconds: 0 }, /timeouts\.headersSeconds must be a positive number/],
      [{ requestSeconds: -1 }, /timeouts\.requestSeconds must be a positive number/],
      [{ headersSeconds: 10, requestSeconds: 5 }, /headersSeconds must not be larger than timeouts\.requestSeconds/],
    ];
    try {
      for (const [timeouts, message] of cases) {
        const file = writeConfigFile({ timeouts });
        expect(() => loadConfig({ config: file })).toThrow(ConfigError);
        expect(() => loadConfig({ config: file })).toThrow(message);
      }
      const file = writeConfigFile({ timeouts: { headersSeconds: 'soon' } });
      expect(() => loadConfig({ config: file })).toThrow(/timeouts\.headersSeconds must be a positive number/);
    } finally {
      removeConfigs();
    }
  });

  test('default timeouts', () => {
    expect(loadConfig({}).timeouts).toEqual({ headersSeconds: 60, requestSeconds: 300, keepAliveSeconds: 30 });
  });
});

describe('slow clients against cardinal serve', () => {
  const TIMEOUTS = { headersSeconds: 2, requestSeconds: 4, keepAliveSeconds: 1 };
  /** Bound for a timeout to act: the configured time plus Node's check interval and a wide margin, far below the defaults. */
  const TIMEOUT_BOUND_MS = 15_000;
  let dataDir: string;
  let server: CardinalProcess | undefined;
  const auth = basicAuth('alice', 'alice-password');

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cardinal-transport-'));
    await addUser(dataDir, 'alice', 'alice-password');
    const config = writeConfigFile({ timeouts: TIMEOUTS, limits: { maxResourceSize: CARD_LIMIT, maxXmlBody: XML_LIMIT } });
    server = await startCardinal(dataDir, { args: ['--config', config] });
  });

  afterAll(async () => {
    if (server) await stopCardinal(server);
    removeConfigs();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const port = (): number => (server as CardinalProcess).port;

  /** Returns one byte of `text` per call, then undefined. */
  function trickle(text: string): () => Buffer | undefined {
    let index = 0;
    return () => (index < text.length ? Buffer.from(text[index++]) : undefined);
  }

  test('headers sent a byte at a time time out with 408', async () => {
    const head = `PROPFIND ${BOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
    const result = await feed(port(), head, trickle(`X-Slow: ${'s'.repeat(1000)}`), 300, TIMEOUT_BOUND_MS + 5_000);
    process.stdout.write(`slow headers: closed after ${result.closedAfterMs} ms (headersSeconds ${TIMEOUTS.headersSeconds})\n`);
    const response = parseRawResponse(result.text);
    expect({ status: response.status, root: rootName(response.body) }).toEqual({ status: 408, root: '{DAV:}error' });
    expect(result.closedAfterMs).toBeGreaterThanOrEqual(TIMEOUTS.headersSeconds * 1000);
    expect(result.closedAfterMs).toBeLessThan(TIMEOUT_BOUND_MS);
  });

  test('a body sent a byte at a time times out with 408', async () => {
    const card = person('slow-body');
    const head = requestHead('PUT', `${BOOK}slow-body.vcf`, auth, ['Content-Type: text/vcard', `Content-Length: ${Buffer.byteLength(card)}`]);
    const result = await feed(port(), head, trickle(card), 200, TIMEOUT_BOUND_MS + 5_000);
    process.stdout.write(`slow body: closed after ${result.closedAfterMs} ms (requestSeconds ${TIMEOUTS.requestSeconds})\n`);
    const response = parseRawResponse(result.text);
    expect(response.status).toBe(408);
    expect(result.closedAfterMs).toBeGreaterThanOrEqual(TIMEOUTS.requestSeconds * 1000);
    expect(result.closedAfterMs).toBeLessThan(TIMEOUT_BOUND_MS);
    expect((await new Client(port(), auth).get(`${BOOK}slow-body.vcf`)).status).toBe(404);
  });

  test('a body that stalls times out with 408', async () => {
    const card = person('stalled');
    const head = requestHead('PUT', `${BOOK}stalled.vcf`, auth, ['Content-Type: text/vcard', `Content-Length: ${Buffer.byteLength(card)}`]);
    let written = false;
    const half = (): Buffer | undefined => {
      if (written) return undefined;
      written = true;
      return Buffer.from(card.slice(0, 20));
    };
    const result = await feed(port(), head, half, 0, TIMEOUT_BOUND_MS + 5_000);
    expect(parseRawResponse(result.text).status).toBe(408);
    expect(result.closedAfterMs).toBeLessThan(TIMEOUT_BOUND_MS);
    expect((await new Client(port(), auth).get(`${BOOK}stalled.vcf`)).status).toBe(404);
  });

  test('an idle keep-alive connection is closed', async () => {
    const head = requestHead('PROPFIND', BOOK, auth, ['Depth: 0', 'Content-Type: application/xml', `Content-Length: ${PROPFIND_ETAG.length}`]) + PROPFIND_ETAG;
    const result = await feed(port(), head, () => undefined, 0, TIMEOUT_BOUND_MS + 5_000);
    expect(parseRawResponse(result.text).status).toBe(207);
    expect(result.closedAfterMs).toBeGreaterThanOrEqual(TIMEOUTS.keepAliveSeconds * 1000);
    expect(result.closedAfterMs).toBeLessThan(TIMEOUT_BOUND_MS);
  });

  test('100 slow connections block no one', async () => {
    const slow = Array.from({ length: 100 }, () => feed(port(), `GET ${BOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n`, trickle('X-Slow: '.padEnd(200, 's')), 500, TIMEOUT_BOUND_MS + 5_000));
    const client = new Client(port(), auth);
    for (let i = 0; i < 5; i++) {
      const reply = await client.propfind(BOOK, '0', PROPFIND_ETAG);
      expect(reply.status).toBe(207);
    }
    const results = await Promise.all(slow);
    expect(results.map((r) => r.closedAfterMs !== undefined && r.closedAfterMs < TIMEOUT_BOUND_MS)).toEqual(Array<boolean>(100).fill(true));
    expect((server as CardinalProcess).running()).toBe(true);
  });
});

describe('header and URL limits against cardinal serve', () => {
  let dataDir: string;
  let server: CardinalProcess | undefined;
  const auth = basicAuth('alice', 'alice-password');

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cardinal-transport-'));
    await addUser(dataDir, 'alice', 'alice-password');
    server = await startCardinal(dataDir);
  });

  afterAll(async () => {
    if (server) await stopCardinal(server);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const port = (): number => (server as CardinalProcess).port;

  async function exchange(head: string): Promise<{ status: number; root: string }> {
    const result = await feed(port(), head, () => undefined, 0, PROMPT_MS);
    const response = parseRawResponse(result.text);
    return { status: response.status, root: rootName(response.body) };
  }

  test('1,000 small headers are served', async () => {
    const headers = Array.from({ length: 1000 }, (_, i) => `X-H${i}: ${i}`);
    expect(await exchange(requestHead('GET', BOOK, auth, [...headers, 'Connection: close']))).toEqual({ status: 200, root: expect.any(String) });
  });

  const rejected: [string, string, number[]][] = [
    ['5,000 small headers', requestHead('GET', BOOK, auth, Array.from({ length: 5000 }, (_, i) => `X-H${i}: ${i}`)), [431]],
    ['one header of 1 MB', requestHead('GET', BOOK, auth, [`X-Big: ${'b'.repeat(1024 * 1024)}`]), [431]],
    ['a path of 1 MB', requestHead('GET', `${BOOK}${'p'.repeat(1024 * 1024)}.vcf`, auth, []), [414, 431]],
    ['a query of 100 KB', requestHead('GET', `${BOOK}?${'q=1&'.repeat(25_000)}`, auth, []), [414, 431]],
    ['a header name of 100 KB', requestHead('GET', BOOK, auth, [`${'N'.repeat(100_000)}: 1`]), [431]],
  ];

  test.each(rejected)('%s is rejected with a DAV:error', async (_name, head, statuses) => {
    const reply = await exchange(head);
    expect({ status: statuses.includes(reply.status) ? 'expected' : reply.status, root: reply.root }).toEqual({ status: 'expected', root: '{DAV:}error' });
    expect((server as CardinalProcess).running()).toBe(true);
  });

  test('server still serves after rejections', async () => {
    expect((await new Client(port(), auth).propfind(BOOK, '0', PROPFIND_ETAG)).status).toBe(207);
  });
});

describe('paths that try to leave the requested resource', () => {
  const ALICE_OTHER = '/dav/addressbooks/alice/other/';
  const OTHER_CARD = `${ALICE_OTHER}other-secret.vcf`;
  const BOB_CARD = '/dav/addressbooks/bob/contacts/secret.vcf';
  const SECRETS = ['Bob Secret', 'Other Secret'];
  let app: TestApp;
  let alice: Client;
  let bob: Client;
  let before: unknown;

  beforeAll(async () => {
    app = await startTestApp({ maxResourceSize: CARD_LIMIT, maxXmlBody: XML_LIMIT });
    await app.addUser('alice');
    await app.addUser('bob');
    alice = new Client(portOf(app), app.auth('alice'));
    bob = new Client(portOf(app), app.auth('bob'));
    expect((await alice.mkcol(ALICE_OTHER)).status).toBe(201);
    expect((await alice.put(OTHER_CARD, person('other-secret', 'Other Secret'))).status).toBe(201);
    expect((await bob.put(BOB_CARD, person('bob-secret', 'Bob Secret'))).status).toBe(201);
    before = await storeSnapshot(app.storage);
  });

  afterAll(() => app?.close());

  /** Paths aimed at Bob's card or at Alice's other book from her contacts book. */
  const outside = [
    '/dav/addressbooks/alice%252F..%252Fbob/contacts/secret.vcf',
    `${BOOK}%252e%252e/%252e%252e/bob/contacts/secret.vcf`,
    `${BOOK}.%2e/.%2e/bob/contacts/secret.vcf`,
    `${BOOK}%2e./%2e./bob/contacts/secret.vcf`,
    `${BOOK}..;/..;/bob/contacts/secret.vcf`,
    `${BOOK}%c0%ae%c0%ae/%c0%ae%c0%ae/bob/contacts/secret.vcf`,
    `${BOOK}%e0%80%ae%e0%80%ae/bob/contacts/secret.vcf`,
    `${BOOK}..%5c..%5cbob/contacts/secret.vcf`,
    '/dav/addressbooks/alice/\\..\\bob/contacts/secret.vcf',
    '/dav/addressbooks/bob%00/contacts/secret.vcf',
    '/dav/addressbooks/alice%00/../bob/contacts/secret.vcf',
    '/dav/addressbooks/alice/contacts%00/../../bob/contacts/secret.vcf',
    `${BOOK}secret.vcf%00/../../../bob/contacts/secret.vcf`,
    '/dav/addressbooks//bob/contacts/secret.vcf',
    '/dav//addressbooks/bob/contacts/secret.vcf',
    '/dav/addressbooks/%62ob/contacts/secret.vcf',
    '/dav/addressbooks/BOB/contacts/secret.vcf',
    '/dav/addressbooks/bob/contacts/secret.vcf%00',
    '/dav/addressbooks/bob%2Fcontacts/secret.vcf',
    '/dav/addressbooks/alice/contacts/../other/other-secret.vcf',
    `${BOOK}%2e%2e%2fother%2fother-secret.vcf`,
    `${BOOK}..%2Fother/other-secret.vcf`,
    '/dav/addressbooks/alice/contacts%2F..%2Fother/other-secret.vcf',
    '/dav/addressbooks/alice/contacts/%2e%2e/other/',
    '/dav/addressbooks/alice/%2e%2e/bob/contacts/',
    '/dav/principals/alice/%2e%2e/bob/',
  ];

  /** Sends each method with a body that would be valid for it. */
  async function everyMethod(path: string): Promise<[string, Reply][]> {
    const update = '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>taken</d:displayname></d:prop></d:set></d:propertyupdate>';
    const query = '<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/></d:prop></card:addressbook-query>';
    return [
      ['GET', await alice.get(path)],
      ['PROPFIND', await alice.propfind(path, '1', PROPFIND_ETAG)],
      ['PROPPATCH', await alice.proppatch(path, update)],
      ['REPORT', await alice.report(path, query)],
      ['PUT', await alice.put(path, person('intruder', 'Intruder'))],
      ['DELETE', await alice.delete(path)],
      ['MKCOL', await alice.mkcol(path)],
    ];
  }

  test.each(outside)('%s reaches nothing', async (path) => {
    for (const [method, reply] of await everyMethod(path)) {
      expect({ method, status: reply.status, rejected: [400, 403, 404, 405, 409].includes(reply.status) }).toEqual({ method, status: reply.status, rejected: true });
      expectDavError(reply, reply.status);
      for (const secret of SECRETS) expect({ method, leaked: reply.text.includes(secret) }).toEqual({ method, leaked: false });
    }
    expect(await storeSnapshot(app.storage)).toEqual(before);
  });

  test('raw request-line bytes reach nothing', async () => {
    const lines = [
      Buffer.concat([Buffer.from(`GET ${BOOK}`), Buffer.from([0xff, 0xfe]), Buffer.from('/../../bob/contacts/secret.vcf HTTP/1.1\r\n')]),
      Buffer.concat([Buffer.from('GET /dav/addressbooks/'), Buffer.from([0xc0, 0xae, 0xc0, 0xae]), Buffer.from('/bob/contacts/secret.vcf HTTP/1.1\r\n')]),
      Buffer.from('GET http://127.0.0.1/dav/addressbooks/bob/contacts/secret.vcf HTTP/1.1\r\n'),
      Buffer.from('GET http://bob@127.0.0.1/dav/addressbooks/bob/contacts/secret.vcf HTTP/1.1\r\n'),
      Buffer.from('GET //127.0.0.1/dav/addressbooks/bob/contacts/secret.vcf HTTP/1.1\r\n'),
      Buffer.from(`GET ${BOOK}..\\..\\bob\\contacts\\secret.vcf HTTP/1.1\r\n`),
      Buffer.from(`GET ${BOOK}\u0000/../../bob/contacts/secret.vcf HTTP/1.1\r\n`),
    ];
    for (const line of lines) {
      const request = Buffer.concat([line, Buffer.from(`Host: 127.0.0.1\r\nAuthorization: ${app.auth('alice')}\r\nConnection: close\r\n\r\n`)]);
      const requestLine = JSON.stringify(line.toString('latin1'));
      const response = parseRawResponse(await rawExchange(portOf(app), request));
      expect({ requestLine, status: response.status, rejected: response.status >= 400 && response.status < 500 }).toEqual({ requestLine, status: response.status, rejected: true });
      expect({ requestLine, root: rootName(response.body) }).toEqual({ requestLine, root: '{DAV:}error' });
      for (const secret of SECRETS) expect({ requestLine, leaked: response.body.includes(secret) }).toEqual({ requestLine, leaked: false });
    }
    expect(await storeSnapshot(app.storage)).toEqual(before);
  });

  test('multiget hrefs that leave the book find nothing', async () => {
    const hrefs = [...outside, BOB_CARD, OTHER_CARD, `http://127.0.0.1${OTHER_CARD}`, `${BOOK}..\\other\\other-secret.vcf`];
    const reply = await alice.report(BOOK, multigetBody(hrefs));
    expect(reply.status).toBe(207);
    const responses = parseMultistatus(reply.text).responses;
    expect(responses.map((r) => r.status)).toEqual(hrefs.map(() => 404));
    for (const secret of SECRETS) expect(reply.text).not.toContain(secret);
  });

  /** Names that look like traversal but are one literal card name inside Alice's contacts book. */
  const literal: [string, string][] = [
    ['double-encoded dots and slash', '%252e%252e%252fother%252fother-secret.vcf'],
    ['encoded backslashes', '..%5C..%5Cbob%5Ccontacts%5Csecret.vcf'],
    ['dots with a semicolon', '..;'],
    ['one-dot leaders', '%E2%80%A4%E2%80%A4'],
    ['fullwidth slashes', '%EF%BC%8F..%EF%BC%8Fbob'],
    ['overlong-looking text', '%25c0%25ae%25c0%25ae'],
  ];

  test.each(literal)('%s stays one card in the requested book', async (_label, name) => {
    const href = `${BOOK}${name}`;
    const card = person(`literal-${name}`, 'Literal Card');
    const stored = await alice.put(href, card);
    expect(stored.status).toBe(201);
    const cards = await readWholeBook(alice, BOOK);
    expect([...cards.keys()].map((h) => decodeURIComponent(h))).toEqual([decodeURIComponent(href)]);
    expect([...cards.values()][0].data).toBe(card);
    expect((await readWholeBook(alice, ALICE_OTHER)).get(OTHER_CARD)?.data).toBe(person('other-secret', 'Other Secret'));
    expect((await readWholeBook(bob, '/dav/addressbooks/bob/contacts/')).get(BOB_CARD)?.data).toBe(person('bob-secret', 'Bob Secret'));
    expect((await alice.delete([...cards.keys()][0])).status).toBe(204);
  });

  const SEGMENTS = [
    '..', '.', '%2e%2e', '%2E.', '%252e%252e', '%2F', '%2f..%2f', '%5C', '\\', '%00', '%ff', '%c0%ae', '%e2%80%a4', ';', '..;', '~',
    'bob', 'alice', 'contacts', 'other', 'secret.vcf', 'other-secret.vcf', 'dav', 'addressbooks', 'principals', '%62ob', '', '%20',
  ];
  const PREFIXES = ['/', '/dav/', '/dav/addressbooks/', '/dav/addressbooks/alice/', BOOK, ALICE_OTHER, '/dav/principals/alice/', '//'];
  const generatedPath = fc
    .tuple(fc.constantFrom(...PREFIXES), fc.array(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...SEGMENTS) }, { weight: 1, arbitrary: fc.webSegment() }), { maxLength: 6 }))
    .map(([prefix, segments]) => prefix + segments.join('/'));

  /** True when a path names Alice's other book or something in it without dot segments, so its cards may come back. */
  function namesOtherBook(path: string): boolean {
    let segments: string[];
    try {
      segments = path.split('/').filter((segment) => segment !== '').map((segment) => decodeURIComponent(segment));
    } catch {
      return false;
    }
    return segments.slice(0, 4).join('/') === 'dav/addressbooks/alice/other' && !segments.includes('..');
  }

  test('generated paths reach nothing outside', async () => {
    const tally = new Map<number, number>();
    let count = 0;
    await fc.assert(
      fc.asyncProperty(generatedPath, fc.constantFrom('GET', 'PROPFIND', 'REPORT', 'DELETE', 'PUT'), async (path, method) => {
        count += 1;
        // The conditions keep PUT and DELETE from replacing or removing what exists, so the fixture stays for the checks.
        let reply: Reply;
        if (method === 'PUT') reply = await alice.put(path, person(`generated-${count}`, 'Generated Card'), { 'If-None-Match': '*' });
        else if (method === 'DELETE') reply = await alice.delete(path, { 'If-Match': '"no-such-tag"' });
        else if (method === 'PROPFIND') reply = await alice.propfind(path, '1', PROPFIND_ETAG);
        else if (method === 'REPORT') reply = await alice.report(path, multigetBody([BOB_CARD, OTHER_CARD]));
        else reply = await alice.get(path);
        tally.set(reply.status, (tally.get(reply.status) ?? 0) + 1);
        expect({ method, path, serverError: reply.status >= 500 }).toEqual({ method, path, serverError: false });
        expect({ method, path, leaked: reply.text.includes('Bob Secret') }).toEqual({ method, path, leaked: false });
        if (!namesOtherBook(path)) expect({ method, path, leaked: reply.text.includes('Other Secret') }).toEqual({ method, path, leaked: false });
        if (reply.status >= 400) expectDavError(reply, reply.status);
      }),
      { seed: propertySeed('path fuzz', 20_240_606), numRuns: LONG_MODE ? 20_000 : 500 },
    );
    process.stdout.write(`path fuzz: ${count} requests, statuses ${JSON.stringify(Object.fromEntries(tally))}\n`);
    // PUT may store cards in Alice's own books, so only the other users' data and the existing cards must be as they were.
    expect((await readWholeBook(alice, ALICE_OTHER)).get(OTHER_CARD)?.data).toBe(person('other-secret', 'Other Secret'));
    const bobCards = await readWholeBook(bob, '/dav/addressbooks/bob/contacts/');
    expect([...bobCards.keys()]).toEqual([BOB_CARD]);
    expect(bobCards.get(BOB_CARD)?.data).toBe(person('bob-secret', 'Bob Secret'));
  });
});
