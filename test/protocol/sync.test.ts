import { startTestApp, type TestApp } from '../helpers/app';
import { DavClient, person, propfindBody, syncCollectionBody } from '../helpers/dav';
import { storeCards } from '../helpers/fixtures';
import {
  CARDDAV,
  DAV,
  childNames,
  clark,
  errorCondition,
  okProp,
  parseMultistatus,
  parseMultistatusDocument,
  responseFor,
  type Multistatus,
} from '../helpers/multistatus';

const d = (local: string) => clark(DAV, local);
const card = (local: string) => clark(CARDDAV, local);
const HOME = '/dav/addressbooks/alice/';
const URI = /^[a-z][a-z0-9+.-]*:\S+$/i;

let app: TestApp;
let alice: DavClient;
let bookCount = 0;

beforeAll(async () => {
  app = await startTestApp();
  await app.addUser('alice');
  alice = new DavClient(app, 'alice');
});

afterAll(() => app.close());

async function freshBook(): Promise<string> {
  const path = `${HOME}sync-${++bookCount}/`;
  await alice.createBook(path);
  return path;
}

function uid(book: string, n: number): string {
  return `b7${String(bookCount).padStart(6, '0')}-0000-4000-8000-${String(n).padStart(12, '0')}`;
}

/** Stores `count` cards named `c0.vcf`, `c1.vcf`, ... and returns their hrefs. */
async function fill(book: string, count: number, from = 0): Promise<string[]> {
  const hrefs: string[] = [];
  for (let i = from; i < from + count; i++) {
    const href = `${book}c${i}.vcf`;
    await alice.putCard(href, person(uid(book, i), `Person Number${i}`));
    hrefs.push(href);
  }
  return hrefs;
}

async function propertyToken(book: string): Promise<string> {
  const reply = await alice.propfind(book, '0', propfindBody(d('sync-token')));
  return okProp(parseMultistatus(reply.text)[0], d('sync-token'))?.text ?? '';
}

async function expectInvalidToken(book: string, token: string): Promise<void> {
  const reply = await alice.report(book, syncCollectionBody(token));
  expect(reply.status).toBe(403);
  expect(errorCondition(reply.text)).toBe(d('valid-sync-token'));
}

/**
 * Follows 507 truncations from `token` until the server reports no more, and
 * returns the latest state per href (true present, false removed) and the last token.
 */
async function syncAll(book: string, token: string, limit: number): Promise<{ state: Map<string, boolean>; token: string; rounds: number }> {
  const state = new Map<string, boolean>();
  let rounds = 0;
  for (;;) {
    rounds++;
    if (rounds > 100) throw new Error('sync did not finish after 100 rounds');
    const result: Multistatus = await alice.sync(book, token, { limit });
    const truncated = result.responses.some((r) => r.href === book && r.status === 507);
    const members = result.responses.filter((r) => r.href !== book);
    expect(members.length).toBeLessThanOrEqual(limit);
    for (const response of members) state.set(response.href, response.status !== 404);
    expect(result.syncToken).toMatch(URI);
    token = result.syncToken!;
    if (!truncated) return { state, token, rounds };
  }
}

