/**
 * Hostile request paths and methods sent to the wrong kind of resource. Bad
 * paths get a DAV:error and never reach another user's data. Card names that
 * are stored come back unchanged through every listing.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { carddav, Client, dav, expectDavError, parseMultistatus, person, portOf, PROPFIND_ETAG, readWholeBook, type Reply } from './support';

const ALICE_BOOK = '/dav/addressbooks/alice/contacts/';
const BOB_BOOK = '/dav/addressbooks/bob/contacts/';
const BOB_CARD = `${BOB_BOOK}secret.vcf`;

let app: TestApp;
let alice: Client;
let bob: Client;
let bookCount = 0;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 65536 });
  await app.addUser('alice');
  await app.addUser('bob');
  alice = new Client(portOf(app), app.auth('alice'));
  bob = new Client(portOf(app), app.auth('bob'));
  const stored = await bob.put(BOB_CARD, person('bob-secret', 'Bob Secret'));
  if (stored.status !== 201) throw new Error(`PUT ${BOB_CARD} returned ${stored.status}: ${stored.text}`);
});

afterAll(() => app.close());

async function newBook(): Promise<string> {
  bookCount += 1;
  const path = `/dav/addressbooks/alice/paths-${bookCount}/`;
  const reply = await alice.mkcol(path);
  if (reply.status !== 201) throw new Error(`MKCOL ${path} returned ${reply.status}: ${reply.text}`);
  return path;
}

async function expectBobUntouched(): Promise<void> {
  const cards = await readWholeBook(bob, BOB_BOOK);
  expect([...cards.keys()]).toEqual([BOB_CARD]);
  expect(cards.get(BOB_CARD)?.data).toBe(person('bob-secret', 'Bob Secret'));
}

/** Sends each method with a body that would be valid for it. */
async function everyMethod(client: Client, path: string): Promise<[string, Reply][]> {
  return [
    ['GET', await client.get(path)],
    ['PROPFIND', await client.propfind(path, '1', PROPFIND_ETAG)],
    ['PROPPATCH', await client.proppatch(path, '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>x</d:displayname></d:prop></d:set></d:propertyupdate>')],
    ['REPORT', await client.report(path, '<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/></d:prop></card:addressbook-query>')],
    ['PUT', await client.put(path, person('intruder', 'Intruder'))],
    ['DELETE', await client.delete(path)],
    ['MKCOL', await client.mkcol(path)],
  ];
}

describe('paths that name dot segments', () => {
  const names = ['%2E%2E', '%2E', '%2e%2E', '..', '.', '..%2F..%2Fbob%2Fcontacts%2Fsecret.vcf'];

  test.each(names)('card named %s is rejected', async (name) => {
    const book = await newBook();
    const reply = await alice.put(`${book}${name}`, person(`dot-${name}`));
    expect({ status: reply.status, rejected: reply.status === 400 || reply.status === 403 }).toEqual({ status: reply.status, rejected: true });
    expectDavError(reply, reply.status);
    const listing = parseMultistatus((await alice.propfind(book, '1', PROPFIND_ETAG)).text);
    expect(listing.responses.map((r) => r.href)).toEqual([book]);
  });

  test('traversal to another user finds nothing', async () => {
    const paths = [
      `${ALICE_BOOK}../../bob/contacts/secret.vcf`,
      `${ALICE_BOOK}%2E%2E/%2E%2E/bob/contacts/secret.vcf`,
      '/dav/addressbooks/alice%2F..%2Fbob/contacts/secret.vcf',
      '/dav/addressbooks/alice/../bob/contacts/secret.vcf',
    ];
    for (const path of paths) {
      for (const [method, reply] of await everyMethod(alice, path)) {
        expect({ path, method, status: reply.status }).toEqual({ path, method, status: expect.any(Number) });
        expect({ path, method, leaked: reply.text.includes('Bob Secret') }).toEqual({ path, method, leaked: false });
        expect({ path, method, success: reply.status < 300 }).toEqual({ path, method, success: false });
        expectDavError(reply, reply.status);
      }
    }
    await expectBobUntouched();
  });
});

