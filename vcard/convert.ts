import {
  ContentLine,
  ContentLineError,
  escapeText,
  Parameter,
  parseContentLine,
  serializeLines,
  splitLines,
  unescapeText,
  unfoldBytes,
} from './contentline';

/**
 * Conversion between vCard 3.0 (RFC 2426) and 4.0 (RFC 6350) on the content
 * line level. Values are carried over as written unless the two versions
 * spell them differently (dates, inline photos, TEL URIs, GEO, TZ), so text,
 * base64 payloads and unknown properties reach the other version unchanged.
 * Group prefixes and X- properties and parameters are kept as they are.
 */

export type VcardVersion = '3.0' | '4.0';

export class ConversionError extends Error {}

/** A converted line with the source line it came from, so callers can map a selection onto the output. */
export interface ConvertedLine {
  line: ContentLine;
  origin: ContentLine;
}

/** Parameters a vCard 3.0 parser understands; 4.0 parameters outside this list are dropped or mapped. */
const PARAMS_30 = new Set(['TYPE', 'LANGUAGE']);
/** vCard 3.0 parameters without a meaning in 4.0. */
const PARAMS_DROPPED_40 = new Set(['CHARSET', 'ENCODING', 'CONTEXT']);
const BINARY_PROPERTIES = new Set(['PHOTO', 'LOGO', 'SOUND', 'KEY']);
const DATE_PROPERTIES = new Set(['BDAY', 'ANNIVERSARY', 'DEATHDATE']);

/** A content line with its property name as the card spelled it (`X-ABLabel`), which the output keeps. */
interface SpelledLine extends ContentLine {
  spelling?: string;
}

const SPELLED_NAME = /^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)/;

function parseSpelled(text: string): SpelledLine {
  const line: SpelledLine = parseContentLine(text);
  const spelling = SPELLED_NAME.exec(text)?.[1];
  if (spelling !== undefined && spelling !== line.name) line.spelling = spelling;
  return line;
}

/** Parses stored card bytes into content lines; a line the parser rejects makes the card unconvertible. */
export function parseCardLines(data: Buffer): ContentLine[] {
  try {
    return splitLines(unfoldBytes(data).toString('utf8')).map(parseSpelled);
  } catch (error) {
    if (error instanceof ContentLineError) throw new ConversionError(error.message);
    throw error;
  }
}

export function cardVersion(lines: ContentLine[]): string | undefined {
  return lines.find((line) => line.name === 'VERSION')?.value.trim();
}

// ---- Parameters ----------------------------------------------------------

function values(line: ContentLine, name: string): string[] {
  return line.params.filter((param) => param.name === name).flatMap((param) => param.values);
}

function withoutParams(params: Parameter[], names: string[]): Parameter[] {
  return params.filter((param) => !names.includes(param.name));
}

/**
 * Merges repeated parameters (`type=INTERNET;type=HOME`) into one, and splits
 * TYPE values that were sent as one quoted list (`TYPE="home,work"`).
 */
function normalizeParams(params: Parameter[]): Parameter[] {
  const merged = new Map<string, string[]>();
  for (const param of params) {
    const list = merged.get(param.name) ?? [];
    const incoming = param.name === 'TYPE' ? param.values.flatMap((value) => value.split(',')) : param.values;
    for (const value of incoming) {
      if (param.name === 'TYPE' && (value === '' || list.some((known) => known.toLowerCase() === value.toLowerCase()))) continue;
      list.push(value);
    }
    merged.set(param.name, list);
  }
  return [...merged].filter(([, list]) => list.length > 0).map(([name, list]) => ({ name, values: list }));
}

function setParam(params: Parameter[], name: string, value: string): Parameter[] {
  return [...withoutParams(params, [name]), { name, values: [value] }];
}

