import type { Card } from '../storage/types';
import { ContentLine, paramValues, parseContentLine, splitLines, splitStructured, unescapeText, unfoldBytes } from '../vcard/contentline';
import type { DavContext } from './context';
import { DavError } from './errors';
import { sendMultistatus, statusResponseXml } from './multistatus';
import { encodeSegment, Resource } from './resource';
import { reportResponse, ReportProps } from './report';
import { child, childrenNamed, clark, NS, tag, XmlElement } from './xml';

type BookResource = Extract<Resource, { kind: 'book' }>;

/** Cards read per storage round trip while a query scans a book. */
const SCAN_PAGE = 200;

type MatchType = 'equals' | 'contains' | 'starts-with' | 'ends-with';
type Collation = 'i;unicode-casemap' | 'i;ascii-casemap' | 'i;octet';

interface TextMatch {
  needle: string;
  matchType: MatchType;
  collation: Collation;
  negate: boolean;
}

interface ParamFilter {
  name: string;
  isNotDefined: boolean;
  textMatch?: TextMatch;
}

interface PropFilter {
  name: string;
  allOf: boolean;
  isNotDefined: boolean;
  textMatches: TextMatch[];
  paramFilters: ParamFilter[];
}

export interface Filter {
  allOf: boolean;
  propFilters: PropFilter[];
}

const COLLATIONS = new Set<string>(['i;unicode-casemap', 'i;ascii-casemap', 'i;octet']);
const MATCH_TYPES = new Set<string>(['equals', 'contains', 'starts-with', 'ends-with']);

function unsupportedFilter(message: string): DavError {
  return new DavError(403, clark(NS.CARDDAV, 'supported-filter'), message);
}

function parseTest(element: XmlElement): boolean {
  const test = element.attrs.test ?? 'anyof';
  if (test !== 'anyof' && test !== 'allof') throw unsupportedFilter(`invalid test attribute: ${test}`);
  return test === 'allof';
}

function parseTextMatch(element: XmlElement): TextMatch {
  const collation = element.attrs.collation ?? 'i;unicode-casemap';
  if (!COLLATIONS.has(collation)) {
    throw new DavError(403, clark(NS.CARDDAV, 'supported-collation'), `collation ${collation} is not supported`);
  }
  const matchType = element.attrs['match-type'] ?? 'contains';
  if (!MATCH_TYPES.has(matchType)) throw unsupportedFilter(`match-type ${matchType} is not supported`);
  const negate = element.attrs['negate-condition'] === 'yes';
  return { needle: element.text, matchType: matchType as MatchType, collation: collation as Collation, negate };
}

export function parseFilter(element: XmlElement | undefined): Filter {
  if (!element) return { allOf: false, propFilters: [] };
  const propFilters: PropFilter[] = [];
  for (const filterChild of element.children) {
    if (filterChild.ns !== NS.CARDDAV || filterChild.local !== 'prop-filter') {
      throw unsupportedFilter(`filter element ${filterChild.local} is not supported; use CARDDAV:prop-filter`);
    }
    const name = (filterChild.attrs.name ?? '').toUpperCase();
    if (name === '') throw unsupportedFilter('prop-filter needs a name attribute');
    const propFilter: PropFilter = { name, allOf: parseTest(filterChild), isNotDefined: false, textMatches: [], paramFilters: [] };
    for (const element of filterChild.children) {
      if (element.ns !== NS.CARDDAV) throw unsupportedFilter(`unknown element in prop-filter: ${element.local}`);
      if (element.local === 'is-not-defined') propFilter.isNotDefined = true;
      else if (element.local === 'text-match') propFilter.textMatches.push(parseTextMatch(element));
      else if (element.local === 'param-filter') {
        const paramName = (element.attrs.name ?? '').toUpperCase();
        if (paramName === '') throw unsupportedFilter('param-filter needs a name attribute');
        const textMatch = child(element, NS.CARDDAV, 'text-match');
        propFilter.paramFilters.push({
          name: paramName,
          isNotDefined: child(element, NS.CARDDAV, 'is-not-defined') !== undefined,
          textMatch: textMatch ? parseTextMatch(textMatch) : undefined,
        });
      } else throw unsupportedFilter(`unknown element in prop-filter: ${element.local}`);
    }
    propFilters.push(propFilter);
  }
  return { allOf: parseTest(element), propFilters };
}

