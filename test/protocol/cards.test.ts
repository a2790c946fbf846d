import type { CardInput } from '../../storage/types';
import { computeEtag, prepareCard } from '../../vcard/pipeline';
import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, multigetBody, person, propfindBody, sendChunked, vcard } from '../helpers/dav';
import {
  CARDDAV,
  DAV,
  clark,
  errorCondition,
  hrefsIn,
  okProp,
  parseDavError,
  parseMultistatus,
  parseMultistatusDocument,
  responseFor,
} from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);

const BOOK = '/dav/addressbooks/alice/contacts/';
const STRONG_ETAG = /^"[^"]+"$/;

let app: TestApp;
let alice: DavClient;
let serial = 0;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
});

afterAll(() => app.close());

/** Returns a new card path and UID on each call, so tests never share cards. */
function next(): { path: string; uid: string } {
  serial++;
  return { path: `${BOOK}person-${serial}.vcf`, uid: `5b1e4c2a-0000-4000-8000-${String(serial).padStart(12, '0')}` };
}

async function getEtagProp(path: string): Promise<string | undefined> {
  const reply = await alice.propfind(path, '0', propfindBody(d('getetag')));
  expect(reply.status).toBe(207);
  return okProp(parseMultistatus(reply.text)[0], d('getetag'))?.text;
}

function expectRejected(reply: { status: number; text: string }, status: number, condition: string): void {
  expect(reply.status).toBe(status);
  expect(errorCondition(reply.text)).toBe(condition);
}

describe('PUT and ETags', () => {
  test('create returns 201 with a strong ETag', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, person(uid, 'Emmy Noether'));
    expect(reply.status).toBe(201);
    expect(String(reply.headers.etag)).toMatch(STRONG_ETAG);
  });

  test('ETag is the same in GET and getetag', async () => {
    const { path, uid } = next();
    const put = await alice.put(path, person(uid, 'Sophie Germain'));
    const get = await alice.get(path);
    expect(get.headers.etag).toBe(put.headers.etag);
    expect(await getEtagProp(path)).toBe(put.headers.etag);
  });

  test('ETag is the same in every report', async () => {
    const { path, uid } = next();
    const put = await alice.put(path, person(uid, 'Mary Somerville', ['EMAIL:mary.somerville@example.org']));
    const etag = put.headers.etag;

    const multiget = await alice.report(BOOK, multigetBody([path]));
    expect(okProp(responseFor(parseMultistatus(multiget.text), path), d('getetag'))?.text).toBe(etag);

    const sync = await alice.sync(BOOK, '');
    expect(okProp(responseFor(sync.responses, path), d('getetag'))?.text).toBe(etag);

    const query = await alice.report(
      BOOK,
      `<?xml version="1.0"?><card:addressbook-query xmlns:d="DAV:" xmlns:card="${CARDDAV}"><d:prop><d:getetag/></d:prop>` +
        '<card:filter><card:prop-filter name="EMAIL"><card:text-match match-type="equals">mary.somerville@example.org</card:text-match></card:prop-filter></card:filter>' +
        '</card:addressbook-query>',
    );
    expect(query.status).toBe(207);
    expect(okProp(responseFor(parseMultistatus(query.text), path), d('getetag'))?.text).toBe(etag);
  });

  test('replace returns 204 with a new ETag', async () => {
    const { path, uid } = next();
    const first = await alice.put(path, person(uid, 'Hedy Lamarr'));
    const second = await alice.put(path, person(uid, 'Hedy K. Lamarr'));
    expect(second.status).toBe(204);
    expect(String(second.headers.etag)).toMatch(STRONG_ETAG);
    expect(second.headers.etag).not.toBe(first.headers.etag);
    expect(await getEtagProp(path)).toBe(second.headers.etag);
  });

  test('If-Match with the current ETag replaces', async () => {
    const { path, uid } = next();
    const first = await alice.put(path, person(uid, 'Lise Meitner'));
    const reply = await alice.put(path, person(uid, 'Lise M. Meitner'), { 'If-Match': String(first.headers.etag) });
    expect(reply.status).toBe(204);
  });

  test('If-Match with a stale ETag returns 412', async () => {
    const { path, uid } = next();
    const first = await alice.put(path, person(uid, 'Chien-Shiung Wu'));
    const second = await alice.put(path, person(uid, 'Chien-Shiung B. Wu'));
    const reply = await alice.put(path, person(uid, 'Chien-Shiung C. Wu'), { 'If-Match': String(first.headers.etag) });
    expect(reply.status).toBe(412);
    expect(await getEtagProp(path)).toBe(second.headers.etag);
  });

  test('unquoted If-Match returns 412', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Barbara McClintock');
    const first = await alice.put(path, body);
    const unquoted = String(first.headers.etag).replace(/"/g, '');
    const reply = await alice.put(path, person(uid, 'Barbara B. McClintock'), { 'If-Match': unquoted });
    expect(reply.status).toBe(412);
    expect((await alice.get(path)).text).toBe(body);
  });

  test('If-Match on a missing card returns 412', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, person(uid, 'Rachel Carson'), { 'If-Match': '"0123456789abcdef"' });
    expect(reply.status).toBe(412);
    expect((await alice.get(path)).status).toBe(404);
  });

  test('If-Match: * on a missing card returns 412', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, person(uid, 'Dorothy Hodgkin'), { 'If-Match': '*' });
    expect(reply.status).toBe(412);
  });

  test('If-None-Match: * creates a new card', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, person(uid, 'Jocelyn Bell'), { 'If-None-Match': '*' });
    expect(reply.status).toBe(201);
  });

  test('If-None-Match: * on an existing card returns 412', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Katherine Johnson');
    await alice.putCard(path, body);
    const reply = await alice.put(path, person(uid, 'Katherine G. Johnson'), { 'If-None-Match': '*' });
    expect(reply.status).toBe(412);
    expect((await alice.get(path)).text).toBe(body);
  });

  test('PUT into a missing book returns 409', async () => {
    const reply = await alice.put('/dav/addressbooks/alice/no-such-book/x.vcf', person(next().uid, 'Annie Easley'));
    expect(reply.status).toBe(409);
  });

  test('PUT on a book URL is rejected', async () => {
    const reply = await alice.put(BOOK, person(next().uid, 'Annie Jump Cannon'));
    expect(reply.status).toBe(405);
  });
});

