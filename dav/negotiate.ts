import type { Card } from '../storage/types';
import { serializeLines } from '../vcard/contentline';
import { cardVersion, formatLine, parseCardLines, VcardVersion } from '../vcard/convert';
import { JCARD_MEDIA_TYPE, JcardError, jcardToLines } from '../vcard/jcard';
import { CardRejection, PreparedCard, prepareCard } from '../vcard/pipeline';
import { AddressDataRequest, renderAddressData } from '../vcard/render';
import type { DavContext } from './context';
import { CARD_CONTENT_TYPE, quoteEtag } from './props';

/**
 * Content negotiation for single cards: the Accept header of a GET chooses
 * vCard 3.0, vCard 4.0 or jCard (RFC 7095), and a PUT may send jCard, which
 * is stored as vCard 4.0 text.
 */

interface Representation {
  mediaType: string;
  version?: VcardVersion;
}

interface MediaRange {
  type: string;
  subtype: string;
  version?: string;
  q: number;
}

function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of header.split(',')) {
    const [mediaType, ...params] = part.split(';').map((piece) => piece.trim());
    const [type, subtype] = mediaType.toLowerCase().split('/');
    if (!type || !subtype) continue;
    const range: MediaRange = { type, subtype, q: 1 };
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0) continue;
      const name = param.slice(0, eq).trim().toLowerCase();
      const value = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (name === 'q') range.q = Number.isFinite(Number(value)) ? Number(value) : 0;
      else if (name === 'version') range.version = value;
    }
    ranges.push(range);
  }
  return ranges;
}

/** Rates how closely a range names a representation (RFC 7231 section 5.3.2), with -1 for no match. */
function specificity(range: MediaRange, candidate: Representation): number {
  const [type, subtype] = candidate.mediaType.split('/');
  const sameSubtype = range.subtype === subtype || (subtype === 'vcard' && range.subtype === 'x-vcard');
  if (range.type === '*' && range.subtype === '*') return 0;
  if (range.type !== type) return -1;
  if (range.subtype === '*') return 1;
  if (!sameSubtype) return -1;
  if (range.version === undefined) return 2;
  return range.version === candidate.version ? 3 : -1;
}

function quality(ranges: MediaRange[], candidate: Representation): number {
  let best = -1;
  let q = 0;
  for (const range of ranges) {
    const level = specificity(range, candidate);
    if (level > best) {
      best = level;
      q = range.q;
    }
  }
  return q;
}

/** The representation an Accept header prefers; the stored version wins ties, and an empty header keeps it. */
export function chooseRepresentation(accept: string, storedVersion: VcardVersion): Representation {
  const stored: Representation = { mediaType: 'text/vcard', version: storedVersion };
  if (accept.trim() === '') return stored;
  const other: VcardVersion = storedVersion === '4.0' ? '3.0' : '4.0';
  const candidates: Representation[] = [stored, { mediaType: 'text/vcard', version: other }, { mediaType: JCARD_MEDIA_TYPE, version: '4.0' }];
  const ranges = parseAccept(accept);
  let chosen = stored;
  let chosenQ = quality(ranges, stored);
  for (const candidate of candidates.slice(1)) {
    const q = quality(ranges, candidate);
    if (q > chosenQ) {
      chosen = candidate;
      chosenQ = q;
    }
  }
  return chosen;
}

/**
 * Sends a card in the representation the Accept header prefers. A converted
 * representation gets a weak ETag (RFC 7232 section 2.1), because its bytes
 * are not the stored ones. If-Match compares strongly, so a client that writes
 * the card back uses the strong tag of the stored card (getetag, or a GET
 * without conversion).
 */
export function sendCard(dc: DavContext, card: Card): void {
  dc.ctx.set('Vary', 'Accept');
  dc.ctx.status = 200;
  const stored = storedVersion(card.data);
  const choice = stored ? chooseRepresentation(dc.ctx.get('accept'), stored) : undefined;
  if (!choice || (choice.mediaType === 'text/vcard' && choice.version === stored)) {
    dc.ctx.type = CARD_CONTENT_TYPE;
    dc.ctx.body = card.data;
    return;
  }
  const jcard = choice.mediaType === JCARD_MEDIA_TYPE;
  const request: AddressDataRequest = jcard ? { contentType: JCARD_MEDIA_TYPE } : { contentType: 'text/vcard', version: choice.version };
  const rendered = renderAddressData(card.data, request);
  if (!rendered.ok) {
    dc.log.warn({ book: card.bookId, card: card.name, error: rendered.message }, 'card conversion failed; sending the stored version');
    dc.ctx.type = CARD_CONTENT_TYPE;
    dc.ctx.body = card.data;
    return;
  }
  dc.ctx.set('ETag', `W/${quoteEtag(card.etag)}`);
  dc.ctx.type = jcard ? JCARD_MEDIA_TYPE : CARD_CONTENT_TYPE;
  dc.ctx.body = rendered.text;
}

function storedVersion(data: Buffer): VcardVersion | undefined {
  try {
    const version = cardVersion(parseCardLines(data));
    return version === '3.0' || version === '4.0' ? version : undefined;
  } catch {
    return undefined;
  }
}

export function isJcardMediaType(contentType: string): boolean {
  return contentType.split(';')[0].trim().toLowerCase() === JCARD_MEDIA_TYPE;
}

/**
 * Runs an uploaded body through the card pipeline. A jCard body becomes
 * vCard 4.0 text first. The stored bytes then differ from the body, so the
 * result is marked repaired and the PUT returns no ETag.
 */
export function prepareUpload(contentType: string, body: Buffer): PreparedCard | CardRejection {
  if (!isJcardMediaType(contentType)) return prepareCard(body);
  let json: string;
  try {
    // JSON text is UTF-8 (RFC 8259 section 8.1); a lenient decode would store U+FFFD in place of the bytes.
    json = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { ok: false, condition: 'valid-address-data', message: 'invalid jCard: the body is not valid UTF-8' };
  }
  let text: Buffer;
  try {
    text = serializeLines(jcardToLines(json).map((line) => formatLine(line, '4.0')));
  } catch (error) {
    if (error instanceof JcardError) return { ok: false, condition: 'valid-address-data', message: `invalid jCard: ${error.message}` };
    throw error;
  }
  const prepared = prepareCard(text);
  if (!prepared.ok) return prepared;
  if (prepared.version !== '4.0') return { ok: false, condition: 'valid-address-data', message: 'a jCard must have version 4.0' };
  return { ...prepared, repaired: true };
}
