import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, propfindBody } from '../helpers/dav';
import {
  CARDDAV,
  CS,
  DAV,
  childNames,
  clark,
  hrefsIn,
  okProp,
  parseMultistatus,
  responseFor,
  type MultistatusResponse,
} from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);

const PRINCIPAL = '/dav/principals/alice/';
const HOME = '/dav/addressbooks/alice/';
const BOOK = '/dav/addressbooks/alice/contacts/';

let app: TestApp;
let alice: DavClient;
let anonymous: DavClient;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
  anonymous = new DavClient(app);
});

afterAll(() => app.close());

async function propfind(path: string, depth: string, ...names: string[]): Promise<MultistatusResponse[]> {
  const reply = await alice.propfind(path, depth, propfindBody(...names));
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text);
}

/** Returns the single href of a property and fails the test when there is not exactly one. */
function singleHref(response: MultistatusResponse, name: string): string {
  const hrefs = hrefsIn(okProp(response, name));
  expect(hrefs).toHaveLength(1);
  return hrefs[0];
}

function addressBooks(responses: MultistatusResponse[]): string[] {
  return responses
    .filter((r) => {
      const types = childNames(okProp(r, d('resourcetype')));
      return types.includes(d('collection')) && types.includes(card('addressbook'));
    })
    .map((r) => r.href);
}

describe('well-known URI', () => {
  test('redirects with 301 to /dav/', async () => {
    const reply = await anonymous.request('GET', '/.well-known/carddav');
    expect(reply.status).toBe(301);
    expect(reply.headers.location).toBe('/dav/');
  });

  test('redirects PROPFIND without credentials', async () => {
    const reply = await anonymous.propfind('/.well-known/carddav', '0', propfindBody(d('current-user-principal')));
    expect(reply.status).toBe(301);
    expect(reply.headers.location).toBe('/dav/');
  });

  test('redirects PROPFIND with credentials', async () => {
    const reply = await alice.propfind('/.well-known/carddav', '0', propfindBody(d('current-user-principal')));
    expect(reply.status).toBe(301);
    expect(reply.headers.location).toBe('/dav/');
  });

  test('redirect target is no loop', async () => {
    const reply = await alice.propfind('/dav/', '0', propfindBody(d('current-user-principal')));
    expect(reply.status).toBe(207);
    const [root] = parseMultistatus(reply.text);
    expect(singleHref(root, d('current-user-principal'))).toBe(PRINCIPAL);
  });
});

describe('principal discovery', () => {
  test('root returns current-user-principal', async () => {
    const [root] = await propfind('/', '0', d('current-user-principal'));
    expect(root.href).toBe('/');
    expect(singleHref(root, d('current-user-principal'))).toBe(PRINCIPAL);
  });

  test('/dav/ returns current-user-principal', async () => {
    const [root] = await propfind('/dav/', '0', d('current-user-principal'));
    expect(root.href).toBe('/dav/');
    expect(singleHref(root, d('current-user-principal'))).toBe(PRINCIPAL);
  });

  test('principal returns its discovery properties', async () => {
    const [principal] = await propfind(PRINCIPAL, '0', d('current-user-principal'), d('principal-URL'), card('addressbook-home-set'));
    expect(principal.href).toBe(PRINCIPAL);
    expect(singleHref(principal, d('current-user-principal'))).toBe(PRINCIPAL);
    expect(singleHref(principal, d('principal-URL'))).toBe(PRINCIPAL);
    expect(singleHref(principal, card('addressbook-home-set'))).toBe(HOME);
  });

  test('principal resourcetype is principal', async () => {
    const [principal] = await propfind(PRINCIPAL, '0', d('resourcetype'));
    expect(childNames(okProp(principal, d('resourcetype')))).toContain(d('principal'));
  });

  test('home lists the default book', async () => {
    const responses = await propfind(HOME, '1', d('resourcetype'));
    expect(addressBooks(responses)).toEqual([BOOK]);
  });

  test('home itself is a plain collection', async () => {
    const responses = await propfind(HOME, '1', d('resourcetype'));
    expect(childNames(okProp(responseFor(responses, HOME), d('resourcetype')))).toEqual([d('collection')]);
  });
});

