/**
 * address-data through the HTTP interface: partial cards, versions and jCard
 * in the three reports, Accept on GET, and PUT of jCard.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { CARDDAV, DAV, clark, errorCondition, okProp, parseMultistatus, propNamesWithStatus, responseFor } from '../helpers/multistatus';
import { BOOK, card, get, multigetBody, put, queryBody, report, XMLNS } from '../query/client';
import { splitLines, unfoldBytes } from '../../vcard/contentline';
import { CARDS_30, CARDS_40, PARAMS_40_ONLY, PNG_BASE64 } from './corpus';

const ADDRESS_DATA = clark(CARDDAV, 'address-data');
const GETETAG = clark(DAV, 'getetag');

const IOS = CARDS_30[0].text;
const DAVX5 = CARDS_40[0].text;
const THUNDERBIRD = CARDS_40[2].text;
/** A 4.0 card whose photo is a data: URI without its "," separator, so it has no 3.0 form. */
const BROKEN_PHOTO = card(['BEGIN:VCARD', 'VERSION:4.0', 'UID:broken-photo', 'FN:Broken Photo', 'PHOTO:data:image/png;base64', 'END:VCARD']);

let app: TestApp;

function lines(text: string): string[] {
  return splitLines(unfoldBytes(Buffer.from(text)).toString('utf8'));
}

async function addressData(names: string[], prop: string): Promise<Map<string, string>> {
  const reply = await report(app, multigetBody(names, `<d:getetag/>${prop}`));
  expect(reply.status).toBe(207);
  const result = new Map<string, string>();
  for (const response of parseMultistatus(reply.text)) result.set(response.href, okProp(response, ADDRESS_DATA)?.text ?? '');
  return result;
}

async function oneAddressData(name: string, prop: string): Promise<string> {
  return (await addressData([name], prop)).get(BOOK + name)!;
}

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  const cards: [string, string][] = [
    ['ios.vcf', IOS],
    ['davx5.vcf', DAVX5],
    ['thunderbird.vcf', THUNDERBIRD],
    ['zhang.vcf', PARAMS_40_ONLY],
    ['broken.vcf', BROKEN_PHOTO],
  ];
  for (const [name, text] of cards) expect((await put(app, name, text)).status).toBe(201);
});

afterAll(() => app.close());

describe('partial address-data', () => {
  test('returns only the selected properties', async () => {
    const text = await oneAddressData('ios.vcf', '<card:address-data><card:prop name="FN"/><card:prop name="EMAIL"/></card:address-data>');
    expect(lines(text)).toEqual([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'FN:Maja Elin Lindqvist',
      'item1.EMAIL;TYPE=INTERNET;TYPE=HOME;TYPE=pref:maja@example.se',
      'EMAIL;TYPE=INTERNET;TYPE=WORK:maja.lindqvist@example.com',
      'END:VCARD',
    ]);
  });

  test('novalue keeps name and parameters', async () => {
    const text = await oneAddressData('ios.vcf', '<card:address-data><card:prop name="TEL" novalue="yes"/></card:address-data>');
    expect(lines(text).filter((line) => line.startsWith('TEL'))).toEqual(['TEL;TYPE=CELL;TYPE=VOICE;TYPE=pref:', 'TEL;TYPE=WORK;TYPE=VOICE:']);
  });

  test('group in the name selects that group', async () => {
    const text = await oneAddressData('ios.vcf', '<card:address-data><card:prop name="item1.X-ABLABEL"/></card:address-data>');
    expect(lines(text).slice(2, -1)).toEqual(['item1.X-ABLabel:_$!<Other>!$_']);
  });

  test('allprop returns the stored card', async () => {
    expect(await oneAddressData('ios.vcf', '<card:address-data><card:allprop/></card:address-data>')).toBe(IOS);
  });

  test('in addressbook-query', async () => {
    const inner = '<card:filter><card:prop-filter name="FN"><card:text-match>Amara</card:text-match></card:prop-filter></card:filter>';
    const reply = await report(app, queryBody(inner, '<card:address-data><card:prop name="UID"/></card:address-data>'));
    const [response] = parseMultistatus(reply.text);
    expect(lines(okProp(response, ADDRESS_DATA)!.text)).toEqual(['BEGIN:VCARD', 'VERSION:4.0', 'UID:d5a00001-0000-4000-8000-000000000001', 'END:VCARD']);
  });

  test('in sync-collection', async () => {
    const body =
      `<?xml version="1.0" encoding="utf-8"?><d:sync-collection ${XMLNS}><d:sync-token/><d:sync-level>1</d:sync-level>` +
      '<d:prop><card:address-data version="3.0"><card:prop name="KIND"/></card:address-data></d:prop></d:sync-collection>';
    const reply = await report(app, body);
    expect(reply.status).toBe(207);
    const group = responseFor(parseMultistatus(reply.text), `${BOOK}thunderbird.vcf`);
    expect(lines(okProp(group, ADDRESS_DATA)!.text)).toEqual(['BEGIN:VCARD', 'VERSION:3.0', 'END:VCARD']);
  });
});

