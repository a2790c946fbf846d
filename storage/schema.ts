import type Database from 'better-sqlite3';
import { CARD_INDEX_SCHEMA, LINK_INDEX_WHERE, rebuildCardIndex } from './cardindex';
import { storedSegment } from './segment';
import { xmlText } from '../vcard/xmltext';

/** A migration step: SQL to run, or a function for a step that needs code (reading card bodies). */
type Migration = string | ((db: Database.Database) => void);

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many
 * ran. Append new steps and never edit an applied one.
 */
const MIGRATIONS: Migration[] = [
  `
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE books (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    sync_seq INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    UNIQUE (owner_id, slug)
  );
  CREATE TABLE cards (
    id INTEGER PRIMARY KEY,
    book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    modified_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    UNIQUE (book_id, name),
    UNIQUE (book_id, uid)
  );
  CREATE INDEX cards_by_seq ON cards (book_id, seq);
  -- Removed cards, kept so that sync-collection can report them to any older token.
  CREATE TABLE tombstones (
    book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (book_id, name)
  );
  CREATE INDEX tombstones_by_seq ON tombstones (book_id, seq);
  -- Property values of each card, so queries need not parse stored cards.
  CREATE TABLE card_props (
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL
  );
  CREATE INDEX card_props_by_card ON card_props (card_id);
  CREATE INDEX card_props_by_value ON card_props (name, value);
  -- Dead properties that clients set with PROPPATCH, as XML fragments.
  CREATE TABLE book_props (
    book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (book_id, name)
  );
  `,
  `
  -- Groups of users, made locally or mirrored from a directory.
  CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL DEFAULT 'local'
  );
  CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
  );
  CREATE INDEX group_members_by_user ON group_members (user_id);
  -- Access to a book for someone other than its owner. grantee_id is a user id, a group id, or 0 for everyone.
  -- mount is the URL segment under the grantee's address book home.
  CREATE TABLE grants (
    book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    grantee_kind TEXT NOT NULL CHECK (grantee_kind IN ('user', 'group', 'everyone')),
    grantee_id INTEGER NOT NULL,
    access TEXT NOT NULL CHECK (access IN ('read', 'write')),
    mount TEXT NOT NULL,
    PRIMARY KEY (book_id, grantee_kind, grantee_id)
  );
  CREATE INDEX grants_by_grantee ON grants (grantee_kind, grantee_id);
  `,
  `
  -- Users created by a directory login, keyed by the directory entry's stable identifier (entryUUID by default),
  -- so a user keeps one principal whichever login alias they use. active is 0 while the entry is missing from the directory.
  CREATE TABLE directory_accounts (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    directory_id TEXT NOT NULL UNIQUE,
    active INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
  );
  `,
  // The query index with groups, parameters and folded values, filled from the stored cards.
  (db) => {
    db.exec(CARD_INDEX_SCHEMA);
    rebuildCardIndex(db);
  },
  `
  -- Listings and sync reports read every column of CardMeta for each card of a book in id or seq order.
  -- With those columns in the index, they read the index alone and not the rows with the card bodies.
  DROP INDEX cards_by_book;
  CREATE INDEX cards_by_book ON cards (book_id, id, name, uid, etag, size, modified_at, seq);
  DROP INDEX cards_by_seq;
  CREATE INDEX cards_by_seq ON cards (book_id, seq, id, name, uid, etag, size, modified_at);
  `,
  // Every index row on values lands on a random page. An index over all of card_props made bulk
  // uploads three times slower, so queries probe card_props_by_card per card instead. Only the
  // properties that link CRM cards, which few cards carry, keep an index for lookups across books.
  `
  DROP INDEX card_props_by_folded;
  CREATE INDEX card_props_linked ON card_props (name, value) WHERE ${LINK_INDEX_WHERE};
  `,
  // The XML form of each card body (see xmlText), which reports with address data copy into responses.
  (db) => {
    db.exec('ALTER TABLE cards ADD COLUMN xml BLOB');
    const pageSize = 500;
    const page = db.prepare(`SELECT id, data FROM cards WHERE id > ? ORDER BY id LIMIT ${pageSize}`).raw();
    const update = db.prepare('UPDATE cards SET xml = ? WHERE id = ?');
    // better-sqlite3 runs no statement while another one iterates, so the cards are read a page at a time.
    for (let afterId = 0; ; ) {
      const rows = page.all(afterId) as [number, Buffer][];
      for (const [id, data] of rows) update.run(xmlText(data), id);
      if (rows.length < pageSize) break;
      afterId = rows[rows.length - 1][0];
    }
  },
  `
  -- A book whose cards are being deleted in batches. Lookups skip it, and its slug gets a suffix that no
  -- client-chosen slug can have, so a new book can take the old name at once.
  ALTER TABLE books ADD COLUMN removing INTEGER NOT NULL DEFAULT 0;
  `,
  // The name of each card and removal as a URL path segment, NULL where it is the name itself, so that
  // renderChanges can write hrefs in SQL. The change log's indexes carry it to stay covering.
  (db) => {
    db.exec(`
      ALTER TABLE cards ADD COLUMN segment TEXT;
      ALTER TABLE tombstones ADD COLUMN segment TEXT;
      DROP INDEX cards_by_seq;
      CREATE INDEX cards_by_seq ON cards (book_id, seq, id, name, uid, etag, size, modified_at, segment);
      DROP INDEX tombstones_by_seq;
      CREATE INDEX tombstones_by_seq ON tombstones (book_id, seq, name, segment);
    `);
    // The function exists on this connection only, so no index or view may use it.
    db.function('stored_segment', { deterministic: true }, (name) => storedSegment(String(name)));
    // Only the rows whose segment differs from their name are written, and the subquery finds them in an index.
    db.exec(`
      UPDATE cards SET segment = stored_segment(name)
      WHERE id IN (SELECT id FROM cards INDEXED BY cards_by_book WHERE stored_segment(name) IS NOT NULL);
      UPDATE tombstones SET segment = stored_segment(name) WHERE stored_segment(name) IS NOT NULL;
    `);
  },
  `
  -- The change log's index keeps only what changesSince and renderChanges read: no card id and no UID.
  -- Its rows are about a third shorter. Right after 1,000 PUTs at N = 100,000, the statement of a sync of
  -- those 1,000 changes took 0.51 to 0.53 ms instead of 0.56 to 0.60 ms (2-core machine, two runs each).
  DROP INDEX cards_by_seq;
  CREATE INDEX cards_by_seq ON cards (book_id, seq, size, modified_at, etag, name, segment);
  `,
];

export function migrate(db: Database.Database): void {
  const apply = db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let step = version; step < MIGRATIONS.length; step++) {
      const migration = MIGRATIONS[step];
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
    }
    if (version < MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
  });
  apply.immediate();
}