describe('OPTIONS', () => {
  const expectedDav = '1, 3, addressbook, extended-mkcol';

  test('anonymous probe returns DAV and Allow', async () => {
    const reply = await anonymous.options(PRINCIPAL);
    expect(reply.status).toBe(200);
    expect(reply.headers.dav).toBe(expectedDav);
    expect(String(reply.headers.allow).split(/,\s*/)).toEqual(expect.arrayContaining(['OPTIONS', 'PROPFIND', 'REPORT', 'PUT']));
  });

  test('principal returns DAV and Allow', async () => {
    const reply = await alice.options(PRINCIPAL);
    expect(reply.status).toBe(200);
    expect(reply.headers.dav).toBe(expectedDav);
    expect(String(reply.headers.allow).split(/,\s*/)).toEqual(expect.arrayContaining(['OPTIONS', 'PROPFIND']));
  });

  test('book returns DAV and Allow', async () => {
    const reply = await alice.options(BOOK);
    expect(reply.status).toBe(200);
    expect(reply.headers.dav).toBe(expectedDav);
    expect(String(reply.headers.allow).split(/,\s*/)).toEqual(
      expect.arrayContaining(['OPTIONS', 'GET', 'PROPFIND', 'PROPPATCH', 'REPORT', 'DELETE']),
    );
  });

  test('missing book allows MKCOL', async () => {
    const reply = await alice.options('/dav/addressbooks/alice/not-yet/');
    expect(reply.status).toBe(200);
    expect(String(reply.headers.allow).split(/,\s*/)).toContain('MKCOL');
  });
});

