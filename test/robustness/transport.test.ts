/**
 * Bodies that are too large, truncated or framed wrongly, and clients that
 * hang up or stop reading in the middle of a streamed multistatus. Nothing
 * partial is stored, and the server keeps serving everyone else.
 */
import http from 'node:http';
import net from 'node:net';
import { startTestApp, type TestApp } from '../helpers/app';
import {
  carddav,
  Client,
  expectDavError,
  multigetBody,
  okProp,
  parseMultistatus,
  person,
  portOf,
  PROPFIND_ETAG,
  rawExchange,
  readWholeBook,
  syncBody,
} from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';
const MAX_CARD = 4096;
const MAX_XML = 65536;

describe('request bodies', () => {
  let app: TestApp;
  let client: Client;

  beforeAll(async () => {
    app = await startTestApp({ maxResourceSize: MAX_CARD, maxXmlBody: MAX_XML });
    await app.addUser('alice');
    client = new Client(portOf(app), app.auth('alice'));
  });

  afterAll(() => app.close());

  /** Sends a chunked request, writing each chunk only after the previous one was flushed. */
  function sendChunked(method: string, path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<{ status: number; text: string; contentType?: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: client.port, method, path, agent: false, headers: { Authorization: app.auth('alice'), 'Transfer-Encoding': 'chunked', ...headers } },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (chunk: Buffer) => parts.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8'), contentType: res.headers['content-type'] }));
        },
      );
      // The server may respond and close the connection before the last chunk is written.
      req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
      let index = 0;
      const writeNext = (): void => {
        if (index === chunks.length) {
          req.end();
          return;
        }
        req.write(chunks[index++], writeNext);
      };
      writeNext();
    });
  }

  test('declared Content-Length over the card limit', async () => {
    const href = `${BOOK}declared.vcf`;
    const reply = await client.request('PUT', href, { headers: { 'Content-Type': 'text/vcard', 'Content-Length': String(MAX_CARD + 1) }, body: 'x'.repeat(MAX_CARD + 1) });
    expectDavError(reply, 403, carddav('max-resource-size'));
    expect((await client.get(href)).status).toBe(404);
  });

  test('chunked card larger than the limit', async () => {
    const href = `${BOOK}chunked.vcf`;
    const card = person('chunked', 'Ada Lovelace', [`NOTE:${'n'.repeat(3 * MAX_CARD)}`]);
    const bytes = Buffer.from(card);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 1000) }, (_, i) => bytes.subarray(i * 1000, (i + 1) * 1000));
    const reply = await sendChunked('PUT', href, { 'Content-Type': 'text/vcard' }, chunks);
    expect({ status: reply.status, contentType: reply.contentType }).toEqual({ status: 403, contentType: expect.stringMatching(/^application\/xml/) });
    expect(reply.text).toContain('max-resource-size');
    expect((await client.get(href)).status).toBe(404);
  });

  test('chunked XML larger than the limit', async () => {
    const filler = Buffer.from(`<!-- ${'c'.repeat(8000)} -->`);
    const chunks = [Buffer.from('<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>'), ...Array<Buffer>(12).fill(filler), Buffer.from('x</d:displayname></d:prop></d:set></d:propertyupdate>')];
    const reply = await sendChunked('PROPPATCH', BOOK, { 'Content-Type': 'application/xml' }, chunks);
    expect({ status: reply.status, contentType: reply.contentType }).toEqual({ status: 413, contentType: expect.stringMatching(/^application\/xml/) });
    const listing = await client.propfind(BOOK, '0', '<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>');
    expect(okProp(parseMultistatus(listing.text).responses[0], '{DAV:}displayname')?.text).toBe('Contacts');
  });

  test('XML split inside characters', async () => {
    const name = 'Zoë 日本 😀';
    const bytes = Buffer.from(`<?xml version="1.0" encoding="utf-8"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>${name}</d:displayname></d:prop></d:set></d:propertyupdate>`);
    const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
    const reply = await sendChunked('PROPPATCH', BOOK, { 'Content-Type': 'application/xml' }, chunks);
    expect(reply.status).toBe(207);
    const listing = await client.propfind(BOOK, '0', '<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>');
    expect(okProp(parseMultistatus(listing.text).responses[0], '{DAV:}displayname')?.text).toBe(name);
  });

  test('UTF-16 XML split inside characters', async () => {
    const name = 'Ωmega 😀';
    const text = `<?xml version="1.0" encoding="UTF-16"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>${name}</d:displayname></d:prop></d:set></d:propertyupdate>`;
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 3) }, (_, i) => bytes.subarray(i * 3, i * 3 + 3));
    const reply = await sendChunked('PROPPATCH', BOOK, { 'Content-Type': 'application/xml' }, chunks);
    expect(reply.status).toBe(207);
    const listing = await client.propfind(BOOK, '0', '<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>');
    expect(okProp(parseMultistatus(listing.text).responses[0], '{DAV:}displayname')?.text).toBe(name);
    await client.request('PROPPATCH', BOOK, {
      headers: { 'Content-Type': 'application/xml' },
      body: '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Contacts</d:displayname></d:prop></d:set></d:propertyupdate>',
    });
  });

  test('invalid UTF-8 split across chunks', async () => {
    const head = Buffer.from('<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>');
    // 0xE6 0x97 starts a three-byte sequence, and the next chunk does not finish it.
    const chunks = [head.subarray(0, 20), Buffer.from([0xe6, 0x97]), Buffer.from('<x/>'), head.subarray(20)];
    const reply = await sendChunked('PROPFIND', BOOK, { 'Content-Type': 'application/xml', Depth: '0' }, chunks);
    expect(reply.status).toBe(400);
    expect(reply.text).toContain('not valid UTF-8');
  });

  test('malformed XML keeps the connection', async () => {
    const bad = `<d:propfind xmlns:d="DAV:"><d:prop></d:propfind>${' '.repeat(40_000)}`;
    const good = PROPFIND_ETAG;
    const request = (body: string) =>
      `PROPFIND ${BOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${app.auth('alice')}\r\nDepth: 0\r\n` +
      `Content-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    // Both requests go on one connection: the second gets its reply only if the first body was read to its end.
    const text = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = net.connect(client.port, '127.0.0.1', () => socket.write(request(bad) + request(good)));
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (received.includes('</d:multistatus>')) socket.end();
      });
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    // A status line ends in CRLF, where a DAV:status element inside a body does not.
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Za-z -]+\r\n/g)].map((match) => Number(match[1]));
    expect(statuses).toEqual([400, 207]);
  });

  test('chunked card within the limit is stored', async () => {
    const href = `${BOOK}small-chunks.vcf`;
    const bytes = Buffer.from(person('small-chunks'));
    const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
    const reply = await sendChunked('PUT', href, { 'Content-Type': 'text/vcard' }, chunks);
    expect(reply.status).toBe(201);
    expect((await client.get(href)).text).toBe(bytes.toString());
  });

  test('upload cut off before Content-Length', async () => {
    const href = `${BOOK}truncated.vcf`;
    const card = person('truncated', 'Ada Lovelace', [`NOTE:${'t'.repeat(2000)}`]);
    await new Promise<void>((resolve) => {
      const socket = net.connect(client.port, '127.0.0.1', () => {
        socket.write(
          `PUT ${href} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${app.auth('alice')}\r\n` +
            `Content-Type: text/vcard\r\nContent-Length: ${Buffer.byteLength(card)}\r\n\r\n${card.slice(0, 1000)}`,
          () => socket.destroy(),
        );
      });
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
    });
    expect((await client.get(href)).status).toBe(404);
    expect((await readWholeBook(client, BOOK)).has(href)).toBe(false);
  });

  test('chunked upload cut off mid-chunk', async () => {
    const href = `${BOOK}cut-chunk.vcf`;
    await new Promise<void>((resolve) => {
      const socket = net.connect(client.port, '127.0.0.1', () => {
        socket.write(
          `PUT ${href} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${app.auth('alice')}\r\n` +
            'Content-Type: text/vcard\r\nTransfer-Encoding: chunked\r\n\r\n40\r\nBEGIN:VCARD\r\nVERSION:3.0\r\n',
          () => socket.destroy(),
        );
      });
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
    });
    expect((await client.get(href)).status).toBe(404);
  });

  test('Content-Length shorter than the body', async () => {
    const href = `${BOOK}short-length.vcf`;
    const card = person('short-length');
    const request =
      `PUT ${href} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${app.auth('alice')}\r\n` +
      `Content-Type: text/vcard\r\nContent-Length: 40\r\n\r\n${card}`;
    // The bytes after the first 40 are not HTTP, so the server may close the connection before it responds to the PUT.
    await rawExchange(client.port, request);
    expect((await client.get(href)).status).toBe(404);
    expect((await client.propfind(BOOK, '0', PROPFIND_ETAG)).status).toBe(207);
  });

  test('GET and DELETE bodies keep the connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const keepAliveClient = new Client(client.port, app.auth('alice'), agent);
    const href = `${BOOK}with-body.vcf`;
    expect((await keepAliveClient.put(href, person('with-body'))).status).toBe(201);
    const junk = 'GET / HTTP/1.1\r\n\r\n'.repeat(5000);
    const got = await keepAliveClient.request('GET', href, { body: junk });
    expect(got.status).toBe(200);
    expect(got.text).toBe(person('with-body'));
    expect((await keepAliveClient.request('DELETE', href, { body: junk })).status).toBe(204);
    expect((await keepAliveClient.get(href)).status).toBe(404);
    expect((await keepAliveClient.propfind(BOOK, '0', PROPFIND_ETAG)).status).toBe(207);
    agent.destroy();
  });
});

describe('streamed multistatus', () => {
  const CARDS = 40;
  let app: TestApp;
  let client: Client;
  const hrefs: string[] = [];

  beforeAll(async () => {
    app = await startTestApp();
    await app.addUser('alice');
    client = new Client(portOf(app), app.auth('alice'));
    for (let i = 0; i < CARDS; i++) {
      const href = `${BOOK}big-${i}.vcf`;
      const reply = await client.put(href, person(`big-${i}`, `Person ${i}`, [`NOTE:${String(i % 10).repeat(400_000)}`]));
      if (reply.status !== 201) throw new Error(`PUT ${href} returned ${reply.status}: ${reply.text}`);
      hrefs.push(href);
    }
  });

  afterAll(() => app.close());

  const largeRequests: [string, string, Record<string, string>, string | undefined][] = [
    ['multiget', 'REPORT', { 'Content-Type': 'application/xml' }, undefined],
    ['sync-collection', 'REPORT', { 'Content-Type': 'application/xml' }, syncBody('', { addressData: true })],
    ['addressbook-query', 'REPORT', { 'Content-Type': 'application/xml' }, '<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><card:address-data/></d:prop></card:addressbook-query>'],
    ['book export', 'GET', {}, undefined],
  ];

  /** Starts a large response and resolves with the request once its first body chunk arrived. */
  function startLarge(method: string, headers: Record<string, string>, body: string): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: client.port, method, path: BOOK, agent: false, headers: { Authorization: app.auth('alice'), 'Content-Length': String(Buffer.byteLength(body)), ...headers } },
        (res) => {
          res.once('data', () => {
            res.pause();
            resolve({ req, res });
          });
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
      req.end(body);
    });
  }

  test.each(largeRequests)('client hanging up mid-%s', async (_name, method, headers, body) => {
    for (let round = 0; round < 5; round++) {
      const { req, res } = await startLarge(method, headers, body ?? (method === 'GET' ? '' : multigetBody(hrefs)));
      expect(res.statusCode).toBe(method === 'GET' ? 200 : 207);
      req.destroy();
    }
    const replies = await Promise.all(Array.from({ length: 10 }, () => client.propfind(BOOK, '0', PROPFIND_ETAG)));
    expect(replies.map((r) => r.status)).toEqual(Array<number>(10).fill(207));
    const multiget = await client.report(BOOK, multigetBody(hrefs));
    expect(parseMultistatus(multiget.text).responses.map((r) => okProp(r, carddav('address-data'))?.text.length)).toEqual(
      hrefs.map((_, i) => Buffer.byteLength(person(`big-${i}`, `Person ${i}`, [`NOTE:${String(i % 10).repeat(400_000)}`]))),
    );
  });

  test('stalled reader blocks no one', async () => {
    const { req, res } = await startLarge('REPORT', { 'Content-Type': 'application/xml' }, multigetBody(hrefs));
    const others = await Promise.all([
      client.propfind(BOOK, '1', PROPFIND_ETAG),
      client.put(`${BOOK}while-paused.vcf`, person('while-paused')),
      client.get(hrefs[0]),
    ]);
    expect(others.map((r) => r.status)).toEqual([207, 201, 200]);
    const rest: Buffer[] = [];
    res.on('data', (chunk: Buffer) => rest.push(chunk));
    const ended = new Promise<void>((resolve) => res.on('end', () => resolve()));
    res.resume();
    await ended;
    expect(Buffer.concat(rest).toString('utf8')).toMatch(/<\/d:multistatus>$/);
    req.destroy();
  });
});
