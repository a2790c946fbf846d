/**
 * Request bodies at and beyond the parser and filter caps, XML encodings
 * other than plain UTF-8, and dead properties with namespaced attributes.
 * Each is either processed completely or rejected with a DAV:error.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { MAX_ELEMENTS } from '../../dav/xml';
import { MAX_FILTER_TESTS, MAX_PROP_FILTERS, MAX_TESTS_PER_PROP_FILTER } from '../../dav/query';
import { carddav, childNamed, Client, dav, expectDavError, okProp, parseMultistatus, person, portOf, XMLNS } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';
const XML_LIMIT = 8 * 1024 * 1024;

let app: TestApp;
let client: Client;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: XML_LIMIT });
  await app.addUser('alice');
  client = new Client(portOf(app), app.auth('alice'));
  expect((await client.put(`${BOOK}ada.vcf`, person('ada', 'Ada Lovelace'))).status).toBe(201);
});

afterAll(() => app.close());

function displayNameUpdate(value: string): string {
  return `<d:propertyupdate ${XMLNS}><d:set><d:prop><d:displayname>${value}</d:displayname></d:prop></d:set></d:propertyupdate>`;
}

async function displayName(): Promise<string | undefined> {
  const reply = await client.propfind(BOOK, '0', `<d:propfind ${XMLNS}><d:prop><d:displayname/></d:prop></d:propfind>`);
  return okProp(parseMultistatus(reply.text).responses[0], dav('displayname'))?.text;
}

describe('element cap', () => {
  test('one element over the cap is rejected', async () => {
    // DAV:propfind and DAV:prop count too.
    const body = `<d:propfind ${XMLNS}><d:prop>${'<a/>'.repeat(MAX_ELEMENTS - 1)}</d:prop></d:propfind>`;
    const started = Date.now();
    const reply = await client.propfind(BOOK, '0', body);
    expectDavError(reply, 400);
    expect(reply.text).toContain(`more than ${MAX_ELEMENTS} elements`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('body at the cap is parsed', async () => {
    const body = `<d:propfind ${XMLNS}><d:prop>${'<a/>'.repeat(MAX_ELEMENTS - 2)}</d:prop></d:propfind>`;
    expect((await client.propfind(BOOK, '0', body)).status).toBe(207);
  });
});

describe('filter caps', () => {
  const propFilter = (tests: number): string =>
    `<card:prop-filter name="FN" test="allof">${'<card:text-match>a</card:text-match>'.repeat(tests)}</card:prop-filter>`;
  const query = (filters: string[]): string =>
    `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/></d:prop><card:filter test="allof">${filters.join('')}</card:filter></card:addressbook-query>`;

  test('filters at the caps run', async () => {
    const perFilter = MAX_FILTER_TESTS / MAX_PROP_FILTERS;
    const reply = await client.report(BOOK, query(Array.from({ length: MAX_PROP_FILTERS }, () => propFilter(perFilter))));
    expect(reply.status).toBe(207);
    expect(parseMultistatus(reply.text).responses.map((r) => r.href)).toEqual([`${BOOK}ada.vcf`]);
  });

  test('one test over the total is supported-filter', async () => {
    const full = Math.floor(MAX_FILTER_TESTS / MAX_TESTS_PER_PROP_FILTER);
    const filters = [...Array.from({ length: full }, () => propFilter(MAX_TESTS_PER_PROP_FILTER)), propFilter(MAX_FILTER_TESTS - full * MAX_TESTS_PER_PROP_FILTER + 1)];
    const root = expectDavError(await client.report(BOOK, query(filters)), 403, carddav('supported-filter'));
    expect(root.children.map((c) => c.text).join(' ')).toContain(String(MAX_FILTER_TESTS));
  });

  test('one prop-filter over the cap is supported-filter', async () => {
    const filters = Array.from({ length: MAX_PROP_FILTERS + 1 }, () => propFilter(1));
    expectDavError(await client.report(BOOK, query(filters)), 403, carddav('supported-filter'));
  });
});

describe('XML encodings', () => {
  afterEach(async () => {
    await client.proppatch(BOOK, displayNameUpdate('Contacts'));
  });

  test('UTF-8 byte order mark is accepted', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(displayNameUpdate('Caf\u00e9'))]);
    expect((await client.proppatch(BOOK, body)).status).toBe(207);
    expect(await displayName()).toBe('Caf\u00e9');
  });

  test('UTF-16 big-endian is decoded', async () => {
    const littleEndian = Buffer.from('\ufeff<?xml version="1.0" encoding="UTF-16"?>' + displayNameUpdate('\u00c9t\u00e9'), 'utf16le');
    expect((await client.proppatch(BOOK, littleEndian.swap16())).status).toBe(207);
    expect(await displayName()).toBe('\u00c9t\u00e9');
  });

  test('US-ASCII with a high byte is rejected', async () => {
    const [head, tail] = displayNameUpdate('Caf|').split('|');
    const body = Buffer.concat([Buffer.from(`<?xml version="1.0" encoding="US-ASCII"?>${head}`), Buffer.from([0xe9]), Buffer.from(tail)]);
    expectDavError(await client.proppatch(BOOK, body), 400);
    expect(await displayName()).toBe('Contacts');
  });

  test('unsupported encoding is rejected', async () => {
    const reply = await client.proppatch(BOOK, `<?xml version="1.0" encoding="Shift_JIS"?>${displayNameUpdate('x')}`);
    expectDavError(reply, 400);
    expect(reply.text).toContain('Shift_JIS');
    expect(await displayName()).toBe('Contacts');
  });

  test('conflicting byte order mark is rejected', async () => {
    const body = Buffer.from('\ufeff<?xml version="1.0" encoding="ISO-8859-1"?>' + displayNameUpdate('x'), 'utf16le');
    expectDavError(await client.proppatch(BOOK, body), 400);
    expect(await displayName()).toBe('Contacts');
  });
});

describe('dead property attributes', () => {
  test('namespaced attributes survive', async () => {
    const value = '<x:item xmlns:y="urn:y" y:kind="home" xml:lang="de" plain="1">Haupt<x:sub y:level="2"/> </x:item>';
    const set = `<d:propertyupdate ${XMLNS} xmlns:x="urn:x"><d:set><d:prop><x:label>${value}</x:label></d:prop></d:set></d:propertyupdate>`;
    expect((await client.proppatch(BOOK, set)).status).toBe(207);
    const reply = await client.propfind(BOOK, '0', `<d:propfind ${XMLNS} xmlns:x="urn:x"><d:prop><x:label/></d:prop></d:propfind>`);
    const label = okProp(parseMultistatus(reply.text).responses[0], '{urn:x}label');
    const item = label && childNamed(label, '{urn:x}item');
    expect(item?.attrs).toEqual({ '{urn:y}kind': 'home', '{http://www.w3.org/XML/1998/namespace}lang': 'de', plain: '1' });
    expect(item?.text).toBe('Haupt ');
    const sub = item ? childNamed(item, '{urn:x}sub') : undefined;
    expect(sub?.attrs).toEqual({ '{urn:y}level': '2' });
  });
});
