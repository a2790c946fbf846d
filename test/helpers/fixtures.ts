import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';
import type { CardInput } from '../../storage/types';
import { prepareCard } from '../../vcard/pipeline';
import type { TestApp } from './app';
import { person } from './dav';

/**
 * Stores `count` valid cards named `card-0.vcf`, `card-1.vcf`, ... directly
 * through storage, which is faster than one PUT each. The cards go through
 * the same vCard pipeline as a PUT.
 */
export async function storeCards(app: TestApp, userName: string, slug: string, count: number): Promise<string[]> {
  const user = await app.storage.getUser(userName);
  if (!user) throw new Error(`user ${userName} not found`);
  const book = await app.storage.getBook(user.id, slug);
  if (!book) throw new Error(`address book ${slug} of ${userName} not found`);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `card-${i}.vcf`;
    const prepared = prepareCard(Buffer.from(person(`a1000000-0000-4000-8000-${String(i).padStart(12, '0')}`, `Person Number${i}`)));
    if (!prepared.ok) throw new Error(prepared.message);
    const { uid, etag, data, properties } = prepared;
    const result = await app.storage.putCard(book.id, { name, uid, etag, data, properties }, {});
    if (result.kind !== 'created') throw new Error(`storing ${name} failed: ${result.kind}`);
    names.push(name);
  }
  return names;
}

/** A SQLite storage in a temporary folder, with the user alice and her book `contacts`. */
export interface BookStorage {
  dir: string;
  storage: SqliteStorage;
  userId: number;
  bookId: number;
  /** Closes the storage and removes the folder. */
  close(): Promise<void>;
}

export async function openBookStorage(prefix: string): Promise<BookStorage> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const storage = new SqliteStorage(join(dir, 'cardinal.sqlite3'));
  const user = await storage.createUser('alice', null);
  const book = await storage.createBook(user.id, 'contacts', 'Contacts');
  if (!book) throw new Error('book not created');
  return {
    dir,
    storage,
    userId: user.id,
    bookId: book.id,
    close: async () => {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Prepares a card for storage calls as a PUT would, named `name`. */
export function cardInput(name: string, text: string): CardInput {
  const prepared = prepareCard(Buffer.from(text));
  if (!prepared.ok) throw new Error(prepared.message);
  return { name, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties };
}

/** SQL that takes a store back to the schema before the migration that added the cards' path segments. */
export const DROP_SEGMENTS_SQL = `
  DROP INDEX cards_by_seq;
  DROP INDEX tombstones_by_seq;
  ALTER TABLE cards DROP COLUMN segment;
  ALTER TABLE tombstones DROP COLUMN segment;
  CREATE INDEX cards_by_seq ON cards (book_id, seq, id, name, uid, etag, size, modified_at);
  CREATE INDEX tombstones_by_seq ON tombstones (book_id, seq);
`;