describe('client discovery sequences', () => {
  test('vdirsyncer finds the book', async () => {
    const listing = await propfind('/', '1', d('resourcetype'));
    expect(listing.map((r) => r.href)).toContain('/');

    const [root] = await propfind('/', '0', d('current-user-principal'));
    const principal = singleHref(root, d('current-user-principal'));

    const [principalResponse] = await propfind(principal, '0', card('addressbook-home-set'));
    const home = singleHref(principalResponse, card('addressbook-home-set'));

    expect(addressBooks(await propfind(home, '1', d('resourcetype')))).toEqual([BOOK]);
  });

  test('DAVx5 finds a writable book', async () => {
    const [start] = await propfind(
      '/dav/',
      '0',
      d('resourcetype'),
      d('displayname'),
      d('current-user-principal'),
      card('addressbook-home-set'),
      card('addressbook-description'),
    );
    const principal = singleHref(start, d('current-user-principal'));

    const options = await alice.request('OPTIONS', principal, { headers: { 'Content-Length': '0', 'Accept-Encoding': 'identity' } });
    expect(String(options.headers.dav).split(/,\s*/)).toContain('addressbook');

    const [principalResponse] = await propfind(
      principal,
      '0',
      d('displayname'),
      d('group-membership'),
      d('resourcetype'),
      card('addressbook-home-set'),
    );
    const home = singleHref(principalResponse, card('addressbook-home-set'));

    const listing = await propfind(
      home,
      '1',
      d('current-user-privilege-set'),
      d('displayname'),
      d('owner'),
      d('resourcetype'),
      '{http://bitfire.at/webdav-push}transports',
      '{http://bitfire.at/webdav-push}topic',
      card('addressbook-description'),
    );
    expect(addressBooks(listing)).toEqual([BOOK]);
    const book = responseFor(listing, BOOK);
    const privileges = (okProp(book, d('current-user-privilege-set'))?.children ?? []).flatMap(childNames);
    expect(privileges).toEqual(expect.arrayContaining([d('read'), d('write'), d('write-content')]));
    expect(hrefsIn(okProp(book, d('owner')))).toEqual([principal]);

    const [bookProps] = await propfind(
      BOOK,
      '0',
      d('supported-report-set'),
      d('sync-token'),
      clark(CS, 'getctag'),
      '{urn:ietf:params:xml:ns:caldav}max-resource-size',
      card('max-resource-size'),
      card('supported-address-data'),
    );
    const reports = (okProp(bookProps, d('supported-report-set'))?.children ?? []).flatMap((s) => s.children).flatMap(childNames);
    expect(reports).toContain(d('sync-collection'));
    const versions = (okProp(bookProps, card('supported-address-data'))?.children ?? []).map((t) => t.attrs.version);
    expect(versions).toContain('4.0');
  });

  test('iOS follows well-known to the book', async () => {
    const minimal = { Brief: 't', Prefer: 'return=minimal', 'Content-Type': 'text/xml', Accept: '*/*' };
    const body = propfindBody(d('current-user-principal'), d('principal-URL'), d('resourcetype'));

    const redirect = await anonymous.propfind('/.well-known/carddav', '0', body, minimal);
    expect(redirect.status).toBe(301);
    const target = String(redirect.headers.location);

    const challenge = await anonymous.propfind(target, '0', body, minimal);
    expect(challenge.status).toBe(401);
    expect(String(challenge.headers['www-authenticate'])).toMatch(/^Basic /);

    const rootReply = await alice.propfind(target, '0', body, minimal);
    expect(rootReply.status).toBe(207);
    const [root] = parseMultistatus(rootReply.text);
    expect(root.propstats.map((p) => p.status)).toEqual([200]);
    const principal = singleHref(root, d('current-user-principal'));

    const options = await alice.options(principal);
    expect(String(options.headers.dav).split(/,\s*/)).toContain('addressbook');

    const principalReply = await alice.propfind(
      principal,
      '0',
      propfindBody(
        d('principal-collection-set'),
        d('supported-report-set'),
        d('resource-id'),
        d('displayname'),
        clark(CS, 'email-address-set'),
        card('addressbook-home-set'),
        card('directory-gateway'),
        d('current-user-principal'),
        d('principal-URL'),
        d('resourcetype'),
      ),
      minimal,
    );
    expect(principalReply.status).toBe(207);
    const home = singleHref(parseMultistatus(principalReply.text)[0], card('addressbook-home-set'));

    const homeReply = await alice.propfind(
      home,
      '1',
      propfindBody(
        d('add-member'),
        '{http://me.com/_namespace/}bulk-requests',
        d('current-user-privilege-set'),
        d('displayname'),
        card('max-image-size'),
        card('max-resource-size'),
        clark(CS, 'me-card'),
        d('owner'),
        clark(CS, 'push-transports'),
        clark(CS, 'pushkey'),
        d('quota-available-bytes'),
        d('quota-used-bytes'),
        d('resource-id'),
        d('resourcetype'),
        d('supported-report-set'),
        d('sync-token'),
      ),
      minimal,
    );
    expect(homeReply.status).toBe(207);
    const listing = parseMultistatus(homeReply.text);
    expect(addressBooks(listing)).toEqual([BOOK]);
    // macOS Contacts uses the first address book of the home listing.
    expect(listing.map((r) => r.href).filter((href) => href !== home)[0]).toBe(BOOK);

    const [book] = await propfind(BOOK, '0', clark(CS, 'getctag'), d('sync-token'));
    expect(okProp(book, clark(CS, 'getctag'))?.text).toBeTruthy();
    expect(okProp(book, d('sync-token'))?.text).toBeTruthy();
  });

  test('Thunderbird finds a writable book', async () => {
    const xmlType = { 'Content-Type': 'text/xml' };
    const cupBody = propfindBody(d('current-user-principal'));

    const wellKnown = await alice.propfind('/.well-known/carddav', '0', cupBody, xmlType);
    expect(wellKnown.status).toBe(301);
    const rootReply = await alice.propfind(String(wellKnown.headers.location), '0', cupBody, xmlType);
    expect(rootReply.status).toBe(207);
    const principal = singleHref(parseMultistatus(rootReply.text)[0], d('current-user-principal'));

    const originReply = await alice.propfind('/', '0', cupBody, xmlType);
    expect(originReply.status).toBe(207);

    const principalReply = await alice.propfind(principal, '0', propfindBody(card('addressbook-home-set')), xmlType);
    const home = hrefsIn(okProp(parseMultistatus(principalReply.text)[0], card('addressbook-home-set')))[0];

    const homeReply = await alice.propfind(
      home,
      '1',
      propfindBody(d('resourcetype'), d('displayname'), d('current-user-privilege-set')),
      xmlType,
    );
    expect(homeReply.status).toBe(207);
    const listing = parseMultistatus(homeReply.text);
    expect(addressBooks(listing)).toEqual([BOOK]);
    const book = responseFor(listing, BOOK);
    // Thunderbird reads only the first status of a response and compares its text exactly.
    expect(book.propstats[0].statusLine).toBe('HTTP/1.1 200 OK');
    const privileges = (okProp(book, d('current-user-privilege-set'))?.children ?? []).flatMap(childNames);
    expect(privileges).toEqual(expect.arrayContaining([d('read'), d('write')]));
  });
});
