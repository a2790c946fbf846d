/**
 * Hostile REPORT bodies: oversized filters, bad sync tokens and limits. The server
 * must either send a complete multistatus or reject the request with a
 * DAV:error before any part of a 207 is sent.
 */
import http from 'node:http';
import { startTestApp, type TestApp } from '../helpers/app';
import { carddav, Client, currentSyncToken, dav, expectDavError, parseMultistatus, person, portOf, syncBody, XMLNS, type Multistatus } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';
const ADA = `${BOOK}ada.vcf`;

let app: TestApp;
let client: Client;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 1024 * 1024 });
  await app.addUser('alice');
  client = new Client(portOf(app), app.auth('alice'));
  await client.put(ADA, person('ada', 'Ada Lovelace'));
  await client.put(`${BOOK}grace.vcf`, person('grace', 'Grace Hopper'));
});

afterAll(() => app.close());

/** Sends a REPORT and returns its status and body, or the error when the server cut the response off. */
function report(body: string): Promise<{ status?: number; text: string; contentType?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: client.port,
        method: 'REPORT',
        path: BOOK,
        agent: false,
        headers: { Authorization: app.auth('alice'), 'Content-Type': 'application/xml', 'Content-Length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        const parts: Buffer[] = [];
        const done = (error?: string): void =>
          resolve({ status: res.statusCode, text: Buffer.concat(parts).toString('utf8'), contentType: res.headers['content-type'], error });
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () => done());
        res.on('error', (error) => done(error.message));
      },
    );
    req.on('error', (error) => resolve({ text: '', error: error.message }));
    req.end(body);
  });
}

/** Checks that a reply is a complete 207, which it parses and returns, or a 4xx DAV:error, for which it returns undefined. */
function expectCompleteOrRejected(reply: { status?: number; text: string; contentType?: string; error?: string }): Multistatus | undefined {
  expect({ status: reply.status, error: reply.error }).toEqual({ status: expect.any(Number), error: undefined });
  if (reply.status === 207) return parseMultistatus(reply.text);
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  expect(reply.contentType).toMatch(/^application\/xml/);
  return undefined;
}

function queryBody(filters: string[], test: 'anyof' | 'allof'): string {
  return `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/></d:prop><card:filter test="${test}">${filters.join('')}</card:filter></card:addressbook-query>`;
}

describe('addressbook-query', () => {
  const many = (count: number, needle: (i: number) => string): string[] =>
    Array.from({ length: count }, (_, i) => `<card:prop-filter name="FN"><card:text-match>${needle(i)}</card:text-match></card:prop-filter>`);

  test('1,500 prop-filters with anyof', async () => {
    const filters = [...many(1500, (i) => `nobody-${i}`), '<card:prop-filter name="FN"><card:text-match>Ada</card:text-match></card:prop-filter>'];
    const result = expectCompleteOrRejected(await report(queryBody(filters, 'anyof')));
    if (result) expect(result.responses.map((r) => r.href)).toEqual([ADA]);
  });

  test('1,500 prop-filters with allof', async () => {
    // Both names contain an "a", so every one of the 1,500 filters matches both cards.
    const result = expectCompleteOrRejected(await report(queryBody(many(1500, () => 'a'), 'allof')));
    if (result) expect(result.responses.map((r) => r.href).sort()).toEqual([ADA, `${BOOK}grace.vcf`]);
  });

  test('1,500 param-filters in one prop-filter', async () => {
    const params = Array.from({ length: 1500 }, (_, i) => `<card:param-filter name="X-P${i}"><card:is-not-defined/></card:param-filter>`).join('');
    const result = expectCompleteOrRejected(await report(queryBody([`<card:prop-filter name="FN" test="allof">${params}</card:prop-filter>`], 'anyof')));
    if (result) expect(result.responses.map((r) => r.href).sort()).toEqual([ADA, `${BOOK}grace.vcf`]);
  });

  test('needle of 100,000 characters', async () => {
    const result = expectCompleteOrRejected(await report(queryBody(many(1, () => 'a'.repeat(100_000)), 'anyof')));
    if (result) expect(result.responses).toEqual([]);
  });

  test('starts-with the last code point', async () => {
    const result = expectCompleteOrRejected(await report(queryBody([`<card:prop-filter name="FN"><card:text-match match-type="starts-with">\u{10ffff}</card:text-match></card:prop-filter>`], 'anyof')));
    if (result) expect(result.responses).toEqual([]);
  });

  test('unsupported filter parts are supported-filter', async () => {
    const bodies = [
      queryBody(['<card:prop-filter/>'], 'anyof'),
      queryBody(['<card:prop-filter name="FN"><card:text-match match-type="regex">.*</card:text-match></card:prop-filter>'], 'anyof'),
      queryBody(['<card:prop-filter name="FN"><card:unknown/></card:prop-filter>'], 'anyof'),
      queryBody(['<card:prop-filter name="a b"/>'], 'anyof'),
      queryBody(['<card:prop-filter name="FN"/>'], 'anyof').replace('test="anyof"', 'test="someof"'),
    ];
    for (const body of bodies) expectDavError(await client.report(BOOK, body), 403, carddav('supported-filter'));
  });

  test('unknown collation is supported-collation', async () => {
    const body = queryBody(['<card:prop-filter name="FN"><card:text-match collation="i;klingon">a</card:text-match></card:prop-filter>'], 'anyof');
    expectDavError(await client.report(BOOK, body), 403, carddav('supported-collation'));
  });
});

