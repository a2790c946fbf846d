import { DIRECTORY_USER } from '../ldap/sync';
import type { AddressBook, DirectoryAccount, Storage, User } from '../storage/types';
import { parseContentLine, splitLines, splitStructured, unescapeText, unfoldBytes } from '../vcard/contentline';
import type { DavContext } from './context';
import { DavError } from './errors';
import { PropStat, responseXml, sendMultistatus, statusResponseXml } from './multistatus';
import { wantsMinimal } from './propfind';
import { bookHref, encodeSegment, principalHref, PRINCIPALS } from './resource';
import { child, childrenNamed, clark, escapeXml, is, NS, tag, XML_HEADER, XMLNS_DECLARATIONS, XmlElement } from './xml';

/**
 * The principal reports of RFC 3744 section 9.4 and 9.5:
 * principal-property-search finds the principals of directory users by
 * their name or email address. It reads the mirrored company directory,
 * not the LDAP server. principal-search-property-set lists the
 * searchable properties. Only directory users who have logged in at least
 * once have a principal, so only they are found.
 */

const CALDAV = 'urn:ietf:params:xml:ns:caldav';
const DISPLAYNAME = clark(NS.DAV, 'displayname');
const EMAIL_SET = clark(NS.CS, 'email-address-set');
const CALENDAR_ADDRESS_SET = clark(CALDAV, 'calendar-user-address-set');
const FIRST_NAME = clark(NS.CS, 'first-name');
const LAST_NAME = clark(NS.CS, 'last-name');

/** Searchable properties with their description for principal-search-property-set. */
const SEARCHABLE: [string, string][] = [
  [DISPLAYNAME, 'Full name'],
  [EMAIL_SET, 'Email addresses'],
  [CALENDAR_ADDRESS_SET, 'Email addresses as mailto URIs'],
  [FIRST_NAME, 'Given name'],
  [LAST_NAME, 'Family name'],
];

/** Maximum responses in one principal-property-search; a 507 response marks a truncated result. */
const MAX_RESULTS = 100;
const CARD_PAGE = 1000;

interface DirectoryPerson {
  uid: string;
  cardName: string;
  fn: string;
  given: string;
  family: string;
  emails: string[];
}

interface PersonIndex {
  key: string;
  people: DirectoryPerson[];
}

/** One index per mirrored book, rebuilt when the book's sync sequence moves. */
const indexes = new Map<number, PersonIndex>();

function fold(text: string): string {
  return text.normalize('NFC').toLocaleLowerCase('und');
}

function personFromCard(data: Buffer, cardName: string): DirectoryPerson {
  const person: DirectoryPerson = { uid: '', cardName, fn: '', given: '', family: '', emails: [] };
  for (const line of splitLines(unfoldBytes(data).toString('utf8'))) {
    let parsed;
    try {
      parsed = parseContentLine(line);
    } catch {
      continue;
    }
    if (parsed.name === 'UID') person.uid = parsed.value.trim();
    else if (parsed.name === 'FN') person.fn = unescapeText(parsed.value);
    else if (parsed.name === 'EMAIL') person.emails.push(unescapeText(parsed.value));
    else if (parsed.name === 'N') {
      const [family = '', given = ''] = splitStructured(parsed.value).map(unescapeText);
      person.family = family;
      person.given = given;
    }
  }
  return person;
}

async function personIndex(storage: Storage, book: AddressBook): Promise<DirectoryPerson[]> {
  const key = `${book.uuid}:${book.syncSeq}`;
  const cached = indexes.get(book.id);
  if (cached?.key === key) return cached.people;
  const people: DirectoryPerson[] = [];
  for (let afterId = 0; ; ) {
    const page = await storage.listCards(book.id, afterId, CARD_PAGE);
    for (const card of page) people.push(personFromCard(card.data, card.name));
    if (page.length < CARD_PAGE) break;
    afterId = page[page.length - 1].id;
  }
  indexes.set(book.id, { key, people });
  return people;
}

interface PropertySearch {
  names: string[];
  needle: string;
  matchType: 'contains' | 'starts-with' | 'equals' | 'ends-with';
}

function valuesOf(person: DirectoryPerson, name: string): string[] {
  switch (name) {
    case DISPLAYNAME:
      return [person.fn];
    case EMAIL_SET:
      return person.emails;
    case CALENDAR_ADDRESS_SET:
      return person.emails.flatMap((email) => [email, `mailto:${email}`]);
    case FIRST_NAME:
      return [person.given];
    case LAST_NAME:
      return [person.family];
  }
  return [];
}

function matches(value: string, search: PropertySearch): boolean {
  const folded = fold(value);
  switch (search.matchType) {
    case 'equals':
      return folded === search.needle;
    case 'starts-with':
      return folded.startsWith(search.needle);
    case 'ends-with':
      return folded.endsWith(search.needle);
    default:
      return folded.includes(search.needle);
  }
}

function parseSearches(root: XmlElement): PropertySearch[] {
  const searches = childrenNamed(root, NS.DAV, 'property-search').map((element): PropertySearch => {
    const prop = child(element, NS.DAV, 'prop');
    const match = child(element, NS.DAV, 'match');
    if (!prop || !match) throw new DavError(400, undefined, 'each DAV:property-search needs a DAV:prop and a DAV:match element');
    // Apple's calendar server added match-type; RFC 3744 itself matches substrings, case-insensitively.
    const matchType = match.attrs['match-type'] ?? 'contains';
    if (!['contains', 'starts-with', 'equals', 'ends-with'].includes(matchType)) {
      throw new DavError(400, undefined, `invalid match-type: ${matchType}`);
    }
    return {
      names: prop.children.map((name) => clark(name.ns, name.local)),
      needle: fold(match.text.trim()),
      matchType: matchType as PropertySearch['matchType'],
    };
  });
  if (searches.length === 0) throw new DavError(400, undefined, 'principal-property-search needs at least one DAV:property-search element');
  return searches;
}

