import type { AddressBook, Card, CardMeta, CardSummary, CardXml, Storage } from '../storage/types';
import { AddressDataProp, AddressDataRequest, keepsStoredBytes, renderAddressData } from '../vcard/render';
import { readXmlBody } from './body';
import type { DavContext } from './context';
import { DavError } from './errors';
import { ByteChunks, MULTISTATUS_AROUND, prefetchFirst, PropStat, responseXml, sendMultistatus, sendWholeMultistatus, statusResponseXml } from './multistatus';
import { cardsLayout, cardWriter, changeLayout, HrefSource, memberHrefs, PropRequest, propNames, wantsMinimal } from './propfind';
import { cardProperty, P, parseSyncToken, PropertyContext, syncToken } from './props';
import { decodePath, encodeSegment, Resource } from './resource';
import { runQuery } from './query';
import { handlePrincipalReport, isPrincipalReport } from './principal-search';
import { xmlText } from '../vcard/xmltext';
import { child, childrenNamed, childTextGroups, clark, escapeXml, is, isXmlSafe, NS, PackRule, tag, XmlElement } from './xml';

/** Hrefs resolved per storage round trip in a multiget. */
const MULTIGET_BATCH = 500;
/** Pack rule for the hrefs of a large multiget: the parser keeps them as text alone, one group per batch. */
const MULTIGET_HREFS: PackRule = { root: clark(NS.CARDDAV, 'addressbook-multiget'), child: clark(NS.DAV, 'href'), groupSize: MULTIGET_BATCH };
/** Changes read per storage round trip in sync-collection. */
const SYNC_PAGE = 1000;

type BookResource = Extract<Resource, { kind: 'book' }>;

export interface ReportProps {
  request: PropRequest;
  addressData?: AddressDataRequest;
}

/** Reads DAV:prop of a REPORT, with the address-data options when asked for. */
export function parseReportProps(root: XmlElement): ReportProps {
  const prop = child(root, NS.DAV, 'prop');
  if (!prop) {
    if (child(root, NS.DAV, 'allprop')) return { request: { kind: 'allprop', include: [] } };
    return { request: { kind: 'prop', names: [P.getetag] } };
  }
  const request: PropRequest = { kind: 'prop', names: propNames(prop) };
  const element = child(prop, NS.CARDDAV, 'address-data');
  if (!element) return { request };
  return { request, addressData: parseAddressData(element) };
}

const JCARD = 'application/vcard+json';

/** Reads the attributes and CARDDAV:prop children of CARDDAV:address-data (RFC 6352 section 10.4). */
function parseAddressData(element: XmlElement): AddressDataRequest {
  const unsupported = (message: string) => new DavError(403, clark(NS.CARDDAV, 'supported-address-data'), message);
  // CardBook capitalises the attribute name.
  const contentType = (element.attrs['content-type'] ?? element.attrs['Content-Type'] ?? 'text/vcard').trim().toLowerCase();
  if (contentType !== 'text/vcard' && contentType !== JCARD) {
    throw unsupported(`address-data of type ${contentType} is not supported; use text/vcard or ${JCARD}`);
  }
  const version = (element.attrs.version ?? element.attrs.Version)?.trim();
  if (version !== undefined && version !== '3.0' && version !== '4.0') throw unsupported(`vCard version ${version} is not supported; use 3.0 or 4.0`);
  if (contentType === JCARD && version === '3.0') throw unsupported(`${JCARD} is vCard 4.0; leave out version or use 4.0`);
  const selected = childrenNamed(element, NS.CARDDAV, 'prop');
  const props = child(element, NS.CARDDAV, 'allprop') || selected.length === 0 ? undefined : selected.map(parseAddressDataProp);
  return { contentType, version, props };
}

/** CARDDAV:prop: `item1.EMAIL` selects that group only, `EMAIL` every group (section 10.4.2). */
function parseAddressDataProp(element: XmlElement): AddressDataProp {
  const name = (element.attrs.name ?? '').trim().toUpperCase();
  const dot = name.lastIndexOf('.');
  const novalue = element.attrs.novalue === 'yes';
  return dot >= 0 ? { group: name.slice(0, dot), name: name.slice(dot + 1), novalue } : { name, novalue };
}

/**
 * Builds the response for a card whose address data cannot be rendered as requested:
 * its other properties as usual, and address-data in a 403 propstat with
 * CARDDAV:supported-address-data-conversion (RFC 6352 section 10.4.1).
 */
