import { createHash } from 'node:crypto';
import type { Entry } from 'ldapts';
import { escapeText, serializeLines } from '../vcard/contentline';
import type { LdapAttributeMap, LdapConfig } from './config';

/**
 * Turns directory entries into vCard text. The output depends only on the
 * entry's values (in the order the server returns them) and on the
 * configuration: no timestamps and a fixed property order, so an entry that
 * did not change produces the same bytes and keeps its ETag.
 */

export type EntryValue = string | Buffer;

/** Entries indexed by lower-case attribute type, built once per entry because servers choose the case of the types they return. */
const INDEXES = new WeakMap<Entry, Map<string, EntryValue[]>>();

function attributeIndex(entry: Entry): Map<string, EntryValue[]> {
  let index = INDEXES.get(entry);
  if (index) return index;
  index = new Map();
  for (const [key, value] of Object.entries(entry)) {
    if (key === 'dn') continue;
    const values = (Array.isArray(value) ? value : [value]).filter((v) => (typeof v === 'string' ? v !== '' : v.length > 0));
    index.set(key.split(';')[0].toLowerCase(), values);
  }
  INDEXES.set(entry, index);
  return index;
}

/** Returns the values of one attribute, matched case-insensitively and ignoring options such as `;binary`. */
export function attributeValues(entry: Entry, attribute: string): EntryValue[] {
  if (attribute === '') return [];
  return attributeIndex(entry).get(attribute.toLowerCase()) ?? [];
}

function textValues(entry: Entry, attribute: string): string[] {
  return attributeValues(entry, attribute).map((value) => (typeof value === 'string' ? value : value.toString('utf8')));
}

