import type { CardFilter, IndexedProperty } from '../storage/types';
import { ContentLine, parseContentLine, splitLines, unescapeText, unfoldBytes } from './contentline';

/**
 * The properties of a card as queries see them: every content line except
 * BEGIN and END, with its group, its parameters and its unescaped value.
 * Both the SQL index and the in-memory filter evaluator read this form.
 */

/** Properties whose values are binary or URIs to binary data, and are not worth searching. */
export const UNINDEXED_VALUES = new Set(['PHOTO', 'LOGO', 'SOUND', 'KEY']);

export interface IndexOptions {
  /** Keeps the values of PHOTO, LOGO, SOUND and KEY too, for filters evaluated on card bodies. */
  allValues?: boolean;
}

export function indexProperty(line: ContentLine, options: IndexOptions = {}): IndexedProperty {
  // A quoted TYPE list (`TYPE="voice,work"`) arrives as one value; its items are matched one by one.
  const params = line.params.flatMap((param) =>
    param.values.flatMap((value) => (param.name === 'TYPE' ? value.split(',') : [value])).map((value) => ({ name: param.name, value })),
  );
  const property: IndexedProperty = { name: line.name, params };
  if (line.group !== undefined) property.group = line.group.toUpperCase();
  if (options.allValues || !UNINDEXED_VALUES.has(line.name)) property.value = unescapeText(line.value);
  return property;
}

export function indexProperties(lines: ContentLine[], options: IndexOptions = {}): IndexedProperty[] {
  return lines.filter((line) => line.name !== 'BEGIN' && line.name !== 'END').map((line) => indexProperty(line, options));
}

/**
 * Reads the indexed properties of stored card bytes. A line the parser
 * rejects is skipped, so it matches no filter, and the rest of the card
 * still does.
 */
export function readCardProperties(data: Buffer, options: IndexOptions = {}): IndexedProperty[] {
  const lines: ContentLine[] = [];
  for (const line of splitLines(unfoldBytes(data).toString('utf8'))) {
    try {
      lines.push(parseContentLine(line));
    } catch {
      continue;
    }
  }
  return indexProperties(lines, options);
}

/** True when a filter has a text-match on a property whose values the index does not hold. */
export function filterNeedsCardBodies(filter: CardFilter): boolean {
  return filter.propFilters.some(
    (propFilter) => !propFilter.isNotDefined && propFilter.textMatches.length > 0 && UNINDEXED_VALUES.has(propFilter.name),
  );
}
