import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, multigetBody, person, XMLNS } from '../helpers/dav';
import { storeCards } from '../helpers/fixtures';
import { CARDDAV, DAV, clark, errorCondition, okProp, parseMultistatus, responseFor } from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);

const BOOK = '/dav/addressbooks/alice/contacts/';
const ANNA = { name: 'anna maria@home.vcf', body: person('9e3b7a10-0000-4000-8000-000000000001', 'Anna Maria Example') };
const ZOE = { name: 'zoë.vcf', body: person('9e3b7a10-0000-4000-8000-000000000002', 'Zoë Example') };
const PLAIN = { name: 'plain.vcf', body: person('9e3b7a10-0000-4000-8000-000000000003', 'Paul Plain') };
const MARKUP = {
  name: 'markup.vcf',
  body: person('9e3b7a10-0000-4000-8000-000000000004', 'Ελένη & 日本 <Example>', [
    'item1.URL:https://example.com/?a=1&b=2',
    'item1.X-ABLabel:_$!<HomePage>!$_',
    'NOTE:emoji 🎉 and > sign',
  ]),
};

let app: TestApp;
let alice: DavClient;
const etags = new Map<string, string>();

function encoded(name: string): string {
  return BOOK + encodeURIComponent(name);
}

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
  for (const entry of [ANNA, ZOE, PLAIN, MARKUP]) {
    const reply = await alice.putCard(encoded(entry.name), entry.body);
    etags.set(entry.name, String(reply.headers.etag));
  }
});

afterAll(() => app.close());

async function multiget(hrefs: string[], headers: Record<string, string> = {}, props?: string[]) {
  const reply = await alice.report(BOOK, multigetBody(hrefs, props), headers);
  expect(reply.status).toBe(207);
  return parseMultistatus(reply.text);
}

