import type { CardsLayout, CardSummary, ChangeLayout, LayoutField, User } from '../storage/types';
import { readXmlBody } from './body';
import { bookAcl } from './acl';
import type { DavContext } from './context';
import { DavError } from './errors';
import { ByteChunks, prefetchFirst, PropStat, responseXml, sendMultistatus, statusResponseXml } from './multistatus';
import { allpropNames, cardProperty, collectionProperty, P, PER_CARD_PROPERTIES, PropertyContext, propertyNames } from './props';
import { bookHref, encodeSegment, homeHref, HOMES, principalHref, PRINCIPALS, Resource } from './resource';
import { child, clark, escapeXml, is, isXmlSafe, NS, XmlElement } from './xml';

export type PropRequest = { kind: 'allprop'; include: string[] } | { kind: 'propname' } | { kind: 'prop'; names: string[] };

/** Cards listed per storage round trip in a Depth 1 listing. */
const LISTING_PAGE = 1000;

export function propNames(prop: XmlElement): string[] {
  return prop.children.map((element) => clark(element.ns, element.local));
}

export function parsePropRequest(root: XmlElement | undefined): PropRequest {
  if (root === undefined) return { kind: 'allprop', include: [] };
  if (!is(root, NS.DAV, 'propfind')) throw new DavError(400, undefined, 'the PROPFIND body must be a DAV:propfind element');
  const prop = child(root, NS.DAV, 'prop');
  if (prop) return { kind: 'prop', names: propNames(prop) };
  if (child(root, NS.DAV, 'propname')) return { kind: 'propname' };
  if (child(root, NS.DAV, 'allprop')) {
    const include = child(root, NS.DAV, 'include');
    return { kind: 'allprop', include: include ? propNames(include) : [] };
  }
  throw new DavError(400, undefined, 'DAV:propfind needs one of DAV:prop, DAV:propname or DAV:allprop');
}

/** Reads the Depth header. A missing one counts as 1, as most CardDAV servers treat it; infinity is refused. */
export function parseDepth(value: string | undefined, allowed: ('0' | '1')[] = ['0', '1']): 0 | 1 {
  const depth = (value ?? '1').trim().toLowerCase();
  if (depth === 'infinity') {
    throw new DavError(403, clark(NS.DAV, 'propfind-finite-depth'), 'Depth: infinity is not supported; use Depth 0 or 1');
  }
  if (depth !== '0' && depth !== '1') throw new DavError(400, undefined, `invalid Depth header: ${value}`);
  if (!allowed.includes(depth)) throw new DavError(400, undefined, `Depth ${depth} is not allowed here`);
  return depth === '0' ? 0 : 1;
}

/** Splits requested properties into found and missing ones; with `minimal`, missing ones are left out (RFC 7240). */
function propstats(request: PropRequest, kind: Resource['kind'], lookup: (name: string) => string | undefined, minimal: boolean): PropStat[] {
  if (request.kind === 'propname') {
    return [{ status: 200, properties: propertyNames(kind).map((name) => [name, ''] as [string, string]) }];
  }
  const names = request.kind === 'prop' ? request.names : [...allpropNames(kind), ...request.include];
  const found: [string, string][] = [];
  const missing: [string, string][] = [];
  for (const name of new Set(names)) {
    const value = lookup(name);
    if (value === undefined) missing.push([name, '']);
    else found.push([name, value]);
  }
  const result: PropStat[] = [{ status: 200, properties: found }];
  // A response needs a propstat or a status (RFC 4918 section 14.24),
  // so the 404 propstat stays when no requested property was found.
  if (request.kind === 'prop' && (!minimal || found.length === 0)) result.push({ status: 404, properties: missing });
  return result;
}