describe('PUT validation', () => {
  test.each([
    ['plain text', 'Call Ada on Tuesday\r\n'],
    ['no FN', vcard({ uid: '6c000000-0000-4000-8000-000000000001', lines: ['N:Example;Nobody;;;'] })],
    ['empty FN', vcard({ uid: '6c000000-0000-4000-8000-000000000002', fn: '', lines: ['N:;;;;'] })],
    ['no VERSION', 'BEGIN:VCARD\r\nUID:6c000000-0000-4000-8000-000000000003\r\nFN:Ida Example\r\nEND:VCARD\r\n'],
    ['no END', 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:6c000000-0000-4000-8000-000000000004\r\nFN:Ida Example\r\n'],
    ['two UIDs', vcard({ uid: '6c000000-0000-4000-8000-000000000005', fn: 'Ida Example', lines: ['UID:another'] })],
    ['two cards', person('6c000000-0000-4000-8000-000000000006', 'Ida Example') + person('6c000000-0000-4000-8000-000000000007', 'Ola Example')],
    ['invalid UTF-8', Buffer.concat([Buffer.from('BEGIN:VCARD\r\nVERSION:3.0\r\nUID:6c000000-0000-4000-8000-000000000008\r\nFN:Ida '), Buffer.from([0xc3, 0x28]), Buffer.from('\r\nEND:VCARD\r\n')])],
    ['a line without colon', vcard({ uid: '6c000000-0000-4000-8000-000000000009', fn: 'Ida Example', lines: ['NOTE'] })],
  ])('%s is rejected as invalid', async (_, body) => {
    const { path } = next();
    const reply = await alice.put(path, body);
    expectRejected(reply, 403, card('valid-address-data'));
    expect((await alice.get(path)).status).toBe(404);
  });

  test('VERSION:2.1 is unsupported', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, vcard({ version: '2.1', uid, fn: 'Frank Example', lines: ['N:Example;Frank'] }));
    expectRejected(reply, 403, card('supported-address-data'));
  });

  test.each(['application/vcard', 'text/calendar', 'application/json'])('media type %s is unsupported', async (type) => {
    const { path, uid } = next();
    const reply = await alice.put(path, person(uid, 'Oscar Example'), { 'Content-Type': type });
    expectRejected(reply, 403, card('supported-address-data'));
    expect((await alice.get(path)).status).toBe(404);
  });

  test.each(['text/vcard', 'text/vcard; charset="UTF-8"', 'TEXT/VCARD;CHARSET=utf-8', 'text/vcard;version=4.0', 'text/x-vcard'])(
    'media type %s is accepted',
    async (type) => {
      const { path, uid } = next();
      const reply = await alice.put(path, person(uid, 'Oscar Example'), { 'Content-Type': type });
      expect(reply.status).toBe(201);
    },
  );

  test('vCard 4.0 is accepted', async () => {
    const { path, uid } = next();
    const body = vcard({ version: '4.0', uid: `urn:uuid:${uid}`, fn: 'Vera Example', lines: ['KIND:individual'] });
    const reply = await alice.put(path, body, { 'Content-Type': 'text/vcard;version=4.0' });
    expect(reply.status).toBe(201);
    expect((await alice.get(path)).text).toBe(body);
  });

  test('second card with the same UID is a conflict', async () => {
    const first = next();
    const second = next();
    await alice.putCard(first.path, person(first.uid, 'Alan Turing'));
    const reply = await alice.put(second.path, person(first.uid, 'Alan M. Turing'));
    expect(reply.status).toBe(409);
    const error = parseDavError(reply.text);
    expect(error.condition).toBe(card('no-uid-conflict'));
    expect(hrefsIn(error.element)).toEqual([first.path]);
    expect((await alice.get(second.path)).status).toBe(404);
  });

  test('same UID on the same resource is no conflict', async () => {
    const { path, uid } = next();
    await alice.putCard(path, person(uid, 'Joan Clarke'));
    const reply = await alice.put(path, person(uid, 'Joan E. Clarke'));
    expect(reply.status).toBe(204);
  });
});

