import type { AddressDataRequest } from '../vcard/render';
import type { Card, CardFilter, CardMeta, CardXml, Collation, MatchType, ParamFilter, PropFilter, TextMatch } from '../storage/types';
import { COLLATIONS } from '../vcard/collation';
import { cardMatches } from '../vcard/match';
import { filterNeedsCardBodies, readCardProperties } from '../vcard/properties';
import type { DavContext } from './context';
import { DavError } from './errors';
import { prefetchFirst, sendMultistatus } from './multistatus';
import { memberHrefs, wantsMinimal } from './propfind';
import { readReportCards, ReportProps, reportWriter } from './report';
import { encodeSegment, Resource } from './resource';
import { childrenNamed, clark, NS, tag, XmlElement } from './xml';

type BookResource = Extract<Resource, { kind: 'book' }>;

/** Matching cards read per storage round trip. */
const QUERY_PAGE = 500;
/** Cards read per round trip when a filter must be evaluated on card bodies. */
const SCAN_PAGE = 200;

/**
 * Filter sizes accepted. The SQL condition a filter becomes must stay within
 * SQLite's expression depth and bound-parameter limits (100 x 100 tests
 * exceeds the 32,766 parameters), and SQLite plans it while the event loop
 * waits. Measured with storage.queryCards on an empty book (better-sqlite3 12,
 * AMD EPYC virtual machine): 100 prop-filters of 10 tests each took up to
 * 0.4 s, of 2 tests each up to 0.12 s.
 */
export const MAX_PROP_FILTERS = 100;
/** text-match and param-filter elements accepted in one prop-filter. */
export const MAX_TESTS_PER_PROP_FILTER = 100;
/** text-match and param-filter elements accepted in one filter, across its prop-filters. */
export const MAX_FILTER_TESTS = 200;

const MATCH_TYPES = new Set<string>(['equals', 'contains', 'starts-with', 'ends-with']);
const PROPERTY_NAME = /^[A-Za-z0-9-]+$/;

function unsupportedFilter(message: string): DavError {
  return new DavError(403, clark(NS.CARDDAV, 'supported-filter'), message);
}

function parseTest(element: XmlElement): boolean {
  const test = element.attrs.test ?? 'anyof';
  if (test !== 'anyof' && test !== 'allof') throw unsupportedFilter(`invalid test attribute: ${test}; use anyof or allof`);
  return test === 'allof';
}

function parseTextMatch(element: XmlElement): TextMatch {
  const collation = element.attrs.collation ?? 'i;unicode-casemap';
  if (!(COLLATIONS as readonly string[]).includes(collation)) {
    throw new DavError(
      403,
      clark(NS.CARDDAV, 'supported-collation'),
      `collation ${collation} is not supported; use ${COLLATIONS.join(', ')}`,
    );
  }
  const matchType = element.attrs['match-type'] ?? 'contains';
  if (!MATCH_TYPES.has(matchType)) throw unsupportedFilter(`match-type ${matchType} is not supported`);
  const negate = element.attrs['negate-condition'] ?? 'no';
  if (negate !== 'yes' && negate !== 'no') throw unsupportedFilter(`invalid negate-condition attribute: ${negate}; use yes or no`);
  return { text: element.text, matchType: matchType as MatchType, collation: collation as Collation, negate: negate === 'yes' };
}

function parseParamFilter(element: XmlElement): ParamFilter {
  const name = (element.attrs.name ?? '').toUpperCase();
  if (!PROPERTY_NAME.test(name)) throw unsupportedFilter(`param-filter needs a parameter name, not "${element.attrs.name ?? ''}"`);
  if (element.children.length > 1) throw unsupportedFilter(`param-filter ${name} takes one is-not-defined or text-match`);
  const inner = element.children[0];
  if (inner && (inner.ns !== NS.CARDDAV || (inner.local !== 'is-not-defined' && inner.local !== 'text-match'))) {
    throw unsupportedFilter(`unknown element in param-filter: ${inner.local}`);
  }
  return {
    name,
    isNotDefined: inner?.local === 'is-not-defined',
    textMatch: inner?.local === 'text-match' ? parseTextMatch(inner) : undefined,
  };
}

/** Splits `item1.EMAIL` into group and name (RFC 6352 section 10.5.1). */
function parsePropertyName(raw: string): { group?: string; name: string } {
  const upper = raw.trim().toUpperCase();
  const dot = upper.lastIndexOf('.');
  const group = dot >= 0 ? upper.slice(0, dot) : undefined;
  const name = dot >= 0 ? upper.slice(dot + 1) : upper;
  if (!PROPERTY_NAME.test(name) || (group !== undefined && !PROPERTY_NAME.test(group))) {
    throw unsupportedFilter(`prop-filter needs a vCard property name, not "${raw}"`);
  }
  return group === undefined ? { name } : { group, name };
}