/** Formats 16 bytes as a UUID; Active Directory's objectGUID stores the first three groups little-endian. */
function formatGuid(bytes: Buffer, microsoftOrder: boolean): string {
  const ordered = microsoftOrder
    ? Buffer.concat([Buffer.from(bytes.subarray(0, 4)).reverse(), Buffer.from(bytes.subarray(4, 6)).reverse(), Buffer.from(bytes.subarray(6, 8)).reverse(), bytes.subarray(8)])
    : bytes;
  const hex = ordered.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Returns the entry's stable identifier as text, or undefined when the entry has none. */
export function directoryId(entry: Entry, attribute: string): string | undefined {
  const value = attributeValues(entry, attribute)[0];
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value.trim() || undefined;
  if (value.length === 16 && attribute.toLowerCase() === 'objectguid') return formatGuid(value, true);
  const text = value.toString('utf8');
  return /^[\x20-\x7e]+$/.test(text) ? text.trim() : value.toString('hex');
}

/** Attributes whose values must be read as bytes. */
export function binaryAttributes(map: LdapAttributeMap): string[] {
  const names = [map.photo, map.uid.toLowerCase() === 'objectguid' ? map.uid : ''].filter((name) => name !== '');
  // ldapts matches these names case-sensitively against the type the server sends back.
  return [...new Set(names.flatMap((name) => [name, name.toLowerCase(), `${name};binary`]))];
}

export function requestedAttributes(map: LdapAttributeMap): string[] {
  return [...new Set(Object.values(map).filter((name) => name !== ''))];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Returns the card's URL segment: the identifier itself when it is URL-safe, otherwise a hash of it. */
export function cardName(id: string): string {
  if (SAFE_NAME.test(id)) return `${id}.vcf`;
  return `${createHash('sha256').update(id).digest('hex').slice(0, 32)}.vcf`;
}

/** Removes control characters, which no vCard text value may hold; line breaks survive as `\n` escapes. */
function clean(value: string): string {
  return value.replace(/\r\n?/g, '\n').replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '').trim();
}

function text(value: string): string {
  return escapeText(clean(value));
}

function photoLine(bytes: Buffer, version: '3.0' | '4.0'): string {
  const png = bytes.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  const base64 = bytes.toString('base64');
  if (version === '4.0') return `PHOTO:data:image/${png ? 'png' : 'jpeg'};base64,${base64}`;
  return `PHOTO;ENCODING=b;TYPE=${png ? 'PNG' : 'JPEG'}:${base64}`;
}

/** Another mirrored entry, as named by a `manager` value. */
export interface RelatedEntry {
  id: string;
  fn: string;
}

export interface BuildContext {
  config: LdapConfig;
  /** Looks up a mirrored entry by DN, for RELATED. */
  findEntry: (dn: string) => RelatedEntry | undefined;
  /** Cards larger than this many bytes are rebuilt without PHOTO. */
  maxBytes: number;
}

export type BuiltCard =
  | { ok: true; id: string; name: string; fn: string; data: Buffer; droppedPhoto: boolean }
  | { ok: false; id?: string; reason: string };

/** Returns the formatted name: the FN attribute, else given and family name, else the email address. */
export function formattedName(entry: Entry, map: LdapAttributeMap): string {
  const fn = textValues(entry, map.fn).map(clean).find((value) => value !== '');
  if (fn) return fn;
  const given = clean(textValues(entry, map.givenName)[0] ?? '');
  const family = clean(textValues(entry, map.familyName)[0] ?? '');
  const joined = `${given} ${family}`.trim();
  if (joined !== '') return joined;
  return clean(textValues(entry, map.email)[0] ?? '');
}

export function buildCard(entry: Entry, context: BuildContext): BuiltCard {
  const { config } = context;
  const map = config.attributes;
  const version = config.vcardVersion;
  const id = directoryId(entry, map.uid);
  if (id === undefined) return { ok: false, reason: `the entry has no ${map.uid} value` };
  const fn = formattedName(entry, map);
  if (fn === '') return { ok: false, id, reason: `the entry has no ${map.fn}, name or email value for FN` };

  const lines: string[] = ['BEGIN:VCARD', `VERSION:${version}`, 'PRODID:-//Cardinal//LDAP directory//EN', `UID:${text(id)}`, `FN:${text(fn)}`];
  const family = textValues(entry, map.familyName)[0] ?? '';
  const given = textValues(entry, map.givenName)[0] ?? '';
  // N is required in vCard 3.0 (RFC 2426 section 3.1.2) and optional in 4.0.
  if (family !== '' || given !== '' || version === '3.0') lines.push(`N:${text(family)};${text(given)};;;`);
  for (const email of textValues(entry, map.email)) lines.push(`EMAIL;TYPE=work:${text(email)}`);
  for (const phone of textValues(entry, map.workPhone)) lines.push(`TEL;TYPE=work:${text(phone)}`);
  for (const phone of textValues(entry, map.cellPhone)) lines.push(`TEL;TYPE=cell:${text(phone)}`);
  const title = textValues(entry, map.title)[0];
  if (title) lines.push(`TITLE:${text(title)}`);
  const organization = textValues(entry, map.organization)[0] ?? '';
  const units = textValues(entry, map.organizationalUnit);
  if (organization !== '' || units.length > 0) lines.push(`ORG:${[organization, ...units].map(text).join(';')}`);
  // RELATED exists from vCard 4.0 on (RFC 6350 section 6.6.6); "manager" is no registered type, hence x-manager.
  if (version === '4.0') {
    for (const dn of textValues(entry, map.manager)) {
      const manager = context.findEntry(dn);
      if (!manager || manager.id === id) continue;
      lines.push(UUID.test(manager.id) ? `RELATED;TYPE=x-manager:urn:uuid:${manager.id.toLowerCase()}` : `RELATED;TYPE=x-manager;VALUE=text:${text(manager.fn)}`);
    }
  }
  const photo = attributeValues(entry, map.photo).find((value): value is Buffer => Buffer.isBuffer(value));
  if (photo) {
    const data = serializeLines([...lines, photoLine(photo, version), 'END:VCARD']);
    if (data.length <= context.maxBytes) return { ok: true, id, name: cardName(id), fn, data, droppedPhoto: false };
  }
  const withoutPhoto = serializeLines([...lines, 'END:VCARD']);
  if (withoutPhoto.length > context.maxBytes) return { ok: false, id, reason: `the card is larger than ${context.maxBytes} bytes` };
  return { ok: true, id, name: cardName(id), fn, data: withoutPhoto, droppedPhoto: photo !== undefined };
}
