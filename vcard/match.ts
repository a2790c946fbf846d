import type { CardFilter, IndexedProperty, ParamFilter, PropFilter } from '../storage/types';
import { textMatches } from './collation';

/**
 * Evaluates a CARDDAV:filter (RFC 6352 section 10.5) on the properties of
 * one card. This is the reference for the SQL translation in storage/: both
 * must return the same cards for every filter.
 *
 * A text-match compares the whole property value: a structured value such as
 * N (`Müller;Hans;;;`) is one string with its `;` separators, as section
 * 10.5.4 matches against "the property value". A parameter with several
 * values (`TYPE=HOME,WORK`) matches a text-match when one of its values
 * does, and a negated text-match when none does.
 */

function paramMatches(property: IndexedProperty, filter: ParamFilter): boolean {
  const values = property.params.filter((param) => param.name === filter.name).map((param) => param.value);
  if (filter.isNotDefined) return values.length === 0;
  if (values.length === 0) return false;
  const match = filter.textMatch;
  if (!match) return true;
  const positive = { ...match, negate: false };
  const found = values.some((value) => textMatches(value, positive));
  return match.negate ? !found : found;
}

function propertyMatches(property: IndexedProperty, filter: PropFilter): boolean {
  const tests: boolean[] = [];
  for (const match of filter.textMatches) {
    // A value left out of the index matches no text-match, so filters on those properties read card bodies.
    tests.push(property.value !== undefined && textMatches(property.value, match));
  }
  for (const paramFilter of filter.paramFilters) tests.push(paramMatches(property, paramFilter));
  if (tests.length === 0) return true;
  return filter.allOf ? tests.every(Boolean) : tests.some(Boolean);
}

/** RFC 6352 section 10.5.1: a name without a group matches the property in any group or none. */
export function propertySelected(property: IndexedProperty, filter: { group?: string; name: string }): boolean {
  if (property.name !== filter.name) return false;
  return filter.group === undefined || property.group === filter.group;
}

export function cardMatches(properties: IndexedProperty[], filter: CardFilter): boolean {
  if (filter.propFilters.length === 0) return true;
  const results = filter.propFilters.map((propFilter) => {
    const instances = properties.filter((property) => propertySelected(property, propFilter));
    if (propFilter.isNotDefined) return instances.length === 0;
    return instances.some((property) => propertyMatches(property, propFilter));
  });
  return filter.allOf ? results.every(Boolean) : results.some(Boolean);
}
