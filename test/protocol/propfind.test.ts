import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person, propfindBody, XMLNS } from '../helpers/dav';
import { storeCards } from '../helpers/fixtures';
import {
  CARDDAV,
  CS,
  DAV,
  childNames,
  clark,
  errorCondition,
  hrefsIn,
  okProp,
  parseMultistatus,
  propNamesWithStatus,
  responseFor,
  type MultistatusResponse,
} from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);

const PRINCIPAL = '/dav/principals/alice/';
const BOOK = '/dav/addressbooks/alice/contacts/';
const CARD = `${BOOK}ada-lovelace.vcf`;
const CARD_BODY = person('0a6c3e9e-1c44-4c1b-9b0e-6f1ad0a1a001', 'Ada Lovelace', ['EMAIL;TYPE=INTERNET:ada@example.org']);
const UNKNOWN = '{urn:example:test}shoe-size';

let app: TestApp;
let alice: DavClient;
let cardEtag: string;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 65536 });
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
  const reply = await alice.putCard(CARD, CARD_BODY);
  cardEtag = String(reply.headers.etag);
});

afterAll(() => app.close());

async function propfind(path: string, depth: string | undefined, body?: string, headers?: Record<string, string>): Promise<MultistatusResponse[]> {
  const reply = await alice.propfind(path, depth, body, headers);
  expect(reply.status).toBe(207);
  expect(String(reply.headers['content-type'])).toMatch(/^application\/xml/);
  return parseMultistatus(reply.text);
}

async function bookProp(name: string): Promise<MultistatusResponse> {
  const [book] = await propfind(BOOK, '0', propfindBody(name));
  expect(book.href).toBe(BOOK);
  return book;
}

const allpropBody = `<?xml version="1.0"?><d:propfind ${XMLNS}><d:allprop/></d:propfind>`;
const propnameBody = `<?xml version="1.0"?><d:propfind ${XMLNS}><d:propname/></d:propfind>`;

describe('PROPFIND depth', () => {
  test('Depth 0 returns only the book', async () => {
    const responses = await propfind(BOOK, '0', propfindBody(d('resourcetype')));
    expect(responses.map((r) => r.href)).toEqual([BOOK]);
  });

  test('Depth 1 lists the book and its cards', async () => {
    const responses = await propfind(BOOK, '1', propfindBody(d('resourcetype'), d('getetag')));
    expect(responses.map((r) => r.href)).toEqual([BOOK, CARD]);
    expect(okProp(responseFor(responses, CARD), d('getetag'))?.text).toBe(cardEtag);
  });

  test('Depth infinity is rejected', async () => {
    const reply = await alice.propfind(BOOK, 'infinity', propfindBody(d('resourcetype')));
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(d('propfind-finite-depth'));
  });

  test('card at Depth 1 returns only the card', async () => {
    const responses = await propfind(CARD, '1', propfindBody(d('getetag')));
    expect(responses.map((r) => r.href)).toEqual([CARD]);
  });
});

describe('PROPFIND request kinds', () => {
  test('allprop returns live properties', async () => {
    const responses = await propfind(BOOK, '1', allpropBody);
    const book = responseFor(responses, BOOK);
    expect(childNames(okProp(book, d('resourcetype')))).toEqual([d('collection'), card('addressbook')]);
    expect(okProp(book, d('displayname'))?.text).toBe('Contacts');
    const member = responseFor(responses, CARD);
    expect(okProp(member, d('getetag'))?.text).toBe(cardEtag);
    expect(okProp(member, d('getcontenttype'))?.text).toBe('text/vcard; charset=utf-8');
  });

  test('allprop has no 404 propstat', async () => {
    const responses = await propfind(BOOK, '1', allpropBody);
    for (const response of responses) expect(response.propstats.map((p) => p.status)).toEqual([200]);
  });

  test('no body is treated as allprop', async () => {
    const withoutBody = await propfind(BOOK, '0');
    const allprop = await propfind(BOOK, '0', allpropBody);
    expect([...(withoutBody[0].propstats[0].props.keys())].sort()).toEqual([...allprop[0].propstats[0].props.keys()].sort());
    expect(childNames(okProp(withoutBody[0], d('resourcetype')))).toEqual([d('collection'), card('addressbook')]);
  });

  test('no body at Depth 1 lists cards with getetag', async () => {
    const responses = await propfind(BOOK, '1', undefined, { 'Content-Length': '0' });
    expect(responses.map((r) => r.href)).toEqual([BOOK, CARD]);
    expect(okProp(responseFor(responses, CARD), d('getetag'))?.text).toBe(cardEtag);
  });

  test('propname returns names without values', async () => {
    const [book] = await propfind(BOOK, '0', propnameBody);
    const names = propNamesWithStatus(book, 200);
    expect(names).toEqual(expect.arrayContaining([d('resourcetype'), d('displayname'), d('sync-token'), clark(CS, 'getctag')]));
    for (const name of names) {
      const value = okProp(book, name);
      expect({ name, text: value?.text, children: value?.children.length }).toEqual({ name, text: '', children: 0 });
    }
  });

  test('unknown property is in a 404 propstat', async () => {
    const [book] = await propfind(BOOK, '0', propfindBody(d('displayname'), UNKNOWN));
    expect(propNamesWithStatus(book, 200)).toEqual([d('displayname')]);
    expect(propNamesWithStatus(book, 404)).toEqual([UNKNOWN]);
    expect(book.propstats[0].statusLine).toBe('HTTP/1.1 200 OK');
    expect(book.propstats[1].statusLine).toBe('HTTP/1.1 404 Not Found');
  });

  test('return=minimal drops the 404 propstat', async () => {
    const [book] = await propfind(BOOK, '0', propfindBody(d('displayname'), UNKNOWN), { Prefer: 'return=minimal' });
    expect(book.propstats.map((p) => p.status)).toEqual([200]);
    expect(propNamesWithStatus(book, 200)).toEqual([d('displayname')]);
  });

  test('return=minimal keeps a lone 404 propstat', async () => {
    const [book] = await propfind(BOOK, '0', propfindBody(UNKNOWN), { Prefer: 'return=minimal' });
    expect(book.propstats.map((p) => p.status)).toEqual([404]);
    expect(propNamesWithStatus(book, 404)).toEqual([UNKNOWN]);
  });

  test('Brief: t drops the 404 propstat', async () => {
    const [book] = await propfind(BOOK, '0', propfindBody(d('displayname'), UNKNOWN), { Brief: 't' });
    expect(book.propstats.map((p) => p.status)).toEqual([200]);
  });

  test('malformed XML body is rejected', async () => {
    const reply = await alice.propfind(BOOK, '0', '<d:propfind xmlns:d="DAV:"><d:prop>');
    expect(reply.status).toBe(400);
  });
});