describe('repaired cards', () => {
  test('missing UID is added', async () => {
    const { path } = next();
    const body = vcard({ fn: 'Dave Example', lines: ['N:Example;Dave;;;', 'EMAIL;TYPE=INTERNET:dave@example.org'] });
    const reply = await alice.put(path, body, { 'If-None-Match': '*' });
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toBeUndefined();

    const first = await alice.get(path);
    const uid = /^UID:(.+)$/m.exec(first.text)?.[1];
    expect(uid).toMatch(/\S/);
    const second = await alice.get(path);
    expect(second.text).toBe(first.text);
    expect(second.headers.etag).toBe(first.headers.etag);
    expect(await getEtagProp(path)).toBe(first.headers.etag);
  });

  test('added UID keeps the other lines', async () => {
    const { path } = next();
    await alice.putCard(path, vcard({ fn: 'Erin Example', lines: ['N:Example;Erin;;;', 'TEL;TYPE=CELL:+1 555 0100'] }));
    const lines = (await alice.get(path)).text.split('\r\n');
    expect(lines).toEqual(expect.arrayContaining(['BEGIN:VCARD', 'VERSION:3.0', 'FN:Erin Example', 'N:Example;Erin;;;', 'TEL;TYPE=CELL:+1 555 0100', 'END:VCARD']));
  });

  test('byte-order mark is stripped', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Grace Example');
    const reply = await alice.put(path, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]));
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toBeUndefined();
    const get = await alice.get(path);
    expect(get.body.subarray(0, 11).toString('latin1')).toBe('BEGIN:VCARD');
    expect(get.text).toBe(body);
  });

  test('control characters are removed', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, person(uid, 'Judy Example', ['NOTE:pager code\u000742\u000bend']));
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toBeUndefined();
    const get = await alice.get(path);
    expect(get.text).toContain('NOTE:pager code42end\r\n');
    expect(get.text).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
  });
});