export function cardResponse(
  context: PropertyContext,
  owner: User,
  href: string,
  card: CardSummary,
  request: PropRequest,
  minimal: boolean,
  addressData?: string,
): string {
  const lookup = (name: string) =>
    name === clark(NS.CARDDAV, 'address-data') ? addressData : cardProperty(context, owner, card, name);
  return responseXml(href, propstats(request, 'card', lookup, minimal));
}

/**
 * The origin of the hrefs given to a responder. An `encoded` href is a
 * collection href that needs no escaping followed by encodeSegment output,
 * which contains no character that XML escapes, so it is copied without a
 * scan. A `client` href came in a request and is escaped.
 */
export type HrefSource = 'encoded' | 'client';

/** Returns how to treat the hrefs of a collection's members: `encoded` unless the collection's own href needs escaping. */
export function memberHrefs(collectionHref: string): HrefSource {
  return isXmlSafe(collectionHref) ? 'encoded' : 'client';
}

/** Writes the DAV:response of one card; address data is escaped text or the stored XML form (see CardXml). */
export type CardWriter = (out: ByteChunks, href: string, card: CardSummary, addressData?: string | Buffer) => void;

/**
 * Returns a writer of card responses as bytes for one request. Every card of
 * a listing gets the same properties, so the response is laid out once as a
 * template, with a slot for the href and one for each property whose value
 * differs between cards. responseXml itself makes the template from marked
 * values, so the output is the same as cardResponse's. Each card adds only
 * its href and values between the template's fixed parts.
 */
export function cardWriter(context: PropertyContext, owner: User, request: PropRequest, minimal: boolean, hrefs: HrefSource = 'client'): CardWriter {
  const templates = new Map<boolean, Template | undefined>();
  return (out, href, card, addressData) => {
    const withData = addressData !== undefined;
    if (!templates.has(withData)) {
      const template = request.kind === 'propname' ? undefined : cardTemplate(context, owner, request, minimal, withData);
      templates.set(withData, template);
    }
    const template = templates.get(withData);
    if (!template) {
      const data = typeof addressData === 'string' || addressData === undefined ? addressData : addressData.toString();
      out.text(cardResponse(context, owner, href, card, request, minimal, data));
      return;
    }
    out.text(template.parts[0]);
    out.text(hrefs === 'encoded' ? href : escapeXml(href));
    out.text(template.parts[1]);
    for (let i = 0; i < template.slots.length; i++) {
      const slot = template.slots[i];
      if (slot !== ADDRESS_DATA) out.text(cardProperty(context, owner, card, slot) ?? '');
      else if (typeof addressData === 'string') out.text(addressData);
      else out.bytes(addressData!);
      out.text(template.parts[i + 2]);
    }
  };
}

const ADDRESS_DATA = clark(NS.CARDDAV, 'address-data');

/** Characters that cannot occur in a property name or an escaped value, used to mark the slots. */
const MARK_OPEN = '\uE000';
const MARK_CLOSE = '\uE001';
/** A size no card has, as the marker of getcontentlength in cardsLayout. */
const SIZE_MARK = 987654321987;

interface Template {
  /** The text around the slots: before the href, after it, then after each slot. */
  parts: string[];
  /** Property names filled per card, in order. */
  slots: string[];
}

/** The stored field behind each per-card property that the storage can write into a layout. */
const LAYOUT_FIELDS: ReadonlyMap<string, LayoutField> = new Map([
  [P.getetag, 'etag'],
  [P.getcontentlength, 'size'],
]);

/**
 * Returns the layout in which the storage writes the responses of cards
 * itself (for renderCards), or undefined when a requested value is not a
 * stored field (getlastmodified, converted address data) or `hrefPrefix`
 * needs escaping. Each entry's href follows `hrefPrefix`, so without a prefix
 * the entries carry whole hrefs, escaped already. With `withData`, address
 * data goes out as the stored XML form of the card. The texts come from the
 * same template as cardWriter's, so the bytes are the same.
 */