describe('book properties', () => {
  test('resourcetype is collection and addressbook', async () => {
    const book = await bookProp(d('resourcetype'));
    expect(childNames(okProp(book, d('resourcetype')))).toEqual([d('collection'), card('addressbook')]);
  });

  test('displayname', async () => {
    const book = await bookProp(d('displayname'));
    expect(okProp(book, d('displayname'))?.text).toBe('Contacts');
  });

  test('getlastmodified is an HTTP date', async () => {
    const book = await bookProp(d('getlastmodified'));
    const text = okProp(book, d('getlastmodified'))?.text ?? '';
    expect(text).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  });

  test('supported-report-set lists the three reports', async () => {
    const book = await bookProp(d('supported-report-set'));
    const supported = okProp(book, d('supported-report-set'))?.children ?? [];
    expect(supported.map((s) => s.name)).toEqual([d('supported-report'), d('supported-report'), d('supported-report')]);
    const reports = supported.flatMap((s) => s.children).flatMap(childNames);
    expect(reports.sort()).toEqual([card('addressbook-multiget'), card('addressbook-query'), d('sync-collection')].sort());
  });

  test('current-user-privilege-set allows writing', async () => {
    const book = await bookProp(d('current-user-privilege-set'));
    const privileges = okProp(book, d('current-user-privilege-set'))?.children ?? [];
    expect(privileges.every((p) => p.name === d('privilege'))).toBe(true);
    expect(privileges.flatMap(childNames)).toEqual(expect.arrayContaining([d('read'), d('write'), d('write-content'), d('bind'), d('unbind')]));
  });

  test('owner is the principal', async () => {
    const book = await bookProp(d('owner'));
    expect(hrefsIn(okProp(book, d('owner')))).toEqual([PRINCIPAL]);
  });

  test('addressbook-description is present', async () => {
    const book = await bookProp(card('addressbook-description'));
    expect(propNamesWithStatus(book, 200)).toEqual([card('addressbook-description')]);
    expect(okProp(book, card('addressbook-description'))?.text).toBe('');
  });

  test('supported-address-data offers 3.0 and 4.0', async () => {
    const book = await bookProp(card('supported-address-data'));
    const types = okProp(book, card('supported-address-data'))?.children ?? [];
    expect(types.every((t) => t.name === card('address-data-type'))).toBe(true);
    expect(types.map((t) => t.attrs)).toEqual(
      expect.arrayContaining([
        { 'content-type': 'text/vcard', version: '3.0' },
        { 'content-type': 'text/vcard', version: '4.0' },
      ]),
    );
  });

  test('max-resource-size is the configured limit', async () => {
    const book = await bookProp(card('max-resource-size'));
    expect(okProp(book, card('max-resource-size'))?.text).toBe('65536');
  });

  test('getctag and sync-token are URIs', async () => {
    const [book] = await propfind(BOOK, '0', propfindBody(clark(CS, 'getctag'), d('sync-token')));
    const ctag = okProp(book, clark(CS, 'getctag'))?.text ?? '';
    const token = okProp(book, d('sync-token'))?.text ?? '';
    expect(token).toMatch(/^[a-z][a-z0-9+.-]*:\S+$/i);
    expect(ctag).not.toBe('');
  });

  test('getctag changes with a card and not otherwise', async () => {
    const read = async () => okProp((await propfind(BOOK, '0', propfindBody(clark(CS, 'getctag'))))[0], clark(CS, 'getctag'))?.text;
    const before = await read();
    expect(await read()).toBe(before);
    await alice.putCard(`${BOOK}charles-babbage.vcf`, person('0a6c3e9e-1c44-4c1b-9b0e-6f1ad0a1a002', 'Charles Babbage'));
    const after = await read();
    expect(after).not.toBe(before);
    await alice.delete(`${BOOK}charles-babbage.vcf`);
    expect(await read()).not.toBe(after);
  });
});

