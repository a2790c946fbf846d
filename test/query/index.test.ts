/**
 * The SQL translation of filters against the in-memory evaluator, which is
 * the reference: random filters over generated cards must select the same
 * cards both ways. Also checks which indexes SQLite uses, and the rebuild of
 * the index from stored cards.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CardSet, Random } from '../../bench/cards';
import { rebuildCardIndex } from '../../storage/cardindex';
import { SqliteStorage } from '../../storage/sqlite';
import type { CardFilter, Collation, IndexedProperty, MatchType, PropFilter, TextMatch } from '../../storage/types';
import { cardMatches } from '../../vcard/match';
import { prepareCard } from '../../vcard/pipeline';
import { readCardProperties } from '../../vcard/properties';

const COLLATIONS: Collation[] = ['i;unicode-casemap', 'i;ascii-casemap', 'i;octet'];
const MATCH_TYPES: MatchType[] = ['equals', 'contains', 'starts-with', 'ends-with'];
const NAMES = ['FN', 'N', 'EMAIL', 'TEL', 'ADR', 'ORG', 'NICKNAME', 'CATEGORIES', 'X-ABLABEL', 'NOTE', 'KIND', 'TITLE', 'URL', 'BDAY'];

interface StoredCard {
  id: number;
  properties: IndexedProperty[];
}

let dir: string;
let storage: SqliteStorage;
let bookId: number;
let stored: StoredCard[];

async function storeCards(texts: string[]): Promise<StoredCard[]> {
  const result: StoredCard[] = [];
  for (const [index, text] of texts.entries()) {
    const prepared = prepareCard(Buffer.from(text));
    if (!prepared.ok) throw new Error(`card ${index} rejected: ${prepared.message}`);
    const put = await storage.putCard(
      bookId,
      { name: `c${index}.vcf`, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties },
      {},
    );
    if (put.kind !== 'created') throw new Error(`card ${index} not created: ${put.kind}`);
    result.push({ id: put.card.id, properties: readCardProperties(prepared.data) });
  }
  return result;
}

/** Mixed-case and other-script variants of the generated texts, so folding differences show. */
const EXTRA_CARDS = [
  ['BEGIN:VCARD', 'VERSION:4.0', 'UID:x1', 'FN:STRASSE Straße ǅemal', 'N:ǅEMAL;ǆ;;;', 'EMAIL;TYPE=HOME,pref:Mixed@Example.COM', 'END:VCARD'],
  ['BEGIN:VCARD', 'VERSION:3.0', 'UID:x2', 'FN:İstanbul ıi', 'item1.TEL;type=CELL;type=pref:+90', 'item1.X-ABLabel:Mobile', 'END:VCARD'],
  ['BEGIN:VCARD', 'VERSION:3.0', 'UID:x3', 'FN:ΣΟΦΊΑ ΌΣΟΣ', 'NOTE:ﬁne ligature and Ｆｕｌｌ width', 'END:VCARD'],
].map((lines) => lines.join('\r\n') + '\r\n');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-index-'));
  storage = new SqliteStorage(join(dir, 'index.sqlite3'));
  const user = await storage.createUser('indexer', null);
  bookId = (await storage.createBook(user.id, 'book', 'Book'))!.id;
  // A second book whose cards must never appear in the first one's results.
  const other = (await storage.createBook(user.id, 'other', 'Other'))!.id;
  const cards = new CardSet(300, 7).cards.map((c) => c.text);
  stored = await storeCards([...cards.slice(0, 250), ...EXTRA_CARDS]);
  const otherPrepared = prepareCard(Buffer.from(cards[250]));
  if (!otherPrepared.ok) throw new Error('card rejected');
  await storage.putCard(other, { name: 'o.vcf', uid: otherPrepared.uid, etag: otherPrepared.etag, data: otherPrepared.data, properties: otherPrepared.properties }, {});
});

