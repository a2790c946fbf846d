import type { AddressBook, Card, CardMeta } from '../storage/types';
import { AddressDataRequest, renderAddressData } from '../vcard/render';
import { readXmlBody } from './body';
import type { DavContext } from './context';
import { DavError } from './errors';
import { sendMultistatus, statusResponseXml } from './multistatus';
import { cardResponse, PropRequest, propNames, wantsMinimal } from './propfind';
import { P, parseSyncToken, syncToken } from './props';
import { decodePath, encodeSegment, Resource } from './resource';
import { runQuery } from './query';
import { child, childrenNamed, clark, escapeXml, is, NS, tag, XmlElement } from './xml';

/** Hrefs resolved per storage round trip in a multiget. */
const MULTIGET_BATCH = 500;
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
  // CardBook capitalises the attribute name.
  const contentType = (element.attrs['content-type'] ?? element.attrs['Content-Type'] ?? 'text/vcard').toLowerCase();
  if (contentType !== 'text/vcard') {
    throw new DavError(403, clark(NS.CARDDAV, 'supported-address-data'), `address-data of type ${contentType} is not supported`);
  }
  const version = element.attrs.version;
  if (version !== undefined && version !== '3.0' && version !== '4.0') {
    throw new DavError(403, clark(NS.CARDDAV, 'supported-address-data'), `vCard version ${version} is not supported`);
  }
  const selected = childrenNamed(element, NS.CARDDAV, 'prop');
  const props = child(element, NS.CARDDAV, 'allprop') || selected.length === 0
    ? undefined
    : selected.map((p) => ({ name: (p.attrs.name ?? '').toUpperCase(), novalue: p.attrs.novalue === 'yes' }));
  return { request, addressData: { contentType, version, props } };
}

/** Builds a response for one card, with address-data rendered when requested. */
export function reportResponse(dc: DavContext, resource: BookResource, href: string, card: CardMeta | Card, props: ReportProps, minimal: boolean): string {
  const context = { user: dc.user, maxResourceSize: dc.limits.maxResourceSize };
  const data = props.addressData && 'data' in card ? escapeXml(renderAddressData(card.data, props.addressData)) : undefined;
  return cardResponse(context, resource.owner, href, card, props.request, minimal, data);
}

/** Maps a multiget href (absolute URL or path, percent-encoded or not) to a card name in this book. */
function hrefToName(href: string, book: BookResource): string | undefined {
  let path = href.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
  if (scheme) path = path.slice(scheme[0].length);
  let segments: string[];
  try {
    segments = decodePath(path);
  } catch {
    return undefined;
  }
  const bookSegments = decodePath(book.href);
  if (segments.length !== bookSegments.length + 1) return undefined;
  if (!bookSegments.every((segment, i) => segments[i] === segment)) return undefined;
  return segments[segments.length - 1];
}

async function multiget(dc: DavContext, resource: BookResource, root: XmlElement): Promise<void> {
  const props = parseReportProps(root);
  const hrefs = childrenNamed(root, NS.DAV, 'href').map((h) => h.text.trim());
  const minimal = wantsMinimal(dc);
  const storage = dc.storage;
  const needsData = props.addressData !== undefined;

  async function* responses(): AsyncGenerator<string> {
    for (let start = 0; start < hrefs.length; start += MULTIGET_BATCH) {
      const batch = hrefs.slice(start, start + MULTIGET_BATCH).map((href) => ({ href, name: hrefToName(href, resource) }));
      const names = batch.flatMap((entry) => (entry.name === undefined ? [] : [entry.name]));
      const found = new Map<string, CardMeta | Card>();
      if (needsData) for (const card of await storage.getCards(resource.book.id, names)) found.set(card.name, card);
      else for (const name of names) {
        const card = await storage.getCardMeta(resource.book.id, name);
        if (card) found.set(name, card);
      }
      for (const { href, name } of batch) {
        const card = name === undefined ? undefined : found.get(name);
        yield card ? reportResponse(dc, resource, href, card, props, minimal) : statusResponseXml(href, 404);
      }
    }
  }
  sendMultistatus(dc.ctx, responses());
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
  let finalSeq = sinceSeq;

  async function* responses(): AsyncGenerator<string> {
    let seq = sinceSeq;
    let remaining = limit ?? Infinity;
    for (;;) {
      const page = await storage.changesSince(book.id, seq, Math.min(SYNC_PAGE, remaining));
      const present = page.changes.filter((change) => change.card !== undefined).map((change) => change.name);
      const withData = props.addressData ? new Map((await storage.getCards(book.id, present)).map((c) => [c.name, c])) : undefined;
      for (const change of page.changes) {
        const href = resource.href + encodeSegment(change.name);
        const card = withData ? withData.get(change.name) : change.card;
        yield card ? reportResponse(dc, resource, href, card, props, minimal) : statusResponseXml(href, 404);
      }
      seq = page.seq;
      remaining -= page.changes.length;
      if (!page.truncated) break;
      if (remaining <= 0) {
        yield statusResponseXml(resource.href, 507, tag(clark(NS.DAV, 'number-of-matches-within-limits')));
        break;
      }
    }
    finalSeq = seq;
  }
  sendMultistatus(dc.ctx, responses(), () => tag(P.syncToken, escapeXml(syncToken({ ...book, syncSeq: finalSeq }))));
}

export async function handleReport(dc: DavContext): Promise<void> {
  const root = await readXmlBody(dc.ctx, dc.limits.maxXmlBody);
  if (!root) throw new DavError(400, undefined, 'REPORT needs an XML body');
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
