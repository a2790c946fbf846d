/**
 * Shared address books seen by a grantee: the privileges each report names,
 * and methods that must fail on the mount whatever the grant allows.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { Client, dav, expectDavError, multigetBody, okProp, parseMultistatus, person, portOf, XMLNS } from './support';

const ALICE_BOOK = '/dav/addressbooks/alice/contacts/';
const READ_MOUNT = '/dav/addressbooks/reader/alice-ro/';
const WRITE_MOUNT = '/dav/addressbooks/writer/alice-rw/';
const PRIVILEGES = `<d:prop><d:getetag/><d:current-user-privilege-set/></d:prop>`;

let app: TestApp;
let alice: Client;
let reader: Client;
let writer: Client;

beforeAll(async () => {
  app = await startTestApp();
  for (const name of ['alice', 'reader', 'writer']) await app.addUser(name);
  alice = new Client(portOf(app), app.auth('alice'));
  reader = new Client(alice.port, app.auth('reader'));
  writer = new Client(alice.port, app.auth('writer'));
  const owner = await app.storage.getUser('alice');
  const book = owner && (await app.storage.getBook(owner.id, 'contacts'));
  const readerUser = await app.storage.getUser('reader');
  const writerUser = await app.storage.getUser('writer');
  if (!book || !readerUser || !writerUser) throw new Error('test users or book missing');
  await app.storage.grant(book.id, { kind: 'user', id: readerUser.id }, 'read', 'alice-ro');
  await app.storage.grant(book.id, { kind: 'user', id: writerUser.id }, 'write', 'alice-rw');
  const stored = await alice.put(`${ALICE_BOOK}ada.vcf`, person('ada'));
  if (stored.status !== 201) throw new Error(`PUT returned ${stored.status}: ${stored.text}`);
});

afterAll(() => app.close());

/** Privilege names in a card response's current-user-privilege-set. */
function privilegeNames(body: string): string[] {
  const response = parseMultistatus(body).responses.find((r) => r.href.endsWith('ada.vcf'));
  if (!response) throw new Error(`no response for ada.vcf in ${body}`);
  const set = okProp(response, dav('current-user-privilege-set'));
  return (set?.children ?? []).flatMap((privilege) => privilege.children.map((c) => c.name)).sort();
}

describe('card privileges in reports', () => {
  const reports: [string, (mount: string) => string][] = [
    ['addressbook-query', () => `<card:addressbook-query ${XMLNS}>${PRIVILEGES}</card:addressbook-query>`],
    ['addressbook-multiget', (mount) => multigetBody([`${mount}ada.vcf`]).replace('<card:address-data/>', '<d:current-user-privilege-set/>')],
    [
      'sync-collection',
      () => `<d:sync-collection ${XMLNS}><d:sync-token/><d:sync-level>1</d:sync-level>${PRIVILEGES}</d:sync-collection>`,
    ],
  ];

  test.each(reports)('%s names read only for a reader', async (_, body) => {
    const reply = await reader.report(READ_MOUNT, body(READ_MOUNT));
    expect(reply.status).toBe(207);
    expect(privilegeNames(reply.text)).toEqual([dav('read'), dav('read-current-user-privilege-set')].sort());
  });

  test.each(reports)('%s has no write-properties for a writer', async (_, body) => {
    const reply = await writer.report(WRITE_MOUNT, body(WRITE_MOUNT));
    expect(reply.status).toBe(207);
    const names = privilegeNames(reply.text);
    expect(names).toContain(dav('write-content'));
    expect(names).not.toContain(dav('write-properties'));
    expect(names).not.toContain(dav('write'));
  });

  test('reports agree with PROPFIND', async () => {
    const listing = await reader.propfind(READ_MOUNT, '1', `<d:propfind ${XMLNS}>${PRIVILEGES}</d:propfind>`);
    const query = await reader.report(READ_MOUNT, `<card:addressbook-query ${XMLNS}>${PRIVILEGES}</card:addressbook-query>`);
    expect(privilegeNames(query.text)).toEqual(privilegeNames(listing.text));
  });
});

describe('MKCOL over a mount', () => {
  test.each([
    ['reader', READ_MOUNT],
    ['writer', WRITE_MOUNT],
  ])('%s gets 405', async (name, mount) => {
    const client = name === 'reader' ? reader : writer;
    const reply = await client.mkcol(mount);
    expectDavError(reply, 405);
    expect(reply.headers.allow).toBeDefined();
    expect(reply.headers.allow).not.toContain('MKCOL');
  });

  test('owner gets 405 too', async () => {
    expectDavError(await alice.mkcol(ALICE_BOOK), 405);
  });

  test('shared cards stay readable', async () => {
    expect((await reader.get(`${READ_MOUNT}ada.vcf`)).status).toBe(200);
    expect((await writer.get(`${WRITE_MOUNT}ada.vcf`)).status).toBe(200);
  });
});
