import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person } from '../helpers/dav';
import { CARDDAV, clark, errorCondition, parseMultistatus, parseXmlTree } from '../helpers/multistatus';

const HOME = '/dav/addressbooks/alice/';
const BOOK = `${HOME}contacts/`;
const EMPTY = `${HOME}empty/`;

let app: TestApp;
let alice: DavClient;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
  await alice.createBook(EMPTY);
  await alice.putCard(
    `${BOOK}carol.vcf`,
    person('4d1f0a52-0000-4000-8000-0000000000c1', 'Carol Example', [
      'item1.EMAIL;type=INTERNET;type=pref:carol@example.org',
      'item1.X-ABLabel:Private',
      'ITEM2.ADR;TYPE=HOME:;;1 Example Road;Springfield;;12345;Exampleland',
      'ITEM2.X-ABLABEL:Home',
    ]),
  );
  await alice.putCard(
    `${BOOK}heidi.vcf`,
    person('4d1f0a52-0000-4000-8000-0000000000c2', 'Heidi Example', ['ORG:Example Widgets, Ltd.', 'ITEM3.EMAIL:heidi@example.org']),
  );
});

afterAll(() => app.close());

function query(filter: string): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?><card:addressbook-query xmlns:d="DAV:" xmlns:card="${CARDDAV}">` +
    `<d:prop><d:getetag/></d:prop>${filter}</card:addressbook-query>`
  );
}

async function matches(book: string, filter: string): Promise<string[]> {
  const reply = await alice.report(book, query(filter), { Depth: '1' });
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text).map((r) => r.href);
}

describe('addressbook-query', () => {
  test('empty book returns an empty multistatus', async () => {
    const reply = await alice.report(EMPTY, query('<card:filter><card:prop-filter name="FN"/></card:filter>'), { Depth: '1' });
    expect(reply.status).toBe(207);
    const root = parseXmlTree(reply.text);
    expect(root.name).toBe('{DAV:}multistatus');
    expect(root.children).toEqual([]);
  });

  test('empty filter on an empty book returns nothing', async () => {
    expect(await matches(EMPTY, '<card:filter/>')).toEqual([]);
  });

  test('comp-filter is an unsupported filter', async () => {
    const reply = await alice.report(BOOK, query('<card:filter><card:comp-filter name="VCARD"/></card:filter>'), { Depth: '1' });
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-filter'));
  });

  test('comp-filter on an empty book is rejected', async () => {
    const reply = await alice.report(EMPTY, query('<card:filter><card:comp-filter name="VCARD"/></card:filter>'), { Depth: '1' });
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-filter'));
  });

  test('EMAIL filter matches a grouped EMAIL', async () => {
    const filter =
      '<card:filter test="allof">' +
      '<card:prop-filter name="EMAIL"><card:text-match collation="i;unicode-casemap" match-type="equals">carol@example.org</card:text-match></card:prop-filter>' +
      '<card:prop-filter name="ADR"/>' +
      '</card:filter>';
    expect(await matches(BOOK, filter)).toEqual([`${BOOK}carol.vcf`]);
  });

  test('EMAIL filter matches an upper-case group', async () => {
    const filter =
      '<card:filter><card:prop-filter name="email"><card:text-match match-type="starts-with">HEIDI@</card:text-match></card:prop-filter></card:filter>';
    expect(await matches(BOOK, filter)).toEqual([`${BOOK}heidi.vcf`]);
  });

  test('ORG filter matches text with a raw comma', async () => {
    const filter =
      '<card:filter><card:prop-filter name="ORG"><card:text-match match-type="contains">Widgets, Ltd</card:text-match></card:prop-filter></card:filter>';
    expect(await matches(BOOK, filter)).toEqual([`${BOOK}heidi.vcf`]);
  });

  test('book itself is never a match', async () => {
    const hrefs = await matches(BOOK, '<card:filter/>');
    expect(hrefs).not.toContain(BOOK);
    expect(hrefs.sort()).toEqual([`${BOOK}carol.vcf`, `${BOOK}heidi.vcf`]);
  });
});
