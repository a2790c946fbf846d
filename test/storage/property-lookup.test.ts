/**
 * Property lookups across books: an exact value, or a value that contains
 * a needle whatever the case of its ASCII letters, with LIKE's wildcards in
 * the needle taken literally.
 */
import { cardInput, openBookStorage, type BookStorage } from '../helpers/fixtures';

let opened: BookStorage;

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
  opened = await openBookStorage('cardinal-lookup-');
  for (const [name, kind] of Object.entries(KINDS)) {
    const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${name}\r\nFN:${name}\r\nKIND:${kind}\r\nEND:VCARD\r\n`;
    await opened.storage.putCard(opened.bookId, cardInput(name, text), {});
  }
});

afterAll(() => opened.close());

async function names(value: string | undefined, match: 'equals' | 'contains', bookIds?: number[]): Promise<string[]> {
  return (await opened.storage.listCardsWithProperty('KIND', value, bookIds, match)).map((card) => card.name).sort();
}

test('equals matches the exact value', async () => {
  expect(await names('org', 'equals', [opened.bookId])).toEqual(['lower.vcf']);
});

test('contains ignores ASCII case', async () => {
  expect(await names('org', 'contains', [opened.bookId])).toEqual(['lower.vcf', 'mixed.vcf', 'upper.vcf']);
  expect(await names('org', 'contains')).toEqual(['lower.vcf', 'mixed.vcf', 'upper.vcf']);
});

test('contains takes wildcards literally', async () => {
  expect(await names('o%g', 'contains', [opened.bookId])).toEqual(['percent.vcf']);
  expect(await names('o_g', 'contains', [opened.bookId])).toEqual(['underscore.vcf']);
});

test('no value lists every card with the property', async () => {
  expect(await names(undefined, 'contains', [opened.bookId])).toEqual(Object.keys(KINDS).sort());
});
