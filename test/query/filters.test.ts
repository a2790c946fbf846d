/**
 * addressbook-query filters through the HTTP interface: each case names the
 * cards it must return, and every other card of the book must stay out.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { CARDDAV, DAV, clark, errorCondition, parseMultistatus } from '../helpers/multistatus';
import { BOOK, card, put, queryBody, report } from './client';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

/** The book: cards in the shapes different clients write, named by the person in them. */
const CARDS: Record<string, string> = {
  anna: card([
    'BEGIN:VCARD',
    'VERSION:3.0',
    'PRODID:-//Apple Inc.//iPhone OS 17.4//EN',
    'UID:0a6b1c2d-0001-4000-8000-000000000001',
    'N:Müller;Anna;;;',
    'FN:Anna Müller',
    'NICKNAME:Anni',
    'EMAIL;TYPE=INTERNET,HOME:anna@example.org',
    'item1.EMAIL;type=INTERNET;type=pref:anna.work@example.com',
    'item1.X-ABLabel:Work',
    'TEL;TYPE=CELL:+49 170 5550101',
    'X-CUSTOM-ID:A-100',
    'CATEGORIES:Friends,Family',
    'END:VCARD',
  ]),
  sofia: card([
    'BEGIN:VCARD',
    'VERSION:4.0',
    'UID:urn:uuid:0a6b1c2d-0002-4000-8000-000000000002',
    'FN:Σοφία Παπαδοπούλου',
    'N:Παπαδοπούλου;Σοφία;;;',
    'EMAIL;TYPE=work;PREF=1:sofia@example.gr',
    'TEL;VALUE=uri;TYPE="voice,work":tel:+30-210-5550102',
    'ADR;TYPE=work:;;Odos Ermou 1;Athina;;10558;Greece',
    'ORG:Example Ltd',
    'END:VCARD',
  ]),
  carol: card([
    'BEGIN:VCARD',
    'VERSION:3.0',
    'PRODID:-//Example Handsets//Phonebook 1.0//EN',
    'UID:4d1f0a52-0b04-4000-8000-00000000b004',
    'N:Example;Carol;;;',
    'FN:Carol Example',
    'item1.EMAIL;type=INTERNET;type=pref:carol@example.com',
    'item1.X-ABLabel:Private',
    'ITEM2.ADR;TYPE=HOME:;;1 Example Road;Springfield;;12345;Exampleland',
    'ITEM2.X-ABLABEL:Home',
    'END:VCARD',
  ]),
  dave: card([
    'BEGIN:VCARD',
    'VERSION:4.0',
    'UID:urn:uuid:0a6b1c2d-0004-4000-8000-000000000004',
    'KIND:individual',
    "FN:Dave O'Brien",
    "N:O'Brien;Dave;;;",
    'EMAIL:dave@EXAMPLE.net',
    'TEL;TYPE=home:+1 555 0104',
    'X-CUSTOM-ID:D-400',
    'NOTE:Likes\\, commas',
    'END:VCARD',
  ]),
  club: card([
    'BEGIN:VCARD',
    'VERSION:4.0',
    'UID:urn:uuid:0a6b1c2d-0005-4000-8000-000000000005',
    'KIND:group',
    'FN:Book Club',
    'MEMBER:urn:uuid:0a6b1c2d-0004-4000-8000-000000000004',
    'END:VCARD',
  ]),
  heidi: card([
    'BEGIN:VCARD',
    'VERSION:3.0',
    'UID:b11a0000-0000-4000-8000-00000000b011',
    'N:Example;Heidi;;;',
    'FN:Heidi Example',
    'ORG:Example Widgets\\, Ltd.',
    'EMAIL;TYPE=INTERNET:heidi@example.com',
    'TEL:+1 555 0106',
    `PHOTO;ENCODING=b;TYPE=PNG:${PNG}`,
    'END:VCARD',
  ]),
};
const ALL = Object.keys(CARDS);

const text = (needle: string, attrs = '') => `<card:text-match${attrs}>${needle}</card:text-match>`;
const prop = (name: string, inner = '', attrs = '') => `<card:prop-filter name="${name}"${attrs}>${inner}</card:prop-filter>`;
const param = (name: string, inner = '') => `<card:param-filter name="${name}">${inner}</card:param-filter>`;
const filter = (inner: string, test?: string) => `<card:filter${test ? ` test="${test}"` : ''}>${inner}</card:filter>`;
const NOT_DEFINED = '<card:is-not-defined/>';

interface FilterCase {
  name: string;
  filter: string;
  expected: string[];
}

