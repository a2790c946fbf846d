/**
 * The change log read by sync-collection: for any starting point and page
 * size, the pages list every card written and every card removed after that
 * point, once each, in sequence order, with the summary stored for the card.
 * Names with spaces and characters outside ASCII come back whole.
 */
import type { Change } from '../../storage/types';
import { cardInput, openBookStorage, type BookStorage } from '../helpers/fixtures';

let opened: BookStorage;

/** The expected state of a name after a write: its sequence number, and the ETag and size unless it was removed. */
interface Expected {
  seq: number;
  etag?: string;
  size?: number;
  modifiedAt?: number;
}

const NAMES = ['plain.vcf', 'with space.vcf', 'two  spaces .vcf', 'Zoë 日本.vcf', 'trailing .vcf', '1 2 3 4 5.vcf'];
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