function fold(text: string, collation: Collation): string {
  if (collation === 'i;octet') return text;
  if (collation === 'i;ascii-casemap') return text.replace(/[A-Z]/g, (ch) => ch.toLowerCase());
  // NOTE: approximates RFC 5051 (NFKD, then case folding) with upper-casing, which folds ß to SS and final sigma to sigma.
  return text.normalize('NFKD').toUpperCase().normalize('NFKC');
}

function textMatches(value: string, match: TextMatch): boolean {
  const haystack = fold(value, match.collation);
  const needle = fold(match.needle, match.collation);
  let result: boolean;
  switch (match.matchType) {
    case 'equals':
      result = haystack === needle;
      break;
    case 'starts-with':
      result = haystack.startsWith(needle);
      break;
    case 'ends-with':
      result = haystack.endsWith(needle);
      break;
    default:
      result = haystack.includes(needle);
  }
  return match.negate ? !result : result;
}

/** Text values a text-match is tried on: the whole value, and each component of a structured one. */
function candidateValues(line: ContentLine): string[] {
  const whole = unescapeText(line.value);
  if (line.name !== 'N' && line.name !== 'ADR' && line.name !== 'ORG') return [whole];
  return [whole, ...splitStructured(line.value).map(unescapeText)];
}

function propertyMatches(line: ContentLine, filter: PropFilter): boolean {
  const tests: boolean[] = [];
  for (const match of filter.textMatches) {
    const values = candidateValues(line);
    tests.push(match.negate ? values.every((v) => textMatches(v, match)) : values.some((v) => textMatches(v, match)));
  }
  for (const paramFilter of filter.paramFilters) {
    const values = paramValues(line, paramFilter.name);
    const present = line.params.some((p) => p.name === paramFilter.name);
    if (paramFilter.isNotDefined) tests.push(!present);
    else if (paramFilter.textMatch) {
      const match = paramFilter.textMatch;
      tests.push(present && (match.negate ? values.every((v) => textMatches(v, match)) : values.some((v) => textMatches(v, match))));
    } else tests.push(present);
  }
  if (tests.length === 0) return true;
  return filter.allOf ? tests.every(Boolean) : tests.some(Boolean);
}

export function cardMatches(lines: ContentLine[], filter: Filter): boolean {
  if (filter.propFilters.length === 0) return true;
  const results = filter.propFilters.map((propFilter) => {
    const instances = lines.filter((line) => line.name === propFilter.name);
    if (propFilter.isNotDefined) return instances.length === 0;
    return instances.some((line) => propertyMatches(line, propFilter));
  });
  return filter.allOf ? results.every(Boolean) : results.some(Boolean);
}

function parseCard(card: Card): ContentLine[] {
  const lines: ContentLine[] = [];
  for (const line of splitLines(unfoldBytes(card.data).toString('utf8'))) {
    try {
      lines.push(parseContentLine(line));
    } catch {
      // A line the parser cannot read cannot match a filter either; the card stays listed by other lines.
    }
  }
  return lines;
}

/**
 * addressbook-query (RFC 6352 section 8.6). Scans the book page by page and
 * streams the matches.
 * TODO: answer from the card_props index instead of parsing every card.
 */
export async function runQuery(dc: DavContext, resource: BookResource, root: XmlElement, props: ReportProps, limit?: number): Promise<void> {
  const filterElements = childrenNamed(root, NS.CARDDAV, 'filter');
  if (filterElements.length > 1) throw unsupportedFilter('addressbook-query takes one filter element');
  const filter = parseFilter(filterElements[0]);
  const storage = dc.storage;
  const minimal = dc.ctx.get('prefer').includes('return=minimal');

  async function* responses(): AsyncGenerator<string> {
    let afterId = 0;
    let matched = 0;
    for (;;) {
      const page = await storage.listCards(resource.book.id, afterId, SCAN_PAGE);
      for (const card of page) {
        if (!cardMatches(parseCard(card), filter)) continue;
        if (limit !== undefined && matched >= limit) {
          yield statusResponseXml(resource.href, 507, tag(clark(NS.DAV, 'number-of-matches-within-limits')));
          return;
        }
        matched++;
        yield reportResponse(dc, resource, resource.href + encodeSegment(card.name), card, props, minimal);
      }
      if (page.length < SCAN_PAGE) return;
      afterId = page[page.length - 1].id;
    }
  }
  sendMultistatus(dc.ctx, responses());
}