describe('addressbook-multiget', () => {
  test('returns one response per href', async () => {
    const hrefs = [encoded(PLAIN.name), encoded(ANNA.name), encoded(ZOE.name)];
    const responses = await multiget(hrefs);
    expect(responses.map((r) => r.href)).toEqual(hrefs);
  });

  test('returns getetag and address-data', async () => {
    const responses = await multiget([encoded(PLAIN.name)]);
    const response = responses[0];
    expect(response.propstats.map((p) => p.statusLine)).toEqual(['HTTP/1.1 200 OK']);
    expect(okProp(response, d('getetag'))?.text).toBe(etags.get(PLAIN.name));
    expect(okProp(response, card('address-data'))?.text).toBe(PLAIN.body);
  });

  test('address-data with markup and non-ASCII text is the stored card', async () => {
    const hrefs = [encoded(MARKUP.name), encoded(ZOE.name)];
    const responses = await multiget([...hrefs, BOOK + 'Zoë ünencoded.vcf']);
    const stored = await alice.get(encoded(MARKUP.name));
    expect(okProp(responses[0], card('address-data'))?.text).toBe(stored.text);
    expect(okProp(responses[0], card('address-data'))?.text).toBe(MARKUP.body);
    expect(okProp(responses[1], card('address-data'))?.text).toBe(ZOE.body);
    expect(responses[2].href).toBe(BOOK + 'Zoë ünencoded.vcf');
    expect(responses[2].status).toBe(404);
  });

  test('address-data converted to 3.0 keeps non-ASCII text', async () => {
    const reply = await alice.report(
      BOOK,
      `<?xml version="1.0" encoding="utf-8"?><card:addressbook-multiget ${XMLNS}><d:prop><card:address-data content-type="text/vcard" version="3.0"/></d:prop><d:href>${encoded(MARKUP.name)}</d:href></card:addressbook-multiget>`,
    );
    expect(reply.status).toBe(207);
    const text = okProp(parseMultistatus(reply.text)[0], card('address-data'))?.text ?? '';
    expect(text).toContain('VERSION:3.0\r\n');
    expect(text).toContain('FN:Ελένη & 日本 <Example>\r\n');
    expect(text).toContain('_$!<HomePage>!$_');
  });

  test('missing card gets a 404 response', async () => {
    const missing = `${BOOK}nobody.vcf`;
    const responses = await multiget([encoded(PLAIN.name), missing]);
    expect(responses).toHaveLength(2);
    const response = responseFor(responses, missing);
    expect(response.status).toBe(404);
    expect(response.statusLine).toBe('HTTP/1.1 404 Not Found');
    expect(response.propstats).toEqual([]);
    expect(okProp(responseFor(responses, encoded(PLAIN.name)), card('address-data'))?.text).toBe(PLAIN.body);
  });

  test('encoded and raw hrefs match', async () => {
    const raw = BOOK + ANNA.name;
    const responses = await multiget([encoded(ANNA.name), raw, BOOK + ZOE.name]);
    expect(responses).toHaveLength(3);
    expect(okProp(responses[0], card('address-data'))?.text).toBe(ANNA.body);
    expect(okProp(responses[1], card('address-data'))?.text).toBe(ANNA.body);
    expect(okProp(responses[2], card('address-data'))?.text).toBe(ZOE.body);
  });

  test('markup hrefs returned as sent', async () => {
    const name = 'tom & <jerry>.vcf';
    const body = person('9e3b7a10-0000-4000-8000-000000000005', 'Tom & Jerry');
    expect((await alice.putCard(encoded(name), body)).status).toBe(201);
    const hrefs = [encoded(PLAIN.name), BOOK + name, encoded(name), BOOK + PLAIN.name, `${BOOK}nobody & <none>.vcf`];
    const responses = await multiget(hrefs);
    expect(responses.map((r) => r.href)).toEqual(hrefs);
    expect(responses.map((r) => r.status ?? 200)).toEqual([200, 200, 200, 200, 404]);
    expect(okProp(responses[1], card('address-data'))?.text).toBe(body);
    expect(okProp(responses[2], card('address-data'))?.text).toBe(body);
    expect(okProp(responses[3], card('address-data'))?.text).toBe(PLAIN.body);
    expect((await alice.delete(encoded(name))).status).toBe(204);
  });

  test('500 and 501 hrefs match', async () => {
    // Up to 500 hrefs the storage writes the whole body. With one more, the responses are built batch by batch.
    const cycle = [encoded(PLAIN.name), BOOK + MARKUP.name, `${BOOK}nobody.vcf`, `http://127.0.0.1${encoded(ZOE.name)}`, BOOK + ANNA.name];
    const hrefs = Array.from({ length: 500 }, (_, i) => cycle[i % cycle.length]);
    const whole = await alice.report(BOOK, multigetBody(hrefs));
    const batched = await alice.report(BOOK, multigetBody([...hrefs, `${BOOK}last & <one>.vcf`]));
    expect(whole.status).toBe(207);
    expect(batched.status).toBe(207);
    expect(whole.headers['content-length']).toBe(String(Buffer.byteLength(whole.text)));
    expect(batched.headers['transfer-encoding']).toBe('chunked');
    const last = '<d:response><d:href>/dav/addressbooks/alice/contacts/last &amp; &lt;one&gt;.vcf</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>';
    expect(batched.text).toBe(whole.text.replace('</d:multistatus>', `${last}</d:multistatus>`));
  });

  test('oversized body matches smaller bodies', async () => {
    // A body of more than 1,000,000 characters is parsed piece by piece, and its hrefs are kept as text alone.
    const elements = [
      `<d:href>${encoded(PLAIN.name)}</d:href>`,
      `<d:href>\n  ${BOOK}${MARKUP.name}\n</d:href><!-- between -->`,
      `<d:href><![CDATA[${BOOK}nobody & <none>.vcf]]></d:href>`,
      `<d:href>http://127.0.0.1${encoded(ZOE.name)}</d:href>\n`,
      `<d:href>${BOOK}${ANNA.name.replace('@', '&#64;')}</d:href>`,
    ];
    const hrefsXml = Array.from({ length: 15_000 }, (_, i) => elements[i % elements.length]);
    const body = (hrefs: string[]) =>
      `<?xml version="1.0" encoding="utf-8"?><card:addressbook-multiget ${XMLNS}>` +
      `<d:prop><d:getetag/><card:address-data/></d:prop>${hrefs.join('')}</card:addressbook-multiget>`;
    const large = body(hrefsXml);
    expect(large.length).toBeGreaterThan(1_000_000);

    const inner = (text: string) => text.slice(text.indexOf('<d:response>'), text.lastIndexOf('</d:multistatus>'));
    const reply = await alice.report(BOOK, large);
    expect(reply.status).toBe(207);

    let expected = '';
    for (let start = 0; start < hrefsXml.length; start += 2_500) {
      const part = await alice.report(BOOK, body(hrefsXml.slice(start, start + 2_500)));
      expect(part.status).toBe(207);
      expected += inner(part.text);
    }
    expect(inner(reply.text)).toBe(expected);

    const responses = parseMultistatus(reply.text);
    expect(responses).toHaveLength(15_000);
    expect(responses.slice(0, 5).map((r) => [r.href, r.status ?? 200])).toEqual([
      [encoded(PLAIN.name), 200],
      [BOOK + MARKUP.name, 200],
      [`${BOOK}nobody & <none>.vcf`, 404],
      [`http://127.0.0.1${encoded(ZOE.name)}`, 200],
      [BOOK + ANNA.name, 200],
    ]);
    expect(okProp(responses[14_999], card('address-data'))?.text).toBe(ANNA.body);
  });

  test('card without XML form falls back', async () => {
    // Every write stores the XML form, but a row changed outside Cardinal may lack it. The storage then
    // declines to write the body, and the responses are built from the card's text instead.
    const hrefs = [encoded(PLAIN.name), encoded(MARKUP.name), `${BOOK}nobody.vcf`];
    const before = await alice.report(BOOK, multigetBody(hrefs));
    expect(before.headers['content-length']).toBe(String(Buffer.byteLength(before.text)));

    const db = new Database(join(app.dataDir, 'cardinal.sqlite3'));
    const saved = db.prepare('SELECT xml FROM cards WHERE name = ?').pluck().get(MARKUP.name);
    expect(saved).not.toBeNull();
    db.prepare('UPDATE cards SET xml = NULL WHERE name = ?').run(MARKUP.name);
    try {
      const after = await alice.report(BOOK, multigetBody(hrefs));
      expect(after.status).toBe(207);
      expect(after.headers['transfer-encoding']).toBe('chunked');
      expect(after.text).toBe(before.text);
    } finally {
      db.prepare('UPDATE cards SET xml = ? WHERE name = ?').run(saved, MARKUP.name);
      db.close();
    }
  });

  test('lower-case escapes match', async () => {
    const lower = BOOK + encodeURIComponent(ZOE.name).toLowerCase();
    expect(lower).toBe(`${BOOK}zo%c3%ab.vcf`);
    const responses = await multiget([lower]);
    expect(okProp(responses[0], d('getetag'))?.text).toBe(etags.get(ZOE.name));
  });

  test('absolute URLs are accepted', async () => {
    const { port } = app.server.address() as AddressInfo;
    const absolute = `http://127.0.0.1:${port}${encoded(ANNA.name)}`;
    const responses = await multiget([absolute]);
    expect(responses).toHaveLength(1);
    expect(okProp(responses[0], d('getetag'))?.text).toBe(etags.get(ANNA.name));
  });

  test('href outside the book gets 404', async () => {
    const other = '/dav/addressbooks/alice/other/plain.vcf';
    const responses = await multiget([other, '/dav/addressbooks/alice/contacts/', '/etc/passwd']);
    expect(responses.map((r) => r.status)).toEqual([404, 404, 404]);
  });

  test('Depth is ignored', async () => {
    for (const depth of ['0', '1']) {
      const responses = await multiget([encoded(PLAIN.name)], { Depth: depth });
      expect(okProp(responses[0], d('getetag'))?.text).toBe(etags.get(PLAIN.name));
    }
  });

  test('getetag alone returns no address-data', async () => {
    const responses = await multiget([encoded(PLAIN.name)], {}, [d('getetag')]);
    expect([...responses[0].propstats[0].props.keys()]).toEqual([d('getetag')]);
  });

  test('capitalised Content-Type attribute is accepted', async () => {
    const body =
      `<?xml version="1.0"?><card:addressbook-multiget ${XMLNS}><d:prop><d:getetag/>` +
      `<card:address-data Content-Type="text/vcard"/></d:prop><d:href>${encoded(PLAIN.name)}</d:href></card:addressbook-multiget>`;
    const reply = await alice.report(BOOK, body);
    expect(reply.status).toBe(207);
    expect(okProp(parseMultistatus(reply.text)[0], card('address-data'))?.text).toBe(PLAIN.body);
  });

  test('unsupported address-data type is rejected', async () => {
    const body =
      `<?xml version="1.0"?><card:addressbook-multiget ${XMLNS}><d:prop>` +
      `<card:address-data content-type="text/calendar"/></d:prop><d:href>${encoded(PLAIN.name)}</d:href></card:addressbook-multiget>`;
    const reply = await alice.report(BOOK, body);
    expect(reply.status).toBe(403);
    expect(errorCondition(reply.text)).toBe(card('supported-address-data'));
  });

  test('empty multiget returns an empty multistatus', async () => {
    expect(await multiget([])).toEqual([]);
  });
});