describe('sync-collection', () => {
  test('initial sync lists every card', async () => {
    const book = await freshBook();
    const hrefs = await fill(book, 3);
    const result = await alice.sync(book, '');
    expect(result.responses.map((r) => r.href).sort()).toEqual(hrefs.sort());
    for (const response of result.responses) expect(okProp(response, d('getetag'))?.text).toMatch(/^"[^"]+"$/);
  });

  test('tokens are URIs', async () => {
    const book = await freshBook();
    await fill(book, 1);
    const result = await alice.sync(book, '');
    expect(result.syncToken).toMatch(URI);
  });

  test('token equals the sync-token property', async () => {
    const book = await freshBook();
    await fill(book, 2);
    const result = await alice.sync(book, '');
    expect(await propertyToken(book)).toBe(result.syncToken);
  });

  test('up-to-date client gets an empty delta', async () => {
    const book = await freshBook();
    await fill(book, 2);
    const first = await alice.sync(book, '');
    const second = await alice.sync(book, first.syncToken!);
    expect(second.responses).toEqual([]);
    expect(second.syncToken).toBe(first.syncToken);
  });

  test('delta lists only changed cards', async () => {
    const book = await freshBook();
    const [first, second] = await fill(book, 2);
    const { syncToken } = await alice.sync(book, '');
    const replaced = await alice.putCard(first, person(uid(book, 0), 'Person Renamed'));
    const delta = await alice.sync(book, syncToken!);
    expect(delta.responses.map((r) => r.href)).toEqual([first]);
    expect(okProp(delta.responses[0], d('getetag'))?.text).toBe(replaced.headers.etag);
    expect(delta.responses.map((r) => r.href)).not.toContain(second);
  });

  test('deleted card is a 404 response', async () => {
    const book = await freshBook();
    const [first, second] = await fill(book, 2);
    const { syncToken } = await alice.sync(book, '');
    expect((await alice.delete(first)).status).toBe(204);
    const delta = await alice.sync(book, syncToken!);
    expect(delta.responses).toHaveLength(1);
    const removed = responseFor(delta.responses, first);
    expect(removed.status).toBe(404);
    expect(removed.statusLine).toBe('HTTP/1.1 404 Not Found');
    expect(removed.propstats).toEqual([]);
    expect(delta.responses.map((r) => r.href)).not.toContain(second);
  });

  test('initial sync omits deleted cards', async () => {
    const book = await freshBook();
    const [first, second] = await fill(book, 2);
    await alice.delete(first);
    const result = await alice.sync(book, '');
    expect(result.responses.map((r) => r.href)).toEqual([second]);
  });

  test('returns address-data when asked', async () => {
    const book = await freshBook();
    const body = person(uid(book, 1), 'Tessa Example');
    await alice.putCard(`${book}tessa.vcf`, body);
    const result = await alice.sync(book, '', { props: [d('getetag'), card('address-data')] });
    expect(okProp(result.responses[0], card('address-data'))?.text).toBe(body);
  });

  test('accepts Depth 1 and no Depth', async () => {
    const book = await freshBook();
    await fill(book, 1);
    const variants: Record<string, string>[] = [{ Depth: '1' }, { Depth: '0' }, {}];
    for (const headers of variants) {
      const reply = await alice.report(book, syncCollectionBody(''), headers);
      expect(reply.status).toBe(207);
      expect(parseMultistatusDocument(reply.text).responses).toHaveLength(1);
    }
  });

  test('members have an empty resourcetype', async () => {
    const book = await freshBook();
    await fill(book, 1);
    const result = await alice.sync(book, '', { props: [d('getetag'), d('resourcetype')] });
    const resourcetype = okProp(result.responses[0], d('resourcetype'));
    expect(resourcetype).toBeDefined();
    expect(childNames(resourcetype)).toEqual([]);
  });
});

