/**
 * Hostile and broken vCards sent with PUT. Each one is either rejected with
 * 403 and the CardDAV precondition of RFC 6352 section 6.3.2.1, or stored so
 * that GET, PROPFIND Depth 1, multiget, sync-collection and addressbook-query
 * still read the whole book.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { carddav, Client, expectDavError, okProp, parseMultistatus, person, portOf, readWholeBook, vcard, XMLNS, type Reply } from './support';

let app: TestApp;
let small: TestApp;
let client: Client;
let smallClient: Client;
let bookCount = 0;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  client = new Client(portOf(app), app.auth('alice'));
  small = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 65536 });
  await small.addUser('alice');
  smallClient = new Client(portOf(small), small.auth('alice'));
});

afterAll(async () => {
  await app.close();
  await small.close();
});

/** Creates an empty address book for one test, so each test reads only its own cards. */
async function newBook(target: Client = client): Promise<string> {
  bookCount += 1;
  const path = `/dav/addressbooks/alice/book-${bookCount}/`;
  const reply = await target.mkcol(path);
  if (reply.status !== 201) throw new Error(`MKCOL ${path} returned ${reply.status}: ${reply.text}`);
  return path;
}

/** Unfolds a stored card and splits it into content lines at CR LF, LF or CR, as tolerant vCard readers do. */
function contentLines(card: string): string[] {
  return card
    .replace(/\r?\n[ \t]/g, '')
    .split(/\r\n|\n|\r/)
    .filter((line) => line !== '');
}

/** Returns the property name of each line, without group and parameters. */
function propertyNames(card: string): string[] {
  return contentLines(card).map((line) => /^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)[;:]/.exec(line)?.[1]?.toUpperCase() ?? `<not a content line: ${line}>`);
}

/** Checks that a PUT was rejected with valid-address-data or stored the card. Returns the stored card, or undefined after a rejection. */
async function storedOrRejected(reply: Reply, href: string): Promise<string | undefined> {
  if (reply.status === 403) {
    expectDavError(reply, 403, carddav('valid-address-data'));
    expect((await client.get(href)).status).toBe(404);
    return undefined;
  }
  expect({ status: reply.status, body: reply.text }).toEqual({ status: 201, body: expect.any(String) });
  const stored = await client.get(href);
  expect(stored.status).toBe(200);
  return stored.text;
}

