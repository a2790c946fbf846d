import type { Access, AddressBook, CardSummary, User } from '../storage/types';
import { homeHref, principalHref, PRINCIPALS, Resource } from './resource';
import { clark, escapeXml, NS, tag } from './xml';

const d = (local: string) => clark(NS.DAV, local);
const card = (local: string) => clark(NS.CARDDAV, local);
const cs = (local: string) => clark(NS.CS, local);

export const P = {
  resourcetype: d('resourcetype'),
  displayname: d('displayname'),
  getetag: d('getetag'),
  getcontenttype: d('getcontenttype'),
  getcontentlength: d('getcontentlength'),
  getlastmodified: d('getlastmodified'),
  creationdate: d('creationdate'),
  supportedReportSet: d('supported-report-set'),
  currentUserPrivilegeSet: d('current-user-privilege-set'),
  currentUserPrincipal: d('current-user-principal'),
  principalUrl: d('principal-URL'),
  principalCollectionSet: d('principal-collection-set'),
  owner: d('owner'),
  syncToken: d('sync-token'),
  addressbookHomeSet: card('addressbook-home-set'),
  addressbookDescription: card('addressbook-description'),
  supportedAddressData: card('supported-address-data'),
  maxResourceSize: card('max-resource-size'),
  addressData: card('address-data'),
  getctag: cs('getctag'),
  acl: d('acl'),
} as const;

/** Properties the server computes; PROPPATCH on them fails with DAV:cannot-modify-protected-property. */
export const PROTECTED = new Set<string>([
  P.resourcetype,
  P.getetag,
  P.getcontenttype,
  P.getcontentlength,
  P.getlastmodified,
  P.creationdate,
  P.supportedReportSet,
  P.currentUserPrivilegeSet,
  P.currentUserPrincipal,
  P.principalUrl,
  P.principalCollectionSet,
  P.owner,
  P.syncToken,
  P.addressbookHomeSet,
  P.supportedAddressData,
  P.maxResourceSize,
  P.addressData,
  P.getctag,
  d('lockdiscovery'),
  d('supportedlock'),
  d('acl'),
  d('current-user-privilege-set'),
]);

/** Properties of an allprop response, without the costly ones and those of RFC 3744, as RFC 4918 section 9.1 allows. */
const ALLPROP_COLLECTION = [P.resourcetype, P.displayname, P.creationdate, P.getlastmodified];
const ALLPROP_BOOK = [...ALLPROP_COLLECTION, P.addressbookDescription, P.getctag];
const ALLPROP_CARD = [P.resourcetype, P.getetag, P.getcontenttype, P.getcontentlength, P.getlastmodified];

const COMMON = [P.resourcetype, P.displayname, P.currentUserPrincipal, P.currentUserPrivilegeSet, P.supportedReportSet, P.owner, P.principalCollectionSet];
const NAMES: Record<Resource['kind'] | 'member', string[]> = {
  root: [...COMMON, P.principalUrl, P.addressbookHomeSet],
  principals: COMMON,
  homes: COMMON,
  principal: [...COMMON, P.principalUrl, P.addressbookHomeSet],
  home: [...COMMON, P.addressbookHomeSet],
  book: [
    ...COMMON,
    P.addressbookDescription,
    P.supportedAddressData,
    P.maxResourceSize,
    P.getctag,
    P.syncToken,
    P.creationdate,
    P.getlastmodified,
    P.acl,
  ],
  'new-book': [],
  card: [...ALLPROP_CARD, P.currentUserPrincipal, P.currentUserPrivilegeSet, P.owner],
  member: [...ALLPROP_CARD, P.currentUserPrincipal, P.currentUserPrivilegeSet, P.owner],
};

export function propertyNames(kind: Resource['kind']): string[] {
  return NAMES[kind];
}

export function allpropNames(kind: Resource['kind']): string[] {
  if (kind === 'book') return ALLPROP_BOOK;
  if (kind === 'card') return ALLPROP_CARD;
  return ALLPROP_COLLECTION;
}

export const CARD_CONTENT_TYPE = 'text/vcard; charset=utf-8';

/** Sync tokens are URIs (RFC 6578 section 3.2) naming the book's random id and its change sequence. */
export function syncToken(book: AddressBook): string {
  return `urn:x-cardinal:sync:${book.uuid}:${book.syncSeq}`;
}

export function parseSyncToken(token: string, book: AddressBook): number | undefined {
  const match = /^urn:x-cardinal:sync:([0-9a-f-]+):(\d{1,15})$/.exec(token.trim());
  if (!match || match[1] !== book.uuid) return undefined;
  const seq = Number(match[2]);
  return seq <= book.syncSeq ? seq : undefined;
}

export function quoteEtag(etag: string): string {
  return `"${etag}"`;
}

function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function href(path: string): string {
  return tag(d('href'), escapeXml(path));
}

const OWNER_PRIVILEGES = ['read', 'write', 'write-properties', 'write-content', 'bind', 'unbind', 'read-acl', 'read-current-user-privilege-set'];
/** Without DAV:write, because that aggregate includes DAV:write-properties, which only the owner has. */
const WRITE_PRIVILEGES = ['read', 'write-content', 'bind', 'unbind', 'read-current-user-privilege-set'];
const READ_PRIVILEGES = ['read', 'read-current-user-privilege-set'];