function conversionFailure(dc: DavContext, resource: BookResource, href: string, card: CardSummary, props: ReportProps, minimal: boolean, message: string): string {
  dc.log.warn({ book: resource.book.id, card: card.name, error: message }, 'address data conversion failed');
  const context = { user: dc.user, maxResourceSize: dc.limits.maxResourceSize, access: resource.access };
  const names = props.request.kind === 'prop' ? props.request.names.filter((name) => name !== P.addressData) : [];
  const found: [string, string][] = [];
  const missing: [string, string][] = [];
  for (const name of new Set(names)) {
    const value = cardProperty(context, resource.owner, card, name);
    if (value === undefined) missing.push([name, '']);
    else found.push([name, value]);
  }
  const error = tag(clark(NS.CARDDAV, 'supported-address-data-conversion')) + tag(clark(NS.CARDINAL, 'description'), escapeXml(message));
  const propstats: PropStat[] = [
    { status: 200, properties: found },
    { status: 403, properties: [[P.addressData, '']], error },
  ];
  if (!minimal) propstats.push({ status: 404, properties: missing });
  return responseXml(href, propstats);
}

/**
 * Collects the responses of a report into pieces of bytes of at most about
 * PIECE_LIMIT. The XML form of a stored card is copied in as it is (see
 * CardXml).
 */
export interface ReportWriter {
  /** Adds the response of one card: its XML form, its body when address data must be converted, or its summary. */
  card(href: string, card: CardSummary | Card | CardXml): void;
  /** Adds a response with one status for the whole href. */
  status(href: string, status: number, error?: string): void;
  /** Returns the collected responses once they fill a piece, and undefined until then. */
  full(): Buffer | undefined;
  /** Returns the responses collected since the last piece, or undefined when there are none. Producers call it at the end of each page. */
  rest(): Buffer | undefined;
}

/** Returns the context of a book's card properties. A card's privileges are the user's access to its book, as PROPFIND reports them. */
function propertyContext(dc: DavContext, resource: BookResource): PropertyContext {
  return { user: dc.user, maxResourceSize: dc.limits.maxResourceSize, access: resource.access };
}

export function reportWriter(dc: DavContext, resource: BookResource, props: ReportProps, minimal: boolean, hrefs: HrefSource): ReportWriter {
  const request = props.addressData;
  const write = cardWriter(propertyContext(dc, resource), resource.owner, props.request, minimal, hrefs);
  const out = new ByteChunks();
  return {
    card: (href, card) => {
      if (!request) return write(out, href, card);
      if ('xml' in card) return write(out, href, card, card.xml);
      if (!('data' in card)) return write(out, href, card);
      if (keepsStoredBytes(request)) return write(out, href, card, xmlText(card.data));
      const rendered = renderAddressData(card.data, request);
      if (!rendered.ok) return out.text(conversionFailure(dc, resource, href, card, props, minimal, rendered.message));
      write(out, href, card, escapeXml(rendered.text));
    },
    status: (href, status, error) => out.text(statusResponseXml(href, status, error)),
    full: () => (out.full ? out.take() : undefined),
    rest: () => out.take(),
  };
}

/**
 * Reads cards by name with what a report sends of them: the XML form of
 * their bodies when address data goes out as stored, the bodies when it
 * must be converted, and neither without address data.
 */
export async function readReportCards(storage: Storage, bookId: number, names: string[], request?: AddressDataRequest): Promise<(CardMeta | Card | CardXml)[]> {
  if (!request) return storage.getCardMetas(bookId, names);
  return keepsStoredBytes(request) ? storage.getCardXml(bookId, names) : storage.getCards(bookId, names);
}

/** Maps a multiget href (absolute URL or path, percent-encoded or not) to a card name in this book. */
function hrefToName(href: string, bookHref: string, bookSegments: string[]): string | undefined {
  let path = href.trim();
  // Clients mostly send back the hrefs of a listing: the book's href and a name with nothing to decode.
  if (path.startsWith(bookHref)) {
    const name = path.slice(bookHref.length);
    if (name !== '' && !name.includes('/') && !name.includes('%')) return name;
  }
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
  if (scheme) path = path.slice(scheme[0].length);
  let segments: string[];
  try {
    segments = decodePath(path);
  } catch {
    return undefined;
  }
  if (segments.length !== bookSegments.length + 1) return undefined;
  if (!bookSegments.every((segment, i) => segments[i] === segment)) return undefined;
  return segments[segments.length - 1];
}

/** A multiget href, with the name of the card in the book that it names (undefined for none). */
type MultigetEntry = { href: string; name: string | undefined };

/**
 * Returns the names of a batch when each of its hrefs is the book's href
 * followed by the name, with nothing to escape in XML, and undefined otherwise.
 */