describe('card content', () => {
  test('GET returns the exact bytes', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Zoë Ämmälä', [
      'ORG:Example Labs;Research',
      'NOTE:Line one\\nline two with a very long text that needs folding because it is longer than',
      '  seventy-five octets',
      'X-CUSTOM;X-PARAM="a:b":value',
    ]);
    await alice.putCard(path, body);
    const get = await alice.get(path);
    expect(get.status).toBe(200);
    expect(get.body.equals(Buffer.from(body))).toBe(true);
    expect(get.headers['content-type']).toBe('text/vcard; charset=utf-8');
  });

  test('LF line ends are kept', async () => {
    const { path, uid } = next();
    const body = `BEGIN:VCARD\nVERSION:3.0\nUID:${uid}\nFN:Lena Example\nN:Example;Lena;;;\nEND:VCARD\n`;
    const reply = await alice.put(path, body);
    expect(reply.status).toBe(201);
    expect((await alice.get(path)).text).toBe(body);
  });

  test('group prefixes are kept', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Carol Example', [
      'PRODID:-//Example Handsets//Phonebook 1.0//EN',
      'item1.EMAIL;type=INTERNET;type=pref:carol@example.org',
      'item1.X-ABLabel:Private',
      'ITEM2.ADR;TYPE=HOME:;;1 Example Road;Springfield;;12345;Exampleland',
      'ITEM2.X-ABLABEL:Home',
    ]);
    const reply = await alice.put(path, body);
    expect(reply.status).toBe(201);
    expect(reply.headers.etag).toBeDefined();
    expect((await alice.get(path)).text).toBe(body);

    const multiget = await alice.report(BOOK, multigetBody([path]));
    expect(okProp(responseFor(parseMultistatus(multiget.text), path), card('address-data'))?.text).toBe(body);
  });

  test('raw commas are kept', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Heidi Example', ['ORG:Example Widgets, Ltd.', 'NOTE:Met at the fair, booth 12, ask about samples']);
    const reply = await alice.put(path, body);
    expect(reply.status).toBe(201);
    expect((await alice.get(path)).text).toBe(body);
    const multiget = await alice.report(BOOK, multigetBody([path]));
    expect(okProp(responseFor(parseMultistatus(multiget.text), path), card('address-data'))?.text).toBe(body);
  });

  test('non-ASCII names are kept in address-data', async () => {
    const { path, uid } = next();
    const body = vcard({ version: '4.0', uid, fn: '张 示例', lines: ['N:示例;张;;;', 'NOTE:Ünïcödé & <markup>'] });
    await alice.putCard(path, body);
    const multiget = await alice.report(BOOK, multigetBody([path]));
    expect(okProp(responseFor(parseMultistatus(multiget.text), path), card('address-data'))?.text).toBe(body);
  });

  test('HEAD returns headers without a body', async () => {
    const { path, uid } = next();
    const body = person(uid, 'Ruth Example');
    const put = await alice.put(path, body);
    const head = await alice.head(path);
    expect(head.status).toBe(200);
    expect(head.headers.etag).toBe(put.headers.etag);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(head.headers['content-type']).toBe('text/vcard; charset=utf-8');
    expect(head.body.length).toBe(0);
  });

  test('GET with the current If-None-Match returns 304', async () => {
    const { path, uid } = next();
    const put = await alice.put(path, person(uid, 'Nettie Example'));
    const get = await alice.get(path, { 'If-None-Match': String(put.headers.etag) });
    expect(get.status).toBe(304);
  });

  test('GET with the current If-Match returns 200', async () => {
    const { path, uid } = next();
    const put = await alice.put(path, person(uid, 'Liam Example'));
    expect((await alice.get(path, { 'If-Match': String(put.headers.etag) })).status).toBe(200);
  });

  test('GET of a missing card returns 404', async () => {
    expect((await alice.get(`${BOOK}nobody-here.vcf`)).status).toBe(404);
  });

  test('card names with reserved characters work', async () => {
    const uid = next().uid;
    const path = `${BOOK}${encodeURIComponent(`${uid}:a=b+c,d;e`)}.vcf`;
    const body = person(uid, 'Uma Example');
    expect((await alice.put(path, body)).status).toBe(201);
    expect((await alice.get(path)).text).toBe(body);
    const listing = await alice.propfind(BOOK, '1', propfindBody(d('getetag')));
    const names = parseMultistatus(listing.text).map((r) => decodeURIComponent(r.href));
    expect(names).toContain(decodeURIComponent(path));
  });
});

