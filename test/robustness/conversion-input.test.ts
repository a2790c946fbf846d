/**
 * jCard uploads of the wrong shape and vCard conversions of odd values: every
 * one is stored faithfully or rejected with a DAV:error, never a 500, and no
 * value turns into extra properties.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { carddav, Client, expectDavError, okProp, parseMultistatus, portOf, vcard, XMLNS } from './support';

const BOOK = '/dav/addressbooks/alice/contacts/';
const JCARD = { 'Content-Type': 'application/vcard+json' };

let app: TestApp;
let alice: Client;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new Client(portOf(app), app.auth('alice'));
});

afterAll(() => app.close());

/** A jCard with VERSION and FN followed by `extra` properties. */
function jcard(extra: unknown[]): string {
  return JSON.stringify(['vcard', [['version', {}, 'text', '4.0'], ['fn', {}, 'text', 'Ada'], ...extra]]);
}

/** Names of the content lines of a stored card, without BEGIN and END. */
function propertyNames(card: string): string[] {
  return card
    .split(/\r\n(?![ \t])/)
    .filter((line) => line !== '')
    .map((line) => /^(?:[^.:;]+\.)?([^:;]+)/.exec(line)?.[1].toUpperCase() ?? line)
    .filter((name) => name !== 'BEGIN' && name !== 'END');
}

describe('jCard PUT of wrong shapes', () => {
  const cases: [string, string][] = [
    ['deeply nested value', `["vcard",[["version",{},"text","4.0"],["fn",{},"text","Ada"],["n",{},"text",${'['.repeat(100000)}${']'.repeat(100000)}]]]`],
    ['value nested three levels', jcard([['n', {}, 'text', [[['Lovelace']], 'Ada', '', '', '']]])],
    ['object value', jcard([['note', {}, 'text', { text: 'hi' }]])],
    ['null value', jcard([['x-count', {}, 'integer', null]])],
    ['number beyond double', jcard([['x-count', {}, 'integer', 1]]).replace(/"integer",1\]/, '"integer",1e400]')],
    ['parameter that is an object', jcard([['email', { type: { home: true } }, 'text', 'ada@example.com']])],
    ['properties that are not an array', JSON.stringify(['vcard', { fn: 'Ada' }])],
    ['bare string', '"vcard"'],
  ];

  test.each(cases)('%s is valid-address-data', async (_, body) => {
    const path = `${BOOK}shape.vcf`;
    const reply = await alice.put(path, body, JCARD);
    expectDavError(reply, 403, carddav('valid-address-data'));
    expect((await alice.get(path)).status).toBe(404);
  });

  test('invalid UTF-8 is rejected', async () => {
    const body = Buffer.concat([Buffer.from(jcard([['note', {}, 'text', 'x']]).replace('"x"', '"')), Buffer.from([0xff, 0xfe]), Buffer.from('"]]]')]);
    expectDavError(await alice.put(`${BOOK}utf8.vcf`, body, JCARD), 403, carddav('valid-address-data'));
  });
});

describe('jCard values with line breaks', () => {
  test('text value keeps its line breaks', async () => {
    const path = `${BOOK}note.vcf`;
    const reply = await alice.put(path, jcard([['note', {}, 'text', 'one\rTITLE:boss\r\ntwo\nthree']]), JCARD);
    expect(reply.status).toBe(201);
    const stored = (await alice.get(path)).text;
    expect(propertyNames(stored).sort()).toEqual(['FN', 'NOTE', 'UID', 'VERSION']);
    expect(stored.replace(/\r\n[ \t]/g, '')).toContain('NOTE:one\\nTITLE:boss\\ntwo\\nthree');
  });

  test('URI value with a line break is rejected', async () => {
    const path = `${BOOK}url.vcf`;
    const reply = await alice.put(path, jcard([['url', {}, 'uri', 'https://example.com/\r\nEMAIL:evil@example.com']]), JCARD);
    expectDavError(reply, 403, carddav('valid-address-data'));
    expect((await alice.get(path)).status).toBe(404);
  });

  test('unknown value with a line break is rejected', async () => {
    const reply = await alice.put(`${BOOK}unknown.vcf`, jcard([['x-data', {}, 'unknown', 'a\nX-CRM-LEAD-STATE:qualified']]), JCARD);
    expectDavError(reply, 403, carddav('valid-address-data'));
  });

  test('parameter with a carriage return stays one parameter', async () => {
    const path = `${BOOK}param.vcf`;
    const reply = await alice.put(path, jcard([['email', { 'x-note': 'a\rTEL:1' }, 'text', 'ada@example.com']]), JCARD);
    expect(reply.status).toBe(201);
    const stored = (await alice.get(path)).text;
    expect(propertyNames(stored).sort()).toEqual(['EMAIL', 'FN', 'UID', 'VERSION']);
    const back = JSON.parse((await alice.get(path, { Accept: 'application/vcard+json' })).text);
    const email = back[1].find((property: unknown[]) => property[0] === 'email');
    expect(email[1]['x-note']).toBe('a\nTEL:1');
  });
});

