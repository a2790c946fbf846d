/**
 * The XML form that storage keeps beside each card body: what getCardXml
 * returns equals xmlText of the stored body, with the summary of the card,
 * for names with spaces, commas and characters outside ASCII. A store made
 * before the column existed gets it filled when it is opened. renderCards
 * writes the same XML form into a layout.
 */
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';
import { xmlText } from '../../vcard/xmltext';
import type { CardsLayout } from '../../storage/types';
import { cardInput, DROP_SEGMENTS_SQL, openBookStorage, type BookStorage } from '../helpers/fixtures';

let opened: BookStorage;

const NAMES = ['plain.vcf', 'with space.vcf', 'a,b,c.vcf', 'Zoë 日本.vcf', '1 2 3 4 5.vcf', '😀.vcf'];

function body(name: string, note: string): string {
  return `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${encodeURIComponent(name)}\r\nFN:Zoë <${name}>\r\nNOTE:${note}\r\nEND:VCARD\r\n`;
}

beforeEach(async () => {
  opened = await openBookStorage('cardinal-card-xml-');
  for (const [i, name] of NAMES.entries()) {
    const result = await opened.storage.putCard(opened.bookId, cardInput(name, body(name, `first & ${i}`)), {});
    if (result.kind !== 'created') throw new Error(`unexpected ${result.kind}`);
  }
});

afterEach(() => opened.close());

/**
 * Closes the test's store, changes its file with a plain SQLite connection,
 * as a tool other than Cardinal would, and opens it again. The test's
 * cleanup then closes the reopened store and removes its folder.
 */