const CASES: FilterCase[] = [
  { name: 'contains, casemap default', filter: filter(prop('FN', text('müller'))), expected: ['anna'] },
  { name: 'contains, upper-case umlaut', filter: filter(prop('FN', text('MÜLLER'))), expected: ['anna'] },
  { name: 'equals, Greek casemap', filter: filter(prop('FN', text('ΣΟΦΊΑ ΠΑΠΑΔΟΠΟΎΛΟΥ', ' match-type="equals"'))), expected: ['sofia'] },
  { name: 'starts-with, Greek lower case', filter: filter(prop('N', text('παπαδοπούλου;σοφία', ' match-type="starts-with"'))), expected: ['sofia'] },
  { name: 'ascii-casemap folds ASCII', filter: filter(prop('FN', text('ANNA', ' collation="i;ascii-casemap"'))), expected: ['anna'] },
  { name: 'ascii-casemap keeps Greek case', filter: filter(prop('FN', text('σοφία', ' collation="i;ascii-casemap"'))), expected: [] },
  { name: 'ascii-casemap equals', filter: filter(prop('EMAIL', text('DAVE@example.NET', ' collation="i;ascii-casemap" match-type="equals"'))), expected: ['dave'] },
  { name: 'octet is case-sensitive', filter: filter(prop('FN', text('anna', ' collation="i;octet"'))), expected: [] },
  { name: 'octet exact case', filter: filter(prop('FN', text('Anna', ' collation="i;octet"'))), expected: ['anna'] },
  { name: 'octet equals', filter: filter(prop('EMAIL', text('dave@EXAMPLE.net', ' collation="i;octet" match-type="equals"'))), expected: ['dave'] },
  { name: 'octet equals, other case', filter: filter(prop('EMAIL', text('dave@example.net', ' collation="i;octet" match-type="equals"'))), expected: [] },
  { name: 'equals on a grouped property', filter: filter(prop('EMAIL', text('carol@example.com', ' match-type="equals"'))), expected: ['carol'] },
  { name: 'group in the filter name', filter: filter(prop('item1.EMAIL', text('anna'))), expected: ['anna'] },
  { name: 'other group in the filter name', filter: filter(prop('item2.EMAIL', text('anna'))), expected: [] },
  { name: 'upper-case group, lower-case filter', filter: filter(prop('item2.ADR')), expected: ['carol'] },
  { name: 'starts-with', filter: filter(prop('EMAIL', text('SOFIA@', ' match-type="starts-with"'))), expected: ['sofia'] },
  { name: 'ends-with', filter: filter(prop('EMAIL', text('@EXAMPLE.NET', ' match-type="ends-with"'))), expected: ['dave'] },
  { name: 'ends-with a whole value', filter: filter(prop('EMAIL', text('dave@example.net', ' match-type="ends-with"'))), expected: ['dave'] },
  { name: 'is-not-defined', filter: filter(prop('NICKNAME', NOT_DEFINED)), expected: ['sofia', 'carol', 'dave', 'club', 'heidi'] },
  { name: 'property present', filter: filter(prop('ADR')), expected: ['sofia', 'carol'] },
  { name: 'negate-condition', filter: filter(prop('FN', text('example', ' negate-condition="yes"'))), expected: ['anna', 'sofia', 'dave', 'club'] },
  { name: 'X- property equals', filter: filter(prop('X-CUSTOM-ID', text('a-100', ' match-type="equals"'))), expected: ['anna'] },
  { name: 'X- property starts-with', filter: filter(prop('X-CUSTOM-ID', text('D-', ' match-type="starts-with"'))), expected: ['dave'] },
  { name: 'X- label of a group', filter: filter(prop('X-ABLABEL', text('home', ' match-type="equals"'))), expected: ['carol'] },
  {
    name: 'filter allof',
    filter: filter(prop('FN', text('e')) + prop('EMAIL', text('example.com')), 'allof'),
    expected: ['anna', 'carol', 'heidi'],
  },
  { name: 'filter anyof', filter: filter(prop('NICKNAME') + prop('KIND', text('group', ' match-type="equals"'))), expected: ['anna', 'club'] },
  { name: 'param-filter text-match', filter: filter(prop('EMAIL', param('TYPE', text('pref', ' match-type="equals"')))), expected: ['anna', 'carol'] },
  { name: 'param-filter presence', filter: filter(prop('EMAIL', param('PREF'))), expected: ['sofia'] },
  { name: 'param-filter is-not-defined', filter: filter(prop('TEL', param('TYPE', NOT_DEFINED))), expected: ['heidi'] },
  { name: 'param in a quoted TYPE list', filter: filter(prop('TEL', param('TYPE', text('work', ' match-type="equals"')))), expected: ['sofia'] },
  {
    name: 'param-filter negated',
    filter: filter(prop('EMAIL', param('TYPE', text('pref', ' match-type="equals" negate-condition="yes"')))),
    expected: ['anna', 'sofia', 'heidi'],
  },
  {
    name: 'prop-filter allof',
    filter: filter(prop('EMAIL', text('anna') + param('TYPE', text('home', ' match-type="equals"')), ' test="allof"')),
    expected: ['anna'],
  },
  {
    name: 'prop-filter anyof',
    filter: filter(prop('EMAIL', text('sofia') + param('TYPE', text('home', ' match-type="equals"')), ' test="anyof"')),
    expected: ['anna', 'sofia'],
  },
  { name: 'two text-matches, allof', filter: filter(prop('FN', text('anna') + text('müller'), ' test="allof"')), expected: ['anna'] },
  { name: 'two text-matches, anyof', filter: filter(prop('FN', text('anna') + text('dave'))), expected: ['anna', 'dave'] },
  { name: 'structured value equals whole', filter: filter(prop('N', text('müller;anna;;;', ' match-type="equals"'))), expected: ['anna'] },
  { name: 'structured value equals component', filter: filter(prop('N', text('Müller', ' match-type="equals"'))), expected: [] },
  { name: 'structured value contains', filter: filter(prop('N', text('anna'))), expected: ['anna'] },
  { name: 'ADR contains a component', filter: filter(prop('ADR', text('athina'))), expected: ['sofia'] },
  { name: 'escaped comma in ORG', filter: filter(prop('ORG', text('Widgets, Ltd'))), expected: ['heidi'] },
  { name: 'escaped comma in NOTE', filter: filter(prop('NOTE', text('likes, commas', ' match-type="equals"'))), expected: ['dave'] },
  { name: 'empty filter', filter: filter(''), expected: ALL },
  { name: 'no filter element', filter: '', expected: ALL },
  { name: 'PHOTO present', filter: filter(prop('PHOTO')), expected: ['heidi'] },
  { name: 'PHOTO value', filter: filter(prop('PHOTO', text(PNG.slice(0, 12), ' match-type="starts-with" collation="i;octet"'))), expected: ['heidi'] },
  { name: 'PHOTO parameter', filter: filter(prop('PHOTO', param('TYPE', text('png', ' match-type="equals"')))), expected: ['heidi'] },
];