describe('binary values in 3.0', () => {
  const BYTES = Buffer.from([0xff, 0x00, 0x80, 0x41, 0x25]);

  test('percent-encoded KEY converts byte for byte', async () => {
    const path = `${BOOK}key.vcf`;
    const encoded = [...BYTES].map((byte) => `%${byte.toString(16).padStart(2, '0').toUpperCase()}`).join('');
    expect((await alice.put(path, vcard({ uid: 'key', fn: 'Key', version: '4.0', lines: [`KEY:data:application/pgp-keys,${encoded}`] }))).status).toBe(201);

    const as30 = await alice.get(path, { Accept: 'text/vcard;version=3.0' });
    expect(as30.text).toContain('VERSION:3.0');
    expect(as30.text).toContain(`KEY;ENCODING=b;TYPE=PGP:${BYTES.toString('base64')}`);
  });

  test('3.0 copy written back keeps the KEY bytes', async () => {
    const as30 = await alice.get(`${BOOK}key.vcf`, { Accept: 'text/vcard;version=3.0' });
    const copy = `${BOOK}key-30.vcf`;
    expect((await alice.put(copy, as30.text.replace('UID:key', 'UID:key-30'))).status).toBe(201);
    const as40 = await alice.get(copy, { Accept: 'text/vcard;version=4.0' });
    expect(as40.text).toContain(`KEY:data:application/pgp-keys;base64,${BYTES.toString('base64')}`);
  });

  test('SOUND with plain text data converts', async () => {
    const path = `${BOOK}sound.vcf`;
    expect((await alice.put(path, vcard({ uid: 'sound', fn: 'Sound', version: '4.0', lines: ['SOUND:data:audio/basic,%E2%82%AC ok'] }))).status).toBe(201);
    const as30 = await alice.get(path, { Accept: 'text/vcard;version=3.0' });
    expect(as30.text).toContain(`SOUND;ENCODING=b;TYPE=BASIC:${Buffer.from('€ ok').toString('base64')}`);
  });

  test('broken percent escape is a conversion failure', async () => {
    const path = `${BOOK}broken.vcf`;
    expect((await alice.put(path, vcard({ uid: 'broken', fn: 'Broken', version: '4.0', lines: ['KEY:data:application/pgp-keys,%G1'] }))).status).toBe(201);
    const reply = await alice.report(
      BOOK,
      `<card:addressbook-multiget ${XMLNS}><d:prop><d:getetag/><card:address-data version="3.0"/></d:prop><d:href>${path}</d:href></card:addressbook-multiget>`,
    );
    expect(reply.status).toBe(207);
    const response = parseMultistatus(reply.text).responses[0];
    expect(response.propstats.find((p) => p.status === 403)?.props.has(carddav('address-data'))).toBe(true);
  });
});

describe('address-data version attribute', () => {
  test('surrounding spaces are ignored', async () => {
    const path = `${BOOK}spaces.vcf`;
    expect((await alice.put(path, vcard({ uid: 'spaces', fn: 'Spaces', lines: ['N:;Spaces;;;'] }))).status).toBe(201);
    const reply = await alice.report(
      BOOK,
      `<card:addressbook-multiget ${XMLNS}><d:prop><card:address-data version=" 4.0 "/></d:prop><d:href>${path}</d:href></card:addressbook-multiget>`,
    );
    expect(reply.status).toBe(207);
    expect(okProp(parseMultistatus(reply.text).responses[0], carddav('address-data'))?.text).toContain('VERSION:4.0');
  });
});
