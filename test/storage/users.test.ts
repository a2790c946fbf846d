/**
 * Creating a user with their first address book: both are written in one
 * transaction, so a failure leaves neither.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';

let dir: string;
let storage: SqliteStorage;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-users-'));
  storage = new SqliteStorage(join(dir, 'cardinal.sqlite3'));
});

afterEach(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

test('user gets the first book', async () => {
  const user = await storage.createUser('dana', null, { slug: 'contacts', displayName: 'Contacts' });
  await expect(storage.getBook(user.id, 'contacts')).resolves.toMatchObject({ slug: 'contacts', displayName: 'Contacts' });
});

test('taken name adds no book', async () => {
  const user = await storage.createUser('dana', null, { slug: 'contacts', displayName: 'Contacts' });
  await expect(storage.createUser('dana', null, { slug: 'other', displayName: 'Other' })).rejects.toThrow('user dana already exists');
  expect((await storage.listBooks(user.id)).map((book) => book.slug)).toEqual(['contacts']);
});

test('failed book leaves no user', async () => {
  // A display name of NULL breaks the book's NOT NULL constraint after the user row was written.
  const broken = { slug: 'contacts', displayName: null as unknown as string };
  // The error is read by its code: after another test file loaded better-sqlite3, its errors belong to that
  // file's module copy and are no Error of this one, which rejects.toThrow requires.
  const error = await storage.createUser('erin', null, broken).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect((error as { code?: string } | undefined)?.code).toBe('SQLITE_CONSTRAINT_NOTNULL');
  await expect(storage.getUser('erin')).resolves.toBeUndefined();
});