function parsePropFilter(element: XmlElement): PropFilter {
  if (element.children.length > MAX_TESTS_PER_PROP_FILTER) {
    throw unsupportedFilter(`a prop-filter may hold at most ${MAX_TESTS_PER_PROP_FILTER} text-match and param-filter elements`);
  }
  const propFilter: PropFilter = {
    ...parsePropertyName(element.attrs.name ?? ''),
    allOf: parseTest(element),
    isNotDefined: false,
    textMatches: [],
    paramFilters: [],
  };
  for (const inner of element.children) {
    if (inner.ns !== NS.CARDDAV) throw unsupportedFilter(`unknown element in prop-filter: ${inner.local}`);
    if (inner.local === 'is-not-defined') propFilter.isNotDefined = true;
    else if (inner.local === 'text-match') propFilter.textMatches.push(parseTextMatch(inner));
    else if (inner.local === 'param-filter') propFilter.paramFilters.push(parseParamFilter(inner));
    else throw unsupportedFilter(`unknown element in prop-filter: ${inner.local}`);
  }
  if (propFilter.isNotDefined && element.children.length > 1) {
    throw unsupportedFilter(`prop-filter ${element.attrs.name} has is-not-defined, which takes no other condition`);
  }
  return propFilter;
}

/** Reads CARDDAV:filter (RFC 6352 section 10.5); a missing filter matches every card. */
export function parseFilter(element: XmlElement | undefined): CardFilter {
  if (!element) return { allOf: false, propFilters: [] };
  if (element.children.length > MAX_PROP_FILTERS) throw unsupportedFilter(`a filter may hold at most ${MAX_PROP_FILTERS} prop-filter elements`);
  const testCount = element.children.reduce((sum, propFilter) => sum + propFilter.children.length, 0);
  if (testCount > MAX_FILTER_TESTS) {
    throw unsupportedFilter(`a filter may hold at most ${MAX_FILTER_TESTS} text-match and param-filter elements across its prop-filters`);
  }
  const propFilters = element.children.map((filterChild) => {
    if (filterChild.ns !== NS.CARDDAV || filterChild.local !== 'prop-filter') {
      throw unsupportedFilter(`filter element ${filterChild.local} is not supported; use CARDDAV:prop-filter`);
    }
    return parsePropFilter(filterChild);
  });
  return { allOf: parseTest(element), propFilters };
}

/** Reads the matching cards page by page from the query index, with what address-data needs of them when it is requested (see readReportCards). */
async function* indexedMatches(
  dc: DavContext,
  bookId: number,
  filter: CardFilter,
  addressData: AddressDataRequest | undefined,
  limit: number,
): AsyncGenerator<CardMeta | Card | CardXml> {
  let afterId = 0;
  let remaining = limit;
  while (remaining > 0) {
    const pageSize = Math.min(QUERY_PAGE, remaining);
    const page = await dc.storage.queryCards(bookId, filter, afterId, pageSize);
    if (addressData) {
      const cards = await readReportCards(dc.storage, bookId, page.map((meta) => meta.name), addressData);
      const byName = new Map(cards.map((card) => [card.name, card]));
      // A card removed between the two reads is left out, as if the query had run after the removal.
      for (const meta of page) if (byName.has(meta.name)) yield byName.get(meta.name)!;
    } else yield* page;
    if (page.length < pageSize) return;
    remaining -= page.length;
    afterId = page[page.length - 1].id;
  }
}

/** Evaluates the filter on each card body, for text-matches on values the index does not store (PHOTO and similar). */
async function* scannedMatches(dc: DavContext, bookId: number, filter: CardFilter, limit: number): AsyncGenerator<Card> {
  let afterId = 0;
  let found = 0;
  for (;;) {
    const page = await dc.storage.listCards(bookId, afterId, SCAN_PAGE);
    for (const card of page) {
      if (!cardMatches(readCardProperties(card.data, { allValues: true }), filter)) continue;
      yield card;
      if (++found >= limit) return;
    }
    if (page.length < SCAN_PAGE) return;
    afterId = page[page.length - 1].id;
  }
}

/**
 * addressbook-query (RFC 6352 section 8.6). Streams the matching cards; with
 * CARDDAV:limit, stops after `limit` of them and, when more match, adds a 507
 * response for the collection (section 8.6.1).
 */
export async function runQuery(dc: DavContext, resource: BookResource, root: XmlElement, props: ReportProps, limit?: number): Promise<void> {
  const filterElements = childrenNamed(root, NS.CARDDAV, 'filter');
  if (filterElements.length > 1) throw unsupportedFilter('addressbook-query takes one filter element');
  const filter = parseFilter(filterElements[0]);
  const minimal = wantsMinimal(dc);
  const bookId = resource.book.id;
  // One match beyond the limit shows whether the result was truncated.
  const maxMatches = limit === undefined ? Infinity : limit + 1;
  const matches = filterNeedsCardBodies(filter)
    ? scannedMatches(dc, bookId, filter, maxMatches)
    : indexedMatches(dc, bookId, filter, props.addressData, maxMatches);

  const out = reportWriter(dc, resource, props, minimal, memberHrefs(resource.href));
  async function* responses(): AsyncGenerator<string | Buffer> {
    let count = 0;
    for await (const card of matches) {
      if (limit !== undefined && count >= limit) {
        out.status(resource.href, 507, tag(clark(NS.DAV, 'number-of-matches-within-limits')));
        break;
      }
      count++;
      out.card(resource.href + encodeSegment(card.name), card);
      const piece = out.full();
      if (piece !== undefined) yield piece;
    }
    const rest = out.rest();
    if (rest !== undefined) yield rest;
  }
  sendMultistatus(dc.ctx, await prefetchFirst(responses()));
}