function memberNames(batch: MultigetEntry[], bookHref: string): string[] | undefined {
  const names: string[] = [];
  for (const { href, name } of batch) {
    if (name === undefined || href.length !== bookHref.length + name.length || !href.startsWith(bookHref) || !href.endsWith(name) || !isXmlSafe(name)) return undefined;
    names.push(name);
  }
  return names;
}

/**
 * Returns the whole multistatus of a multiget as the storage writes it, or
 * undefined when a value must be computed or converted here, or when a card
 * lacks its stored XML form.
 */
async function storedMultistatus(dc: DavContext, resource: BookResource, props: ReportProps, minimal: boolean, batch: MultigetEntry[]): Promise<Buffer | undefined> {
  if (props.addressData !== undefined && !keepsStoredBytes(props.addressData)) return undefined;
  const context = propertyContext(dc, resource);
  const withData = props.addressData !== undefined;
  // Clients mostly send the hrefs of a listing, which the storage can write as the book's href and each name.
  let names = memberNames(batch, resource.href);
  let layout = names && cardsLayout(context, resource.owner, props.request, minimal, resource.href, withData);
  if (!layout) {
    names = undefined;
    layout = cardsLayout(context, resource.owner, props.request, minimal, '', withData);
  }
  if (!layout) return undefined;
  const entries = names ?? batch.map(({ href, name }) => ({ href: escapeXml(href), name }));
  return dc.storage.renderCards(resource.book.id, entries, { ...layout, around: MULTISTATUS_AROUND });
}

async function multiget(dc: DavContext, resource: BookResource, root: XmlElement): Promise<void> {
  const props = parseReportProps(root);
  const hrefs = childTextGroups(root, NS.DAV, 'href', MULTIGET_BATCH);
  const minimal = wantsMinimal(dc);
  const storage = dc.storage;
  const bookSegments = decodePath(resource.href);
  const batchEntries = (index: number) =>
    hrefs.group(index).map((text) => {
      const href = text.trim();
      return { href, name: hrefToName(href, resource.href, bookSegments) };
    });

  // Larger multigets are built here, because batches written by the storage allocate so little in JavaScript
  // that V8 frees their buffers late: VmHWM 157 instead of 127 MB after two multigets of 100,000 cards.
  if (hrefs.count <= MULTIGET_BATCH) {
    const body = await storedMultistatus(dc, resource, props, minimal, hrefs.groups === 0 ? [] : batchEntries(0));
    if (body !== undefined) return sendWholeMultistatus(dc.ctx, body);
  }

  const out = reportWriter(dc, resource, props, minimal, 'client');
  async function* responses(): AsyncGenerator<string | Buffer> {
    for (let index = 0; index < hrefs.groups; index++) {
      const batch = batchEntries(index);
      const names = batch.flatMap((entry) => (entry.name === undefined ? [] : [entry.name]));
      const found = new Map<string, CardMeta | Card | CardXml>();
      for (const card of await readReportCards(storage, resource.book.id, names, props.addressData)) found.set(card.name, card);
      for (const { href, name } of batch) {
        const card = name === undefined ? undefined : found.get(name);
        if (card) out.card(href, card);
        else out.status(href, 404);
        const piece = out.full();
        if (piece !== undefined) yield piece;
      }
      const rest = out.rest();
      if (rest !== undefined) yield rest;
    }
  }
  sendMultistatus(dc.ctx, await prefetchFirst(responses()));
}

function parseLimit(root: XmlElement, ns: string): number | undefined {
  const limit = child(root, ns, 'limit');
  if (!limit) return undefined;
  const nresults = child(limit, ns, 'nresults');
  const value = Number(nresults?.text.trim());
  if (!nresults || !Number.isInteger(value) || value < 1) {
    throw new DavError(400, undefined, 'limit needs an nresults element with a positive integer');
  }
  return value;
}

