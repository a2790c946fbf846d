import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  Access,
  AddressBook,
  BookChanges,
  Card,
  CardInput,
  CardMeta,
  Change,
  ChangePage,
  DeleteResult,
  PutCondition,
  PutResult,
  Storage,
  User,
  Grantee,
  VisibleBook,
} from './types';
import { migrate } from './schema';

type Row = Record<string, unknown>;

const CARD_META_COLUMNS = 'id, book_id, name, uid, etag, size, modified_at, seq';
/** SQLite allows 32,766 bound parameters; batches stay well below that. */
const IN_BATCH = 500;

function toUser(row: Row): User {
  return {
    id: row.id as number,
    name: row.name as string,
    passwordHash: (row.password_hash as string | null) ?? null,
    createdAt: row.created_at as number,
  };
}

function toBook(row: Row): AddressBook {
  return {
    id: row.id as number,
    uuid: row.uuid as string,
    ownerId: row.owner_id as number,
    slug: row.slug as string,
    displayName: row.display_name as string,
    description: row.description as string,
    syncSeq: row.sync_seq as number,
    createdAt: row.created_at as number,
    modifiedAt: row.modified_at as number,
  };
}

function toCardMeta(row: Row): CardMeta {
  return {
    id: row.id as number,
    bookId: row.book_id as number,
    name: row.name as string,
    uid: row.uid as string,
    etag: row.etag as string,
    size: row.size as number,
    modifiedAt: row.modified_at as number,
    seq: row.seq as number,
  };
}

function toCard(row: Row): Card {
  return { ...toCardMeta(row), data: row.data as Buffer };
}

function etagMatches(current: string | undefined, tags: string[]): boolean {
  if (current === undefined) return false;
  return tags.some((tag) => tag === '*' || tag === current);
}

export interface SqliteOptions {
  /** SQLite `synchronous` pragma: NORMAL survives a killed process, FULL also a power loss. */
  synchronous?: 'NORMAL' | 'FULL';
}

/**
 * The embedded backend: one SQLite file in WAL mode. Several processes (the
 * server and the command line) may open the same file; every write runs in an
 * IMMEDIATE transaction, and `busy_timeout` makes a second writer wait.
 */
