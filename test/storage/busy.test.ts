/**
 * Writes when SQLite reports the database busy. SQLite's busy timeout does
 * not cover every lock conflict: a server's BEGIN IMMEDIATE failed with
 * SQLITE_BUSY while the checkpoint worker copied the log. These tests turn
 * the storage connection's busy timeout off, so that every conflict reaches
 * the storage as SQLITE_BUSY, and hold the write lock from a second
 * connection for a while.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';
import type { CardInput } from '../../storage/types';
import { prepareCard } from '../../vcard/pipeline';

let dir: string;
let file: string;
let storage: SqliteStorage;
let other: Database.Database;
let release: NodeJS.Timeout | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-busy-'));
  file = join(dir, 'cardinal.sqlite3');
  storage = new SqliteStorage(file);
  (storage as unknown as { db: Database.Database }).db.pragma('busy_timeout = 0');
  other = new Database(file);
  other.pragma('busy_timeout = 0');
});

afterEach(async () => {
  clearTimeout(release);
  if (other.inTransaction) other.exec('ROLLBACK');
  other.close();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

function input(index: number): CardInput {
  const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:card-${index}\r\nFN:Person ${index}\r\nEND:VCARD\r\n`;
  const prepared = prepareCard(Buffer.from(text));
  if (!prepared.ok) throw new Error(prepared.message);
  return { name: `card-${index}.vcf`, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties };
}

/** Holds the write lock from the second connection for `ms` milliseconds. */
function holdWriteLock(ms: number): Promise<void> {
  other.exec('BEGIN IMMEDIATE');
  return new Promise((resolve) => {
    release = setTimeout(() => {
      other.exec('COMMIT');
      resolve();
    }, ms);
  });
}

async function newBook(): Promise<number> {
  const user = await storage.createUser('alice', null);
  const book = await storage.createBook(user.id, 'contacts', 'Contacts');
  if (!book) throw new Error('book not created');
  return book.id;
}

test('lock conflict raises SQLITE_BUSY', () => {
  other.exec('BEGIN IMMEDIATE');
  const db = (storage as unknown as { db: Database.Database }).db;
  expect(() => db.exec('BEGIN IMMEDIATE')).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
});

test('grouped card writes wait for the lock', async () => {
  const bookId = await newBook();
  const released = holdWriteLock(150);
  const writes = [0, 1, 2].map((index) => storage.putCard(bookId, input(index), {}));
  const results = await Promise.all(writes);
  await released;
  expect(results.map((result) => result.kind)).toEqual(['created', 'created', 'created']);
  const page = await storage.changesSince(bookId, 0, 10);
  expect(page.changes.map((change) => change.name).sort()).toEqual(['card-0.vcf', 'card-1.vcf', 'card-2.vcf']);
});

test('card batch is written once', async () => {
  const bookId = await newBook();
  const released = holdWriteLock(150);
  const outcome = await storage.putCards([0, 1].map((index) => ({ bookId, input: input(index), condition: {} })));
  await released;
  expect(outcome.committed).toBe(true);
  expect(outcome.results.map((result) => result.kind)).toEqual(['created', 'created']);
});

test('card delete waits for the lock', async () => {
  const bookId = await newBook();
  await storage.putCard(bookId, input(0), {});
  const released = holdWriteLock(150);
  await expect(storage.deleteCard(bookId, 'card-0.vcf')).resolves.toBe('deleted');
  await released;
  await expect(storage.getCard(bookId, 'card-0.vcf')).resolves.toBeUndefined();
});

test('user removal waits for the lock', async () => {
  await storage.createUser('bob', null);
  const released = holdWriteLock(150);
  await expect(storage.removeUser('bob')).resolves.toBe(true);
  await released;
  await expect(storage.getUser('bob')).resolves.toBeUndefined();
});

test('book creation and grant wait', async () => {
  const owner = await storage.createUser('carol', null);
  const reader = await storage.createUser('dave', null);
  const released = holdWriteLock(150);
  const book = await storage.createBook(owner.id, 'team', 'Team');
  await released;
  expect(book?.slug).toBe('team');
  const again = holdWriteLock(150);
  await storage.grant(book!.id, { kind: 'user', id: reader.id }, 'read', 'team');
  await again;
  expect((await storage.listVisibleBooks(reader.id)).map((visible) => visible.mount)).toEqual(['team']);
});
