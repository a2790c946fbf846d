import { Readable } from 'node:stream';
import { readBody } from './body';
import type { DavContext } from './context';
import { enforceCrmRulesOnBookDelete, enforceCrmRulesOnDelete, enforceCrmRulesOnPut } from './crm';
import { DavError } from './errors';
import { isJcardMediaType, prepareUpload, sendCard } from './negotiate';
import { CARD_CONTENT_TYPE, quoteEtag } from './props';
import { encodeSegment, Resource } from './resource';
import { clark, escapeXml, NS, tag } from './xml';

const CARDDAV = (local: string) => clark(NS.CARDDAV, local);
/** Cards read per storage round trip when a whole book is exported. */
const EXPORT_PAGE = 200;

type CardResource = Extract<Resource, { kind: 'card' }>;

/**
 * Parses an If-Match or If-None-Match list (RFC 7232 section 3). Returns the
 * entity tags without quotes, `*` as is. A malformed tag can match nothing,
 * so it is kept as an impossible value: the condition then fails with 412.
 */
export function parseEtagList(header: string, comparison: 'strong' | 'weak' = 'weak'): string[] {
  const tags: string[] = [];
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value === '') continue;
    if (value === '*') tags.push('*');
    else {
      const match = /^(W\/)?"([^"]*)"$/.exec(value);
      // If-Match uses the strong comparison (RFC 7232 section 3.1), so a weak tag never matches there.
      const usable = match && !(comparison === 'strong' && match[1]);
      tags.push(usable ? match[2] : '\u0000malformed');
    }
  }
  return tags;
}

/** Media types accepted for vCard uploads (RFC 6352 section 6.3.2.1); parameters such as charset and version are ignored. */
const VCARD_TYPES = new Set(['text/vcard', 'text/x-vcard', 'text/directory']);

function checkContentType(dc: DavContext): void {
  const header = dc.ctx.get('content-type');
  if (header === '') return;
  const mediaType = header.split(';')[0].trim().toLowerCase();
  if (!VCARD_TYPES.has(mediaType) && !isJcardMediaType(mediaType)) {
    throw new DavError(
      403,
      CARDDAV('supported-address-data'),
      `media type ${mediaType} is not supported; send text/vcard (vCard 3.0 or 4.0) or application/vcard+json`,
    );
  }
}

export async function handlePut(dc: DavContext): Promise<void> {
  const resource = dc.resource;
  if (resource.kind !== 'card') throw new DavError(405, undefined, 'PUT is allowed on cards inside an address book only');
  checkContentType(dc);
  const limit = dc.limits.maxResourceSize;
  const body = await readBody(
    dc.ctx,
    limit,
    () => new DavError(403, CARDDAV('max-resource-size'), `the card is larger than the limit of ${limit} bytes`),
  );
  const parsed = prepareUpload(dc.ctx.get('content-type'), body);
  if (!parsed.ok) throw new DavError(403, CARDDAV(parsed.condition), parsed.message);

  const ifMatch = dc.ctx.get('if-match');
  const ifNoneMatch = dc.ctx.get('if-none-match');
  const noneMatch = ifNoneMatch ? parseEtagList(ifNoneMatch) : undefined;
  // The CRM rules (dav/crm.ts) may rewrite the card and pin the write to the stored version they checked.
  const { card: prepared, condition } = await enforceCrmRulesOnPut(dc, resource, parsed, {
    ifMatch: ifMatch ? parseEtagList(ifMatch, 'strong') : undefined,
    ifNoneMatchAny: noneMatch?.includes('*'),
    ifNoneMatch: noneMatch?.filter((t) => t !== '*'),
  });
  const result = await dc.storage.putCard(
    resource.book.id,
    { name: resource.name, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties },
    condition,
  );
  switch (result.kind) {
    case 'precondition-failed':
      throw new DavError(412, undefined, 'the card does not match the If-Match or If-None-Match condition');
    case 'uid-conflict': {
      const href = resource.href.slice(0, resource.href.lastIndexOf('/') + 1) + encodeSegment(result.existingName);
      throw new DavError(
        409,
        CARDDAV('no-uid-conflict'),
        'another card in this address book has the same UID',
        tag(clark(NS.DAV, 'href'), escapeXml(href)),
      );
    }
    case 'book-missing':
      throw new DavError(409, undefined, 'the address book was removed');
  }
  dc.log.debug({ book: resource.book.id, card: resource.name, repaired: prepared.repaired }, 'card stored');
  // A repaired card differs from what the client sent, so an ETag would claim bytes the client does not hold.
  if (!prepared.repaired) dc.ctx.set('ETag', quoteEtag(result.card.etag));
  dc.ctx.status = result.kind === 'created' ? 201 : 204;
}

