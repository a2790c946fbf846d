/**
 * The change log read by sync-collection: for any starting point and page
 * size, the pages list every card written and every card removed after that
 * point, once each, in sequence order, with the summary stored for the card.
 * Names with spaces and characters outside ASCII come back whole. The
 * rendered form of the log lists the same entries, with each name as a URL
 * path segment, and a store made before that form existed gets it filled.
 */
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathSegment } from '../../storage/segment';
import { SqliteStorage } from '../../storage/sqlite';
import type { Change, ChangeLayout } from '../../storage/types';
import { cardInput, DROP_SEGMENTS_SQL, openBookStorage, type BookStorage } from '../helpers/fixtures';

let opened: BookStorage;

/** The expected state of a name after a write: its sequence number, and the ETag and size unless it was removed. */
interface Expected {
  seq: number;
  etag?: string;
  size?: number;
  modifiedAt?: number;
}

const NAMES = ['plain.vcf', 'with space.vcf', 'two  spaces .vcf', 'Zoë 日本.vcf', 'trailing .vcf', '1 2 3 4 5.vcf', 'a&b<c>@%.vcf', 'x,y;z.vcf'];
const history: { name: string; expected: Expected }[] = [];

function input(name: string, version: number) {
  return cardInput(name, `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${encodeURIComponent(name)}\r\nFN:Version ${version}\r\nEND:VCARD\r\n`);
}

beforeAll(async () => {
  opened = await openBookStorage('cardinal-changes-');
  const { storage, userId, bookId } = opened;
  // A fixed pattern of writes and removals, so that removals fall between writes of other cards.
  for (let step = 0; step < 60; step++) {
    const name = NAMES[(step * 7) % NAMES.length];
    if (step % 5 === 3) {
      const result = await storage.deleteCard(bookId, name);
      if (result !== 'deleted') continue;
      const seq = (await storage.getBook(userId, 'contacts'))?.syncSeq ?? -1;
      history.push({ name, expected: { seq } });
      continue;
    }
    const card = input(name, step);
    const result = await storage.putCard(bookId, card, {});
    if (result.kind !== 'created' && result.kind !== 'replaced') throw new Error(`unexpected ${result.kind}`);
    history.push({ name, expected: { seq: result.card.seq, etag: card.etag, size: card.data.length, modifiedAt: result.card.modifiedAt } });
  }
});

afterAll(() => opened.close());

/** Returns the latest entry per name after `since`, in sequence order. With `since` 0, removed cards are left out. */
function expectedAfter(since: number): { name: string; expected: Expected }[] {
  const latest = new Map<string, { name: string; expected: Expected }>();
  for (const entry of history) latest.set(entry.name, entry);
  return [...latest.values()]
    .filter((entry) => entry.expected.seq > since && (since > 0 || entry.expected.etag !== undefined))
    .sort((a, b) => a.expected.seq - b.expected.seq);
}

async function readAll(since: number, pageSize: number): Promise<Change[]> {
  const changes: Change[] = [];
  let seq = since;
  for (let pages = 0; pages < 100; pages++) {
    const page = await opened.storage.changesSince(opened.bookId, seq, pageSize);
    changes.push(...page.changes);
    expect(page.changes.length).toBeLessThanOrEqual(pageSize);
    if (!page.truncated) return changes;
    expect(page.seq).toBe(page.changes[page.changes.length - 1].seq);
    seq = page.seq;
  }
  throw new Error('the pages never ended');
}

test('the history has removals between writes', () => {
  const removals = history.filter((entry) => entry.expected.etag === undefined);
  expect(removals.length).toBeGreaterThan(3);
  expect(history.length).toBeGreaterThan(40);
});

// A read from 0 continues from the sequence number of its first page, so its later pages may list removals.
// Reads from 0 are therefore checked with one page.
test.each([
  [1, false],
  [2, false],
  [3, false],
  [5, false],
  [100, true],
])('every starting point, in pages of %i', async (pageSize, fromZero) => {
  const starts = [...(fromZero ? [0] : []), ...history.map((entry) => entry.expected.seq)];
  for (const since of starts) {
    const changes = await readAll(since, pageSize);
    const expected = expectedAfter(since);
    expect(changes.map((change) => change.name)).toEqual(expected.map((entry) => entry.name));
    for (const [i, change] of changes.entries()) {
      const want = expected[i].expected;
      expect(change.seq).toBe(want.seq);
      if (want.etag === undefined) {
        expect(change.card).toBeUndefined();
      } else {
        expect(change.card).toEqual({ name: change.name, seq: want.seq, etag: want.etag, size: want.size, modifiedAt: want.modifiedAt });
      }
    }
  }
});

test('a listing snapshot returns the same summaries as the change log', async () => {
  const listed = [];
  for await (const page of opened.storage.snapshotCardMeta(opened.bookId, 2)) listed.push(...page);
  const fromLog = (await readAll(0, 1000)).map((change) => change.card);
  const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
  expect([...listed].sort(byName)).toEqual([...fromLog].sort((a, b) => byName(a!, b!)));
});

/** A layout whose texts show where each value went. */
const LAYOUT: ChangeLayout = {
  card: { texts: ['<card href="', '" etag="', '" size="', '"/>'], fields: ['etag', 'size'] },
  removed: ['<gone href="', '"/>'],
};

