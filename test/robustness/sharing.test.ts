/**
 * Shared address books under attack: a grantee writing past its access, and
 * grants that must not pass to a new user or group that gets a freed id.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { Client, dav, expectDavError, parseMultistatus, person, portOf, PROPFIND_ETAG, readWholeBook } from './support';

const ALICE_BOOK = '/dav/addressbooks/alice/contacts/';
const SECRET = `${ALICE_BOOK}secret.vcf`;

let app: TestApp;
let alice: Client;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 65536 });
  await app.addUser('alice');
  alice = new Client(portOf(app), app.auth('alice'));
  const stored = await alice.put(SECRET, person('secret', 'Secret Person'));
  if (stored.status !== 201) throw new Error(`PUT ${SECRET} returned ${stored.status}: ${stored.text}`);
});

afterAll(() => app.close());

async function aliceBookId(): Promise<number> {
  const owner = await app.storage.getUser('alice');
  const book = owner && (await app.storage.getBook(owner.id, 'contacts'));
  if (!book) throw new Error('alice has no contacts book');
  return book.id;
}

async function userId(name: string): Promise<number> {
  const user = await app.storage.getUser(name);
  if (!user) throw new Error(`user ${name} not found`);
  return user.id;
}

/** Hrefs in a user's home listing. */
async function homeListing(client: Client, name: string): Promise<string[]> {
  const reply = await client.propfind(`/dav/addressbooks/${name}/`, '1', PROPFIND_ETAG);
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text).responses.map((r) => r.href);
}

test('grant skips user with reused id', async () => {
  await app.addUser('bob');
  const bobId = await userId('bob');
  await app.storage.grant(await aliceBookId(), { kind: 'user', id: bobId }, 'read', 'from-alice');
  const bob = new Client(alice.port, app.auth('bob'));
  expect((await bob.get('/dav/addressbooks/bob/from-alice/secret.vcf')).status).toBe(200);

  expect(await app.storage.removeUser('bob')).toBe(true);
  await app.addUser('eve');
  const eve = new Client(alice.port, app.auth('eve'));
  expect(await homeListing(eve, 'eve')).not.toContain('/dav/addressbooks/eve/from-alice/');
  const reply = await eve.get('/dav/addressbooks/eve/from-alice/secret.vcf');
  expect(reply.status).toBe(404);
  expect(reply.text).not.toContain('Secret Person');
});

test('grant skips group with reused id', async () => {
  await app.addUser('carol');
  const staff = await app.storage.createGroup('staff');
  if (!staff) throw new Error('group staff exists already');
  await app.storage.grant(await aliceBookId(), { kind: 'group', id: staff.id }, 'read', 'staff-book');
  expect(await app.storage.removeGroup('staff')).toBe(true);

  const reused = await app.storage.createGroup('visitors');
  if (!reused) throw new Error('group visitors exists already');
  await app.storage.addGroupMembers(reused.id, [await userId('carol')]);
  const carol = new Client(alice.port, app.auth('carol'));
  expect(await homeListing(carol, 'carol')).not.toContain('/dav/addressbooks/carol/staff-book/');
  expect((await carol.get('/dav/addressbooks/carol/staff-book/secret.vcf')).status).toBe(404);
});

describe('read-only grantee', () => {
  const MOUNT = '/dav/addressbooks/reader/alice-ro/';
  let reader: Client;

  beforeAll(async () => {
    await app.addUser('reader');
    await app.storage.grant(await aliceBookId(), { kind: 'user', id: await userId('reader') }, 'read', 'alice-ro');
    reader = new Client(alice.port, app.auth('reader'));
  });

  test('reads the shared card', async () => {
    expect((await reader.get(`${MOUNT}secret.vcf`)).text).toBe(person('secret', 'Secret Person'));
  });

  test('writes fail with need-privileges', async () => {
    const before = await readWholeBook(alice, ALICE_BOOK);
    const etag = before.get(SECRET)?.etag ?? '';
    const writes: [string, Promise<import('./support').Reply>][] = [
      ['PUT new', reader.put(`${MOUNT}new.vcf`, person('planted'))],
      ['PUT over', reader.put(`${MOUNT}secret.vcf`, person('secret', 'Overwritten'), { 'If-Match': etag })],
      ['PUT same UID', reader.put(`${MOUNT}copy.vcf`, person('secret', 'Copy'))],
      ['DELETE card', reader.delete(`${MOUNT}secret.vcf`, { 'If-Match': etag })],
      ['DELETE book', reader.delete(MOUNT)],
      ['PROPPATCH', reader.proppatch(MOUNT, '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Mine</d:displayname></d:prop></d:set></d:propertyupdate>')],
      ['MKCOL inside', reader.mkcol(`${MOUNT}sub/`)],
    ];
    for (const [name, pending] of writes) {
      const reply = await pending;
      expect({ name, status: reply.status }).toEqual({ name, status: 403 });
      expectDavError(reply, 403, dav('need-privileges'));
    }
    const after = await readWholeBook(alice, ALICE_BOOK);
    expect([...after.entries()]).toEqual([...before.entries()]);
  });

  test('revoked grant takes effect at once', async () => {
    expect((await reader.get(`${MOUNT}secret.vcf`)).status).toBe(200);
    expect(await app.storage.revoke(await aliceBookId(), { kind: 'user', id: await userId('reader') })).toBe(true);
    expect((await reader.get(`${MOUNT}secret.vcf`)).status).toBe(404);
    expect((await reader.put(`${MOUNT}late.vcf`, person('late'))).status).toBe(409);
    expect((await alice.get(`${ALICE_BOOK}late.vcf`)).status).toBe(404);
  });
});