let app: TestApp;

function hrefOf(name: string): string {
  return `${BOOK}${name}.vcf`;
}

async function queryHrefs(inner: string): Promise<string[]> {
  const reply = await report(app, queryBody(inner));
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text)
    .map((response) => response.href)
    .sort();
}

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  for (const [name, body] of Object.entries(CARDS)) {
    const reply = await put(app, `${name}.vcf`, body);
    expect(reply.status).toBe(201);
  }
});

afterAll(() => app.close());

describe('addressbook-query filter', () => {
  test.each(CASES)('$name', async ({ filter: inner, expected }) => {
    const hrefs = await queryHrefs(inner);
    expect(hrefs).toEqual(expected.map(hrefOf).sort());
  });
});

describe('addressbook-query errors', () => {
  test('unknown collation', async () => {
    const reply = await report(app, queryBody(filter(prop('FN', text('a', ' collation="i;basic"')))));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-collation'));
  });

  test('unknown match-type', async () => {
    const reply = await report(app, queryBody(filter(prop('FN', text('a', ' match-type="regex"')))));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-filter'));
  });

  test('CalDAV comp-filter', async () => {
    const reply = await report(app, queryBody(filter('<card:comp-filter name="VCARD"/>')));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-filter'));
  });

  test('invalid test attribute', async () => {
    const reply = await report(app, queryBody(filter(prop('FN'), 'xor')));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-filter'));
  });

  test('is-not-defined with a text-match', async () => {
    const reply = await report(app, queryBody(filter(prop('FN', NOT_DEFINED + text('a')))));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-filter'));
  });
});

describe('addressbook-query limit', () => {
  const limited = (n: number) => `${filter(prop('FN'))}<card:limit><card:nresults>${n}</card:nresults></card:limit>`;

  test('truncates with 507 for the book', async () => {
    const reply = await report(app, queryBody(limited(2)));
    expect(reply.status).toBe(207);
    const responses = parseMultistatus(reply.text);
    const cards = responses.filter((response) => response.href !== BOOK);
    const book = responses.filter((response) => response.href === BOOK);
    expect(cards).toHaveLength(2);
    expect(book).toHaveLength(1);
    expect(book[0].status).toBe(507);
    expect(book[0].error?.children.map((element) => element.name)).toEqual([clark(DAV, 'number-of-matches-within-limits')]);
  });

  test('no 507 when all matches fit', async () => {
    const responses = parseMultistatus((await report(app, queryBody(limited(ALL.length)))).text);
    expect(responses).toHaveLength(ALL.length);
    expect(responses.every((response) => response.href !== BOOK)).toBe(true);
  });

  test('limit on the scan path', async () => {
    const inner = `${filter(prop('PHOTO', text('i', ' collation="i;octet"')))}<card:limit><card:nresults>1</card:nresults></card:limit>`;
    const responses = parseMultistatus((await report(app, queryBody(inner))).text);
    expect(responses.map((response) => response.href)).toEqual([hrefOf('heidi')]);
  });
});

describe('grouped properties', () => {
  test('allof on EMAIL and ADR', async () => {
    const inner = filter(
      prop('EMAIL', text('carol@example.com', ' collation="i;unicode-casemap" match-type="equals"')) + prop('ADR'),
      'allof',
    );
    expect(await queryHrefs(inner)).toEqual([hrefOf('carol')]);
  });

  test('GET keeps group prefixes', async () => {
    const res = await app.http().get(hrefOf('carol')).set('Authorization', app.auth('alice'));
    expect(res.text).toBe(CARDS.carol);
  });
});
