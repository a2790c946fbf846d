import { createHash, randomUUID } from 'node:crypto';
import { TextDecoder } from 'node:util';
import type { IndexedProperty } from '../storage/types';
import {
  ContentLine,
  ContentLineError,
  escapeText,
  formatContentLine,
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
const XML_FORBIDDEN_ALL = new RegExp(XML_FORBIDDEN.source, 'g');

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

function isQuotedPrintable(line: ContentLine): boolean {
  return paramValues(line, 'ENCODING').some((value) => /^quoted-printable$/i.test(value));
}

/** True when a raw line is a quoted-printable property whose value continues on the next line after a soft break. */
function continuesQuotedPrintable(line: string): boolean {
  if (!line.endsWith('=')) return false;
  try {
    return isQuotedPrintable(parseContentLine(line));
  } catch {
    return false;
  }
}

/**
 * Decodes a quoted-printable value (RFC 2045 section 6.7). Each run of `=XX`
 * escapes is decoded as bytes in the charset, and literal text stays as it
 * is, because the card around it is UTF-8 already. Returns undefined when
 * the bytes are invalid in the charset.
 */
function decodeQuotedPrintable(value: string, decoder: TextDecoder): string | undefined {
  const raw = value.replace(/=\r?\n/g, '');
  let text = '';
  let bytes: number[] = [];
  try {
    for (let i = 0; i < raw.length; i++) {
      const hex = raw[i] === '=' ? raw.slice(i + 1, i + 3) : '';
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
        continue;
      }
      if (bytes.length > 0) text += decoder.decode(Uint8Array.from(bytes));
      bytes = [];
      text += raw[i];
    }
    if (bytes.length > 0) text += decoder.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
  return text;
}

/** Returns a strict decoder for a CHARSET parameter, or undefined for a charset the WHATWG Encoding Standard does not name. */
function charsetDecoder(charset: string): TextDecoder | undefined {
  try {
    return new TextDecoder(charset, { fatal: true, ignoreBOM: true });
  } catch {
    return undefined;
  }
}

/**
 * Rewrites a quoted-printable property as plain UTF-8 without its ENCODING
 * and CHARSET parameters. Line breaks in the decoded value become `\n`
 * escapes and characters XML cannot carry are dropped, as for the rest of
 * the card. Returns the new line, or a rejection for an unknown charset or
 * bytes that are invalid in it.
 */
function rewriteQuotedPrintable(parsed: ContentLine): { line: string; parsed: ContentLine } | CardRejection {
  const charset = paramValues(parsed, 'CHARSET')[0] || 'utf-8';
  const decoder = charsetDecoder(charset);
  if (!decoder) return reject('valid-address-data', `the ${parsed.name} property names charset ${charset}, which is not supported; send UTF-8`);
  const decoded = decodeQuotedPrintable(parsed.value, decoder);
  if (decoded === undefined) {
    return reject('valid-address-data', `the quoted-printable value of ${parsed.name} is not valid ${charset}`);
  }
  const value = decoded.replace(/\r\n|\r|\n/g, '\\n').replace(XML_FORBIDDEN_ALL, '');
  const params = parsed.params.filter((p) => p.name !== 'ENCODING' && p.name !== 'CHARSET');
  const line = formatContentLine({ group: parsed.group, name: parsed.name, params, value });
  return { line, parsed: parseContentLine(line) };
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
    text = text.replace(XML_FORBIDDEN_ALL, '');
    repaired = true;
  }

  // A quoted-printable value may continue on the next line after a soft break ("=" at the end).
  const rawLines = splitLines(text);
  const lines: string[] = [];
  for (const line of rawLines) {
    const previous = lines[lines.length - 1];
    if (previous !== undefined && continuesQuotedPrintable(previous)) lines[lines.length - 1] = previous + '\n' + line;
    else lines.push(line);
  }

  // Quoted-printable values are decoded first, so the checks below run on the values that are stored.
  const parsed: ContentLine[] = [];
  try {
    for (const [i, line] of lines.entries()) {
      const property = parseContentLine(line);
      if (!isQuotedPrintable(property)) {
        parsed.push(property);
        continue;
      }
      const rewritten = rewriteQuotedPrintable(property);
      if (!('line' in rewritten)) return rewritten;
      lines[i] = rewritten.line;
      parsed.push(rewritten.parsed);
      repaired = true;
    }
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
  if (!fn) return reject('valid-address-data', 'the card has no FN property');
  if (unescapeText(fn.value).trim() === '') return reject('valid-address-data', 'the FN property of the card is empty');

  const uids = parsed.filter((line) => line.name === 'UID');
  if (uids.length > 1) return reject('valid-address-data', 'the card has more than one UID property');
  let uid = uids[0]?.value.trim() ?? '';
  if (uids.length === 1 && uid === '') return reject('valid-address-data', 'the card has an empty UID');

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
