/**
 * Property lookups across books: an exact value, or a value that contains
 * a needle whatever the case of its ASCII letters, with LIKE's wildcards in
 * the needle taken literally.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../storage/sqlite';
import { prepareCard } from '../../vcard/pipeline';

let dir: string;
let storage: SqliteStorage;
let bookId: number;

const KINDS: Record<string, string> = {
  'lower.vcf': 'org',
  'upper.vcf': 'ORG',
  'mixed.vcf': 'Org',
  'person.vcf': 'individual',
  'percent.vcf': 'o%g',
  'underscore.vcf': 'o_g',
  'group.vcf': 'group',
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-lookup-'));
  storage = new SqliteStorage(join(dir, 'cardinal.sqlite3'));
  const user = await storage.createUser('alice', null);
  const book = await storage.createBook(user.id, 'contacts', 'Contacts');
  if (!book) throw new Error('book not created');
  bookId = book.id;
  for (const [name, kind] of Object.entries(KINDS)) {
    const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${name}\r\nFN:${name}\r\nKIND:${kind}\r\nEND:VCARD\r\n`;
    const prepared = prepareCard(Buffer.from(text));
    if (!prepared.ok) throw new Error(prepared.message);
    const input = { name, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties };
    await storage.putCard(bookId, input, {});
  }
});

afterAll(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

async function names(value: string | undefined, match: 'equals' | 'contains', bookIds?: number[]): Promise<string[]> {
  return (await storage.listCardsWithProperty('KIND', value, bookIds, match)).map((card) => card.name).sort();
}

test('equals matches the exact value', async () => {
  expect(await names('org', 'equals', [bookId])).toEqual(['lower.vcf']);
});

test('contains ignores ASCII case', async () => {
  expect(await names('org', 'contains', [bookId])).toEqual(['lower.vcf', 'mixed.vcf', 'upper.vcf']);
  expect(await names('org', 'contains')).toEqual(['lower.vcf', 'mixed.vcf', 'upper.vcf']);
});

test('contains takes wildcards literally', async () => {
  expect(await names('o%g', 'contains', [bookId])).toEqual(['percent.vcf']);
  expect(await names('o_g', 'contains', [bookId])).toEqual(['underscore.vcf']);
});

test('no value lists every card with the property', async () => {
  expect(await names(undefined, 'contains', [bookId])).toEqual(Object.keys(KINDS).sort());
});