describe('rendered and built responses', () => {
  // A sync that requests stored values only (getetag, getcontentlength) gets its first page from the
  // storage, and one that requests getlastmodified builds every response. Both must list the same.
  const NAMES = ['plain.vcf', 'with space.vcf', 'a&b<c>.vcf', 'Zoë 日本.vcf', '100%.vcf', 'x,y;z.vcf'];

  async function filledBook(): Promise<{ book: string; token: string; hrefs: string[] }> {
    const book = await freshBook();
    const hrefs = NAMES.map((name) => book + encodeURIComponent(name));
    for (const [i, href] of hrefs.entries()) await alice.putCard(href, person(uid(book, i), `Person Number${i}`));
    const { syncToken } = await alice.sync(book, '');
    await alice.putCard(hrefs[3], person(uid(book, 3), 'Person Renamed'));
    expect((await alice.delete(hrefs[2])).status).toBe(204);
    expect((await alice.delete(hrefs[4])).status).toBe(204);
    return { book, token: syncToken!, hrefs };
  }

  /** Returns each response's href, status and ETag, sorted by href. */
  function summary(result: Multistatus): [string, number | undefined, string | undefined][] {
    return result.responses
      .map((r): [string, number | undefined, string | undefined] => [r.href, r.status, okProp(r, d('getetag'))?.text])
      .sort((a, b) => a[0].localeCompare(b[0]));
  }

  test.each(['', 'delta'])('same listing, token %j', async (kind) => {
    const { book, token, hrefs } = await filledBook();
    const from = kind === '' ? '' : token;
    const rendered = await alice.sync(book, from);
    const built = await alice.sync(book, from, { props: [d('getetag'), d('getlastmodified')] });
    expect(summary(rendered)).toEqual(summary(built));
    expect(rendered.syncToken).toBe(built.syncToken);
    const expected = kind === '' ? [0, 1, 3, 5] : [2, 3, 4];
    expect(rendered.responses.map((r) => r.href).sort()).toEqual(expected.map((i) => hrefs[i]).sort());
  });

  test('rendered hrefs can be fetched', async () => {
    const { book, token, hrefs } = await filledBook();
    const delta = await alice.sync(book, token);
    const present = responseFor(delta.responses, hrefs[3]);
    expect(present.status).toBeUndefined();
    const reply = await alice.get(present.href);
    expect(reply.status).toBe(200);
    expect(reply.headers.etag).toBe(okProp(present, d('getetag'))?.text);
    expect(responseFor(delta.responses, hrefs[2]).status).toBe(404);
    expect(responseFor(delta.responses, hrefs[4]).status).toBe(404);
  });

  test.each(['', 'delta'])('one-page sync has Content-Length, token %j', async (kind) => {
    const { book, token } = await filledBook();
    const reply = await alice.report(book, syncCollectionBody(kind === '' ? '' : token));
    expect(reply.status).toBe(207);
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(reply.text)));
    expect(reply.headers['transfer-encoding']).toBeUndefined();
    const result = parseMultistatusDocument(reply.text);
    expect(result.responses).toHaveLength(kind === '' ? 4 : 3);
    expect(result.syncToken).toBe(await propertyToken(book));
  });

  test('limit-cut page keeps 507 and token', async () => {
    const { book } = await filledBook();
    const reply = await alice.report(book, syncCollectionBody('', { limit: 2 }));
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(reply.text)));
    const result = parseMultistatusDocument(reply.text);
    expect(result.responses.filter((r) => r.href !== book)).toHaveLength(2);
    expect(responseFor(result.responses, book).status).toBe(507);
    // The token continues after the page: the two other cards, and the two removed after the page's cards were stored.
    const rest = await alice.sync(book, result.syncToken!);
    expect(rest.responses.filter((r) => r.status === undefined)).toHaveLength(2);
    expect(rest.responses.filter((r) => r.status === 404)).toHaveLength(2);
  });

  test('content length is rendered too', async () => {
    const { book, hrefs } = await filledBook();
    const result = await alice.sync(book, '', { props: [d('getetag'), d('getcontentlength')] });
    const reply = await alice.get(hrefs[0]);
    const length = okProp(responseFor(result.responses, hrefs[0]), d('getcontentlength'))?.text;
    expect(length).toBe(String(Buffer.byteLength(reply.text)));
  });
});

describe('sync tokens', () => {
  test('empty book token is a URI and accepted', async () => {
    const book = await freshBook();
    const token = await propertyToken(book);
    expect(token).toMatch(URI);
    const result = await alice.sync(book, token);
    expect(result.responses).toEqual([]);
    expect(result.syncToken).toMatch(URI);
  });

  test('bare UUID is rejected', async () => {
    const book = await freshBook();
    await expectInvalidToken(book, '3c9b1e7a-0b16-4000-8000-00000000b016');
  });

  test("another book's token is rejected", async () => {
    const book = await freshBook();
    const other = await freshBook();
    await fill(other, 1);
    await expectInvalidToken(book, await propertyToken(other));
  });

  test('token from the future is rejected', async () => {
    const book = await freshBook();
    await fill(book, 1);
    const token = await propertyToken(book);
    const future = token.replace(/\d+$/, (seq) => String(Number(seq) + 1000));
    expect(future).not.toBe(token);
    await expectInvalidToken(book, future);
  });

  test('recreated book rejects its old token', async () => {
    const book = await freshBook();
    await fill(book, 1);
    const token = await propertyToken(book);
    await alice.delete(book);
    await alice.createBook(book);
    await expectInvalidToken(book, token);
  });

  test.each(['0', 'not a token', 'http://example.com/sync/1', 'urn:x-cardinal:sync:zz:1'])('token %j is rejected', async (token) => {
    const book = await freshBook();
    await expectInvalidToken(book, token);
  });

  test('empty token works after a rejection', async () => {
    const book = await freshBook();
    const hrefs = await fill(book, 2);
    await expectInvalidToken(book, '3c9b1e7a-0b16-4000-8000-00000000b016');
    const result = await alice.sync(book, '');
    expect(result.responses.map((r) => r.href).sort()).toEqual(hrefs.sort());
  });
});