async function getCard(dc: DavContext, resource: CardResource): Promise<void> {
  const card = await dc.storage.getCard(resource.book.id, resource.name);
  if (!card) throw new DavError(404, undefined, 'no card exists at this URL');
  const etag = quoteEtag(card.etag);
  const ifMatch = dc.ctx.get('if-match');
  if (ifMatch && !parseEtagList(ifMatch, 'strong').some((t) => t === '*' || t === card.etag)) {
    throw new DavError(412, undefined, 'the card does not match If-Match');
  }
  dc.ctx.set('ETag', etag);
  dc.ctx.set('Last-Modified', new Date(card.modifiedAt).toUTCString());
  const ifNoneMatch = dc.ctx.get('if-none-match');
  if (ifNoneMatch && parseEtagList(ifNoneMatch).some((t) => t === '*' || t === card.etag)) {
    dc.ctx.status = 304;
    return;
  }
  sendCard(dc, card);
}

/** GET of an address book exports every card as one text/vcard stream. */
function exportBook(dc: DavContext, bookId: number): void {
  const storage = dc.storage;
  async function* cards(): AsyncGenerator<Buffer> {
    let afterId = 0;
    for (;;) {
      const page = await storage.listCards(bookId, afterId, EXPORT_PAGE);
      for (const card of page) yield card.data;
      if (page.length < EXPORT_PAGE) return;
      afterId = page[page.length - 1].id;
    }
  }
  dc.ctx.status = 200;
  dc.ctx.type = CARD_CONTENT_TYPE;
  dc.ctx.body = Readable.from(cards());
}

export async function handleGet(dc: DavContext): Promise<void> {
  const resource = dc.resource;
  if (resource.kind === 'card') return getCard(dc, resource);
  if (resource.kind === 'book') return exportBook(dc, resource.book.id);
  if (resource.kind === 'new-book') throw new DavError(404, undefined, 'no address book exists at this URL');
  dc.ctx.status = 200;
  dc.ctx.type = 'text/plain; charset=utf-8';
  dc.ctx.body = 'Cardinal CardDAV server. Point a CardDAV client at this URL.\n';
}

export async function handleDelete(dc: DavContext): Promise<void> {
  const resource = dc.resource;
  if (resource.kind === 'book') {
    const ifMatch = dc.ctx.get('if-match');
    if (ifMatch && !parseEtagList(ifMatch, 'strong').includes('*')) {
      throw new DavError(412, undefined, 'address books have no entity tag; If-Match can only be *');
    }
    await enforceCrmRulesOnBookDelete(dc, resource);
    await dc.storage.deleteBook(resource.book.id);
    dc.log.info({ book: resource.book.id }, 'address book deleted');
    dc.ctx.status = 204;
    return;
  }
  if (resource.kind !== 'card') {
    if (resource.kind === 'new-book') throw new DavError(404, undefined, 'no address book exists at this URL');
    throw new DavError(403, clark(NS.DAV, 'need-privileges'), 'this collection cannot be deleted');
  }
  const ifMatch = dc.ctx.get('if-match');
  const checkedIfMatch = await enforceCrmRulesOnDelete(dc, resource, ifMatch ? parseEtagList(ifMatch, 'strong') : undefined);
  const result = await dc.storage.deleteCard(resource.book.id, resource.name, checkedIfMatch);
  if (result === 'not-found') throw new DavError(404, undefined, 'no card exists at this URL');
  if (result === 'precondition-failed') throw new DavError(412, undefined, 'the card does not match If-Match');
  dc.ctx.status = 204;
}