export function cardsLayout(context: PropertyContext, owner: User, request: PropRequest, minimal: boolean, hrefPrefix: string, withData: boolean): CardsLayout | undefined {
  if (request.kind === 'propname' || !isXmlSafe(hrefPrefix)) return undefined;
  const template = cardTemplate(context, owner, request, minimal, withData);
  if (!template) return undefined;
  const texts = [template.parts[0] + hrefPrefix, template.parts[1]];
  const fields: LayoutField[] = [];
  // A card whose fields are markers, to find the text around each field in its property's value (an ETag's quotes).
  const probe: CardSummary = { name: '', etag: MARK_OPEN, size: SIZE_MARK, modifiedAt: 0, seq: 0 };
  for (let i = 0; i < template.slots.length; i++) {
    const slot = template.slots[i];
    const field = slot === ADDRESS_DATA ? 'xml' : LAYOUT_FIELDS.get(slot);
    if (!field) return undefined;
    const value = field === 'xml' ? MARK_OPEN : (cardProperty(context, owner, probe, slot) ?? '');
    const around = value.split(field === 'size' ? String(SIZE_MARK) : MARK_OPEN);
    if (around.length !== 2) return undefined;
    texts[texts.length - 1] += around[0];
    fields.push(field);
    texts.push(around[1] + template.parts[i + 2]);
  }
  const missing = statusResponseXml(MARK_OPEN, 404).split(MARK_OPEN);
  if (missing.length !== 2) return undefined;
  return { card: { texts, fields }, missing: [missing[0] + hrefPrefix, missing[1]] };
}

/** Returns the layout of a collection's changes for renderChanges, or undefined when the storage cannot write them (see cardsLayout). */
export function changeLayout(context: PropertyContext, owner: User, request: PropRequest, minimal: boolean, collectionHref: string): ChangeLayout | undefined {
  const layout = cardsLayout(context, owner, request, minimal, collectionHref, false);
  return layout && { card: layout.card, removed: layout.missing };
}

function cardTemplate(context: PropertyContext, owner: User, request: PropRequest, minimal: boolean, withData: boolean): Template | undefined {
  const slots: string[] = [];
  const mark = (name: string) => {
    slots.push(name);
    return `${MARK_OPEN}${slots.length}${MARK_CLOSE}`;
  };
  const probe: CardSummary = { name: '', etag: '', size: 0, modifiedAt: 0, seq: 0 };
  const lookup = (name: string) => {
    if (name === ADDRESS_DATA) return withData ? mark(name) : undefined;
    const value = cardProperty(context, owner, probe, name);
    return value !== undefined && PER_CARD_PROPERTIES.has(name) ? mark(name) : value;
  };
  const xml = responseXml(`${MARK_OPEN}0${MARK_CLOSE}`, propstats(request, 'card', lookup, minimal));
  const parts = xml.split(new RegExp(`${MARK_OPEN}\\d+${MARK_CLOSE}`));
  // A marker character in a value (a user name, say) would shift the slots: build such responses one by one.
  if (parts.length !== slots.length + 2 || xml.split(MARK_OPEN).length !== slots.length + 2) return undefined;
  // Parts cut from text with a marker are two-byte strings in V8, and so would be every response joined from them.
  // Decoding their bytes again gives the compact form where the text allows it: half the memory, and faster to encode.
  return { parts: parts.map((part) => Buffer.from(part).toString()), slots };
}

export function wantsMinimal(dc: DavContext): boolean {
  const prefer = dc.ctx.get('prefer').toLowerCase();
  return prefer.includes('return=minimal') || dc.ctx.get('brief').toLowerCase() === 't';
}

type CollectionResource = Exclude<Resource, { kind: 'card' | 'new-book' }>;