describe("another user's resources", () => {
  const pairs: [string, string][] = [
    ['/dav/principals/bob/', '/dav/principals/nobody/'],
    ['/dav/addressbooks/bob/', '/dav/addressbooks/nobody/'],
    [BOB_BOOK, '/dav/addressbooks/nobody/contacts/'],
    [BOB_CARD, '/dav/addressbooks/nobody/contacts/secret.vcf'],
  ];

  test.each(pairs)('%s looks like a missing user', async (existing, missing) => {
    const seen = await everyMethod(alice, existing);
    const unknown = await everyMethod(alice, missing);
    for (const [i, [method, reply]] of seen.entries()) {
      expect({ method, status: reply.status }).toEqual({ method, status: unknown[i][1].status });
      expect({ method, success: reply.status < 300 }).toEqual({ method, success: false });
      expectDavError(reply, reply.status);
      expect(reply.text).not.toContain('Bob Secret');
    }
    await expectBobUntouched();
  });

  test('multiget of their card finds nothing', async () => {
    const body =
      '<card:addressbook-multiget xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">' +
      `<d:prop><d:getetag/><card:address-data/></d:prop><d:href>${BOB_CARD}</d:href>` +
      `<d:href>${ALICE_BOOK}../../bob/contacts/secret.vcf</d:href><d:href>http://127.0.0.1${BOB_CARD}</d:href></card:addressbook-multiget>`;
    const reply = await alice.report(ALICE_BOOK, body);
    expect(reply.status).toBe(207);
    const responses = parseMultistatus(reply.text).responses;
    expect(responses.map((r) => r.status)).toEqual([404, 404, 404]);
    expect(reply.text).not.toContain('Bob Secret');
  });
});

describe('malformed percent escapes', () => {
  const paths = [`${ALICE_BOOK}%zz.vcf`, `${ALICE_BOOK}%`, `${ALICE_BOOK}%C0%AF.vcf`, `${ALICE_BOOK}%ED%A0%80.vcf`, '/dav/addressbooks/%FF/contacts/'];

  test.each(paths)('%s is a 400 for every method', async (path) => {
    for (const [method, reply] of await everyMethod(alice, path)) {
      expect({ method, status: reply.status }).toEqual({ method, status: 400 });
      expectDavError(reply, 400);
    }
  });
});

describe('unusual card names', () => {
  const names: [string, string][] = [
    ['encoded slash', 'a%2Fb.vcf'],
    ['emoji', '%F0%9F%98%80.vcf'],
    ['space', 'with%20space.vcf'],
    ['percent sign', '%25.vcf'],
    ['semicolon and comma', 'a%3Bb%2Cc.vcf'],
    ['at sign', '%40home.vcf'],
    ['accented letter', 'caf%C3%A9.vcf'],
    ['4,000 characters', 'x'.repeat(4000) + '.vcf'],
  ];

  test.each(names)('name with %s round-trips', async (_label, name) => {
    const book = await newBook();
    const reply = await alice.put(`${book}${name}`, person(`name-${name.slice(0, 40)}`));
    if (reply.status >= 400) {
      expectDavError(reply, reply.status);
      return;
    }
    expect(reply.status).toBe(201);
    const cards = await readWholeBook(alice, book);
    expect(cards.size).toBe(1);
    const [href] = cards.keys();
    expect(decodeURIComponent(href)).toBe(decodeURIComponent(`${book}${name}`));
    expect((await alice.delete(href)).status).toBe(204);
    expect((await readWholeBook(alice, book)).size).toBe(0);
  });

  test('NUL in a card name', async () => {
    const book = await newBook();
    const reply = await alice.put(`${book}a%00b.vcf`, person('nul-name'));
    if (reply.status >= 400) expectDavError(reply, reply.status);
    else expect((await readWholeBook(alice, book)).size).toBe(1);
  });

  test('book URL without a trailing slash', async () => {
    const reply = await alice.propfind(ALICE_BOOK.slice(0, -1), '1', PROPFIND_ETAG);
    expect(reply.status).toBe(207);
    expect(parseMultistatus(reply.text).responses[0].href).toBe(ALICE_BOOK);
  });
});