describe('sync-collection', () => {
  test('invalid tokens are valid-sync-token', async () => {
    const current = await currentSyncToken(client, BOOK);
    const seq = Number(current.slice(current.lastIndexOf(':') + 1));
    const tokens = [
      'garbage',
      'urn:x-cardinal:sync:00000000-0000-0000-0000-000000000000:1',
      current.replace(/:\d+$/, `:${seq + 1}`),
      current.replace(/:\d+$/, ':99999999999999999999'),
      current.replace(/:\d+$/, ':-1'),
      current.replace(/:\d+$/, ':1e3'),
      `${current} `.repeat(2),
      'http://127.0.0.1/',
    ];
    for (const token of tokens) {
      const reply = await client.report(BOOK, syncBody(token));
      expect({ token, status: reply.status }).toEqual({ token, status: 403 });
      expectDavError(reply, 403, dav('valid-sync-token'));
    }
  });

  test('token of another book is valid-sync-token', async () => {
    expect((await client.mkcol('/dav/addressbooks/alice/other/')).status).toBe(201);
    const foreign = await currentSyncToken(client, '/dav/addressbooks/alice/other/');
    expectDavError(await client.report(BOOK, syncBody(foreign)), 403, dav('valid-sync-token'));
  });

  test('bad sync-level and limit are 400', async () => {
    const bodies = [
      syncBody('').replace('<d:sync-level>1</d:sync-level>', '<d:sync-level>2</d:sync-level>'),
      syncBody('', { limit: 0 }),
      syncBody('', { limit: -5 }),
      syncBody('').replace('<d:prop>', '<d:limit><d:nresults>many</d:nresults></d:limit><d:prop>'),
      syncBody('').replace('<d:prop>', '<d:limit/><d:prop>'),
    ];
    for (const body of bodies) expectDavError(await client.report(BOOK, body), 400);
  });

  test('limit of one pages through every card', async () => {
    const seen: string[] = [];
    let token = '';
    for (let page = 0; page < 10; page++) {
      const reply = await client.report(BOOK, syncBody(token, { limit: 1 }));
      expect(reply.status).toBe(207);
      const result = parseMultistatus(reply.text);
      const cards = result.responses.filter((r) => r.href !== BOOK);
      seen.push(...cards.map((r) => r.href));
      token = result.syncToken ?? '';
      if (!result.responses.some((r) => r.href === BOOK && r.status === 507)) break;
    }
    expect(seen.sort()).toEqual([ADA, `${BOOK}grace.vcf`]);
  });
});
