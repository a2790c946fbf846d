/**
 * Removing an address book: the book disappears at once, and its cards are
 * deleted a batch per transaction, so that other requests run in between. A
 * removal that a stopped process left half done is finished later.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';
import type { CardInput } from '../../storage/types';
import { prepareCard } from '../../vcard/pipeline';
import { startServer } from '../helpers/server';

/** More cards than one batch of a removal deletes, so that a removal takes several. */
const CARDS = 2500;

let dir: string;
let file: string;
let storage: SqliteStorage;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-removal-'));
  file = join(dir, 'cardinal.sqlite3');
  storage = new SqliteStorage(file);
});

afterEach(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

function input(index: number): CardInput {
  const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:card-${index}\r\nFN:Person ${index}\r\nEMAIL:person${index}@example.com\r\nEND:VCARD\r\n`;
  const prepared = prepareCard(Buffer.from(text));
  if (!prepared.ok) throw new Error(prepared.message);
  return { name: `card-${index}.vcf`, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties };
}

async function filledBook(ownerId: number, slug: string, count: number): Promise<number> {
  const book = await storage.createBook(ownerId, slug, slug);
  if (!book) throw new Error(`book ${slug} not created`);
  const writes = Array.from({ length: count }, (_, index) => ({ bookId: book.id, input: input(index), condition: {} }));
  const outcome = await storage.putCards(writes);
  if (!outcome.committed) throw new Error(`cards of ${slug} not stored`);
  return book.id;
}

/** Counts rows of the book's cards and of their indexed properties, through a connection of its own. */
function storedRows(bookId: number): { cards: number; properties: number; books: number } {
  const db = new Database(file, { readonly: true });
  try {
    const count = (sql: string) => db.prepare(sql).pluck().get(bookId) as number;
    return {
      cards: count('SELECT count(*) FROM cards WHERE book_id = ?'),
      properties: count('SELECT count(*) FROM card_props WHERE card_id IN (SELECT id FROM cards WHERE book_id = ?)'),
      books: count('SELECT count(*) FROM books WHERE id = ?'),
    };
  } finally {
    db.close();
  }
}

/**
 * Closes the store and leaves the book as a stopped removal would: marked, with `deleted` of its
 * cards gone. The caller opens the store again.
 */
async function stopMidway(bookId: number, deleted: number): Promise<void> {
  await storage.close();
  const db = new Database(file);
  try {
    db.prepare("UPDATE books SET removing = 1, slug = slug || char(0) || id WHERE id = ?").run(bookId);
    db.prepare('DELETE FROM cards WHERE id IN (SELECT id FROM cards WHERE book_id = ? LIMIT ?)').run(bookId, deleted);
  } finally {
    db.close();
  }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('removal deletes the book and its cards', async () => {
  const user = await storage.createUser('alice', null);
  const bookId = await filledBook(user.id, 'contacts', CARDS);
  await storage.deleteBook(bookId);
  expect(storedRows(bookId)).toEqual({ cards: 0, properties: 0, books: 0 });
  await expect(storage.getBook(user.id, 'contacts')).resolves.toBeUndefined();
});

test('removal leaves other books alone', async () => {
  const user = await storage.createUser('alice', null);
  const removed = await filledBook(user.id, 'old', CARDS);
  const keptBook = await filledBook(user.id, 'keptBook', 10);
  const before = storedRows(keptBook);
  await storage.deleteBook(removed);
  expect(before.cards).toBe(10);
  expect(storedRows(keptBook)).toEqual(before);
  expect((await storage.listBooks(user.id)).map((book) => book.slug)).toEqual(['keptBook']);
});

test('book is hidden while its cards go', async () => {
  const user = await storage.createUser('alice', null);
  const reader = await storage.createUser('bob', null);
  const bookId = await filledBook(user.id, 'contacts', CARDS);
  await storage.grant(bookId, { kind: 'user', id: reader.id }, 'read', 'shared');
  const removal = storage.deleteBook(bookId);
  await nextTurn();

  const midway = storedRows(bookId);
  expect(midway.cards).toBeGreaterThan(0);
  expect(midway.cards).toBeLessThan(CARDS);
  await expect(storage.getBook(user.id, 'contacts')).resolves.toBeUndefined();
  await expect(storage.listBooks(user.id)).resolves.toEqual([]);
  await expect(storage.listVisibleBooks(reader.id)).resolves.toEqual([]);
  await expect(storage.putCard(bookId, input(CARDS), {})).resolves.toEqual({ kind: 'book-missing' });

  await removal;
  expect(storedRows(bookId).books).toBe(0);
});

test('slug is free during removal', async () => {
  const user = await storage.createUser('alice', null);
  const bookId = await filledBook(user.id, 'contacts', CARDS);
  const removal = storage.deleteBook(bookId);
  await nextTurn();
  const replacement = await storage.createBook(user.id, 'contacts', 'Contacts');
  expect(replacement).toBeDefined();
  await expect(storage.putCard(replacement!.id, input(0), {})).resolves.toMatchObject({ kind: 'created' });
  const before = storedRows(replacement!.id);
  await removal;
  expect(before.cards).toBe(1);
  expect(storedRows(replacement!.id)).toEqual(before);
  await expect(storage.getBook(user.id, 'contacts')).resolves.toMatchObject({ id: replacement!.id });
});

test('half-done removal finishes later', async () => {
  const user = await storage.createUser('alice', null);
  const bookId = await filledBook(user.id, 'contacts', CARDS);
  // A process stopped after it had marked the book and deleted one batch of its cards.
  await stopMidway(bookId, 1000);

  storage = new SqliteStorage(file);
  await expect(storage.getBook(user.id, 'contacts')).resolves.toBeUndefined();
  expect(storedRows(bookId).cards).toBe(CARDS - 1000);
  await expect(storage.finishRemovals()).resolves.toBe(1);
  expect(storedRows(bookId)).toEqual({ cards: 0, properties: 0, books: 0 });
  await expect(storage.finishRemovals()).resolves.toBe(0);
});

test('user removal removes large books', async () => {
  const user = await storage.createUser('alice', null);
  const bookId = await filledBook(user.id, 'contacts', CARDS);
  await expect(storage.removeUser('alice')).resolves.toBe(true);
  expect(storedRows(bookId)).toEqual({ cards: 0, properties: 0, books: 0 });
  await expect(storage.getUser('alice')).resolves.toBeUndefined();
});

test('server finishes removals at start', async () => {
  const user = await storage.createUser('alice', null);
  const bookId = await filledBook(user.id, 'contacts', CARDS);
  await stopMidway(bookId, 0);

  // The last --data wins, so the server opens this folder instead of the helper's empty one.
  const server = await startServer({ args: ['--data', dir] });
  try {
    const deadline = Date.now() + 20_000;
    while (!server.output().includes('finished removing address books') && Date.now() < deadline) await delay(50);
    expect(server.output()).toContain('"books":1');
    expect(storedRows(bookId)).toEqual({ cards: 0, properties: 0, books: 0 });
  } finally {
    await server.stop();
  }
  storage = new SqliteStorage(file);
});

test('writes naming removed rows do nothing', async () => {
  const alice = await storage.createUser('alice', null);
  const bob = await storage.createUser('bob', null);
  const bookId = await filledBook(alice.id, 'contacts', 1);
  const group = await storage.createGroup('team');
  await storage.removeUser('bob');

  await expect(storage.createBook(bob.id, 'late', 'Late')).resolves.toBeUndefined();
  await storage.grant(bookId, { kind: 'user', id: bob.id }, 'read', 'shared');
  await expect(storage.listGrants(bookId)).resolves.toEqual([]);
  await expect(storage.addGroupMembers(group!.id, [bob.id, alice.id])).resolves.toBe(1);
  await expect(storage.listGroupMembers(group!.id)).resolves.toMatchObject([{ name: 'alice' }]);

  await storage.deleteBook(bookId);
  await expect(storage.updateBook(bookId, { properties: new Map([['{urn:x-test}color', 'red']]) })).resolves.toBeUndefined();
  await storage.grant(bookId, { kind: 'everyone' }, 'read', 'shared');
  await expect(storage.listGrants(bookId)).resolves.toEqual([]);
});