function formatParamValue30(name: string, value: string): string {
  const flat = value.replace(/[\r\n]+/g, ' ');
  // A quoted TYPE list is read as one value by Apple's parser, so TYPE values lose the characters that would need quotes.
  if (name === 'TYPE') return flat.replace(/[";:,]/g, '');
  return /[;:,]/.test(flat) ? `"${flat.replace(/"/g, "'")}"` : flat.replace(/"/g, "'");
}

/** Applies RFC 6868 caret encoding, and quotes a value that contains a separator. */
function formatParamValue40(value: string): string {
  // A lone carriage return is a line break too, and left as it is it would end the content line.
  const encoded = value.replace(/\^/g, '^^').replace(/\r\n|\r|\n/g, '^n').replace(/"/g, "^'");
  return /[;:,]/.test(encoded) ? `"${encoded}"` : encoded;
}

export function formatLine(line: SpelledLine, version: VcardVersion): string {
  // A renamed property (KIND to X-ADDRESSBOOKSERVER-KIND) no longer matches its old spelling.
  const name = line.spelling?.toUpperCase() === line.name ? line.spelling : line.name;
  let text = line.group === undefined ? name : `${line.group}.${name}`;
  for (const param of line.params) {
    const formatted = param.values.map((value) => (version === '3.0' ? formatParamValue30(param.name, value) : formatParamValue40(value)));
    text += `;${param.name}=${formatted.join(',')}`;
  }
  return `${text}:${line.value}`;
}

export function serializeCard(lines: ContentLine[], version: VcardVersion): Buffer {
  return serializeLines(lines.map((line) => formatLine(line, version)));
}

// ---- Dates ---------------------------------------------------------------

/** Rewrites a date or time in the 4.0 basic format (`19850412`, `--0412`, `T102200Z`); other values stay. */
export function toBasicDate(value: string): string {
  const [date, time] = splitDateTime(value);
  let basic = date;
  if (/^\d{4}-\d{2}-\d{2}$/.test(date)) basic = date.replace(/-/g, '');
  else if (/^--\d{2}-\d{2}$/.test(date)) basic = `--${date.slice(2).replace('-', '')}`;
  return time === undefined ? basic : `${basic}T${time.replace(/:/g, '')}`;
}

/** Rewrites a date or time in the extended format of 3.0 and jCard (`1985-04-12`, `--04-12`, `T10:22:00Z`). */
export function toExtendedDate(value: string): string {
  const [date, time] = splitDateTime(value);
  let extended = date;
  if (/^\d{8}$/.test(date)) extended = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}`;
  else if (/^--\d{4}$/.test(date)) extended = `--${date.slice(2, 4)}-${date.slice(4)}`;
  if (time === undefined) return extended;
  return `${extended}T${extendedTime(time)}`;
}

function splitDateTime(value: string): [string, string | undefined] {
  const t = value.indexOf('T');
  return t < 0 ? [value, undefined] : [value.slice(0, t), value.slice(t + 1)];
}

function extendedTime(time: string): string {
  const match = /^(\d{2})(\d{2})?(\d{2})?(\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(time);
  if (!match) return time;
  const [, hours, minutes, seconds, fraction, zone] = match;
  let text = hours + (minutes ? `:${minutes}` : '') + (seconds ? `:${seconds}` : '') + (fraction ?? '');
  if (zone) text += zone.length === 5 && !zone.includes(':') ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  return text;
}

function convertDate30to40(line: ContentLine): ContentLine {
  const valueType = values(line, 'VALUE')[0]?.toLowerCase();
  if (valueType === 'text') return line;
  const params = withoutParams(line.params, ['VALUE']);
  const omitYear = values(line, 'X-APPLE-OMIT-YEAR')[0];
  const basic = toBasicDate(line.value.trim());
  // Apple writes a birthday without year as 1604-MM-DD with X-APPLE-OMIT-YEAR=1604; the parameter stays for the way back.
  if (omitYear !== undefined && /^\d{8}$/.test(basic) && basic.startsWith(omitYear)) {
    return { ...line, params, value: `--${basic.slice(4)}` };
  }
  return { ...line, params, value: basic };
}

function convertDate40to30(line: ContentLine): ContentLine {
  const valueType = values(line, 'VALUE')[0]?.toLowerCase();
  if (valueType === 'text') return { ...line, params: setParam(line.params, 'VALUE', 'text') };
  const params = withoutParams(line.params, ['VALUE']);
  const extended = toExtendedDate(line.value.trim());
  const omitYear = values(line, 'X-APPLE-OMIT-YEAR')[0];
  if (omitYear !== undefined && /^\d{4}$/.test(omitYear) && /^--\d{2}-\d{2}$/.test(extended)) {
    return { ...line, params, value: `${omitYear}${extended.slice(1)}` };
  }
  return { ...line, params, value: extended };
}

// ---- Inline binary data ----------------------------------------------------

const MEDIA_PREFIX: Record<string, string> = { PHOTO: 'image', LOGO: 'image', SOUND: 'audio', KEY: 'application' };
const KEY_TYPES: Record<string, string> = { PGP: 'application/pgp-keys', X509: 'application/pkix-cert' };

/** Returns the media type of a 3.0 TYPE value (`JPEG`), or of the payload's first bytes when TYPE is missing. */
function mediaTypeFor30(property: string, type: string | undefined, payload: string): string {
  if (type !== undefined && type.includes('/')) return type.toLowerCase();
  if (type !== undefined && property === 'KEY' && KEY_TYPES[type.toUpperCase()]) return KEY_TYPES[type.toUpperCase()];
  if (type !== undefined && type !== '') return `${MEDIA_PREFIX[property]}/${type.toLowerCase()}`;
  if (payload.startsWith('/9j/')) return 'image/jpeg';
  if (payload.startsWith('iVBORw0KGgo')) return 'image/png';
  if (payload.startsWith('R0lGOD')) return 'image/gif';
  return 'application/octet-stream';
}

/** Returns the 3.0 TYPE value of a media type: `image/jpeg` becomes `JPEG`. */
function typeFor40(property: string, mediaType: string): string {
  const lower = mediaType.toLowerCase();
  if (property === 'KEY') {
    const known = Object.entries(KEY_TYPES).find(([, media]) => media === lower);
    if (known) return known[0];
  }
  const slash = lower.indexOf('/');
  const subtype = slash >= 0 ? lower.slice(slash + 1) : lower;
  return subtype.replace(/^x-/, '').toUpperCase();
}

function convertBinary30to40(line: ContentLine): ContentLine {
  const encoding = values(line, 'ENCODING').map((value) => value.toLowerCase());
  const type = values(line, 'TYPE')[0];
  const rest = withoutParams(line.params, ['ENCODING', 'TYPE', 'VALUE']);
  if (encoding.includes('b') || encoding.includes('base64')) {
    const payload = line.value.replace(/\s+/g, '');
    return { ...line, params: rest, value: `data:${mediaTypeFor30(line.name, type, payload)};base64,${payload}` };
  }
  if (type === undefined) return { ...line, params: rest };
  return { ...line, params: [...rest, { name: 'MEDIATYPE', values: [mediaTypeFor30(line.name, type, '')] }] };
}

/**
 * Decodes the percent-encoded data of a data: URI (RFC 2397) into bytes. The
 * escapes may name any octet, so they are not read as UTF-8, because a KEY or
 * SOUND contains binary data.
 */
function percentDecode(data: string, property: string): Buffer {
  const bytes: Buffer[] = [];
  let literal = '';
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== '%') {
      literal += data[i];
      continue;
    }
    const hex = data.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new ConversionError(`${property} has a data: URI with invalid percent-encoding`);
    bytes.push(Buffer.from(literal, 'utf8'), Buffer.from([parseInt(hex, 16)]));
    literal = '';
    i += 2;
  }
  bytes.push(Buffer.from(literal, 'utf8'));
  return Buffer.concat(bytes);
}

function convertBinary40to30(line: ContentLine): ContentLine {
  const rest = withoutParams(line.params, ['MEDIATYPE', 'VALUE', 'TYPE']);
  const value = line.value.trim();
  if (!/^data:/i.test(value)) {
    const mediaType = values(line, 'MEDIATYPE')[0];
    const params: Parameter[] = [{ name: 'VALUE', values: ['uri'] }, ...rest];
    if (mediaType) params.push({ name: 'TYPE', values: [typeFor40(line.name, mediaType)] });
    return { ...line, params, value };
  }
  const comma = value.indexOf(',');
  if (comma < 0) throw new ConversionError(`${line.name} has a data: URI without a "," before its data`);
  const header = value.slice(5, comma).split(';');
  const base64 = header.slice(1).some((part) => part.toLowerCase() === 'base64');
  const mediaType = header[0] || 'text/plain';
  let payload = value.slice(comma + 1);
  if (!base64) payload = percentDecode(payload, line.name).toString('base64');
  const params: Parameter[] = [{ name: 'ENCODING', values: ['b'] }, { name: 'TYPE', values: [typeFor40(line.name, mediaType)] }, ...rest];
  return { ...line, params, value: payload };
}

// ---- Other value forms -------------------------------------------------------

function convertTel40to30(line: ContentLine): ContentLine {
  const valueType = values(line, 'VALUE')[0]?.toLowerCase();
  if (valueType !== 'uri') return { ...line, params: withoutParams(line.params, ['VALUE']) };
  if (!/^tel:/i.test(line.value)) return line;
  return { ...line, params: withoutParams(line.params, ['VALUE']), value: line.value.slice(4) };
}

function convertGeo30to40(line: ContentLine): ContentLine {
  const match = /^\s*(-?[\d.]+)\s*;\s*(-?[\d.]+)\s*$/.exec(line.value);
  return match ? { ...line, value: `geo:${match[1]},${match[2]}` } : line;
}

function convertGeo40to30(line: ContentLine): ContentLine {
  const match = /^geo:(-?[\d.]+),(-?[\d.]+)/i.exec(line.value.trim());
  return match ? { ...line, params: withoutParams(line.params, ['VALUE']), value: `${match[1]};${match[2]}` } : line;
}

const UTC_OFFSET = /^([+-])(\d{2}):?(\d{2})$/;

function convertTz30to40(line: ContentLine): ContentLine {
  const valueType = values(line, 'VALUE')[0]?.toLowerCase();
  const offset = UTC_OFFSET.exec(line.value.trim());
  if (valueType === 'text' || (valueType === undefined && !offset)) return { ...line, params: withoutParams(line.params, ['VALUE']) };
  if (!offset) return line;
  return { ...line, params: setParam(line.params, 'VALUE', 'utc-offset'), value: `${offset[1]}${offset[2]}${offset[3]}` };
}

function convertTz40to30(line: ContentLine): ContentLine {
  const valueType = values(line, 'VALUE')[0]?.toLowerCase();
  const offset = UTC_OFFSET.exec(line.value.trim());
  if (valueType === 'utc-offset' && offset) {
    return { ...line, params: withoutParams(line.params, ['VALUE']), value: `${offset[1]}${offset[2]}:${offset[3]}` };
  }
  if (valueType === undefined || valueType === 'text') return { ...line, params: setParam(line.params, 'VALUE', 'text') };
  return line;
}

// ---- 3.0 to 4.0 ------------------------------------------------------------

function prefToPref1(params: Parameter[]): Parameter[] {
  const types = params.find((param) => param.name === 'TYPE');
  if (!types || !types.values.some((value) => value.toLowerCase() === 'pref')) return params;
  const rest = types.values.filter((value) => value.toLowerCase() !== 'pref');
  const updated = params.map((param) => (param === types ? { name: 'TYPE', values: rest } : param)).filter((param) => param.values.length > 0);
  return updated.some((param) => param.name === 'PREF') ? updated : [...updated, { name: 'PREF', values: ['1'] }];
}

function convertLine30to40(source: ContentLine): ContentLine {
  // ENCODING stays on binary properties until convertBinary30to40 has read it.
  const dropped = [...PARAMS_DROPPED_40].filter((name) => name !== 'ENCODING' || !BINARY_PROPERTIES.has(source.name));
  const line: ContentLine = { ...source, params: prefToPref1(withoutParams(normalizeParams(source.params), dropped)) };
  switch (line.name) {
    case 'VERSION':
      return { ...line, value: '4.0' };
    case 'X-ADDRESSBOOKSERVER-KIND':
      return { ...line, name: 'KIND', value: line.value.toLowerCase() };
    case 'X-ADDRESSBOOKSERVER-MEMBER':
      return { ...line, name: 'MEMBER' };
    case 'GEO':
      return convertGeo30to40(line);
    case 'TZ':
      return convertTz30to40(line);
    case 'REV':
      // A 4.0 timestamp has the basic format only; 3.0 accepts both, so the way back keeps it.
      return { ...line, value: toBasicDate(line.value.trim()) };
  }
  if (BINARY_PROPERTIES.has(line.name)) return convertBinary30to40(line);
  if (DATE_PROPERTIES.has(line.name)) return convertDate30to40(line);
  return line;
}

function typeKey(line: ContentLine): string {
  return values(line, 'TYPE')
    .flatMap((value) => value.split(','))
    .map((value) => value.toLowerCase())
    .filter((value) => value !== 'pref')
    .sort()
    .join(',');
}

/** Moves 3.0 LABEL properties into the LABEL parameter of the ADR they belong to: same group, or else same TYPE. */
function attachLabels(converted: ConvertedLine[]): ConvertedLine[] {
  const labelled = new Set<ContentLine>();
  const result: ConvertedLine[] = [];
  const pending = converted.filter((entry) => entry.line.name === 'LABEL');
  for (const entry of converted) {
    if (entry.line.name === 'LABEL') continue;
    result.push(entry);
  }
  for (const label of pending) {
    const matchesGroup = (entry: ConvertedLine) => label.line.group !== undefined && entry.line.group?.toUpperCase() === label.line.group.toUpperCase();
    const sameType = (entry: ConvertedLine) => label.line.group === undefined && typeKey(entry.line) === typeKey(label.line);
    const target = result.find(
      (entry) => entry.line.name === 'ADR' && !labelled.has(entry.line) && values(entry.line, 'LABEL').length === 0 && (matchesGroup(entry) || sameType(entry)),
    );
    if (!target) {
      result.push(label);
      continue;
    }
    target.line = { ...target.line, params: [...target.line.params, { name: 'LABEL', values: [unescapeText(label.line.value)] }] };
    labelled.add(target.line);
  }
  return result;
}

function convertTo40(lines: ContentLine[]): ConvertedLine[] {
  const hasKind = lines.some((line) => line.name === 'KIND');
  const members = new Set(lines.filter((line) => line.name === 'MEMBER').map((line) => line.value));
  const converted: ConvertedLine[] = [];
  for (const origin of lines) {
    if (origin.name === 'X-ADDRESSBOOKSERVER-KIND' && hasKind) continue;
    if (origin.name === 'X-ADDRESSBOOKSERVER-MEMBER' && members.has(origin.value)) continue;
    converted.push({ line: convertLine30to40(origin), origin });
  }
  return attachLabels(converted);
}

// ---- 4.0 to 3.0 ------------------------------------------------------------

/**
 * Keeps the parameters 3.0 parsers read, with 4.0 PREF=1 as TYPE=pref. VALUE
 * and MEDIATYPE stay for the property converters, which drop or map them.
 */
function params40to30(params: Parameter[]): Parameter[] {
  const normalized = normalizeParams(params);
  const pref = normalized.find((param) => param.name === 'PREF')?.values[0];
  let kept = normalized.filter((param) => PARAMS_30.has(param.name) || param.name.startsWith('X-') || param.name === 'VALUE' || param.name === 'MEDIATYPE');
  if (pref !== undefined && pref.trim() === '1') {
    const types = kept.find((param) => param.name === 'TYPE');
    if (types) kept = kept.map((param) => (param === types ? { name: 'TYPE', values: [...types.values, 'pref'] } : param));
    else kept = [...kept, { name: 'TYPE', values: ['pref'] }];
  }
  return kept;
}

/** Builds the 3.0 LABEL property for a 4.0 ADR's LABEL parameter, reading `\n` as a line break as RFC 6350's own example does. */
function labelLine(adr: ContentLine, label: string): ContentLine {
  const types = values(adr, 'TYPE');
  const text = escapeText(label.replace(/\\n/gi, '\n'));
  return { group: adr.group, name: 'LABEL', params: types.length > 0 ? [{ name: 'TYPE', values: types }] : [], value: text };
}

function convertLine40to30(source: ContentLine): ContentLine[] {
  const label = source.name === 'ADR' ? values(source, 'LABEL')[0] : undefined;
  let line: ContentLine = { ...source, params: params40to30(source.params) };
  switch (line.name) {
    case 'VERSION':
      return [{ ...line, value: '3.0' }];
    case 'KIND':
      return [{ ...line, name: 'X-ADDRESSBOOKSERVER-KIND' }];
    case 'MEMBER':
      return [{ ...line, name: 'X-ADDRESSBOOKSERVER-MEMBER' }];
    case 'CLIENTPIDMAP':
      return [];
    case 'TEL':
      return [convertTel40to30(line)];
    case 'GEO':
      return [convertGeo40to30(line)];
    case 'TZ':
      return [convertTz40to30(line)];
  }
  if (BINARY_PROPERTIES.has(line.name)) return [convertBinary40to30(line)];
  if (DATE_PROPERTIES.has(line.name)) line = convertDate40to30(line);
  line = { ...line, params: withoutParams(line.params, ['MEDIATYPE']).filter((param) => param.name !== 'VALUE' || keepsValue30(param)) };
  return label === undefined ? [line] : [line, labelLine(line, label)];
}

/** VALUE types that exist in 3.0; 4.0-only ones (date-and-or-time, timestamp, language-tag) are dropped. */
function keepsValue30(param: Parameter): boolean {
  return param.values.every((value) => ['uri', 'text', 'date', 'date-time', 'binary'].includes(value.toLowerCase()));
}

function convertTo30(lines: ContentLine[]): ConvertedLine[] {
  const hasAppleKind = lines.some((line) => line.name === 'X-ADDRESSBOOKSERVER-KIND');
  const appleMembers = new Set(lines.filter((line) => line.name === 'X-ADDRESSBOOKSERVER-MEMBER').map((line) => line.value));
  const converted: ConvertedLine[] = [];
  for (const origin of lines) {
    if (origin.name === 'KIND' && hasAppleKind) continue;
    if (origin.name === 'MEMBER' && appleMembers.has(origin.value)) continue;
    for (const line of convertLine40to30(origin)) converted.push({ line, origin });
  }
  return converted;
}

/** Converts parsed lines of a card to `target`; lines of a card already in `target` come back unchanged. */
export function convertLines(lines: ContentLine[], target: VcardVersion): ConvertedLine[] {
  const source = cardVersion(lines);
  if (source !== '3.0' && source !== '4.0') throw new ConversionError(`the card has VERSION ${source ?? '(none)'}; only 3.0 and 4.0 convert`);
  if (source === target) return lines.map((line) => ({ line, origin: line }));
  return target === '4.0' ? convertTo40(lines) : convertTo30(lines);
}

/** Converts stored card bytes to `target`; a card already in `target` is returned as stored. */
export function convertCard(data: Buffer, target: VcardVersion): Buffer {
  const lines = parseCardLines(data);
  if (cardVersion(lines) === target) return data;
  return serializeCard(
    convertLines(lines, target).map((entry) => entry.line),
    target,
  );
}