function propertyValue(name: string, person: DirectoryPerson, principal: User, cardHref: string): string | undefined {
  switch (name) {
    case DISPLAYNAME:
      return escapeXml(person.fn);
    case clark(NS.DAV, 'resourcetype'):
      return tag(clark(NS.DAV, 'principal'));
    case clark(NS.DAV, 'principal-URL'):
      return tag(clark(NS.DAV, 'href'), escapeXml(principalHref(principal)));
    case EMAIL_SET:
      return person.emails.map((email) => tag(clark(NS.CS, 'email-address'), escapeXml(email))).join('');
    case CALENDAR_ADDRESS_SET:
      return person.emails.map((email) => tag(clark(NS.DAV, 'href'), escapeXml(`mailto:${email}`))).join('');
    case FIRST_NAME:
      return escapeXml(person.given);
    case LAST_NAME:
      return escapeXml(person.family);
    // RFC 6352 section 7.1.2: the address object that describes the principal.
    case clark(NS.CARDDAV, 'principal-address'):
      return tag(clark(NS.DAV, 'href'), escapeXml(cardHref));
  }
  return undefined;
}

async function directoryBook(dc: DavContext): Promise<{ book: AddressBook; mount: string } | undefined> {
  const visible = await dc.storage.listVisibleBooks(dc.user.id);
  return visible.find((entry) => entry.owner.name === DIRECTORY_USER);
}

async function propertySearch(dc: DavContext, root: XmlElement): Promise<void> {
  if (dc.resource.kind !== 'principals' && !child(root, NS.DAV, 'apply-to-principal-collection-set')) {
    throw new DavError(403, clark(NS.DAV, 'supported-report'), `principal-property-search runs on ${PRINCIPALS} or with DAV:apply-to-principal-collection-set`);
  }
  const searches = parseSearches(root);
  const anyOf = root.attrs.test === 'anyof';
  const prop = child(root, NS.DAV, 'prop');
  const requested = prop ? prop.children.map((name) => clark(name.ns, name.local)) : [DISPLAYNAME];
  const nresults = Number(child(child(root, NS.DAV, 'limit') ?? root, NS.DAV, 'nresults')?.text.trim());
  const limit = Number.isInteger(nresults) && nresults > 0 ? Math.min(nresults, MAX_RESULTS) : MAX_RESULTS;
  const minimal = wantsMinimal(dc);

  const found = await directoryBook(dc);
  const people = found ? await personIndex(dc.storage, found.book) : [];
  const accounts = new Map<string, DirectoryAccount>();
  for (const account of await dc.storage.listDirectoryAccounts()) if (account.active) accounts.set(account.directoryId, account);

  const responses: string[] = [];
  let truncated = false;
  for (const person of people) {
    const account = accounts.get(person.uid);
    if (!account) continue;
    const test = (search: PropertySearch) => search.names.some((name) => valuesOf(person, name).some((value) => matches(value, search)));
    if (!(anyOf ? searches.some(test) : searches.every(test))) continue;
    if (responses.length === limit) {
      truncated = true;
      break;
    }
    const principal: User = { id: account.userId, name: account.userName, passwordHash: null, createdAt: 0 };
    const cardHref = found ? bookHref(dc.user, found.mount) + encodeSegment(person.cardName) : '';
    const ok: [string, string][] = [];
    const missing: [string, string][] = [];
    for (const name of requested) {
      const value = propertyValue(name, person, principal, cardHref);
      if (value === undefined) missing.push([name, '']);
      else ok.push([name, value]);
    }
    const propstats: PropStat[] = [{ status: 200, properties: ok }];
    if (!minimal) propstats.push({ status: 404, properties: missing });
    responses.push(responseXml(principalHref(principal), propstats));
  }
  if (truncated) responses.push(statusResponseXml(dc.resource.href, 507, tag(clark(NS.DAV, 'number-of-matches-within-limits'))));
  sendMultistatus(
    dc.ctx,
    (async function* () {
      yield* responses;
    })(),
  );
}

function searchPropertySet(dc: DavContext): void {
  const properties = SEARCHABLE.map(
    ([name, description]) =>
      `<d:principal-search-property>${tag(clark(NS.DAV, 'prop'), tag(name))}<d:description xml:lang="en">${escapeXml(description)}</d:description></d:principal-search-property>`,
  ).join('');
  dc.ctx.status = 200;
  dc.ctx.type = 'application/xml; charset=utf-8';
  dc.ctx.body = `${XML_HEADER}<d:principal-search-property-set ${XMLNS_DECLARATIONS}>${properties}</d:principal-search-property-set>`;
}

export function isPrincipalReport(root: XmlElement): boolean {
  return is(root, NS.DAV, 'principal-property-search') || is(root, NS.DAV, 'principal-search-property-set');
}

export async function handlePrincipalReport(dc: DavContext, root: XmlElement): Promise<void> {
  if (is(root, NS.DAV, 'principal-search-property-set')) {
    if (dc.resource.kind !== 'principals') {
      throw new DavError(403, clark(NS.DAV, 'supported-report'), `principal-search-property-set runs on ${PRINCIPALS}`);
    }
    return searchPropertySet(dc);
  }
  return propertySearch(dc, root);
}
