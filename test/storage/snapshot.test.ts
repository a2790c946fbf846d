/**
 * Snapshot listings: every page of one listing comes from the state of the
 * book when the listing began, while writes go on through the same storage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStorage } from '../../storage/sqlite';
import type { CardInput } from '../../storage/types';
import { prepareCard } from '../../vcard/pipeline';

let dir: string;
let storage: SqliteStorage;
let bookId: number;

function input(index: number): CardInput {
  const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:card-${index}\r\nFN:Person ${index}\r\nEND:VCARD\r\n`;
  const prepared = prepareCard(Buffer.from(text));
  if (!prepared.ok) throw new Error(prepared.message);
  return { name: `card-${index}.vcf`, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-snapshot-'));
  storage = new SqliteStorage(join(dir, 'cardinal.sqlite3'));
  const user = await storage.createUser('alice', null);
  const book = await storage.createBook(user.id, 'contacts', 'Contacts');
  if (!book) throw new Error('book not created');
  bookId = book.id;
  const writes = Array.from({ length: 2500 }, (_, index) => ({ bookId, input: input(index), condition: {} }));
  await storage.putCards(writes);
});

afterAll(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

test('writes during a listing stay out', async () => {
  const names: string[] = [];
  const pages: number[] = [];
  for await (const page of storage.snapshotCardMeta(bookId, 1000)) {
    pages.push(page.length);
    names.push(...page.map((card) => card.name));
    if (pages.length === 1) {
      expect((await storage.putCard(bookId, input(9999), { ifNoneMatchAny: true })).kind).toBe('created');
      expect(await storage.deleteCard(bookId, 'card-2400.vcf')).toBe('deleted');
    }
  }
  expect(pages).toEqual([1000, 1000, 500]);
  expect(names).toContain('card-2400.vcf');
  expect(names).not.toContain('card-9999.vcf');
  expect(new Set(names).size).toBe(2500);
});

test('the next listing sees the writes', async () => {
  const names: string[] = [];
  for await (const page of storage.snapshotCardMeta(bookId, 1000)) names.push(...page.map((card) => card.name));
  expect(names).toContain('card-9999.vcf');
  expect(names).not.toContain('card-2400.vcf');
  expect(names).toHaveLength(2500);
});

test('stopping early ends the read transaction', async () => {
  const checker = new Database(join(dir, 'cardinal.sqlite3'));
  try {
    for (let round = 0; round < 5; round++) {
      for await (const page of storage.snapshotCardMeta(bookId, 10)) {
        expect(page).toHaveLength(10);
        break;
      }
      expect((await storage.putCard(bookId, input(10_000 + round), { ifNoneMatchAny: true })).kind).toBe('created');
      // A reader still inside its snapshot would keep the log from being copied and truncated.
      expect(checker.pragma('wal_checkpoint(TRUNCATE)')).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    }
  } finally {
    checker.close();
  }
});
