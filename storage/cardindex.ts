import type Database from 'better-sqlite3';
import { foldUnicodeCasemap } from '../vcard/collation';
import { readCardProperties } from '../vcard/properties';
import type { IndexedProperty } from './types';

/**
 * The query index: one card_props row per content line of a card, and one
 * card_params row per parameter value. `folded` contains the i;unicode-casemap
 * form; the other collations compare `value` directly. A later migration
 * replaces card_props_by_folded, created here, with card_props_linked.
 */
export const CARD_INDEX_SCHEMA = `
  DROP TABLE card_props;
  CREATE TABLE card_props (
    id INTEGER PRIMARY KEY,
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    prop_group TEXT,
    name TEXT NOT NULL,
    -- NULL for properties whose values are not indexed (PHOTO, LOGO, SOUND, KEY).
    value TEXT,
    folded TEXT
  );
  CREATE INDEX card_props_by_card ON card_props (card_id, name);
  CREATE INDEX card_props_by_folded ON card_props (name, folded);
  CREATE TABLE card_params (
    prop_id INTEGER NOT NULL REFERENCES card_props (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Position among the property's parameter values, so repeated values stay distinct rows.
    seq INTEGER NOT NULL,
    value TEXT NOT NULL,
    folded TEXT NOT NULL,
    PRIMARY KEY (prop_id, name, seq)
  ) WITHOUT ROWID;
  CREATE INDEX cards_by_book ON cards (book_id, id);
`;

/**
 * Properties that link CRM cards to each other, in the order of card_props_linked's condition.
 * The migration that creates the index stores the condition, so a change here needs a new migration.
 */
export const LINKED_PROPERTIES: readonly string[] = [
  'KIND',
  'X-ADDRESSBOOKSERVER-KIND',
  'X-CRM-ACCOUNT',
  'X-CRM-CASE',
  'X-CRM-LEAD-STATE',
  'X-CRM-LEAD-SOURCE',
];

/**
 * The condition of the partial index card_props_linked. SQLite uses this partial index only for
 * a query that repeats its condition, so lookups add this same text.
 */
export const LINK_INDEX_WHERE = `name IN (${LINKED_PROPERTIES.map((name) => `'${name}'`).join(', ')})`;

/** Inserts the index rows of one card; the caller removes old rows and owns the transaction. */
export class CardIndexWriter {
  private readonly insertProp: Database.Statement;
  private readonly insertParam: Database.Statement;

  constructor(db: Database.Database) {
    this.insertProp = db.prepare(
      'INSERT INTO card_props (card_id, prop_group, name, value, folded) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertParam = db.prepare('INSERT INTO card_params (prop_id, name, seq, value, folded) VALUES (?, ?, ?, ?, ?)');
  }

  write(cardId: number, properties: IndexedProperty[]): void {
    for (const property of properties) {
      const folded = property.value === undefined ? null : foldUnicodeCasemap(property.value);
      // The id comes from run() because RETURNING was slower: 1.07 s against 0.69 s for 5,000 cards
      // of 20 properties with one parameter each, in a script on an in-memory database.
      const propId = this.insertProp.run(cardId, property.group ?? null, property.name, property.value ?? null, folded).lastInsertRowid;
      property.params.forEach((param, seq) => {
        this.insertParam.run(propId, param.name, seq, param.value, foldUnicodeCasemap(param.value));
      });
    }
  }
}

/** Cards read per round trip while the index is rebuilt. */
const REBUILD_PAGE = 500;

/** Fills the index from the stored card bodies, for databases written before it existed. */
export function rebuildCardIndex(db: Database.Database): void {
  const writer = new CardIndexWriter(db);
  const page = db.prepare('SELECT id, data FROM cards WHERE id > ? ORDER BY id LIMIT ?');
  let afterId = 0;
  for (;;) {
    const rows = page.all(afterId, REBUILD_PAGE) as { id: number; data: Buffer }[];
    for (const row of rows) writer.write(row.id, readCardProperties(row.data));
    if (rows.length < REBUILD_PAGE) return;
    afterId = rows[rows.length - 1].id;
  }
}