function privilegesFor(access: Access): string[] {
  if (access === 'owner') return OWNER_PRIVILEGES;
  return access === 'write' ? WRITE_PRIVILEGES : READ_PRIVILEGES;
}

function privilegeSet(names: string[]): string {
  return names.map((name) => tag(d('privilege'), tag(d(name)))).join('');
}

const BOOK_REPORTS = [card('addressbook-multiget'), card('addressbook-query'), d('sync-collection')];

const PRINCIPAL_REPORTS = [d('principal-property-search'), d('principal-search-property-set')];

function supportedReports(reports: string[]): string {
  return reports.map((report) => tag(d('supported-report'), tag(d('report'), tag(report)))).join('');
}

export interface PropertyContext {
  user: User;
  maxResourceSize: number;
  /** The user's access to the book the card belongs to; owner when absent. */
  access?: Access;
  /** The DAV:acl value of the book, built by dav/acl.ts when a request names it. */
  acl?: string;
}

/**
 * Returns a property's XML content for a collection, the empty string for an
 * empty value, or undefined when the resource has no such property.
 */
export function collectionProperty(
  context: PropertyContext,
  resource: Exclude<Resource, { kind: 'card' | 'new-book' }>,
  name: string,
  deadProperties?: Map<string, string>,
): string | undefined {
  const { user } = context;
  switch (name) {
    case P.resourcetype: {
      if (resource.kind === 'principal') return tag(d('principal'));
      if (resource.kind === 'book') return tag(d('collection')) + tag(card('addressbook'));
      return tag(d('collection'));
    }
    case P.displayname:
      if (resource.kind === 'book') return escapeXml(resource.book.displayName);
      if (resource.kind === 'principal') return escapeXml(resource.owner.name);
      return undefined;
    case P.currentUserPrincipal:
      return href(principalHref(user));
    case P.principalCollectionSet:
      return href(PRINCIPALS);
    case P.currentUserPrivilegeSet:
      if (resource.kind === 'book') return privilegeSet(privilegesFor(resource.access));
      return privilegeSet(resource.kind === 'home' ? OWNER_PRIVILEGES : READ_PRIVILEGES);
    case P.supportedReportSet:
      if (resource.kind === 'book') return supportedReports(BOOK_REPORTS);
      return resource.kind === 'principals' ? supportedReports(PRINCIPAL_REPORTS) : '';
    case P.owner:
      return 'owner' in resource ? href(principalHref(resource.owner)) : undefined;
    // The root also names the user's principal and home, so a client pointed at the server's URL needs one request less.
    case P.principalUrl:
      if (resource.kind === 'root') return href(principalHref(user));
      return resource.kind === 'principal' ? href(principalHref(resource.owner)) : undefined;
    case P.addressbookHomeSet:
      if (resource.kind === 'root') return href(homeHref(user));
      return resource.kind === 'principal' || resource.kind === 'home' ? href(homeHref(resource.owner)) : undefined;
  }
  if (resource.kind !== 'book') return undefined;
  const book = resource.book;
  switch (name) {
    case P.addressbookDescription:
      return escapeXml(book.description);
    case P.supportedAddressData:
      return (
        '<card:address-data-type content-type="text/vcard" version="3.0"/>' +
        '<card:address-data-type content-type="text/vcard" version="4.0"/>' +
        '<card:address-data-type content-type="application/vcard+json" version="4.0"/>'
      );
    case P.maxResourceSize:
      return String(context.maxResourceSize);
    case P.getctag:
      return escapeXml(syncToken(book));
    case P.syncToken:
      return escapeXml(syncToken(book));
    case P.creationdate:
      return isoDate(book.createdAt);
    case P.getlastmodified:
      return httpDate(book.modifiedAt);
    case P.acl:
      return context.acl;
  }
  return deadProperties?.get(name);
}

/** Card properties whose values differ from card to card; the others are the same for every card of a listing. */
export const PER_CARD_PROPERTIES: ReadonlySet<string> = new Set([P.getetag, P.getcontentlength, P.getlastmodified]);

/** Returns a property of a card, or undefined; address-data is handled by the caller. */
export function cardProperty(context: PropertyContext, owner: User, card: CardSummary, name: string): string | undefined {
  switch (name) {
    case P.resourcetype:
      return '';
    case P.getetag:
      // ETags are hex digests (computeEtag), so they need no escaping.
      return quoteEtag(card.etag);
    case P.getcontenttype:
      return CARD_CONTENT_TYPE;
    case P.getcontentlength:
      return String(card.size);
    case P.getlastmodified:
      return httpDate(card.modifiedAt);
    case P.currentUserPrincipal:
      return href(principalHref(context.user));
    case P.currentUserPrivilegeSet:
      return privilegeSet(privilegesFor(context.access ?? 'owner'));
    case P.owner:
      return href(principalHref(owner));
  }
  return undefined;
}