async function collectionResponse(dc: DavContext, resource: CollectionResource, request: PropRequest, minimal: boolean): Promise<string> {
  const context: PropertyContext = { user: dc.user, maxResourceSize: dc.limits.maxResourceSize };
  const dead = resource.kind === 'book' ? await dc.storage.getBookProperties(resource.book.id) : undefined;
  let named: string[] = [];
  if (request.kind === 'prop') named = request.names;
  else if (request.kind === 'allprop') named = request.include;
  // DAV:acl needs the grants, so they are read only when the request names it.
  if (resource.kind === 'book' && named.includes(P.acl)) context.acl = await bookAcl(dc.storage, dc.user, resource);
  const lookup = (name: string) => collectionProperty(context, resource, name, dead);
  return responseXml(resource.href, propstats(request, resource.kind, lookup, minimal));
}

async function childCollections(dc: DavContext, resource: CollectionResource): Promise<CollectionResource[]> {
  const user = dc.user;
  switch (resource.kind) {
    case 'root':
      return resource.href === '/'
        ? [{ kind: 'root', href: '/dav/' }]
        : [
            { kind: 'principals', href: PRINCIPALS },
            { kind: 'homes', href: HOMES },
          ];
    case 'principals':
      return [{ kind: 'principal', href: principalHref(user), owner: user }];
    case 'homes':
      return [{ kind: 'home', href: homeHref(user), owner: user }];
    case 'home': {
      const books = await dc.storage.listVisibleBooks(resource.owner.id);
      return books.map((visible) => ({
        kind: 'book',
        href: bookHref(resource.owner, visible.mount),
        owner: visible.owner,
        book: visible.book,
        access: visible.access,
      }));
    }
    default:
      return [];
  }
}

export async function handlePropfind(dc: DavContext): Promise<void> {
  const depth = parseDepth(dc.ctx.get('depth') || undefined);
  const request = parsePropRequest(await readXmlBody(dc.ctx, dc.limits.maxXmlBody));
  const minimal = wantsMinimal(dc);
  const resource = dc.resource;
  const context: PropertyContext = { user: dc.user, maxResourceSize: dc.limits.maxResourceSize };

  if (resource.kind === 'new-book') throw new DavError(404, undefined, 'no address book exists at this URL');
  if (resource.kind === 'card') {
    context.access = resource.access;
    const card = await dc.storage.getCardMeta(resource.book.id, resource.name);
    if (!card) throw new DavError(404, undefined, 'no card exists at this URL');
    const body = cardResponse(context, resource.owner, resource.href, card, request, minimal);
    sendMultistatus(dc.ctx, (async function* () {
      yield body;
    })());
    return;
  }

  const self = await collectionResponse(dc, resource, request, minimal);
  const children = depth === 1 ? await childCollections(dc, resource) : [];
  const childResponses = await Promise.all(children.map((c) => collectionResponse(dc, c, request, minimal)));
  const storage = dc.storage;

  async function* responses(): AsyncGenerator<string | Buffer> {
    const book = depth === 1 && resource.kind === 'book' ? resource : undefined;
    // One snapshot of the book, read in pages, so a write committed during the
    // listing (a directory sync, say) shows either whole or not at all.
    const pages = book ? storage.snapshotCardMeta(book.book.id, LISTING_PAGE)[Symbol.asyncIterator]() : undefined;
    try {
      // The first page is read before the first response, so prefetchFirst runs it before the 207 starts.
      let page = await pages?.next();
      yield self;
      yield* childResponses;
      if (!book || !pages) return;
      context.access = book.access;
      const write = cardWriter(context, book.owner, request, minimal, memberHrefs(book.href));
      const out = new ByteChunks();
      for (; page && !page.done; page = await pages.next()) {
        // A yield per card would cost an await in each async layer of the stream, so cards are batched.
        for (const card of page.value) {
          write(out, book.href + encodeSegment(card.name), card);
          if (out.full) yield out.take()!;
        }
        const rest = out.take();
        if (rest !== undefined) yield rest;
      }
    } finally {
      await pages?.return?.();
    }
  }
  sendMultistatus(dc.ctx, await prefetchFirst(responses()));
}
