import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person, propfindBody, XMLNS, type DavReply } from '../helpers/dav';
import { CARDDAV, DAV, clark, errorCondition, parseDavError } from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);

const BOOK = '/dav/addressbooks/alice/contacts/';
const CARD = `${BOOK}error-case.vcf`;

let app: TestApp;
let alice: DavClient;
let anonymous: DavClient;
let cardEtag: string;

beforeAll(async () => {
  app = await startTestApp({ maxXmlBody: 2048 });
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
  anonymous = new DavClient(app);
  const reply = await alice.putCard(CARD, person('f0e1d2c3-0000-4000-8000-0000000000e1', 'Edith Example'));
  cardEtag = String(reply.headers.etag);
});

afterAll(() => app.close());

/** Checks the status and that the body is an XML DAV:error document. */
function expectDavError(reply: DavReply, status: number): void {
  expect(reply.status).toBe(status);
  expect(String(reply.headers['content-type'])).toMatch(/^application\/xml(;|$)/);
  expect(parseDavError(reply.text).root.name).toBe(d('error'));
}

function report(root: string, ns = 'DAV:'): string {
  return `<?xml version="1.0"?><x:${root} xmlns:x="${ns}" xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></x:${root}>`;
}

describe('error bodies', () => {
  test('401 is a DAV:error', async () => {
    expectDavError(await anonymous.propfind(BOOK, '0', propfindBody(d('resourcetype'))), 401);
  });

  test('404 for a missing card is a DAV:error', async () => {
    expectDavError(await alice.get(`${BOOK}missing.vcf`), 404);
  });

  test('404 for an unknown path is a DAV:error', async () => {
    expectDavError(await alice.propfind('/no/such/place', '0', propfindBody(d('resourcetype'))), 404);
  });

  test('405 for MKCOL on a book is a DAV:error', async () => {
    expectDavError(await alice.mkcol(BOOK), 405);
  });

  test('405 for an unsupported method is a DAV:error', async () => {
    const reply = await alice.request('LOCK', CARD);
    expectDavError(reply, 405);
    expect(String(reply.headers.allow).split(/,\s*/)).toEqual(expect.arrayContaining(['GET', 'PUT', 'DELETE']));
  });

  test('412 for a stale If-Match is a DAV:error', async () => {
    expectDavError(await alice.put(CARD, person('f0e1d2c3-0000-4000-8000-0000000000e1', 'Edith B. Example'), { 'If-Match': '"stale"' }), 412);
  });

  test('412 for DELETE is a DAV:error', async () => {
    expectDavError(await alice.delete(CARD, { 'If-Match': '"stale"' }), 412);
  });

  test('409 for PUT into a missing book is a DAV:error', async () => {
    expectDavError(await alice.put('/dav/addressbooks/alice/gone/x.vcf', person('f0e1d2c3-0000-4000-8000-0000000000e2', 'Ezra Example')), 409);
  });

  test('403 for invalid vCard names the condition', async () => {
    const reply = await alice.put(`${BOOK}invalid.vcf`, 'not a card');
    expectDavError(reply, 403);
    expect(errorCondition(reply.text)).toBe(card('valid-address-data'));
  });

  test('400 for malformed XML is a DAV:error', async () => {
    expectDavError(await alice.propfind(BOOK, '0', '<d:propfind xmlns:d="DAV:">'), 400);
  });

  test('400 for an invalid Depth is a DAV:error', async () => {
    expectDavError(await alice.propfind(BOOK, '2', propfindBody(d('resourcetype'))), 400);
  });

  test('400 for a malformed percent escape is a DAV:error', async () => {
    expectDavError(await alice.get('/dav/addressbooks/alice/contacts/%E0%A4%A.vcf'), 400);
  });

  test('413 for an oversized XML body is a DAV:error', async () => {
    const padding = `<x:padding xmlns:x="urn:example:test">${'x'.repeat(4096)}</x:padding>`;
    const body = `<?xml version="1.0"?><d:propfind ${XMLNS}><d:prop><d:getetag/>${padding}</d:prop></d:propfind>`;
    expectDavError(await alice.propfind(BOOK, '0', body), 413);
  });

  test('DOCTYPE in a request body is rejected', async () => {
    const body = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>';
    expectDavError(await alice.propfind(BOOK, '0', body), 400);
  });

  test('500 is a DAV:error without details', async () => {
    const spy = jest.spyOn(app.storage, 'getBookProperties').mockRejectedValueOnce(new Error('disk I/O error at sector 42'));
    try {
      const reply = await alice.propfind(BOOK, '0', propfindBody(d('displayname')));
      expectDavError(reply, 500);
      expect(reply.text).not.toContain('sector 42');
      expect(reply.text).toMatch(/request id [0-9a-f-]{36}/);
    } finally {
      spy.mockRestore();
    }
    const after = await alice.propfind(BOOK, '0', propfindBody(d('displayname')));
    expect(after.status).toBe(207);
  });

  test('304 has no error body', async () => {
    const reply = await alice.get(CARD, { 'If-None-Match': cardEtag });
    expect(reply.status).toBe(304);
    expect(reply.body.length).toBe(0);
  });
});

describe('unsupported reports', () => {
  test.each([
    ['expand-property', 'DAV:'],
    ['principal-property-search', 'DAV:'],
    ['calendar-query', 'urn:ietf:params:xml:ns:caldav'],
    ['free-busy-query', 'urn:ietf:params:xml:ns:caldav'],
  ])('%s is rejected', async (root, ns) => {
    const reply = await alice.report(BOOK, report(root, ns));
    expectDavError(reply, 403);
    expect(errorCondition(reply.text)).toBe(d('supported-report'));
  });

  test('sync-collection on the home is rejected', async () => {
    const reply = await alice.report(
      '/dav/addressbooks/alice/',
      `<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`,
    );
    expectDavError(reply, 403);
    expect(errorCondition(reply.text)).toBe(d('supported-report'));
  });

  test('multiget on a card is rejected', async () => {
    const reply = await alice.report(CARD, report('addressbook-multiget', CARDDAV));
    expectDavError(reply, 403);
    expect(errorCondition(reply.text)).toBe(d('supported-report'));
  });

  test('REPORT without a body is rejected', async () => {
    expectDavError(await alice.request('REPORT', BOOK), 400);
  });
});