describe('sync-collection limit', () => {
  test('returns the limit and a 507 for the book', async () => {
    const book = await freshBook();
    await fill(book, 5);
    const result = await alice.sync(book, '', { limit: 2 });
    const members = result.responses.filter((r) => r.href !== book);
    expect(members).toHaveLength(2);
    const truncation = responseFor(result.responses, book);
    expect(truncation.status).toBe(507);
    expect(truncation.statusLine).toBe('HTTP/1.1 507 Insufficient Storage');
    expect(childNames(truncation.error)).toEqual([d('number-of-matches-within-limits')]);
    expect(result.syncToken).toMatch(URI);
  });

  test('limit equal to the changes has no 507', async () => {
    const book = await freshBook();
    await fill(book, 3);
    const result = await alice.sync(book, '', { limit: 3 });
    expect(result.responses).toHaveLength(3);
    expect(result.responses.every((r) => r.status !== 507)).toBe(true);
  });

  test('following tokens loses no card on initial sync', async () => {
    const book = await freshBook();
    const hrefs = await fill(book, 11);
    const { state, rounds } = await syncAll(book, '', 3);
    expect(rounds).toBe(4);
    expect([...state.keys()].sort()).toEqual(hrefs.sort());
    expect([...state.values()].every(Boolean)).toBe(true);
  });

  test('following tokens loses no change on a delta', async () => {
    const book = await freshBook();
    const hrefs = await fill(book, 8);
    const start = await alice.sync(book, '');

    await alice.putCard(hrefs[2], person(uid(book, 2), 'Person Changed'));
    await alice.delete(hrefs[0]);
    await alice.delete(hrefs[5]);
    const added = await fill(book, 4, 100);
    await alice.putCard(hrefs[7], person(uid(book, 7), 'Person Changed'));

    const { state, token } = await syncAll(book, start.syncToken!, 2);
    const expected = new Map<string, boolean>([
      [hrefs[2], true],
      [hrefs[0], false],
      [hrefs[5], false],
      [hrefs[7], true],
      ...added.map((href): [string, boolean] => [href, true]),
    ]);
    expect(Object.fromEntries(state)).toEqual(Object.fromEntries(expected));

    const after = await alice.sync(book, token);
    expect(after.responses).toEqual([]);
  });

  test('union of pages equals the book', async () => {
    const book = await freshBook();
    const hrefs = await fill(book, 7);
    await alice.delete(hrefs[3]);
    const { state } = await syncAll(book, '', 2);
    const present = [...state].filter(([, exists]) => exists).map(([href]) => href);
    const listing = await alice.propfind(book, '1', propfindBody(d('getetag')));
    const members = parseMultistatus(listing.text).map((r) => r.href).filter((href) => href !== book);
    expect(present.sort()).toEqual(members.sort());
  });

  test('invalid nresults is rejected', async () => {
    const book = await freshBook();
    const reply = await alice.report(book, syncCollectionBody('', { limit: 0 }));
    expect(reply.status).toBe(400);
  });
});

describe('large book sync', () => {
  let big: TestApp;
  let client: DavClient;
  const BOOK = '/dav/addressbooks/alice/contacts/';
  const COUNT = 2500;

  beforeAll(async () => {
    big = await startTestApp();
    await big.addUser('alice');
    client = new DavClient(big, 'alice');
    await storeCards(big, 'alice', 'contacts', COUNT);
  });

  afterAll(() => big.close());

  test('initial sync lists every card once', async () => {
    const reply = await client.report(BOOK, syncCollectionBody(''));
    // More changes than one page: the response streams.
    expect(reply.headers['transfer-encoding']).toBe('chunked');
    const result = parseMultistatusDocument(reply.text);
    expect(result.responses).toHaveLength(COUNT);
    expect(new Set(result.responses.map((r) => r.href)).size).toBe(COUNT);
    expect(result.responses.every((r) => r.status !== 507)).toBe(true);
  });

  test('delta over many changes lists each once', async () => {
    const start = await client.sync(BOOK, '');
    const changed: string[] = [];
    for (let i = 0; i < 1200; i++) {
      const href = `${BOOK}card-${i * 2}.vcf`;
      if (i % 3 === 0) await client.delete(href);
      else await client.putCard(href, person(`a1000000-0000-4000-8000-${String(i * 2).padStart(12, '0')}`, `Person Changed${i}`));
      changed.push(href);
    }
    const delta = await client.sync(BOOK, start.syncToken!);
    expect(delta.responses.map((r) => r.href).sort()).toEqual(changed.sort());
    const removed = delta.responses.filter((r) => r.status === 404);
    expect(removed).toHaveLength(400);
    expect(await client.sync(BOOK, delta.syncToken!)).toEqual({ responses: [], syncToken: delta.syncToken });
  });
});
