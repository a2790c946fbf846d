import { foldAsciiCasemap, foldUnicodeCasemap } from '../vcard/collation';
import { UNINDEXED_VALUES } from '../vcard/properties';
import type { CardFilter, ParamFilter, PropFilter, TextMatch } from './types';

/**
 * Translates a CARDDAV:filter into an SQL condition on `cards c`, evaluated on
 * the query index (storage/cardindex.ts). The translation is exact: it
 * returns the cards that vcard/match.ts accepts, and the tests compare both.
 *
 * Each prop-filter becomes a correlated EXISTS on card_props_by_card, which
 * costs one index probe per card of the book. Real clients search with
 * contains, which a B-tree index on values cannot speed up, and such an index
 * made every PUT slower (see the migration that dropped card_props_by_folded).
 */

export type SqlValue = string | number;

export interface SqlCondition {
  sql: string;
  params: SqlValue[];
}

/** The columns of a card_props or card_params row that a text-match compares. */
interface MatchColumns {
  value: string;
  folded: string;
}

const TRUE: SqlCondition = { sql: '1', params: [] };

function join(conditions: SqlCondition[], operator: 'AND' | 'OR'): SqlCondition {
  if (conditions.length === 1) return conditions[0];
  return {
    sql: conditions.map((condition) => `(${condition.sql})`).join(` ${operator} `),
    params: conditions.flatMap((condition) => condition.params),
  };
}

function negate(condition: SqlCondition): SqlCondition {
  return { sql: `NOT (${condition.sql})`, params: condition.params };
}

/**
 * Returns the smallest string greater than every string that starts with
 * `prefix`, in code point order, which is the byte order SQLite compares UTF-8
 * text in. Returns undefined when no such string exists (a prefix of U+10FFFF only).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const codePoints = [...prefix].map((ch) => ch.codePointAt(0)!);
  while (codePoints.length > 0) {
    let last = codePoints.pop()! + 1;
    if (last === 0xd800) last = 0xe000;
    if (last <= 0x10ffff) return String.fromCodePoint(...codePoints, last);
  }
  return undefined;
}

/** Returns the SQL expression and needle that compare canonical forms in the text-match's collation. */
function canonicalOperands(columns: MatchColumns, match: TextMatch): { expression: string; needle: string } {
  switch (match.collation) {
    case 'i;unicode-casemap':
      return { expression: columns.folded, needle: foldUnicodeCasemap(match.text) };
    case 'i;ascii-casemap':
      // SQLite's built-in lower() folds A-Z only, which is exactly this collation.
      return { expression: `lower(${columns.value})`, needle: foldAsciiCasemap(match.text) };
    case 'i;octet':
      return { expression: columns.value, needle: match.text };
  }
}

/** Translates a text-match without its negate-condition. */
function positiveTextCondition(columns: MatchColumns, match: TextMatch): SqlCondition {
  const { expression, needle } = canonicalOperands(columns, match);
  if (match.matchType === 'equals') return { sql: `${expression} = ?`, params: [needle] };
  if (needle === '') return TRUE;
  switch (match.matchType) {
    case 'starts-with': {
      const upper = prefixUpperBound(needle);
      if (upper === undefined) return { sql: `substr(${expression}, 1, length(?)) = ?`, params: [needle, needle] };
      return { sql: `${expression} >= ? AND ${expression} < ?`, params: [needle, upper] };
    }
    case 'ends-with':
      return { sql: `substr(${expression}, -length(?)) = ?`, params: [needle, needle] };
    case 'contains':
      return { sql: `instr(${expression}, ?) > 0`, params: [needle] };
  }
}

function textCondition(columns: MatchColumns, match: TextMatch): SqlCondition {
  const condition = positiveTextCondition(columns, match);
  return match.negate ? negate(condition) : condition;
}

const PROP_COLUMNS: MatchColumns = { value: 'p.value', folded: 'p.folded' };
const PARAM_COLUMNS: MatchColumns = { value: 'q.value', folded: 'q.folded' };

function paramExists(name: string, extra?: SqlCondition): SqlCondition {
  const where = extra ? ` AND (${extra.sql})` : '';
  return {
    sql: `EXISTS (SELECT 1 FROM card_params q WHERE q.prop_id = p.id AND q.name = ?${where})`,
    params: [name, ...(extra?.params ?? [])],
  };
}

function paramCondition(filter: ParamFilter): SqlCondition {
  if (filter.isNotDefined) return negate(paramExists(filter.name));
  const match = filter.textMatch;
  if (!match) return paramExists(filter.name);
  const positive = positiveTextCondition(PARAM_COLUMNS, match);
  if (!match.negate) return paramExists(filter.name, positive);
  // A negated match needs the parameter present with none of its values matching.
  return join([paramExists(filter.name), negate(paramExists(filter.name, positive))], 'AND');
}

/** Selects the rows of the prop-filter's property, with its group when the filter names one. */
function propertySelector(filter: PropFilter): SqlCondition {
  if (filter.group === undefined) return { sql: 'p.name = ?', params: [filter.name] };
  return { sql: 'p.name = ? AND p.prop_group = ?', params: [filter.name, filter.group] };
}

function propertyTests(filter: PropFilter): SqlCondition | undefined {
  const tests = [
    ...filter.textMatches.map((match) => textCondition(PROP_COLUMNS, match)),
    ...filter.paramFilters.map(paramCondition),
  ];
  if (tests.length === 0) return undefined;
  return join(tests, filter.allOf ? 'AND' : 'OR');
}

function propFilterCondition(filter: PropFilter): SqlCondition {
  if (filter.textMatches.length > 0 && UNINDEXED_VALUES.has(filter.name) && !filter.isNotDefined) {
    throw new Error(`the query index does not store values of ${filter.name}; evaluate this filter on the card bodies`);
  }
  const selector = propertySelector(filter);
  if (filter.isNotDefined) {
    return negate({ sql: `EXISTS (SELECT 1 FROM card_props p WHERE p.card_id = c.id AND ${selector.sql})`, params: selector.params });
  }
  const tests = propertyTests(filter);
  const rowCondition = tests ? join([selector, tests], 'AND') : selector;
  return { sql: `EXISTS (SELECT 1 FROM card_props p WHERE p.card_id = c.id AND ${rowCondition.sql})`, params: rowCondition.params };
}

/** Translates a filter into a condition on `cards c`; an empty filter matches every card. */
export function cardFilterCondition(filter: CardFilter): SqlCondition {
  if (filter.propFilters.length === 0) return TRUE;
  return join(
    filter.propFilters.map(propFilterCondition),
    filter.allOf ? 'AND' : 'OR',
  );
}