describe('address-data versions', () => {
  test('4.0 card as 3.0', async () => {
    const output = lines(await oneAddressData('thunderbird.vcf', '<card:address-data content-type="text/vcard" version="3.0"/>'));
    expect(output).toContain('VERSION:3.0');
    expect(output).toContain(`PHOTO;ENCODING=b;TYPE=PNG:${PNG_BASE64}`);
    expect(output).toContain('EMAIL;TYPE=pref:lukas@example.at');
  });

  test('3.0 card as 4.0', async () => {
    const output = lines(await oneAddressData('ios.vcf', '<card:address-data version="4.0"/>'));
    expect(output).toContain('VERSION:4.0');
    expect(output).toContain('BDAY;X-APPLE-OMIT-YEAR=1604:--0315');
  });

  test('stored version returns stored bytes', async () => {
    expect(await oneAddressData('davx5.vcf', '<card:address-data version="4.0"/>')).toBe(DAVX5);
  });

  test('4.0-only parameters dropped in 3.0', async () => {
    const output = lines(await oneAddressData('zhang.vcf', '<card:address-data version="3.0"/>'));
    expect(output).toEqual([
      'BEGIN:VCARD',
      'VERSION:3.0',
      'UID:urn:uuid:6f1d2c3b-0b03-4a00-9000-00000000b003',
      'FN:张 示例',
      'N:示例;张;;;',
      'EMAIL;TYPE=pref:zhang@example.com',
      'END:VCARD',
    ]);
  });

  test('jCard in a multiget', async () => {
    const text = await oneAddressData('ios.vcf', '<card:address-data content-type="application/vcard+json"><card:prop name="FN"/></card:address-data>');
    expect(JSON.parse(text)).toEqual(['vcard', [['version', {}, 'text', '4.0'], ['fn', {}, 'text', 'Maja Elin Lindqvist']]]);
  });

  test('jCard with version 3.0 is rejected', async () => {
    const reply = await report(app, multigetBody(['ios.vcf'], '<card:address-data content-type="application/vcard+json" version="3.0"/>'));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-address-data'));
  });

  test('unknown media type is rejected', async () => {
    const reply = await report(app, multigetBody(['ios.vcf'], '<card:address-data content-type="application/xml"/>'));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'supported-address-data'));
  });
});

describe('unconvertible card', () => {
  let responses: ReturnType<typeof parseMultistatus>;

  beforeAll(async () => {
    const reply = await report(app, multigetBody(['broken.vcf', 'davx5.vcf'], '<d:getetag/><card:address-data version="3.0"/>'));
    expect(reply.status).toBe(207);
    responses = parseMultistatus(reply.text);
  });

  test('gets supported-address-data-conversion', () => {
    const broken = responseFor(responses, `${BOOK}broken.vcf`);
    const failed = broken.propstats.find((propstat) => propstat.props.has(ADDRESS_DATA))!;
    expect(failed.status).toBe(403);
    expect(failed.error?.children[0].name).toBe(clark(CARDDAV, 'supported-address-data-conversion'));
  });

  test('keeps its other properties', () => {
    expect(propNamesWithStatus(responseFor(responses, `${BOOK}broken.vcf`), 200)).toEqual([GETETAG]);
  });

  test('other hrefs are still served', () => {
    const other = okProp(responseFor(responses, `${BOOK}davx5.vcf`), ADDRESS_DATA)!.text;
    expect(lines(other)).toContain('VERSION:3.0');
  });

  test('stored version is still served', async () => {
    expect(await oneAddressData('broken.vcf', '<card:address-data/>')).toBe(BROKEN_PHOTO);
  });
});