describe('methods on the wrong resource', () => {
  const NO_CONDITION = undefined;
  const cases: [string, string, number, string | undefined][] = [
    ['PUT', '/dav/addressbooks/alice/', 405, NO_CONDITION],
    ['PUT', ALICE_BOOK, 405, NO_CONDITION],
    ['PUT', '/dav/principals/alice/', 405, NO_CONDITION],
    ['PUT', '/dav/', 405, NO_CONDITION],
    ['MKCOL', ALICE_BOOK, 405, NO_CONDITION],
    ['MKCOL', '/dav/principals/alice/', 405, NO_CONDITION],
    ['DELETE', '/dav/addressbooks/alice/', 403, dav('need-privileges')],
    ['DELETE', '/dav/principals/alice/', 403, dav('need-privileges')],
    ['DELETE', '/', 403, dav('need-privileges')],
    ['REPORT', '/dav/addressbooks/alice/', 403, dav('supported-report')],
    ['GET', '/dav/addressbooks/alice/missing/', 404, NO_CONDITION],
    ['DELETE', '/dav/addressbooks/alice/missing/', 404, NO_CONDITION],
    ['PROPFIND', `${ALICE_BOOK}missing.vcf`, 404, NO_CONDITION],
    ['PUT', '/dav/addressbooks/alice/missing/card.vcf', 409, NO_CONDITION],
  ];

  test.each(cases)('%s %s', async (method, path, status, condition) => {
    let body: string | undefined;
    let headers: Record<string, string> = { Depth: '0' };
    if (method === 'PUT') {
      body = person('wrong-place');
      headers = { 'Content-Type': 'text/vcard' };
    } else if (method === 'REPORT') {
      body = '<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:prop/></d:sync-collection>';
    }
    const reply = await alice.request(method, path, { body, headers });
    expectDavError(reply, status, condition);
    if (status === 405) expect(reply.headers.allow ?? 'no Allow header').toMatch(/\bOPTIONS\b/);
  });

  const unsupported = ['LOCK', 'UNLOCK', 'COPY', 'MOVE', 'POST', 'PATCH', 'ACL', 'SEARCH', 'MKCALENDAR', 'TRACE'];

  test.each(unsupported)('%s on a card is 405 with Allow', async (method) => {
    const card = `${ALICE_BOOK}method-${method}.vcf`;
    await alice.put(card, person(`method-${method}`));
    const reply = await alice.request(method, card, { headers: { Destination: `http://127.0.0.1${ALICE_BOOK}moved.vcf` } });
    expectDavError(reply, 405);
    expect(String(reply.headers.allow).split(/,\s*/)).toEqual(expect.arrayContaining(['GET', 'PUT', 'DELETE']));
    expect((await alice.get(card)).status).toBe(200);
    expect((await alice.get(`${ALICE_BOOK}moved.vcf`)).status).toBe(404);
  });

  test('PUT on a card URL below a card', async () => {
    await alice.put(`${ALICE_BOOK}parent.vcf`, person('parent'));
    const reply = await alice.put(`${ALICE_BOOK}parent.vcf/child.vcf`, person('child'));
    expect(reply.status).toBeGreaterThanOrEqual(400);
    expectDavError(reply, reply.status);
    expect((await alice.get(`${ALICE_BOOK}parent.vcf`)).text).toBe(person('parent'));
  });

  test('card address-data in an unsupported version', async () => {
    const body =
      '<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">' +
      '<d:prop><card:address-data content-type="text/vcard" version="2.1"/></d:prop></card:addressbook-query>';
    expectDavError(await alice.report(ALICE_BOOK, body), 403, carddav('supported-address-data'));
  });
});