async function syncCollection(dc: DavContext, resource: BookResource, root: XmlElement): Promise<void> {
  const tokenText = child(root, NS.DAV, 'sync-token')?.text.trim() ?? '';
  const book: AddressBook = resource.book;
  let sinceSeq = 0;
  if (tokenText !== '') {
    const parsed = parseSyncToken(tokenText, book);
    if (parsed === undefined) {
      throw new DavError(403, clark(NS.DAV, 'valid-sync-token'), 'the sync token is not one this address book issued; sync again with an empty token');
    }
    sinceSeq = parsed;
  }
  const level = child(root, NS.DAV, 'sync-level')?.text.trim() ?? '1';
  if (level !== '1' && level !== 'infinite') throw new DavError(400, undefined, `invalid sync-level: ${level}`);
  const limit = parseLimit(root, NS.DAV);
  const props = parseReportProps(root);
  const minimal = wantsMinimal(dc);
  const storage = dc.storage;
  const layout = props.addressData ? undefined : changeLayout(propertyContext(dc, resource), resource.owner, props.request, minimal, resource.href);
  const out = reportWriter(dc, resource, props, minimal, memberHrefs(resource.href));
  const reportTruncated = () => out.status(resource.href, 507, tag(clark(NS.DAV, 'number-of-matches-within-limits')));
  const tokenTag = (seq: number) => tag(P.syncToken, escapeXml(syncToken({ ...book, syncSeq: seq })));

  // Changes committed after the request resolved the book (book.syncSeq) wait for the next sync, so a card
  // written while this response streams is not listed twice, once as it was and once as it is now.
  let seq = sinceSeq;
  let remaining = limit ?? Infinity;
  let firstPage: Buffer | undefined;
  if (layout) {
    const page = await storage.renderChanges(book.id, seq, book.syncSeq, Math.min(SYNC_PAGE, remaining), layout);
    seq = page.seq;
    remaining -= page.count;
    if (!page.truncated || remaining <= 0) {
      // The page is the whole response. Sent with its length rather than streamed, in the benchmark a sync of
      // 1,000 changes at N = 100,000 took 1.74 instead of 2.14 ms, and one of 10 changes at N = 1,000 0.95 instead of 1.11 ms.
      if (page.truncated) reportTruncated();
      const [before, after] = MULTISTATUS_AROUND;
      const pieces = [Buffer.from(before), page.bytes, out.rest() ?? Buffer.alloc(0), Buffer.from(tokenTag(seq) + after)];
      return sendWholeMultistatus(dc.ctx, Buffer.concat(pieces));
    }
    // Later pages are built below. Each rendered page is a Buffer outside V8's heap, which V8 frees late
    // when the request allocates little else. After 20 initial syncs of 100,000 cards, the server's VmHWM
    // was 134 MB with every page rendered and 97 MB with the first page alone, as without rendering.
    firstPage = page.bytes;
  }

  async function* responses(): AsyncGenerator<string | Buffer> {
    if (firstPage !== undefined && firstPage.length > 0) yield firstPage;
    for (;;) {
      const page = await storage.changesSince(book.id, seq, Math.min(SYNC_PAGE, remaining));
      // Changes come in sequence order, so only the last one needs checking against the request's sequence number.
      const last = page.changes[page.changes.length - 1];
      const changes = last === undefined || last.seq <= book.syncSeq ? page.changes : page.changes.filter((change) => change.seq <= book.syncSeq);
      const later = changes.length < page.changes.length;
      let withData: Map<string, CardMeta | Card | CardXml> | undefined;
      if (props.addressData) {
        const present = changes.filter((change) => change.card !== undefined).map((change) => change.name);
        withData = new Map((await readReportCards(storage, book.id, present, props.addressData)).map((c) => [c.name, c]));
      }
      for (const change of changes) {
        const href = resource.href + encodeSegment(change.name);
        const card = withData ? withData.get(change.name) : change.card;
        if (card) out.card(href, card);
        else out.status(href, 404);
        const piece = out.full();
        if (piece !== undefined) yield piece;
      }
      const rest = out.rest();
      if (rest !== undefined) yield rest;
      seq = later ? book.syncSeq : page.seq;
      remaining -= changes.length;
      if (later || !page.truncated) break;
      if (remaining <= 0) {
        reportTruncated();
        break;
      }
    }
    // A 507 for the limit comes after the page it cut.
    const limitStatus = out.rest();
    if (limitStatus !== undefined) yield limitStatus;
  }

  sendMultistatus(dc.ctx, await prefetchFirst(responses()), () => tokenTag(seq));
}

export async function handleReport(dc: DavContext): Promise<void> {
  const root = await readXmlBody(dc.ctx, dc.limits.maxXmlBody, MULTIGET_HREFS);
  if (!root) throw new DavError(400, undefined, 'REPORT needs an XML body');
  if (isPrincipalReport(root)) return handlePrincipalReport(dc, root);
  const resource = dc.resource;
  const report = clark(root.ns, root.local);
  const supported = [clark(NS.CARDDAV, 'addressbook-multiget'), clark(NS.CARDDAV, 'addressbook-query'), clark(NS.DAV, 'sync-collection')];
  if (resource.kind !== 'book' || !supported.includes(report)) {
    throw new DavError(403, clark(NS.DAV, 'supported-report'), `the report ${report} is not supported on this resource`);
  }
  if (is(root, NS.CARDDAV, 'addressbook-multiget')) return multiget(dc, resource, root);
  if (is(root, NS.DAV, 'sync-collection')) return syncCollection(dc, resource, root);
  return runQuery(dc, resource, root, parseReportProps(root), parseLimit(root, NS.CARDDAV));
}