afterAll(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Picks a needle from real values, changed in case or cut, or sometimes one that matches nothing. */
function needle(random: Random, name: string): string {
  const values = stored.flatMap((card) => card.properties.filter((p) => p.name === name && p.value !== undefined).map((p) => p.value!));
  if (values.length === 0 || random.chance(0.1)) return random.pick(['', 'zzz-none', 'Ü', 'σ']);
  const value = random.pick(values);
  const chars = [...value];
  const start = random.chance(0.5) ? 0 : random.int(0, Math.max(0, chars.length - 1));
  const end = random.chance(0.5) ? chars.length : random.int(start, chars.length);
  let text = chars.slice(start, end).join('');
  if (random.chance(0.3)) text = text.toUpperCase();
  else if (random.chance(0.3)) text = text.toLowerCase();
  return text;
}

function textMatch(random: Random, name: string): TextMatch {
  return { text: needle(random, name), matchType: random.pick(MATCH_TYPES), collation: random.pick(COLLATIONS), negate: random.chance(0.2) };
}

function propFilter(random: Random): PropFilter {
  const name = random.pick(NAMES);
  const filter: PropFilter = { name, allOf: random.chance(0.5), isNotDefined: false, textMatches: [], paramFilters: [] };
  if (random.chance(0.15)) filter.group = random.pick(['ITEM1', 'ITEM2']);
  if (random.chance(0.15)) return { ...filter, isNotDefined: true };
  for (let i = random.int(0, 2); i > 0; i--) filter.textMatches.push(textMatch(random, name));
  for (let i = random.int(0, 1); i > 0; i--) {
    const paramName = random.pick(['TYPE', 'PREF']);
    if (random.chance(0.2)) filter.paramFilters.push({ name: paramName, isNotDefined: true });
    else {
      const text = random.pick(['home', 'WORK', 'pref', 'cell', '1', 'INTERNET', 'voice', 'x']);
      const match: TextMatch = { text, matchType: random.pick(MATCH_TYPES), collation: random.pick(COLLATIONS), negate: random.chance(0.2) };
      filter.paramFilters.push({ name: paramName, isNotDefined: false, textMatch: random.chance(0.8) ? match : undefined });
    }
  }
  return filter;
}

async function sqlMatches(filter: CardFilter): Promise<number[]> {
  const ids: number[] = [];
  let afterId = 0;
  // A small page makes every query run over several pages.
  for (;;) {
    const page = await storage.queryCards(bookId, filter, afterId, 40);
    ids.push(...page.map((card) => card.id));
    if (page.length < 40) return ids;
    afterId = page[page.length - 1].id;
  }
}

describe('SQL filter translation', () => {
  test('agrees with the evaluator', async () => {
    const random = new Random(20240611);
    let nonEmpty = 0;
    for (let round = 0; round < 400; round++) {
      const filter: CardFilter = { allOf: random.chance(0.5), propFilters: [] };
      for (let i = random.int(1, 3); i > 0; i--) filter.propFilters.push(propFilter(random));
      const expected = stored.filter((card) => cardMatches(card.properties, filter)).map((card) => card.id);
      const actual = await sqlMatches(filter);
      if (expected.length > 0 && expected.length < stored.length) nonEmpty++;
      expect({ filter, ids: actual }).toEqual({ filter, ids: expected });
    }
    // The generator must produce selective filters, or the comparison proves little.
    expect(nonEmpty).toBeGreaterThan(150);
  });

  test('rejects text-match on PHOTO', async () => {
    const filter: CardFilter = {
      allOf: false,
      propFilters: [{ name: 'PHOTO', allOf: false, isNotDefined: false, textMatches: [{ text: 'a', matchType: 'contains', collation: 'i;octet', negate: false }], paramFilters: [] }],
    };
    await expect(storage.queryCards(bookId, filter, 0, 10)).rejects.toThrow(/PHOTO/);
  });
});

describe('query plans', () => {
  const single = (match: Partial<TextMatch>, name = 'EMAIL'): CardFilter => ({
    allOf: false,
    propFilters: [
      { name, allOf: false, isNotDefined: false, paramFilters: [], textMatches: [{ text: 'a@example.com', matchType: 'equals', collation: 'i;unicode-casemap', negate: false, ...match }] },
    ],
  });
  const plan = (filter: CardFilter) => storage.explainQuery(bookId, filter).join('\n');

  test.each([
    ['equals', {}],
    ['octet equals', { collation: 'i;octet' as const }],
    ['starts-with', { matchType: 'starts-with' as const }],
    ['contains', { matchType: 'contains' as const }],
  ])('%s probes each card of the book', (_label, match) => {
    const text = plan(single(match));
    expect(text).toMatch(/SEARCH c USING COVERING INDEX cards_by_book \(book_id=\? AND id>\?\)/);
    expect(text).toMatch(/card_props_by_card \(card_id=\? AND name=\?\)/);
    expect(text).not.toMatch(/SCAN p/);
  });

  test('linked CRM property uses partial index', () => {
    expect(storage.explainPropertyLookup('X-CRM-ACCOUNT', 'urn:uuid:1').join('\n')).toMatch(/card_props_linked \(name=\? AND value=\?\)/);
    expect(storage.explainPropertyLookup('KIND').join('\n')).toMatch(/card_props_linked \(name=\?\)/);
  });

  test('other properties probe each card', () => {
    const text = storage.explainPropertyLookup('NOTE', 'x').join('\n');
    expect(text).toMatch(/card_props_by_card \(card_id=\? AND name=\?\)/);
    expect(text).not.toMatch(/card_props_linked/);
  });
});

describe('index rebuild', () => {
  test('fills the index from stored cards', async () => {
    const filter: CardFilter = {
      allOf: false,
      propFilters: [{ name: 'FN', allOf: false, isNotDefined: false, paramFilters: [], textMatches: [{ text: 'straße', matchType: 'contains', collation: 'i;unicode-casemap', negate: false }] }],
    };
    const before = await sqlMatches(filter);
    expect(before).toHaveLength(1);
    const db = new Database(join(dir, 'index.sqlite3'));
    db.exec('DELETE FROM card_props');
    expect(db.prepare('SELECT count(*) AS n FROM card_params').get()).toEqual({ n: 0 });
    db.transaction(() => rebuildCardIndex(db))();
    db.close();
    expect(await sqlMatches(filter)).toEqual(before);
  });
});