export class SqliteStorage implements Storage {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(file: string, options: SqliteOptions = {}) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`);
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 10000');
    migrate(this.db);
  }

  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async createUser(name: string, passwordHash: string | null): Promise<User> {
    const row = this.stmt(
      'INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?) RETURNING *',
    ).get(name, passwordHash, Date.now()) as Row;
    return toUser(row);
  }

  async getUser(name: string): Promise<User | undefined> {
    const row = this.stmt('SELECT * FROM users WHERE name = ?').get(name) as Row | undefined;
    return row && toUser(row);
  }

  async getUserById(id: number): Promise<User | undefined> {
    const row = this.stmt('SELECT * FROM users WHERE id = ?').get(id) as Row | undefined;
    return row && toUser(row);
  }

  async listUsers(): Promise<User[]> {
    return (this.stmt('SELECT * FROM users ORDER BY name').all() as Row[]).map(toUser);
  }

  async setPassword(name: string, passwordHash: string): Promise<boolean> {
    return this.stmt('UPDATE users SET password_hash = ? WHERE name = ?').run(passwordHash, name).changes > 0;
  }

  async removeUser(name: string): Promise<boolean> {
    return this.stmt('DELETE FROM users WHERE name = ?').run(name).changes > 0;
  }

  async createBook(ownerId: number, slug: string, displayName: string, description = ''): Promise<AddressBook | undefined> {
    const now = Date.now();
    const row = this.stmt(
      `INSERT INTO books (uuid, owner_id, slug, display_name, description, sync_seq, created_at, modified_at)
       VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (owner_id, slug) DO NOTHING RETURNING *`,
    ).get(randomUUID(), ownerId, slug, displayName, description, now, now) as Row | undefined;
    return row && toBook(row);
  }

  async getBook(ownerId: number, slug: string): Promise<AddressBook | undefined> {
    const row = this.stmt('SELECT * FROM books WHERE owner_id = ? AND slug = ?').get(ownerId, slug) as Row | undefined;
    return row && toBook(row);
  }

  async listBooks(ownerId: number): Promise<AddressBook[]> {
    return (this.stmt('SELECT * FROM books WHERE owner_id = ? ORDER BY id').all(ownerId) as Row[]).map(toBook);
  }

  async updateBook(bookId: number, changes: BookChanges): Promise<void> {
    this.write(() => {
      for (const [name, value] of changes.properties ?? []) {
        if (value === null) this.stmt('DELETE FROM book_props WHERE book_id = ? AND name = ?').run(bookId, name);
        else {
          this.stmt(
            'INSERT INTO book_props (book_id, name, value) VALUES (?, ?, ?) ON CONFLICT (book_id, name) DO UPDATE SET value = excluded.value',
          ).run(bookId, name, value);
        }
      }
      if (changes.displayName !== undefined) {
        this.stmt('UPDATE books SET display_name = ? WHERE id = ?').run(changes.displayName, bookId);
      }
      if (changes.description !== undefined) {
        this.stmt('UPDATE books SET description = ? WHERE id = ?').run(changes.description, bookId);
      }
      this.stmt('UPDATE books SET modified_at = ? WHERE id = ?').run(Date.now(), bookId);
    });
  }

  async getBookProperties(bookId: number): Promise<Map<string, string>> {
    const rows = this.stmt('SELECT name, value FROM book_props WHERE book_id = ?').all(bookId) as Row[];
    return new Map(rows.map((row) => [row.name as string, row.value as string]));
  }

  async deleteBook(bookId: number): Promise<void> {
    this.stmt('DELETE FROM books WHERE id = ?').run(bookId);
  }

  async listVisibleBooks(userId: number): Promise<VisibleBook[]> {
    const rows = this.stmt(
      `SELECT b.*, 'owner' AS access, b.slug AS mount, 0 AS rank FROM books b WHERE b.owner_id = ?
       UNION ALL
       SELECT b.*, g.access, g.mount, 1 AS rank FROM grants g JOIN books b ON b.id = g.book_id
       WHERE b.owner_id <> ? AND (g.grantee_kind = 'everyone'
         OR (g.grantee_kind = 'user' AND g.grantee_id = ?)
         OR (g.grantee_kind = 'group' AND g.grantee_id IN (SELECT group_id FROM group_members WHERE user_id = ?)))
       ORDER BY rank, id`,
    ).all(userId, userId, userId, userId) as Row[];
    const byBook = new Map<number, VisibleBook>();
    const mounts = new Set<string>();
    for (const row of rows) {
      const book = toBook(row);
      const access = row.access as Access;
      const seen = byBook.get(book.id);
      if (seen) {
        if (access === 'write') seen.access = seen.access === 'owner' ? 'owner' : 'write';
        continue;
      }
      const mount = row.mount as string;
      if (mounts.has(mount)) continue;
      mounts.add(mount);
      const owner = this.stmt('SELECT * FROM users WHERE id = ?').get(book.ownerId) as Row;
      byBook.set(book.id, { book, owner: toUser(owner), access, mount });
    }
    return [...byBook.values()];
  }

  async findVisibleBook(userId: number, mount: string): Promise<VisibleBook | undefined> {
    const own = await this.getBook(userId, mount);
    if (own) {
      const owner = (await this.getUserById(userId)) as User;
      return { book: own, owner, access: 'owner', mount };
    }
    return (await this.listVisibleBooks(userId)).find((visible) => visible.mount === mount);
  }

  async grant(bookId: number, grantee: Grantee, access: 'read' | 'write', mount: string): Promise<void> {
    const granteeId = grantee.kind === 'everyone' ? 0 : grantee.id;
    this.stmt(
      `INSERT INTO grants (book_id, grantee_kind, grantee_id, access, mount) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (book_id, grantee_kind, grantee_id) DO UPDATE SET access = excluded.access, mount = excluded.mount`,
    ).run(bookId, grantee.kind, granteeId, access, mount);
  }

  async revoke(bookId: number, grantee: Grantee): Promise<boolean> {
    const granteeId = grantee.kind === 'everyone' ? 0 : grantee.id;
    return this.stmt('DELETE FROM grants WHERE book_id = ? AND grantee_kind = ? AND grantee_id = ?').run(bookId, grantee.kind, granteeId).changes > 0;
  }

  async getCard(bookId: number, name: string): Promise<Card | undefined> {
    const row = this.stmt(`SELECT ${CARD_META_COLUMNS}, data FROM cards WHERE book_id = ? AND name = ?`).get(bookId, name) as
      | Row
      | undefined;
    return row && toCard(row);
  }

  async getCardMeta(bookId: number, name: string): Promise<CardMeta | undefined> {
    const row = this.stmt(`SELECT ${CARD_META_COLUMNS} FROM cards WHERE book_id = ? AND name = ?`).get(bookId, name) as
      | Row
      | undefined;
    return row && toCardMeta(row);
  }

  async getCards(bookId: number, names: string[]): Promise<Card[]> {
    const cards: Card[] = [];
    for (let start = 0; start < names.length; start += IN_BATCH) {
      const batch = names.slice(start, start + IN_BATCH);
      const placeholders = batch.map(() => '?').join(',');
      const rows = this.db
        .prepare(`SELECT ${CARD_META_COLUMNS}, data FROM cards WHERE book_id = ? AND name IN (${placeholders})`)
        .all(bookId, ...batch) as Row[];
      for (const row of rows) cards.push(toCard(row));
    }
    return cards;
  }

  async listCardMeta(bookId: number, afterId: number, limit: number): Promise<CardMeta[]> {
    const rows = this.stmt(
      `SELECT ${CARD_META_COLUMNS} FROM cards WHERE book_id = ? AND id > ? ORDER BY id LIMIT ?`,
    ).all(bookId, afterId, limit) as Row[];
    return rows.map(toCardMeta);
  }

  async listCards(bookId: number, afterId: number, limit: number): Promise<Card[]> {
    const rows = this.stmt(
      `SELECT ${CARD_META_COLUMNS}, data FROM cards WHERE book_id = ? AND id > ? ORDER BY id LIMIT ?`,
    ).all(bookId, afterId, limit) as Row[];
    return rows.map(toCard);
  }

  async countCards(bookId: number): Promise<number> {
    return (this.stmt('SELECT count(*) AS n FROM cards WHERE book_id = ?').get(bookId) as Row).n as number;
  }

  private bumpSeq(bookId: number): number {
    const row = this.stmt('UPDATE books SET sync_seq = sync_seq + 1, modified_at = ? WHERE id = ? RETURNING sync_seq').get(
      Date.now(),
      bookId,
    ) as Row | undefined;
    if (!row) throw new Error(`address book ${bookId} not found`);
    return row.sync_seq as number;
  }

  async putCard(bookId: number, input: CardInput, condition: PutCondition): Promise<PutResult> {
    return this.write((): PutResult => {
      if (!this.stmt('SELECT 1 FROM books WHERE id = ?').get(bookId)) return { kind: 'book-missing' };
      const existing = this.stmt('SELECT id, etag FROM cards WHERE book_id = ? AND name = ?').get(bookId, input.name) as
        | Row
        | undefined;
      const currentEtag = existing?.etag as string | undefined;
      if (condition.ifMatch && !etagMatches(currentEtag, condition.ifMatch)) return { kind: 'precondition-failed' };
      if (condition.ifNoneMatchAny && existing) return { kind: 'precondition-failed' };
      if (condition.ifNoneMatch && etagMatches(currentEtag, condition.ifNoneMatch)) return { kind: 'precondition-failed' };

      const sameUid = this.stmt('SELECT name FROM cards WHERE book_id = ? AND uid = ? AND name <> ?').get(
        bookId,
        input.uid,
        input.name,
      ) as Row | undefined;
      if (sameUid) return { kind: 'uid-conflict', existingName: sameUid.name as string };

      const seq = this.bumpSeq(bookId);
      const now = Date.now();
      let cardId: number;
      if (existing) {
        cardId = existing.id as number;
        this.stmt('UPDATE cards SET uid = ?, etag = ?, size = ?, data = ?, modified_at = ?, seq = ? WHERE id = ?').run(
          input.uid,
          input.etag,
          input.data.length,
          input.data,
          now,
          seq,
          cardId,
        );
        this.stmt('DELETE FROM card_props WHERE card_id = ?').run(cardId);
      } else {
        const inserted = this.stmt(
          `INSERT INTO cards (book_id, name, uid, etag, size, data, modified_at, seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
        ).get(bookId, input.name, input.uid, input.etag, input.data.length, input.data, now, seq) as Row;
        cardId = inserted.id as number;
        this.stmt('DELETE FROM tombstones WHERE book_id = ? AND name = ?').run(bookId, input.name);
      }
      const insertProp = this.stmt('INSERT INTO card_props (card_id, name, value) VALUES (?, ?, ?)');
      for (const prop of input.properties) insertProp.run(cardId, prop.name, prop.value);
      const card: CardMeta = {
        id: cardId,
        bookId,
        name: input.name,
        uid: input.uid,
        etag: input.etag,
        size: input.data.length,
        modifiedAt: now,
        seq,
      };
      return { kind: existing ? 'replaced' : 'created', card };
    });
  }

  async deleteCard(bookId: number, name: string, ifMatch?: string[]): Promise<DeleteResult> {
    return this.write((): DeleteResult => {
      const existing = this.stmt('SELECT id, etag FROM cards WHERE book_id = ? AND name = ?').get(bookId, name) as
        | Row
        | undefined;
      if (!existing) return ifMatch ? 'precondition-failed' : 'not-found';
      if (ifMatch && !etagMatches(existing.etag as string, ifMatch)) return 'precondition-failed';
      const seq = this.bumpSeq(bookId);
      this.stmt('DELETE FROM cards WHERE id = ?').run(existing.id);
      this.stmt(
        'INSERT INTO tombstones (book_id, name, seq) VALUES (?, ?, ?) ON CONFLICT (book_id, name) DO UPDATE SET seq = excluded.seq',
      ).run(bookId, name, seq);
      return 'deleted';
    });
  }

  async changesSince(bookId: number, sinceSeq: number, limit: number): Promise<ChangePage> {
    // Reads run in one transaction so the sequence number and the rows agree.
    return this.db.transaction((): ChangePage => {
      const book = this.stmt('SELECT sync_seq FROM books WHERE id = ?').get(bookId) as Row | undefined;
      const currentSeq = (book?.sync_seq as number) ?? 0;
      const rows =
        sinceSeq === 0
          ? (this.stmt(
              `SELECT ${CARD_META_COLUMNS} FROM cards WHERE book_id = ? ORDER BY seq LIMIT ?`,
            ).all(bookId, limit + 1) as Row[])
          : (this.stmt(
              `SELECT ${CARD_META_COLUMNS} FROM cards WHERE book_id = ? AND seq > ?
               UNION ALL
               SELECT NULL, book_id, name, NULL, NULL, NULL, NULL, seq FROM tombstones WHERE book_id = ? AND seq > ?
               ORDER BY seq LIMIT ?`,
            ).all(bookId, sinceSeq, bookId, sinceSeq, limit + 1) as Row[]);
      const truncated = rows.length > limit;
      const page = truncated ? rows.slice(0, limit) : rows;
      const changes: Change[] = page.map((row) => ({
        name: row.name as string,
        seq: row.seq as number,
        card: row.id === null ? undefined : toCardMeta(row),
      }));
      const seq = truncated ? changes[changes.length - 1].seq : currentSeq;
      return { changes, seq, truncated };
    })();
  }
}
