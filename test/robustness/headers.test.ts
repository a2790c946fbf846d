/**
 * Broken and hostile request headers: credentials, Depth and entity-tag
 * conditions. Each gets a DAV:error with the status that HTTP or WebDAV
 * specifies, and a failed condition never changes the stored card.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { basicAuth, Client, dav, expectDavError, parseMultistatus, person, portOf, PROPFIND_ETAG } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';

let app: TestApp;
let alice: Client;
let cardCount = 0;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 65536 });
  await app.addUser('alice', 'alice-password');
  alice = new Client(portOf(app), app.auth('alice'));
});

afterAll(() => app.close());

/** Stores a new card and returns its href and ETag. */
async function storedCard(): Promise<{ href: string; etag: string; data: string }> {
  cardCount += 1;
  const href = `${BOOK}headers-${cardCount}.vcf`;
  const data = person(`headers-${cardCount}`);
  const reply = await alice.put(href, data);
  if (reply.status !== 201 || typeof reply.headers.etag !== 'string') throw new Error(`PUT ${href} returned ${reply.status}: ${reply.text}`);
  return { href, etag: reply.headers.etag, data };
}

describe('Authorization', () => {
  const headers: [string, string][] = [
    ['not base64', 'Basic !!!not-base64!!!'],
    ['no colon', 'Basic ' + Buffer.from('alicealice-password').toString('base64')],
    ['empty credentials', 'Basic '],
    ['only a scheme', 'Basic'],
    ['other scheme', 'Bearer alice-password'],
    ['wrong password', basicAuth('alice', 'wrong')],
    ['empty password', basicAuth('alice', '')],
    ['unknown user', basicAuth('mallory', 'alice-password')],
    ['user name with a colon', basicAuth('alice:alice-password', '')],
    ['bad padding', 'Basic YWxpY2U6=YWxpY2UtcGFzc3dvcmQ='],
    ['12 KB of base64', 'Basic ' + 'QUFB'.repeat(3000)],
    ['12 KB password', basicAuth('alice', 'p'.repeat(12_000))],
    ['Unicode user name', basicAuth('\u00e4lice', 'alice-password')],
  ];

  test.each(headers)('%s is a 401', async (_name, authorization) => {
    const client = new Client(alice.port, authorization);
    const href = `${BOOK}auth-${cardCount++}.vcf`;
    const reply = await client.put(href, person('auth'));
    expectDavError(reply, 401);
    expect(reply.headers['www-authenticate']).toMatch(/^Basic realm="/);
    expect((await alice.get(href)).status).toBe(404);
  });

  test('no Authorization is a 401 for every method', async () => {
    const anonymous = new Client(alice.port);
    for (const method of ['GET', 'HEAD', 'PROPFIND', 'PROPPATCH', 'REPORT', 'MKCOL', 'PUT', 'DELETE', 'LOCK']) {
      const reply = await anonymous.request(method, BOOK, { body: method === 'HEAD' || method === 'GET' ? undefined : 'x' });
      expect({ method, status: reply.status }).toEqual({ method, status: 401 });
      if (method !== 'HEAD') expectDavError(reply, 401);
    }
  });
});

describe('Depth', () => {
  const values = ['garbage', '2', '-1', '0.5', '1x', '0, 1', 'one'];

  test.each(values)('PROPFIND with Depth %j is a 400', async (depth) => {
    expectDavError(await alice.propfind(BOOK, depth, PROPFIND_ETAG), 400);
  });

  test('duplicated Depth headers are a 400', async () => {
    const reply = await alice.request('PROPFIND', BOOK, { headers: { Depth: ['0', '1'] }, body: PROPFIND_ETAG });
    expectDavError(reply, 400);
  });

  test('Depth infinity is propfind-finite-depth', async () => {
    expectDavError(await alice.propfind(BOOK, 'infinity', PROPFIND_ETAG), 403, dav('propfind-finite-depth'));
  });

  test('Depth with spaces is accepted', async () => {
    const reply = await alice.propfind(BOOK, ' 0 ', PROPFIND_ETAG);
    expect(reply.status).toBe(207);
    expect(parseMultistatus(reply.text).responses).toHaveLength(1);
  });
});

describe('If-Match and If-None-Match', () => {
  const garbage = ['garbage', '"unterminated', 'W/', '""', '"a" "b"', ',,,', '*, "x"x'];

  test.each(garbage)('If-Match %j on PUT is a 412', async (header) => {
    const card = await storedCard();
    const reply = await alice.put(card.href, person('replacement'), { 'If-Match': header });
    if (header.startsWith('*')) {
      expect(reply.status).toBeLessThan(500);
      return;
    }
    expectDavError(reply, 412);
    expect((await alice.get(card.href)).text).toBe(card.data);
  });

  test.each(garbage)('If-Match %j on DELETE is a 412', async (header) => {
    const card = await storedCard();
    const reply = await alice.delete(card.href, { 'If-Match': header });
    if (header.startsWith('*')) {
      expect(reply.status).toBeLessThan(500);
      return;
    }
    expectDavError(reply, 412);
    expect((await alice.get(card.href)).status).toBe(200);
  });

  test('weak ETag never satisfies If-Match on PUT', async () => {
    const card = await storedCard();
    expectDavError(await alice.put(card.href, person('weak-put'), { 'If-Match': `W/${card.etag}` }), 412);
    expect((await alice.get(card.href)).text).toBe(card.data);
  });

  test('weak ETag never satisfies If-Match on DELETE', async () => {
    const card = await storedCard();
    expectDavError(await alice.delete(card.href, { 'If-Match': `W/${card.etag}` }), 412);
    expect((await alice.get(card.href)).status).toBe(200);
  });

  test('duplicated If-Match headers form one list', async () => {
    const card = await storedCard();
    const reply = await alice.request('PUT', card.href, {
      headers: { 'Content-Type': 'text/vcard', 'If-Match': ['"not-it"', card.etag] },
      body: person(`headers-${cardCount}`, 'Ada Byron'),
    });
    expect(reply.status).toBe(204);
  });

  test('If-Match on a missing card is a 412', async () => {
    const href = `${BOOK}never-stored.vcf`;
    expectDavError(await alice.put(href, person('never'), { 'If-Match': '*' }), 412);
    expect((await alice.get(href)).status).toBe(404);
  });

  test('If-None-Match star on an existing card is a 412', async () => {
    const card = await storedCard();
    expectDavError(await alice.put(card.href, person('other'), { 'If-None-Match': '*' }), 412);
    expect((await alice.get(card.href)).text).toBe(card.data);
  });

  test('1,000 entity tags in If-Match', async () => {
    const card = await storedCard();
    const tags = Array.from({ length: 1000 }, (_, i) => `"tag-${i}"`).join(', ');
    expectDavError(await alice.put(card.href, person('many'), { 'If-Match': tags }), 412);
    expect((await alice.get(card.href)).text).toBe(card.data);
  });
});
