import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person, propfindBody, XMLNS } from '../helpers/dav';
import { CARDDAV, DAV, childNames, clark, errorCondition, okProp, parseMultistatus, responseFor } from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);
const HOME = '/dav/addressbooks/alice/';

let app: TestApp;
let alice: DavClient;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
});

afterAll(() => app.close());

async function homeListing(): Promise<string[]> {
  const reply = await alice.propfind(HOME, '1', propfindBody(d('resourcetype')));
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text).map((r) => r.href);
}

function extendedMkcol(resourcetype: string, extra = ''): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?><d:mkcol ${XMLNS}><d:set><d:prop>` +
    `<d:resourcetype>${resourcetype}</d:resourcetype>${extra}` +
    '</d:prop></d:set></d:mkcol>'
  );
}

describe('MKCOL', () => {
  test('plain MKCOL creates a book', async () => {
    const reply = await alice.mkcol(`${HOME}plain/`);
    expect(reply.status).toBe(201);
    expect(await homeListing()).toContain(`${HOME}plain/`);
  });

  test('created book is an address book', async () => {
    await alice.createBook(`${HOME}typed/`);
    const reply = await alice.propfind(`${HOME}typed/`, '0', propfindBody(d('resourcetype')));
    const [book] = parseMultistatus(reply.text);
    expect(childNames(okProp(book, d('resourcetype')))).toEqual([d('collection'), card('addressbook')]);
  });

  test('extended MKCOL sets properties', async () => {
    const body = extendedMkcol(
      '<d:collection/><card:addressbook/>',
      '<d:displayname>Neighbours</d:displayname><card:addressbook-description>Our street</card:addressbook-description>',
    );
    const reply = await alice.mkcol(`${HOME}neighbours/`, body);
    expect(reply.status).toBe(201);

    const listing = await alice.propfind(HOME, '1', propfindBody(d('displayname'), card('addressbook-description')));
    const book = responseFor(parseMultistatus(listing.text), `${HOME}neighbours/`);
    expect(okProp(book, d('displayname'))?.text).toBe('Neighbours');
    expect(okProp(book, card('addressbook-description'))?.text).toBe('Our street');
  });

  test('MKCOL by a removed user returns 409', async () => {
    await app.addUser('carol');
    const carol = new DavClient(app, 'carol');
    // The user is removed after the request authenticated and before the book is written.
    const createBook = app.storage.createBook.bind(app.storage);
    const spy = jest.spyOn(app.storage, 'createBook').mockImplementation(async (...args) => {
      await app.storage.removeUser('carol');
      return createBook(...args);
    });
    try {
      const reply = await carol.mkcol('/dav/addressbooks/carol/late/');
      expect(reply.status).toBe(409);
      expect(reply.text).toContain('the owner of this address book home was removed');
    } finally {
      spy.mockRestore();
    }
  });

  test('MKCOL on an existing book returns 405', async () => {
    await alice.createBook(`${HOME}twice/`);
    const reply = await alice.mkcol(`${HOME}twice/`);
    expect(reply.status).toBe(405);
  });

  test('extended MKCOL on an existing book returns 405', async () => {
    const reply = await alice.mkcol(`${HOME}contacts/`, extendedMkcol('<d:collection/><card:addressbook/>'));
    expect(reply.status).toBe(405);
  });

  test('plain collection resourcetype is rejected', async () => {
    const reply = await alice.mkcol(`${HOME}folder/`, extendedMkcol('<d:collection/>'));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(d('valid-resourcetype'));
    expect(await homeListing()).not.toContain(`${HOME}folder/`);
  });

  test('calendar resourcetype is rejected', async () => {
    const reply = await alice.mkcol(
      `${HOME}calendar/`,
      extendedMkcol('<d:collection/><cal:calendar xmlns:cal="urn:ietf:params:xml:ns:caldav"/>'),
    );
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(d('valid-resourcetype'));
  });

  test('MKCOL outside the home is rejected', async () => {
    const reply = await alice.mkcol('/dav/addressbooks/alice/contacts/sub/');
    expect(reply.status).toBe(403);
    expect(await homeListing()).not.toContain('/dav/addressbooks/alice/contacts/sub/');
  });

  test('MKCOL on an existing card returns 405', async () => {
    await alice.putCard(`${HOME}contacts/rosalind.vcf`, person('c3f1a7d2-52b9-4f0e-9a11-2d6e4b8f0003', 'Rosalind Franklin'));
    const reply = await alice.mkcol(`${HOME}contacts/rosalind.vcf`);
    expect(reply.status).toBe(405);
  });
});

describe('DELETE of a book', () => {
  test('removes the book and its cards', async () => {
    const book = `${HOME}doomed/`;
    await alice.createBook(book);
    await alice.putCard(`${book}marie.vcf`, person('c3f1a7d2-52b9-4f0e-9a11-2d6e4b8f0001', 'Marie Curie'));

    const reply = await alice.delete(book);
    expect(reply.status).toBe(204);

    expect(await homeListing()).not.toContain(book);
    expect((await alice.get(`${book}marie.vcf`)).status).toBe(404);
    expect((await alice.propfind(book, '0', propfindBody(d('resourcetype')))).status).toBe(404);
  });

  test('recreated book accepts old UIDs', async () => {
    const book = `${HOME}reborn/`;
    const body = person('c3f1a7d2-52b9-4f0e-9a11-2d6e4b8f0002', 'Pierre Curie');
    await alice.createBook(book);
    await alice.putCard(`${book}pierre.vcf`, body);
    expect((await alice.delete(book)).status).toBe(204);

    await alice.createBook(book);
    expect((await alice.put(`${book}pierre.vcf`, body)).status).toBe(201);
    const listing = await alice.propfind(book, '1', propfindBody(d('getetag')));
    expect(parseMultistatus(listing.text).map((r) => r.href)).toEqual([book, `${book}pierre.vcf`]);
  });

  test('DELETE of the home is rejected', async () => {
    const reply = await alice.delete(HOME);
    expect(reply.status).toBe(403);
    expect(await homeListing()).toContain(`${HOME}contacts/`);
  });
});