describe('card properties', () => {
  async function cardProps(...names: string[]): Promise<MultistatusResponse> {
    const [response] = await propfind(CARD, '0', propfindBody(...names));
    expect(response.href).toBe(CARD);
    return response;
  }

  test('resourcetype is empty', async () => {
    const response = await cardProps(d('resourcetype'));
    const value = okProp(response, d('resourcetype'));
    expect(value).toBeDefined();
    expect(value?.children).toEqual([]);
  });

  test('getetag equals the PUT ETag', async () => {
    const response = await cardProps(d('getetag'));
    expect(okProp(response, d('getetag'))?.text).toBe(cardEtag);
  });

  test('getcontenttype is text/vcard', async () => {
    const response = await cardProps(d('getcontenttype'));
    expect(okProp(response, d('getcontenttype'))?.text).toBe('text/vcard; charset=utf-8');
  });

  test('getcontentlength is the byte count', async () => {
    const response = await cardProps(d('getcontentlength'));
    expect(okProp(response, d('getcontentlength'))?.text).toBe(String(Buffer.byteLength(CARD_BODY)));
  });

  test('getlastmodified matches Last-Modified', async () => {
    const response = await cardProps(d('getlastmodified'));
    const get = await alice.get(CARD);
    expect(okProp(response, d('getlastmodified'))?.text).toBe(get.headers['last-modified']);
  });

  test('owner and privileges are present', async () => {
    const response = await cardProps(d('owner'), d('current-user-privilege-set'));
    expect(hrefsIn(okProp(response, d('owner')))).toEqual([PRINCIPAL]);
    expect((okProp(response, d('current-user-privilege-set'))?.children ?? []).flatMap(childNames)).toContain(d('write-content'));
  });

  test('collection properties are 404 on a card', async () => {
    const response = await cardProps(d('getetag'), card('supported-address-data'), d('sync-token'));
    expect(propNamesWithStatus(response, 404).sort()).toEqual([card('supported-address-data'), d('sync-token')].sort());
  });

  test('listing getcontenttype is text/vcard', async () => {
    await alice.putCard(`${BOOK}mary-jackson.vcf`, person('0a6c3e9e-1c44-4c1b-9b0e-6f1ad0a1a003', 'Mary Jackson'));
    const responses = await propfind(BOOK, '1', propfindBody(d('getcontenttype')));
    const members = responses.filter((r) => r.href !== BOOK);
    expect(members.length).toBeGreaterThanOrEqual(2);
    for (const member of members) expect(okProp(member, d('getcontenttype'))?.text).toBe('text/vcard; charset=utf-8');
    await alice.delete(`${BOOK}mary-jackson.vcf`);
  });

  test('missing card returns 404', async () => {
    const reply = await alice.propfind(`${BOOK}nobody.vcf`, '0', propfindBody(d('getetag')));
    expect(reply.status).toBe(404);
  });
});

describe('large book', () => {
  let big: TestApp;
  let client: DavClient;
  const COUNT = 2500;

  beforeAll(async () => {
    big = await startTestApp();
    await big.addUser('alice');
    client = new DavClient(big, 'alice');
    await storeCards(big, 'alice', 'contacts', COUNT);
  });

  afterAll(() => big.close());

  test('Depth 1 lists every card once', async () => {
    const reply = await client.propfind(BOOK, '1', propfindBody(d('getetag')));
    expect(reply.status).toBe(207);
    const responses = parseMultistatus(reply.text);
    expect(responses).toHaveLength(COUNT + 1);
    const hrefs = new Set(responses.map((r) => r.href));
    expect(hrefs.size).toBe(COUNT + 1);
    for (let i = 0; i < COUNT; i++) expect(hrefs.has(`${BOOK}card-${i}.vcf`)).toBe(true);
  });

  test('GET exports every card', async () => {
    const reply = await client.get(BOOK);
    expect(reply.status).toBe(200);
    expect(reply.text.match(/^BEGIN:VCARD\r$/gm)).toHaveLength(COUNT);
  });
});
