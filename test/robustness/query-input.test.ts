/**
 * addressbook-query with edge-case needles and filters: empty text, Unicode
 * case and normalization forms, negation on missing properties and limits.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { Client, expectDavError, parseMultistatus, portOf, vcard, XMLNS } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';

let app: TestApp;
let alice: Client;

const CARDS: Record<string, string[]> = {
  strasse: ['FN:Straße', 'EMAIL;TYPE=home:s@example.com'],
  istanbul: ['FN:İstanbul'],
  sigma: ['FN:ΟΔΥΣΣΕΥΣ'],
  combining: ['FN:Jose\u0301'],
  empty: ['FN:Empty', 'NOTE:'],
};

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new Client(portOf(app), app.auth('alice'));
  for (const [uid, lines] of Object.entries(CARDS)) {
    const reply = await alice.put(`${BOOK}${uid}.vcf`, vcard({ uid, lines }));
    if (reply.status !== 201) throw new Error(`PUT ${uid} returned ${reply.status}: ${reply.text}`);
  }
});

afterAll(() => app.close());

async function query(filter: string, limit = ''): Promise<string[]> {
  const reply = await alice.report(BOOK, `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/></d:prop>${filter}${limit}</card:addressbook-query>`);
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text)
    .responses.filter((r) => r.status === undefined)
    .map((r) => r.href.slice(BOOK.length).replace(/\.vcf$/, ''))
    .sort();
}

function textMatch(property: string, text: string, attributes = ''): string {
  return `<card:filter><card:prop-filter name="${property}"><card:text-match ${attributes}>${text}</card:text-match></card:prop-filter></card:filter>`;
}

test.each([
  ['equals empty finds empty values', textMatch('NOTE', '', 'match-type="equals"'), ['empty']],
  ['contains empty finds every FN', textMatch('FN', ''), Object.keys(CARDS).sort()],
  ['ß is not SS', textMatch('FN', 'STRASSE'), []],
  ['ß matches ß in any case', textMatch('FN', 'STRAßE', 'match-type="equals"'), ['strasse']],
  ['dotted capital I decomposes', textMatch('FN', 'i\u0307stanbul', 'match-type="equals"'), ['istanbul']],
  ['final sigma folds', textMatch('FN', 'οδυσσευς', 'match-type="equals"'), ['sigma']],
  ['composed needle finds decomposed value', textMatch('FN', 'José', 'match-type="ends-with"'), ['combining']],
  ['octet keeps forms apart', textMatch('FN', 'José', 'match-type="ends-with" collation="i;octet"'), []],
  ['negate on a missing property', textMatch('X-MISSING', 'x', 'negate-condition="yes"'), []],
])('%s', async (_, filter, expected) => {
  expect(await query(filter)).toEqual(expected);
});

test('param-filter on a missing parameter', async () => {
  const filter = (inner: string) =>
    `<card:filter><card:prop-filter name="EMAIL"><card:param-filter name="X-NONE">${inner}</card:param-filter></card:prop-filter></card:filter>`;
  expect(await query(filter(''))).toEqual([]);
  expect(await query(filter('<card:is-not-defined/>'))).toEqual(['strasse']);
  expect(await query(filter('<card:text-match negate-condition="yes">a</card:text-match>'))).toEqual([]);
});

test.each(['0', '-1', '1.5', 'many', ''])('limit %j is rejected', async (value) => {
  const reply = await alice.report(
    BOOK,
    `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/></d:prop><card:limit><card:nresults>${value}</card:nresults></card:limit></card:addressbook-query>`,
  );
  expectDavError(reply, 400);
});

test('huge limit returns every card', async () => {
  expect(await query('', '<card:limit><card:nresults>999999999999999</card:nresults></card:limit>')).toEqual(Object.keys(CARDS).sort());
});
