import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, multigetBody, person, propfindBody, syncCollectionBody } from '../helpers/dav';
import { DAV, clark, parseDavError, parseMultistatus } from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);

const ALICE_PRINCIPAL = '/dav/principals/alice/';
const ALICE_HOME = '/dav/addressbooks/alice/';
const ALICE_BOOK = `${ALICE_HOME}contacts/`;
const ALICE_CARD = `${ALICE_BOOK}secret-friend.vcf`;
const ALICE_CARD_BODY = person('e1a2b3c4-0000-4000-8000-0000000000a1', 'Secret Friend', ['TEL:+1 555 0199']);

let app: TestApp;
let alice: DavClient;
let bob: DavClient;
let anonymous: DavClient;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  await app.addUser('bob');
  alice = new DavClient(app, 'alice');
  bob = new DavClient(app, 'bob');
  anonymous = new DavClient(app);
  await alice.putCard(ALICE_CARD, ALICE_CARD_BODY);
});

afterAll(() => app.close());

function expectDenied(status: number): void {
  expect([403, 404]).toContain(status);
}

/** Checks that alice's book still contains exactly the one card, unchanged. */
async function expectAliceUnchanged(): Promise<void> {
  const listing = await alice.propfind(ALICE_BOOK, '1', propfindBody(d('getetag')));
  expect(parseMultistatus(listing.text).map((r) => r.href)).toEqual([ALICE_BOOK, ALICE_CARD]);
  expect((await alice.get(ALICE_CARD)).text).toBe(ALICE_CARD_BODY);
}

describe('authentication', () => {
  test('no credentials returns 401 with a Basic challenge', async () => {
    const reply = await anonymous.propfind(ALICE_PRINCIPAL, '0', propfindBody(d('current-user-principal')));
    expect(reply.status).toBe(401);
    expect(String(reply.headers['www-authenticate'])).toMatch(/^Basic realm="[^"]+"/);
  });

  test('401 body is a DAV:error', async () => {
    const reply = await anonymous.get(ALICE_CARD);
    expect(reply.status).toBe(401);
    expect(String(reply.headers['content-type'])).toMatch(/^application\/xml/);
    expect(parseDavError(reply.text).root.name).toBe(d('error'));
  });

  test('wrong password returns 401', async () => {
    const reply = await app
      .http()
      .propfind(ALICE_PRINCIPAL)
      .set('Authorization', 'Basic ' + Buffer.from('alice:not-her-password').toString('base64'))
      .set('Depth', '0');
    expect(reply.status).toBe(401);
    expect(String(reply.headers['www-authenticate'])).toMatch(/^Basic /);
  });

  test('unknown user returns 401', async () => {
    const reply = await app
      .http()
      .get(ALICE_CARD)
      .set('Authorization', 'Basic ' + Buffer.from('mallory:guess').toString('base64'));
    expect(reply.status).toBe(401);
  });

  test('malformed Authorization returns 401', async () => {
    const reply = await app.http().get(ALICE_CARD).set('Authorization', 'Bearer abc');
    expect(reply.status).toBe(401);
  });

  test('correct password works', async () => {
    expect((await alice.get(ALICE_CARD)).status).toBe(200);
  });

  test('no credentials cannot write', async () => {
    const reply = await anonymous.put(`${ALICE_BOOK}intruder.vcf`, person('e1a2b3c4-0000-4000-8000-0000000000f1', 'Intruder'));
    expect(reply.status).toBe(401);
    await expectAliceUnchanged();
  });
});

describe("another user's data", () => {
  test('bob cannot GET the card', async () => {
    const reply = await bob.get(ALICE_CARD);
    expectDenied(reply.status);
    expect(reply.text).not.toContain('Secret Friend');
  });

  test('bob cannot export the book', async () => {
    const reply = await bob.get(ALICE_BOOK);
    expectDenied(reply.status);
    expect(reply.text).not.toContain('Secret Friend');
  });

  test('bob cannot PROPFIND the principal', async () => {
    expectDenied((await bob.propfind(ALICE_PRINCIPAL, '0', propfindBody(d('displayname')))).status);
  });

  test('bob cannot PROPFIND the home', async () => {
    expectDenied((await bob.propfind(ALICE_HOME, '1', propfindBody(d('resourcetype')))).status);
  });

  test('bob cannot PROPFIND the book', async () => {
    expectDenied((await bob.propfind(ALICE_BOOK, '1', propfindBody(d('getetag')))).status);
  });

  test('bob cannot PROPFIND the card', async () => {
    expectDenied((await bob.propfind(ALICE_CARD, '0', propfindBody(d('getetag')))).status);
  });

  test('listings show only his own data', async () => {
    for (const path of ['/dav/principals/', '/dav/addressbooks/']) {
      const reply = await bob.propfind(path, '1', propfindBody(d('resourcetype')));
      expect(reply.status).toBe(207);
      const hrefs = parseMultistatus(reply.text).map((r) => r.href);
      expect(hrefs.some((href) => href.includes('alice'))).toBe(false);
      expect(hrefs.some((href) => href.includes('bob'))).toBe(true);
    }
  });

  test('bob cannot run reports on the book', async () => {
    expectDenied((await bob.report(ALICE_BOOK, syncCollectionBody(''))).status);
    expectDenied((await bob.report(ALICE_BOOK, multigetBody([ALICE_CARD]))).status);
  });

  test('her href in his multiget is 404', async () => {
    const reply = await bob.report('/dav/addressbooks/bob/contacts/', multigetBody([ALICE_CARD]));
    expect(reply.status).toBe(207);
    const [response] = parseMultistatus(reply.text);
    expect(response.status).toBe(404);
    expect(reply.text).not.toContain('Secret Friend');
  });

  test('bob cannot PUT into the book', async () => {
    expectDenied((await bob.put(`${ALICE_BOOK}from-bob.vcf`, person('e1a2b3c4-0000-4000-8000-0000000000b1', 'Bob Planted'))).status);
    await expectAliceUnchanged();
  });

  test('bob cannot overwrite the card', async () => {
    expectDenied((await bob.put(ALICE_CARD, person('e1a2b3c4-0000-4000-8000-0000000000a1', 'Overwritten'))).status);
    await expectAliceUnchanged();
  });

  test('bob cannot DELETE the card', async () => {
    expectDenied((await bob.delete(ALICE_CARD)).status);
    await expectAliceUnchanged();
  });

  test('bob cannot DELETE the book', async () => {
    expectDenied((await bob.delete(ALICE_BOOK)).status);
    await expectAliceUnchanged();
  });

  test('bob cannot PROPPATCH the book', async () => {
    const body =
      '<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Bob was here</d:displayname></d:prop></d:set></d:propertyupdate>';
    expectDenied((await bob.proppatch(ALICE_BOOK, body)).status);
    const reply = await alice.propfind(ALICE_BOOK, '0', propfindBody(d('displayname')));
    expect(reply.text).not.toContain('Bob was here');
  });

  test('bob cannot create a book in her home', async () => {
    expectDenied((await bob.mkcol(`${ALICE_HOME}bobs-book/`)).status);
    const listing = await alice.propfind(ALICE_HOME, '1', propfindBody(d('resourcetype')));
    expect(parseMultistatus(listing.text).map((r) => r.href)).toEqual([ALICE_HOME, ALICE_BOOK]);
  });

  test('missing and foreign resources look the same', async () => {
    const foreign = await bob.get(ALICE_CARD);
    const missing = await bob.get('/dav/addressbooks/nobody/contacts/secret-friend.vcf');
    expect(foreign.status).toBe(missing.status);
  });
});
