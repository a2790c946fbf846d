/** Shared address books over HTTP: mounts, privileges, DAV:acl, read-only shares and sync on both sides. */
import { changeMembers, createGroup, shareBook, unshareBook } from '../../server/groups';
import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person, propfindBody } from '../helpers/dav';
import { childNames, clark, DAV, okProp, parseDavError, parseMultistatus, responseFor, type XmlNode } from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);

let app: TestApp;
let alice: DavClient;
let bob: DavClient;
let carol: DavClient;

const ALICE_BOOK = '/dav/addressbooks/alice/customers/';
const BOB_MOUNT = '/dav/addressbooks/bob/customers/';

beforeAll(async () => {
  app = await startTestApp();
  for (const name of ['alice', 'bob', 'carol', 'dave']) await app.addUser(name);
  alice = new DavClient(app, 'alice');
  bob = new DavClient(app, 'bob');
  carol = new DavClient(app, 'carol');
  await alice.createBook(ALICE_BOOK);
  await carol.createBook('/dav/addressbooks/carol/customers/');
  await createGroup(app.storage, 'sales', ['alice', 'bob']);
});

afterAll(async () => {
  await app.close();
});

/** Returns the privilege names in a current-user-privilege-set value. */
function privileges(value: { children: XmlNode[] } | undefined): string[] {
  return (value?.children ?? []).flatMap((privilege) => childNames(privilege));
}

async function bookProps(client: DavClient, path: string, ...names: string[]) {
  const reply = await client.propfind(path, '0', propfindBody(...names));
  expect(reply.status).toBe(207);
  return responseFor(parseMultistatus(reply.text), path);
}

describe('mount choice', () => {
  test('group gets the owner slug', async () => {
    const mount = await shareBook(app.storage, 'alice/customers', '@sales', { access: 'write' });
    expect(mount).toBe('customers');
  });

  test('taken slug gets owner suffix', async () => {
    const mount = await shareBook(app.storage, 'alice/customers', 'carol', { access: 'read' });
    expect(mount).toBe('customers-alice');
  });

  test('sharing again keeps the mount', async () => {
    const mount = await shareBook(app.storage, 'alice/customers', 'carol', { access: 'read' });
    expect(mount).toBe('customers-alice');
  });

  test('explicit mount must be free', async () => {
    await expect(shareBook(app.storage, 'alice/customers', 'carol', { access: 'read', mount: 'customers' })).rejects.toThrow(
      'carol already has an address book at "customers"',
    );
  });

  test('explicit mount ignores the owner', async () => {
    await createGroup(app.storage, 'owners', ['alice']);
    expect(await shareBook(app.storage, 'alice/customers', '@owners', { access: 'read', mount: 'customers' })).toBe('customers');
    expect(await app.storage.removeGroup('owners')).toBe(true);
  });

  test('invalid mount is rejected', async () => {
    await expect(shareBook(app.storage, 'alice/customers', 'dave', { access: 'read', mount: '../x' })).rejects.toThrow('invalid mount "../x"');
  });

  test('owner cannot be a grantee', async () => {
    await expect(shareBook(app.storage, 'alice/customers', 'alice', { access: 'read' })).rejects.toThrow('alice owns alice/customers already');
  });

  test('grantee home lists the book', async () => {
    const reply = await bob.propfind('/dav/addressbooks/bob/', '1', propfindBody(d('displayname')));
    const hrefs = parseMultistatus(reply.text).map((response) => response.href);
    expect(hrefs).toContain(BOB_MOUNT);

    const carolReply = await carol.propfind('/dav/addressbooks/carol/', '1', propfindBody(d('displayname')));
    const carolHrefs = parseMultistatus(carolReply.text).map((response) => response.href);
    expect(carolHrefs).toContain('/dav/addressbooks/carol/customers/');
    expect(carolHrefs).toContain('/dav/addressbooks/carol/customers-alice/');
  });
});