describe('GET with Accept', () => {
  test('no Accept returns the stored card', async () => {
    const reply = await get(app, 'davx5.vcf');
    expect(reply.text).toBe(DAVX5);
    expect(reply.headers.etag).toMatch(/^"[^"]+"$/);
  });

  test('vCard 3.0 of a 4.0 card', async () => {
    const reply = await get(app, 'davx5.vcf', 'text/vcard; version=3.0');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/vcard; charset=utf-8');
    expect(lines(reply.text)).toContain('VERSION:3.0');
    expect(reply.headers.vary).toMatch(/Accept/);
  });

  test('converted card has a weak ETag', async () => {
    const stored = await get(app, 'davx5.vcf');
    const converted = await get(app, 'davx5.vcf', 'text/vcard;version=3.0');
    expect(converted.headers.etag).toBe(`W/${stored.headers.etag}`);
  });

  test('jCard', async () => {
    const reply = await get(app, 'ios.vcf', 'application/vcard+json');
    expect(reply.headers['content-type']).toMatch(/^application\/vcard\+json/);
    const jcard = JSON.parse(reply.text) as [string, unknown[][]];
    expect(jcard[0]).toBe('vcard');
    expect(jcard[1].find((property) => property[0] === 'fn')).toEqual(['fn', {}, 'text', 'Maja Elin Lindqvist']);
  });

  test('q-values choose', async () => {
    const reply = await get(app, 'ios.vcf', 'application/vcard+json;q=0.5, text/vcard;version=4.0;q=0.9, text/vcard;q=0.1');
    expect(lines(reply.text)).toContain('VERSION:4.0');
  });

  test('plain text/vcard keeps the stored version', async () => {
    expect((await get(app, 'ios.vcf', 'text/vcard, application/vcard+json;q=0.5')).text).toBe(IOS);
  });

  test('wildcard keeps the stored version', async () => {
    expect((await get(app, 'ios.vcf', '*/*')).text).toBe(IOS);
  });

  test('unconvertible card falls back to the stored one', async () => {
    const reply = await get(app, 'broken.vcf', 'text/vcard;version=3.0');
    expect(reply.status).toBe(200);
    expect(reply.text).toBe(BROKEN_PHOTO);
  });
});

describe('PUT of jCard', () => {
  const JCARD = JSON.stringify([
    'vcard',
    [
      ['version', {}, 'text', '4.0'],
      ['uid', {}, 'uri', 'urn:uuid:7a0b1c2d-0011-4000-8000-000000000011'],
      ['fn', {}, 'text', 'Noor Haddad'],
      ['n', {}, 'text', ['Haddad', 'Noor', '', '', '']],
      ['email', { type: 'work', pref: '1' }, 'text', 'noor@example.jo'],
      ['bday', {}, 'date-and-or-time', '--07-09'],
    ],
  ]);

  test('stores vCard 4.0 text without ETag', async () => {
    const reply = await put(app, 'noor.vcf', JCARD, 'application/vcard+json');
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toBeUndefined();
    expect(lines((await get(app, 'noor.vcf')).text)).toEqual([
      'BEGIN:VCARD',
      'VERSION:4.0',
      'UID:urn:uuid:7a0b1c2d-0011-4000-8000-000000000011',
      'FN:Noor Haddad',
      'N:Haddad;Noor;;;',
      'EMAIL;TYPE=work;PREF=1:noor@example.jo',
      'BDAY:--0709',
      'END:VCARD',
    ]);
  });

  test('comes back as the same jCard', async () => {
    expect(JSON.parse((await get(app, 'noor.vcf', 'application/vcard+json')).text)).toEqual(JSON.parse(JCARD));
  });

  test('is found by a query', async () => {
    const inner = '<card:filter><card:prop-filter name="EMAIL"><card:text-match match-type="equals">NOOR@example.jo</card:text-match></card:prop-filter></card:filter>';
    const responses = parseMultistatus((await report(app, queryBody(inner))).text);
    expect(responses.map((response) => response.href)).toEqual([`${BOOK}noor.vcf`]);
  });

  test('invalid jCard is rejected', async () => {
    const reply = await put(app, 'bad.vcf', '["vcard", {}]', 'application/vcard+json');
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(clark(CARDDAV, 'valid-address-data'));
  });
});

describe('supported-address-data', () => {
  test('offers jCard', async () => {
    const body = `<?xml version="1.0"?><d:propfind ${XMLNS}><d:prop><card:supported-address-data/></d:prop></d:propfind>`;
    const res = await app.http().propfind(BOOK).set('Authorization', app.auth('alice')).set('Depth', '0').set('Content-Type', 'application/xml').send(body);
    const types = okProp(parseMultistatus(res.text)[0], clark(CARDDAV, 'supported-address-data'))!.children.map((child) => child.attrs);
    expect(types).toContainEqual({ 'content-type': 'application/vcard+json', version: '4.0' });
  });
});