describe('ETag sequence', () => {
  test('follows create, read and update', async () => {
    const { path, uid } = next();
    const created = await alice.put(path, person(uid, 'Liam Example'), { 'If-None-Match': '*' });
    expect(created.status).toBe(201);
    const etag = String(created.headers.etag);
    expect(etag).toMatch(STRONG_ETAG);

    expect((await alice.get(path)).headers.etag).toBe(etag);
    expect(await getEtagProp(path)).toBe(etag);
    expect((await alice.get(path, { 'If-Match': etag })).status).toBe(200);

    const updated = await alice.put(path, person(uid, 'Liam B. Example'), { 'If-Match': etag });
    expect(updated.status).toBe(204);
    expect(String(updated.headers.etag)).toMatch(STRONG_ETAG);
    expect(updated.headers.etag).not.toBe(etag);

    expect((await alice.put(path, person(uid, 'Liam C. Example'), { 'If-Match': etag })).status).toBe(412);
    expect((await alice.put(path, person(uid, 'Liam D. Example'), { 'If-Match': etag.replace(/"/g, '') })).status).toBe(412);
    expect((await alice.get(path)).text).toBe(person(uid, 'Liam B. Example'));
  });

  test('create, replace and re-create statuses', async () => {
    const { path, uid } = next();
    const created = await alice.put(path, person(uid, 'Nina Example'), { 'If-None-Match': '*' });
    expect(created.status).toBe(201);
    const replaced = await alice.put(path, person(uid, 'Nina Q. Example'), { 'If-Match': String(created.headers.etag) });
    expect(replaced.status).toBe(204);
    expect((await alice.put(path, person(uid, 'Nina R. Example'), { 'If-None-Match': '*' })).status).toBe(412);
  });
});

describe('DELETE of a card', () => {
  test('removes the card', async () => {
    const { path, uid } = next();
    await alice.putCard(path, person(uid, 'Vera Example'));
    expect((await alice.delete(path)).status).toBe(204);
    expect((await alice.get(path)).status).toBe(404);
  });

  test('with the current If-Match removes the card', async () => {
    const { path, uid } = next();
    const put = await alice.put(path, person(uid, 'Wanda Example'));
    expect((await alice.delete(path, { 'If-Match': String(put.headers.etag) })).status).toBe(204);
    expect((await alice.get(path)).status).toBe(404);
  });

  test('with a stale If-Match returns 412', async () => {
    const { path, uid } = next();
    const first = await alice.put(path, person(uid, 'Xena Example'));
    await alice.put(path, person(uid, 'Xena B. Example'));
    expect((await alice.delete(path, { 'If-Match': String(first.headers.etag) })).status).toBe(412);
    expect((await alice.get(path)).status).toBe(200);
  });

  test('of a missing card returns 404', async () => {
    expect((await alice.delete(`${BOOK}never-existed.vcf`)).status).toBe(404);
  });

  test('frees the UID', async () => {
    const { path, uid } = next();
    await alice.putCard(path, person(uid, 'Yara Example'));
    await alice.delete(path);
    expect((await alice.put(next().path, person(uid, 'Yara Example'))).status).toBe(201);
  });
});

describe('stored cards that fail validation', () => {
  /** Returns the query index entries the server keeps for a valid card. */
  function indexEntries(body: string): CardInput['properties'] {
    const prepared = prepareCard(Buffer.from(body));
    if (!prepared.ok) throw new Error(prepared.message);
    return prepared.properties;
  }

  /** Stores bytes without the PUT checks, as a card written by an older version or another tool would sit in storage. */
  async function storeRaw(name: string, data: string, properties: CardInput['properties']): Promise<void> {
    const user = await app.storage.getUser('alice');
    const book = await app.storage.getBook(user!.id, 'contacts');
    const bytes = Buffer.from(data);
    const result = await app.storage.putCard(book!.id, { name, uid: `raw-${name}`, etag: computeEtag(bytes), data: bytes, properties }, {});
    expect(result.kind).toBe('created');
  }

  test('card without FN is rejected on PUT', async () => {
    const { path, uid } = next();
    const reply = await alice.put(path, vcard({ uid, lines: ['N:;;;;', 'TEL;TYPE=CELL:+1 555 0105'] }));
    expectRejected(reply, 403, card('valid-address-data'));
  });

  test('stored card without FN leaves the book readable', async () => {
    const valid = [next(), next()];
    for (const [i, entry] of valid.entries()) await alice.putCard(entry.path, person(entry.uid, `Valid Person${i}`));
    const lines = ['N:;;;;', 'TEL;TYPE=CELL:+1 555 0105'];
    const withFn = vcard({ uid: 'raw-no-fn', fn: 'Placeholder', lines });
    await storeRaw('no-fn.vcf', vcard({ uid: 'raw-no-fn', lines }), indexEntries(withFn).filter((p) => p.name !== 'FN'));

    const listing = await alice.propfind(BOOK, '1', propfindBody(d('getetag')));
    expect(listing.status).toBe(207);
    const responses = parseMultistatus(listing.text);
    for (const entry of valid) expect(okProp(responseFor(responses, entry.path), d('getetag'))?.text).toMatch(STRONG_ETAG);
    expect(responses.map((r) => r.href)).toContain(`${BOOK}no-fn.vcf`);

    const sync = await alice.sync(BOOK, '', { props: [d('getetag'), card('address-data')] });
    for (const entry of valid) expect(okProp(responseFor(sync.responses, entry.path), d('getetag'))?.text).toMatch(STRONG_ETAG);

    const multiget = await alice.report(BOOK, multigetBody([valid[0].path, `${BOOK}no-fn.vcf`, valid[1].path]));
    expect(multiget.status).toBe(207);
    expect(parseMultistatus(multiget.text)).toHaveLength(3);

    const query = await alice.report(
      BOOK,
      `<?xml version="1.0"?><card:addressbook-query xmlns:d="DAV:" xmlns:card="${CARDDAV}"><d:prop><d:getetag/></d:prop>` +
        '<card:filter><card:prop-filter name="TEL"/></card:filter></card:addressbook-query>',
    );
    expect(query.status).toBe(207);
    expect(parseMultistatus(query.text).map((r) => r.href)).toContain(`${BOOK}no-fn.vcf`);

    const exported = await alice.get(BOOK);
    expect(exported.status).toBe(200);
    for (const entry of valid) expect(exported.text).toContain(`UID:${entry.uid}\r\n`);
  });

  test('stored control characters keep multistatus well-formed', async () => {
    const normal = [next(), next()];
    for (const [i, entry] of normal.entries()) await alice.putCard(entry.path, person(entry.uid, `Normal Person${i}`));
    await storeRaw(
      'control.vcf',
      person('raw-control', 'Judy Example', ['NOTE:pager code\u000742\u000bend\u0000']),
      indexEntries(person('raw-control', 'Judy Example', ['NOTE:pager code42end'])),
    );

    const hrefs = [normal[0].path, `${BOOK}control.vcf`, normal[1].path];
    const multiget = await alice.report(BOOK, multigetBody(hrefs));
    expect(multiget.status).toBe(207);
    const responses = parseMultistatus(multiget.text);
    expect(responses.map((r) => r.href)).toEqual(hrefs);
    for (const entry of normal) expect(okProp(responseFor(responses, entry.path), card('address-data'))?.text).toContain('BEGIN:VCARD');

    const sync = await alice.sync(BOOK, '', { props: [d('getetag'), card('address-data')] });
    expect(sync.responses.map((r) => r.href)).toEqual(expect.arrayContaining(hrefs));
  });

  test('repaired control characters keep multistatus well-formed', async () => {
    const judy = next();
    const others = [next(), next()];
    await alice.putCard(judy.path, person(judy.uid, 'Judy Example', ['NOTE:pager code\u000742\u000bend']));
    for (const [i, entry] of others.entries()) await alice.putCard(entry.path, person(entry.uid, `Other Person${i}`));
    const multiget = await alice.report(BOOK, multigetBody([judy.path, ...others.map((o) => o.path)]));
    const document = parseMultistatusDocument(multiget.text);
    expect(document.responses).toHaveLength(3);
    for (const response of document.responses) expect(okProp(response, card('address-data'))?.text).toMatch(/^BEGIN:VCARD\r\n/);
  });
});

describe('max-resource-size', () => {
  let small: TestApp;
  let client: DavClient;
  const LIMIT = 4096;

  beforeAll(async () => {
    small = await startTestApp({ maxResourceSize: LIMIT });
    await small.addUser('alice');
    client = new DavClient(small, 'alice');
  });

  afterAll(() => small.close());

  /** Builds a valid card of exactly `size` bytes. */
  function cardOfSize(uid: string, size: number): string {
    const base = person(uid, 'Padded Person', ['NOTE:']);
    const padding = size - Buffer.byteLength(base);
    return base.replace('NOTE:', `NOTE:${'x'.repeat(padding)}`);
  }

  test('is advertised', async () => {
    const reply = await client.propfind(BOOK, '0', propfindBody(card('max-resource-size')));
    expect(okProp(parseMultistatus(reply.text)[0], card('max-resource-size'))?.text).toBe(String(LIMIT));
  });

  test('card at the limit is accepted', async () => {
    const body = cardOfSize('8d000000-0000-4000-8000-000000000001', LIMIT);
    expect(Buffer.byteLength(body)).toBe(LIMIT);
    expect((await client.put(`${BOOK}at-limit.vcf`, body)).status).toBe(201);
  });

  test('larger card with Content-Length is rejected', async () => {
    const body = cardOfSize('8d000000-0000-4000-8000-000000000002', LIMIT + 1);
    const reply = await client.put(`${BOOK}too-large.vcf`, body);
    expectRejected(reply, 403, card('max-resource-size'));
    expect((await client.get(`${BOOK}too-large.vcf`)).status).toBe(404);
  });

  test('larger chunked card is rejected', async () => {
    const body = Buffer.from(cardOfSize('8d000000-0000-4000-8000-000000000003', LIMIT * 3));
    const chunks = [body.subarray(0, 1000), body.subarray(1000, 5000), body.subarray(5000)];
    const reply = await sendChunked(
      small,
      'PUT',
      `${BOOK}chunked-large.vcf`,
      { Authorization: small.auth('alice'), 'Content-Type': 'text/vcard', 'Transfer-Encoding': 'chunked' },
      chunks,
    );
    expectRejected(reply, 403, card('max-resource-size'));
    expect((await client.get(`${BOOK}chunked-large.vcf`)).status).toBe(404);
  });

  test('small chunked card is accepted', async () => {
    const body = Buffer.from(person('8d000000-0000-4000-8000-000000000004', 'Chunky Example'));
    const reply = await sendChunked(
      small,
      'PUT',
      `${BOOK}chunked-small.vcf`,
      { Authorization: small.auth('alice'), 'Content-Type': 'text/vcard', 'Transfer-Encoding': 'chunked' },
      [body.subarray(0, 20), body.subarray(20)],
    );
    expect(reply.status).toBe(201);
    expect((await client.get(`${BOOK}chunked-small.vcf`)).body.equals(body)).toBe(true);
  });
});