describe('privileges', () => {
  test('owner has every privilege', async () => {
    const response = await bookProps(alice, ALICE_BOOK, d('current-user-privilege-set'));
    const names = privileges(okProp(response, d('current-user-privilege-set')));
    expect(names).toEqual(expect.arrayContaining([d('read'), d('write'), d('write-properties'), d('write-content'), d('read-acl')]));
  });

  test('write share lacks write-properties', async () => {
    const response = await bookProps(bob, BOB_MOUNT, d('current-user-privilege-set'));
    const names = privileges(okProp(response, d('current-user-privilege-set')));
    expect(names).toEqual(expect.arrayContaining([d('read'), d('write-content'), d('bind'), d('unbind')]));
    expect(names).not.toContain(d('write'));
    expect(names).not.toContain(d('write-properties'));
  });

  test('read share is read only', async () => {
    const response = await bookProps(carol, '/dav/addressbooks/carol/customers-alice/', d('current-user-privilege-set'));
    const names = privileges(okProp(response, d('current-user-privilege-set')));
    expect(names).toContain(d('read'));
    expect(names).not.toContain(d('write-content'));
    expect(names).not.toContain(d('bind'));
  });
});

/** Renders each ACE of a DAV:acl value as "principal -> privileges". */
function aces(value: { children: XmlNode[] } | undefined): string[] {
  return (value?.children ?? []).map((ace) => {
    const principal = ace.children.find((c) => c.name === d('principal'));
    const who = principal?.children[0]?.name === d('href') ? principal.children[0].text : (principal?.children[0]?.name ?? '?');
    const grant = ace.children.find((c) => c.name === d('grant'));
    const granted = (grant?.children ?? []).flatMap((privilege) => childNames(privilege)).map((name) => name.replace('{DAV:}', ''));
    return `${who} -> ${granted.join(',')}`;
  });
}

describe('DAV:acl', () => {
  test('owner sees every grant', async () => {
    const response = await bookProps(alice, ALICE_BOOK, d('acl'));
    expect(aces(okProp(response, d('acl')))).toEqual([
      '/dav/principals/alice/ -> all',
      '/dav/principals/carol/ -> read',
      'urn:x-cardinal:group:sales -> read,write-content,bind,unbind',
    ]);
  });

  test('grantee sees a reduced acl', async () => {
    const response = await bookProps(bob, BOB_MOUNT, d('acl'));
    expect(aces(okProp(response, d('acl')))).toEqual([
      '/dav/principals/alice/ -> all',
      'urn:x-cardinal:group:sales -> read,write-content,bind,unbind',
    ]);
  });

  test('allprop include returns the acl', async () => {
    const body = `<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:allprop/><d:include><d:acl/></d:include></d:propfind>`;
    const reply = await alice.propfind(ALICE_BOOK, '0', body);
    const response = responseFor(parseMultistatus(reply.text), ALICE_BOOK);
    expect(okProp(response, d('acl'))?.children.length).toBe(3);
  });

  test('every ace is protected', async () => {
    const response = await bookProps(carol, '/dav/addressbooks/carol/customers-alice/', d('acl'));
    const value = okProp(response, d('acl'));
    expect(value?.children.length).toBe(2);
    for (const ace of value?.children ?? []) expect(childNames(ace)).toContain(d('protected'));
  });
});

describe('read-only share', () => {
  test('put gets need-privileges', async () => {
    const reply = await carol.put('/dav/addressbooks/carol/customers-alice/planted.vcf', person('planted', 'Mallory Planted'));
    expect(reply.status).toBe(403);
    const error = parseDavError(reply.text);
    expect(error.condition).toBe(d('need-privileges'));
    expect((await alice.get(`${ALICE_BOOK}planted.vcf`)).status).toBe(404);
  });

  test('delete gets need-privileges', async () => {
    await alice.putCard(`${ALICE_BOOK}kept.vcf`, person('kept', 'Kept Card'));
    const reply = await carol.delete('/dav/addressbooks/carol/customers-alice/kept.vcf');
    expect(reply.status).toBe(403);
    expect(parseDavError(reply.text).condition).toBe(d('need-privileges'));
    expect((await alice.get(`${ALICE_BOOK}kept.vcf`)).status).toBe(200);
  });
});

