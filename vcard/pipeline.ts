import { createHash, randomUUID } from 'node:crypto';
import type { IndexedProperty } from '../storage/types';
import {
  ContentLine,
  ContentLineError,
  escapeText,
  paramValues,
  parseContentLine,
  serializeLines,
  splitLines,
  unescapeText,
  unfoldBytes,
} from './contentline';
import { indexProperties } from './properties';

/**
 * The one path every card takes before it is stored, whether it came from a
 * client's PUT or from a directory import: decode, validate, repair what can be
 * repaired without guessing, and extract the values that queries index.
 */

export type CardRejection = {
  ok: false;
  /** The CardDAV precondition (RFC 6352 section 6.3.2.1) the card fails. */
  condition: 'valid-address-data' | 'supported-address-data';
  message: string;
};

export type PreparedCard = {
  ok: true;
  /** The bytes to store: the input unless `repaired`. */
  data: Buffer;
  /** True when the stored bytes differ from the input, so a PUT must not return an ETag. */
  repaired: boolean;
  uid: string;
  version: '3.0' | '4.0';
  etag: string;
  properties: IndexedProperty[];
};

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
/** Characters XML 1.0 cannot carry (section 2.2); a card holding one could never be sent in a multistatus. */
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

export function computeEtag(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 32);
}

function reject(condition: CardRejection['condition'], message: string): CardRejection {
  return { ok: false, condition, message };
}

function decodeUtf8(data: Buffer): string | undefined {
  try {
    return UTF8.decode(data);
  } catch {
    return undefined;
  }
}

function decodeQuotedPrintable(value: string, charset: string): string {
  const bytes: number[] = [];
  const raw = value.replace(/=\r?\n/g, '');
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === '=' && /^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const byte of Buffer.from(ch, 'utf8')) bytes.push(byte);
    }
  }
  const buffer = Buffer.from(bytes);
  return /^utf-?8$/i.test(charset) || charset === '' ? buffer.toString('utf8') : buffer.toString('latin1');
}

/** Rewrites a quoted-printable property as plain UTF-8, keeping structure separators. */
function rewriteQuotedPrintable(parsed: ContentLine): string {
  const charset = paramValues(parsed, 'CHARSET')[0] ?? 'utf-8';
  const decoded = decodeQuotedPrintable(parsed.value, charset).replace(/\r?\n/g, '\\n');
  const params = parsed.params
    .filter((p) => p.name !== 'ENCODING' && p.name !== 'CHARSET')
    .map((p) => `;${p.name}=${p.values.join(',')}`)
    .join('');
  const name = parsed.group ? `${parsed.group}.${parsed.name}` : parsed.name;
  return `${name}${params}:${decoded}`;
}

export function prepareCard(input: Buffer): PreparedCard | CardRejection {
  let repaired = false;
  let data = input;
  if (data.subarray(0, 3).equals(BOM)) {
    data = data.subarray(3);
    repaired = true;
  }

  // Folding may have split a UTF-8 sequence, so the unfolded text is what must decode.
  const unfolded = decodeUtf8(unfoldBytes(data));
  if (unfolded === undefined) return reject('valid-address-data', 'the card is not valid UTF-8');
  if (decodeUtf8(data) === undefined) repaired = true;

  let text = unfolded;
  if (XML_FORBIDDEN.test(text)) {
    text = text.replace(new RegExp(XML_FORBIDDEN.source, 'g'), '');
    repaired = true;
  }

  // A quoted-printable value may continue on the next line after a soft break ("=" at the end).
  const rawLines = splitLines(text);
  const lines: string[] = [];
  for (const line of rawLines) {
    const previous = lines[lines.length - 1];
    if (previous !== undefined && /ENCODING=QUOTED-PRINTABLE/i.test(previous.split(':')[0]) && previous.endsWith('=')) {
      lines[lines.length - 1] = previous + '\n' + line;
    } else lines.push(line);
  }

  const parsed: ContentLine[] = [];
  try {
    for (const line of lines) parsed.push(parseContentLine(line));
  } catch (error) {
    if (error instanceof ContentLineError) return reject('valid-address-data', error.message);
    throw error;
  }

  if (parsed.length < 2 || parsed[0].name !== 'BEGIN' || parsed[0].value.toUpperCase() !== 'VCARD') {
    return reject('valid-address-data', 'the body does not start with BEGIN:VCARD');
  }
  const last = parsed[parsed.length - 1];
  if (last.name !== 'END' || last.value.toUpperCase() !== 'VCARD') {
    return reject('valid-address-data', 'the body does not end with END:VCARD');
  }
  let depth = 0;
  for (let i = 0; i < parsed.length; i++) {
    const line = parsed[i];
    if (line.name === 'BEGIN') depth++;
    if (line.name === 'END') depth--;
    if (depth === 0 && i !== parsed.length - 1) {
      return reject('valid-address-data', 'the body holds more than one vCard; store each card as its own resource');
    }
  }

  const versions = parsed.filter((line) => line.name === 'VERSION').map((line) => line.value.trim());
  if (versions.length !== 1) return reject('valid-address-data', 'the card needs exactly one VERSION property');
  const version = versions[0];
  if (version !== '3.0' && version !== '4.0') {
    return reject('supported-address-data', `vCard version ${version} is not supported; send vCard 3.0 or 4.0`);
  }

  const fn = parsed.find((line) => line.name === 'FN');
  if (!fn || unescapeText(fn.value).trim() === '') return reject('valid-address-data', 'the card has no FN property');

  const uids = parsed.filter((line) => line.name === 'UID');
  if (uids.length > 1) return reject('valid-address-data', 'the card has more than one UID property');
  let uid = uids[0]?.value.trim() ?? '';
  if (uids.length === 1 && uid === '') return reject('valid-address-data', 'the card has an empty UID');

  for (let i = 0; i < parsed.length; i++) {
    if (paramValues(parsed[i], 'ENCODING').some((value) => /^quoted-printable$/i.test(value))) {
      lines[i] = rewriteQuotedPrintable(parsed[i]);
      parsed[i] = parseContentLine(lines[i]);
      repaired = true;
    }
  }
  if (uid === '') {
    uid = randomUUID();
    const versionIndex = parsed.findIndex((line) => line.name === 'VERSION');
    lines.splice(versionIndex + 1, 0, `UID:${escapeText(uid)}`);
    parsed.splice(versionIndex + 1, 0, parseContentLine(`UID:${uid}`));
    repaired = true;
  }

  if (repaired) data = serializeLines(lines);

  const properties = indexProperties(parsed);

  return { ok: true, data, repaired, uid, version, etag: computeEtag(data), properties };
}