describe('large multiget', () => {
  let big: TestApp;
  let client: DavClient;
  const COUNT = 2000;

  beforeAll(async () => {
    big = await startTestApp();
    await big.addUser('alice');
    client = new DavClient(big, 'alice');
    await storeCards(big, 'alice', 'contacts', COUNT);
  });

  afterAll(() => big.close());

  test('2000 hrefs return 2000 responses', async () => {
    const hrefs = Array.from({ length: COUNT }, (_, i) => `${BOOK}card-${i}.vcf`);
    const reply = await client.report(BOOK, multigetBody(hrefs));
    expect(reply.status).toBe(207);
    const responses = parseMultistatus(reply.text);
    expect(responses).toHaveLength(COUNT);
    expect(responses.map((r) => r.href)).toEqual(hrefs);
    const withData = responses.filter((r) => okProp(r, card('address-data'))?.text.startsWith('BEGIN:VCARD'));
    expect(withData).toHaveLength(COUNT);
  });

  test('2000 hrefs with missing ones', async () => {
    const hrefs = Array.from({ length: COUNT }, (_, i) => `${BOOK}card-${i * 2}.vcf`);
    const responses = parseMultistatus((await client.report(BOOK, multigetBody(hrefs, [d('getetag')]))).text);
    expect(responses).toHaveLength(COUNT);
    expect(responses.filter((r) => r.status === 404)).toHaveLength(COUNT / 2);
  });
});