/** Returns the text LAYOUT gives the expected entries. */
function renderedAfter(entries: { name: string; expected: Expected }[]): string {
  return entries
    .map(({ name, expected }) =>
      expected.etag === undefined
        ? `<gone href="${pathSegment(name)}"/>`
        : `<card href="${pathSegment(name)}" etag="${expected.etag}" size="${expected.size}"/>`,
    )
    .join('');
}

/** Splits rendered text into its entries, sorted, because renderChanges promises no order within a run. */
function entries(text: string): string[] {
  return text
    .split('/>')
    .filter((entry) => entry !== '')
    .sort();
}

async function renderAll(since: number, until: number, pageSize: number): Promise<string> {
  let text = '';
  let seq = since;
  for (let pages = 0; pages < 100; pages++) {
    const page = await opened.storage.renderChanges(opened.bookId, seq, until, pageSize, LAYOUT);
    text += page.bytes.toString();
    expect(page.count).toBeLessThanOrEqual(pageSize);
    if (!page.truncated) {
      expect(page.seq).toBe(until);
      return text;
    }
    expect(page.count).toBe(pageSize);
    seq = page.seq;
  }
  throw new Error('the pages never ended');
}

test.each([1, 2, 5, 100])('rendered from every starting point, in pages of %i', async (pageSize) => {
  const current = (await opened.storage.getBook(opened.userId, 'contacts'))!.syncSeq;
  for (const since of history.map((entry) => entry.expected.seq)) {
    expect(entries(await renderAll(since, current, pageSize))).toEqual(entries(renderedAfter(expectedAfter(since))));
  }
});

test('rendered from 0 lists no removals', async () => {
  const current = (await opened.storage.getBook(opened.userId, 'contacts'))!.syncSeq;
  const text = await renderAll(0, current, 1000);
  expect(entries(text)).toEqual(entries(renderedAfter(expectedAfter(0))));
  expect(text).not.toContain('<gone');
});

test('rendering stops at the given sequence number', async () => {
  // An entry written again after `until` is left for the next read, which starts from `until`.
  const current = (await opened.storage.getBook(opened.userId, 'contacts'))!.syncSeq;
  const first = history[5].expected.seq;
  const expected = expectedAfter(first);
  const middle = expected[Math.floor(expected.length / 2)].expected.seq;
  const upToMiddle = expected.filter((entry) => entry.expected.seq <= middle);
  expect(upToMiddle.length).toBeGreaterThan(0);
  expect(upToMiddle.length).toBeLessThan(expected.length);
  expect(entries(await renderAll(first, middle, 3))).toEqual(entries(renderedAfter(upToMiddle)));
  expect(entries(await renderAll(middle, current, 3))).toEqual(entries(renderedAfter(expectedAfter(middle))));
});

test('rendered names are path segments', async () => {
  const current = (await opened.storage.getBook(opened.userId, 'contacts'))!.syncSeq;
  const text = await renderAll(history[0].expected.seq, current, 1000);
  expect(text).toContain('href="a%26b%3Cc%3E@%25.vcf"');
  expect(text).toContain('href="Zo%C3%AB%20%E6%97%A5%E6%9C%AC.vcf"');
  expect(text).toContain('href="plain.vcf"');
});

test('change log reads its indexes alone', () => {
  const [summaries, rendered] = opened.storage.explainChanges(['etag', 'size']);
  expect(summaries.join('\n')).toMatch(/SEARCH cards USING COVERING INDEX cards_by_seq \(book_id=\? AND seq>\?\)/);
  expect(rendered.join('\n')).toMatch(/SEARCH cards USING COVERING INDEX cards_by_seq \(book_id=\? AND seq>\? AND seq<\?\)/);
  expect(rendered.join('\n')).toMatch(/SEARCH tombstones USING COVERING INDEX tombstones_by_seq \(book_id=\? AND seq>\? AND seq<\?\)/);
  expect(rendered.join('\n')).not.toMatch(/TEMP B-TREE/);
});

test('migration fills path segments', async () => {
  // Takes the store back to the schema before the segment column and opens it again. One migration
  // comes after it, the narrower change log index.
  const current = (await opened.storage.getBook(opened.userId, 'contacts'))!.syncSeq;
  const before = await renderAll(0, current, 1000);
  const since = history[3].expected.seq;
  const changesBefore = await renderAll(since, current, 1000);
  await opened.storage.close();
  const file = join(opened.dir, 'cardinal.sqlite3');
  const db = new Database(file);
  const version = db.pragma('user_version', { simple: true }) as number;
  db.exec(DROP_SEGMENTS_SQL);
  db.pragma(`user_version = ${version - 2}`);
  db.close();
  const reopened = new SqliteStorage(file);
  opened.storage = reopened;
  opened.close = async () => {
    await reopened.close();
    rmSync(opened.dir, { recursive: true, force: true });
  };
  expect(entries(await renderAll(0, current, 1000))).toEqual(entries(before));
  expect(entries(await renderAll(since, current, 1000))).toEqual(entries(changesBefore));
  expect(changesBefore).toContain('<gone href="a%26b%3Cc%3E@%25.vcf"/>');
});