describe('sync on a shared book', () => {
  test('alice writes, bob syncs', async () => {
    const start = await bob.sync(BOB_MOUNT, '');
    const put = await alice.putCard(`${ALICE_BOOK}ada.vcf`, person('ada', 'Ada Lovelace'));
    const changes = await bob.sync(BOB_MOUNT, start.syncToken ?? '');
    expect(changes.responses.map((r) => r.href)).toEqual([`${BOB_MOUNT}ada.vcf`]);
    const etag = okProp(changes.responses[0], d('getetag'))?.text;
    expect(etag).toBe(put.headers.etag);
  });

  test('bob writes, alice syncs', async () => {
    const start = await alice.sync(ALICE_BOOK, '');
    await bob.putCard(`${BOB_MOUNT}grace.vcf`, person('grace', 'Grace Hopper'));
    const changes = await alice.sync(ALICE_BOOK, start.syncToken ?? '');
    expect(changes.responses.map((r) => r.href)).toEqual([`${ALICE_BOOK}grace.vcf`]);
  });

  test('deletion reaches the other side', async () => {
    const start = await alice.sync(ALICE_BOOK, '');
    expect((await bob.delete(`${BOB_MOUNT}grace.vcf`)).status).toBe(204);
    const changes = await alice.sync(ALICE_BOOK, start.syncToken ?? '');
    expect(changes.responses.map((r) => [r.href, r.status])).toEqual([[`${ALICE_BOOK}grace.vcf`, 404]]);
  });

  test('both views share one token', async () => {
    const owner = await bookProps(alice, ALICE_BOOK, d('sync-token'));
    const grantee = await bookProps(bob, BOB_MOUNT, d('sync-token'));
    expect(okProp(grantee, d('sync-token'))?.text).toBe(okProp(owner, d('sync-token'))?.text);
  });
});

describe('membership and revocation', () => {
  test('new member sees the book', async () => {
    expect((await new DavClient(app, 'dave').propfind('/dav/addressbooks/dave/customers/', '0')).status).toBe(404);
    expect(await changeMembers(app.storage, 'sales', ['dave'], 'add')).toBe(1);
    expect((await new DavClient(app, 'dave').propfind('/dav/addressbooks/dave/customers/', '0')).status).toBe(207);
  });

  test('removed member loses the book', async () => {
    expect(await changeMembers(app.storage, 'sales', ['dave'], 'remove')).toBe(1);
    expect((await new DavClient(app, 'dave').get('/dav/addressbooks/dave/customers/ada.vcf')).status).toBe(404);
  });

  test('unshare hides the book', async () => {
    await unshareBook(app.storage, 'alice/customers', 'carol');
    expect((await carol.get('/dav/addressbooks/carol/customers-alice/ada.vcf')).status).toBe(404);
    await expect(unshareBook(app.storage, 'alice/customers', 'carol')).rejects.toThrow('alice/customers is not shared with carol');
  });

  test('group removal drops its grants', async () => {
    await createGroup(app.storage, 'temps', ['carol']);
    await shareBook(app.storage, 'alice/customers', '@temps', { access: 'read' });
    expect((await carol.get('/dav/addressbooks/carol/customers-alice/ada.vcf')).status).toBe(200);
    expect(await app.storage.removeGroup('temps')).toBe(true);
    expect((await carol.get('/dav/addressbooks/carol/customers-alice/ada.vcf')).status).toBe(404);
    const book = await app.storage.getBook((await app.storage.getUser('alice'))!.id, 'customers');
    expect((await app.storage.listGrants(book!.id)).map((grant) => grant.granteeName)).toEqual(['sales']);
  });
});