async function changeOutside(change: (db: Database.Database) => void): Promise<SqliteStorage> {
  const { storage, dir } = opened;
  await storage.close();
  const file = join(dir, 'cardinal.sqlite3');
  const db = new Database(file);
  change(db);
  db.close();
  const reopened = new SqliteStorage(file);
  opened.close = async () => {
    await reopened.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return reopened;
}

async function expectXmlMatchesBodies(storage: SqliteStorage, bookId: number, names: string[]): Promise<void> {
  const cards = await storage.getCards(bookId, names);
  const xml = await storage.getCardXml(bookId, names);
  expect(xml.map((card) => card.name).sort()).toEqual(cards.map((card) => card.name).sort());
  for (const card of cards) {
    const found = xml.find((entry) => entry.name === card.name)!;
    expect(found).toEqual({ name: card.name, etag: card.etag, size: card.size, modifiedAt: card.modifiedAt, seq: card.seq, xml: xmlText(card.data) });
    expect(found.xml.toString()).toContain('&#13;\n');
    expect(found.xml.toString()).toContain('&lt;');
  }
}

test('getCardXml skips missing names', async () => {
  const { storage, bookId } = opened;
  await expectXmlMatchesBodies(storage, bookId, NAMES);
  const some = await storage.getCardXml(bookId, ['missing.vcf', NAMES[2], 'also missing.vcf']);
  expect(some.map((card) => card.name)).toEqual([NAMES[2]]);
  expect(await storage.getCardXml(bookId, [])).toEqual([]);
  expect(await storage.getCardXml(bookId, ['missing.vcf'])).toEqual([]);
});

test('replaced card gets a new XML form', async () => {
  const { storage, bookId } = opened;
  const result = await storage.putCard(bookId, cardInput(NAMES[3], body(NAMES[3], 'second > first')), {});
  expect(result.kind).toBe('replaced');
  const [card] = await storage.getCardXml(bookId, [NAMES[3]]);
  expect(card.xml.toString()).toContain('NOTE:second &gt; first&#13;\n');
  await expectXmlMatchesBodies(storage, bookId, NAMES);
});

test('migration fills the XML form', async () => {
  // Takes the store back to the schema before the column. The three migrations after it add the removal
  // flag of books and the path segments of cards, and narrow the change log's index.
  const reopened = await changeOutside((db) => {
    const version = db.pragma('user_version', { simple: true }) as number;
    db.exec(DROP_SEGMENTS_SQL);
    db.exec('ALTER TABLE books DROP COLUMN removing');
    db.exec('ALTER TABLE cards DROP COLUMN xml');
    db.pragma(`user_version = ${version - 4}`);
  });
  await expectXmlMatchesBodies(reopened, opened.bookId, NAMES);
});

test('card without XML form still returned', async () => {
  // Two rows lose their XML form, and their neighbours keep theirs.
  const reopened = await changeOutside((db) => {
    db.prepare('UPDATE cards SET xml = NULL WHERE name IN (?, ?)').run(NAMES[1], NAMES[3]);
  });
  await expectXmlMatchesBodies(reopened, opened.bookId, NAMES);
  const [card] = await reopened.getCardXml(opened.bookId, [NAMES[3]]);
  expect(card.name).toBe(NAMES[3]);
});

const LAYOUT: CardsLayout = { card: { texts: ['<r h="', '" e="', '">', '</r>'], fields: ['etag', 'xml'] }, missing: ['<m h="', '"/>'] };

/** Fills LAYOUT in JavaScript from what getCardXml returns. */
async function expectedRender(storage: SqliteStorage, bookId: number, entries: { href: string; name: string | undefined }[]): Promise<string> {
  const names = entries.flatMap((entry) => (entry.name === undefined ? [] : [entry.name]));
  const found = new Map((await storage.getCardXml(bookId, names)).map((card) => [card.name, card]));
  return entries
    .map(({ href, name }) => {
      const card = name === undefined ? undefined : found.get(name);
      return card ? `<r h="${href}" e="${card.etag}">${card.xml.toString()}</r>` : `<m h="${href}"/>`;
    })
    .join('');
}

test('renderCards writes each entry in order', async () => {
  const { storage, bookId } = opened;
  const entries = [
    { href: 'x/4', name: NAMES[3] },
    { href: 'x/missing', name: 'missing.vcf' },
    { href: 'x/none', name: undefined },
    { href: 'x/1', name: NAMES[0] },
    { href: 'x/4 again', name: NAMES[3] },
    { href: 'x/6', name: NAMES[5] },
  ];
  const bytes = await storage.renderCards(bookId, entries, LAYOUT);
  const text = bytes!.toString();
  expect(text).toBe(await expectedRender(storage, bookId, entries));
  expect(text.match(/<r h="x\/4/g)).toHaveLength(2);
  expect(text).toContain('<m h="x/missing"/><m h="x/none"/><r h="x/1"');
  expect(await storage.renderCards(bookId, [], LAYOUT)).toEqual(Buffer.alloc(0));
  expect((await storage.renderCards(bookId, [{ href: 'gone', name: 'gone.vcf' }], LAYOUT))!.toString()).toBe('<m h="gone"/>');
});

test('renderCards with names alone', async () => {
  const { storage, bookId } = opened;
  const names = [NAMES[5], 'missing.vcf', NAMES[0], NAMES[5]];
  const layout: CardsLayout = { card: { ...LAYOUT.card, texts: ['<r h="/book/', ...LAYOUT.card.texts.slice(1)] }, missing: ['<m h="/book/', '"/>'] };
  const bytes = await storage.renderCards(bookId, names, layout);
  const entries = names.map((name) => ({ href: `/book/${name}`, name }));
  expect(bytes!.toString()).toBe(await expectedRender(storage, bookId, entries));
});

test('renderCards writes the text around the entries', async () => {
  const { storage, bookId } = opened;
  const layout: CardsLayout = { ...LAYOUT, around: ['<all>', '</all>'] };
  const entries = [{ href: 'x/1', name: NAMES[0] }];
  expect((await storage.renderCards(bookId, entries, layout))!.toString()).toBe(`<all>${await expectedRender(storage, bookId, entries)}</all>`);
  expect((await storage.renderCards(bookId, [], layout))!.toString()).toBe('<all></all>');
  expect((await storage.renderCards(bookId, ['missing.vcf'], layout))!.toString()).toBe('<all><m h="missing.vcf"/></all>');
});

test('renderCards of found cards only', async () => {
  // Every entry names a card, with one twice: the same text as with a missing card among them.
  const { storage, bookId } = opened;
  const entries = [...NAMES, NAMES[2]].map((name, i) => ({ href: `x/${i}`, name }));
  const around: CardsLayout = { ...LAYOUT, around: ['<all>', '</all>'] };
  const expected = await expectedRender(storage, bookId, entries);
  expect((await storage.renderCards(bookId, entries, around))!.toString()).toBe(`<all>${expected}</all>`);
  const withMissing = [...entries, { href: 'x/gone', name: 'gone.vcf' }];
  const general = (await storage.renderCards(bookId, withMissing, around))!.toString();
  expect(general).toBe(`<all>${expected}<m h="x/gone"/></all>`);

  const names = [NAMES[4], NAMES[0]];
  const layout: CardsLayout = { card: { ...LAYOUT.card, texts: ['<r h="/book/', ...LAYOUT.card.texts.slice(1)] }, missing: ['<m h="/book/', '"/>'] };
  const byName = names.map((name) => ({ href: `/book/${name}`, name }));
  expect((await storage.renderCards(bookId, names, layout))!.toString()).toBe(await expectedRender(storage, bookId, byName));
});

test('renderCards of found cards with several fields', async () => {
  const { storage, bookId } = opened;
  const layout: CardsLayout = { card: { texts: ['<r h="', '" e="', '" s="', '">', '</r>'], fields: ['etag', 'size', 'xml'] }, missing: LAYOUT.missing };
  const [card] = await storage.getCardXml(bookId, [NAMES[3]]);
  const text = (await storage.renderCards(bookId, [{ href: 'one', name: NAMES[3] }], layout))!.toString();
  expect(text).toBe(`<r h="one" e="${card.etag}" s="${card.size}">${card.xml.toString()}</r>`);
});

test('renderCards without XML form', async () => {
  const reopened = await changeOutside((db) => {
    db.prepare('UPDATE cards SET xml = NULL WHERE name = ?').run(NAMES[1]);
  });
  const entries = NAMES.map((name) => ({ href: name, name }));
  expect(await reopened.renderCards(opened.bookId, entries, LAYOUT)).toBeUndefined();
  // A layout without the XML form still writes every card, and so does one without the card that lacks it.
  const etags: CardsLayout = { card: { texts: ['<r h="', '" e="', '"/>'], fields: ['etag'] }, missing: LAYOUT.missing };
  expect((await reopened.renderCards(opened.bookId, entries, etags))!.toString().match(/<r /g)).toHaveLength(NAMES.length);
  const others = entries.filter((entry) => entry.name !== NAMES[1]);
  expect((await reopened.renderCards(opened.bookId, others, LAYOUT))!.toString()).toBe(await expectedRender(reopened, opened.bookId, others));
});

test('renderCards rejects a layout with too few texts', async () => {
  const { storage, bookId } = opened;
  const broken: CardsLayout = { card: { texts: ['<r h="', '">'], fields: ['etag'] }, missing: LAYOUT.missing };
  await expect(storage.renderCards(bookId, [{ href: 'a', name: NAMES[0] }], broken)).rejects.toThrow(/2 texts|3 texts/);
});