describe('PUT of an invalid vCard', () => {
  const cases: [string, string | Buffer, string][] = [
    ['empty body', '', 'valid-address-data'],
    ['plain text', 'hello\r\n', 'valid-address-data'],
    ['missing END', 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:Ada\r\n', 'valid-address-data'],
    ['missing BEGIN', 'VERSION:3.0\r\nUID:x\r\nFN:Ada\r\nEND:VCARD\r\n', 'valid-address-data'],
    ['two cards in one body', person('one') + person('two'), 'valid-address-data'],
    ['vCard 2.1', vcard({ uid: 'x', fn: 'Ada', version: '2.1' }), 'supported-address-data'],
    ['no VERSION', 'BEGIN:VCARD\r\nUID:x\r\nFN:Ada\r\nEND:VCARD\r\n', 'valid-address-data'],
    ['no FN', vcard({ uid: 'x' }), 'valid-address-data'],
    ['two UIDs', vcard({ uid: 'x', fn: 'Ada', lines: ['UID:y'] }), 'valid-address-data'],
    ['line without a colon', vcard({ uid: 'x', fn: 'Ada', lines: ['NOTE'] }), 'valid-address-data'],
    ['Latin-1 bytes', Buffer.from(vcard({ uid: 'x', fn: 'Ren\u00e9' }), 'latin1'), 'valid-address-data'],
    ['UTF-16 body', Buffer.from('\ufeff' + person('x'), 'utf16le'), 'valid-address-data'],
  ];

  test.each(cases)('%s is rejected', async (_name, body, condition) => {
    const href = `${await newBook()}card.vcf`;
    expectDavError(await client.put(href, body), 403, carddav(condition));
    expect((await client.get(href)).status).toBe(404);
  });

  test('unsupported media type is rejected', async () => {
    const href = `${await newBook()}card.vcf`;
    expectDavError(await client.put(href, person('x'), { 'Content-Type': 'application/json' }), 403, carddav('supported-address-data'));
    expect((await client.get(href)).status).toBe(404);
  });

  test('rejected PUT keeps the stored card', async () => {
    const book = await newBook();
    const href = `${book}card.vcf`;
    const original = person('keep');
    expect((await client.put(href, original)).status).toBe(201);
    expectDavError(await client.put(href, 'BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n'), 403, carddav('valid-address-data'));
    expect((await client.get(href)).text).toBe(original);
    expect([...(await readWholeBook(client, book)).keys()]).toEqual([href]);
  });
});

describe('PUT of a card at the size limit', () => {
  function cardOfSize(size: number): string {
    const frame = person('sized', 'Ada Lovelace', ['NOTE:']);
    return frame.replace('NOTE:', 'NOTE:' + 'x'.repeat(size - Buffer.byteLength(frame)));
  }

  test('card at max-resource-size is stored', async () => {
    const book = await newBook(smallClient);
    const reply = await smallClient.put(`${book}card.vcf`, cardOfSize(4096));
    expect(reply.status).toBe(201);
  });

  test('one byte over max-resource-size is rejected', async () => {
    const book = await newBook(smallClient);
    expectDavError(await smallClient.put(`${book}card.vcf`, cardOfSize(4097)), 403, carddav('max-resource-size'));
    expect((await smallClient.get(`${book}card.vcf`)).status).toBe(404);
  });
});

describe('PUT of unusual but readable vCards', () => {
  test('10,000 properties', async () => {
    const book = await newBook();
    const lines = Array.from({ length: 10_000 }, (_, i) => `X-ITEM-${i}:value ${i}`);
    const card = person('many', 'Ada Lovelace', lines);
    expect((await client.put(`${book}many.vcf`, card)).status).toBe(201);
    const cards = await readWholeBook(client, book);
    expect(cards.get(`${book}many.vcf`)?.data).toBe(card);
  });

  test('line of 1 MB', async () => {
    const book = await newBook();
    const card = person('long-line', 'Ada Lovelace', [`NOTE:${'n'.repeat(1_000_000)}`]);
    expect((await client.put(`${book}long.vcf`, card)).status).toBe(201);
    const cards = await readWholeBook(client, book);
    expect(cards.get(`${book}long.vcf`)?.data).toBe(card);
  });

  test('UID of 100,000 characters', async () => {
    const book = await newBook();
    const uid = 'u'.repeat(100_000);
    expect((await client.put(`${book}one.vcf`, person(uid))).status).toBe(201);
    const conflict = await client.put(`${book}two.vcf`, person(uid, 'Other Person'));
    expectDavError(conflict, 409, carddav('no-uid-conflict'));
    expect([...(await readWholeBook(client, book)).keys()]).toEqual([`${book}one.vcf`]);
  });

  test('UIDs with markup, escapes and Unicode', async () => {
    const book = await newBook();
    const uids = ['<uid>&amp;"\'', 'a\\,b\\;c', 'urn:uuid:caf\u00e9-\u{1f600}', ']]>', 'x'.repeat(10) + ' '.repeat(3) + 'y'];
    for (const [i, uid] of uids.entries()) {
      expect({ uid, status: (await client.put(`${book}${i}.vcf`, person(uid))).status }).toEqual({ uid, status: 201 });
    }
    const cards = await readWholeBook(client, book);
    expect(cards.size).toBe(uids.length);
    for (const [i, uid] of uids.entries()) expect(cards.get(`${book}${i}.vcf`)?.data).toBe(person(uid));
  });

  test('base64 PHOTO that is not base64', async () => {
    const book = await newBook();
    const card = person('photo', 'Ada Lovelace', ['PHOTO;ENCODING=b;TYPE=JPEG:!!!not base64***']);
    expect((await client.put(`${book}photo.vcf`, card)).status).toBe(201);
    expect((await readWholeBook(client, book)).get(`${book}photo.vcf`)?.data).toBe(card);
  });

  test('NUL and control bytes are not stored', async () => {
    const book = await newBook();
    const card = person('nul', 'Ada\u0000 Love\u0001lace', ['NOTE:bell\u0007 form\u000cfeed']);
    const reply = await client.put(`${book}nul.vcf`, card);
    expect(reply.status).toBe(201);
    const stored = (await readWholeBook(client, book)).get(`${book}nul.vcf`)?.data ?? '';
    expect(stored).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
    expect(stored).toContain('FN:Ada Lovelace');
  });

  test('byte order mark and LF line ends', async () => {
    const book = await newBook();
    const card = '\ufeff' + person('lf').replace(/\r\n/g, '\n');
    expect((await client.put(`${book}lf.vcf`, card)).status).toBe(201);
    expect((await readWholeBook(client, book)).size).toBe(1);
  });

  test('nested BEGIN:VCARD', async () => {
    const book = await newBook();
    const href = `${book}nested.vcf`;
    const card = vcard({ uid: 'outer', fn: 'Outer', lines: ['BEGIN:VCARD', 'FN:Inner', 'END:VCARD'] });
    await storedOrRejected(await client.put(href, card), href);
    await readWholeBook(client, book);
  });

  test('UTF-8 sequence split by folding', async () => {
    const book = await newBook();
    const bytes = Buffer.from(person('fold', 'Ren\u00e9 Descartes'));
    const at = bytes.indexOf(0xc3);
    const folded = Buffer.concat([bytes.subarray(0, at + 1), Buffer.from('\r\n '), bytes.subarray(at + 1)]);
    expect((await client.put(`${book}fold.vcf`, folded)).status).toBe(201);
    const stored = (await readWholeBook(client, book)).get(`${book}fold.vcf`)?.data ?? '';
    expect(stored).toContain('FN:Ren\u00e9 Descartes');
  });
});

describe('PUT of quoted-printable vCards', () => {
  test('soft line breaks are joined', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-soft', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE:line one=0D=0A=', 'line two']);
    expect((await client.put(href, card)).status).toBe(201);
    const stored = (await readWholeBook(client, book)).get(href)?.data ?? '';
    expect(contentLines(stored)).toContain('NOTE:line one\\nline two');
  });

  test('quoted parameter with a space', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-space', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE;X-LABEL="a;b c":hello']);
    const stored = await storedOrRejected(await client.put(href, card), href);
    if (stored !== undefined) expect(contentLines(stored)).toContain('NOTE;X-LABEL="a;b c":hello');
    await readWholeBook(client, book);
  });

  test('quoted parameter with a colon', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-colon', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE;X-LABEL="a:b":hello']);
    const stored = await storedOrRejected(await client.put(href, card), href);
    if (stored !== undefined) expect(contentLines(stored)).toContain('NOTE;X-LABEL="a:b":hello');
  });

  test('caret-escaped newline in a parameter', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-caret', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE;X-LABEL=x^nB:v']);
    const stored = await storedOrRejected(await client.put(href, card), href);
    if (stored !== undefined) expect(propertyNames(stored)).toEqual(['BEGIN', 'VERSION', 'UID', 'FN', 'N', 'NOTE', 'END']);
  });

  test('encoded carriage return', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-cr', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE:a=0Db']);
    const stored = await storedOrRejected(await client.put(href, card), href);
    if (stored !== undefined) expect(propertyNames(stored)).toEqual(['BEGIN', 'VERSION', 'UID', 'FN', 'N', 'NOTE', 'END']);
  });

  test('encoded NUL keeps listings valid XML', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-nul', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE:a=00b']);
    const stored = await storedOrRejected(await client.put(href, card), href);
    await readWholeBook(client, book);
    if (stored !== undefined) expect(stored).not.toContain('\u0000');
  });

  test('encoded bytes that are not UTF-8', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = person('qp-bytes', 'Ada Lovelace', ['NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:caf=E9']);
    const stored = await storedOrRejected(await client.put(href, card), href);
    if (stored !== undefined) expect(stored).not.toContain('\ufffd');
  });

  test('FN that decodes to blank is rejected', async () => {
    const book = await newBook();
    const href = `${book}qp.vcf`;
    const card = vcard({ uid: 'qp-fn', lines: ['FN;ENCODING=QUOTED-PRINTABLE:=20'] });
    expectDavError(await client.put(href, card), 403, carddav('valid-address-data'));
    expect((await client.get(href)).status).toBe(404);
  });
});

describe('address-data with novalue', () => {
  test('quoted colon in a parameter', async () => {
    const book = await newBook();
    const href = `${book}tel.vcf`;
    expect((await client.put(href, person('tel', 'Ada Lovelace', ['TEL;X-LABEL="a:b":+1 555 0100']))).status).toBe(201);
    const body =
      `<card:addressbook-multiget ${XMLNS}><d:prop><card:address-data><card:prop name="TEL" novalue="yes"/></card:address-data></d:prop>` +
      `<d:href>${href}</d:href></card:addressbook-multiget>`;
    const reply = await client.report(book, body);
    expect(reply.status).toBe(207);
    const data = okProp(parseMultistatus(reply.text).responses[0], carddav('address-data'))?.text ?? '';
    expect(contentLines(data)).toContain('TEL;X-LABEL="a:b":');
  });
});
