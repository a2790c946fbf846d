import { ContentLine, escapeText, Parameter, unescapeText } from './contentline';
import { toBasicDate, toExtendedDate } from './convert';

/**
 * jCard (RFC 7095), the JSON form of vCard 4.0: `["vcard", [property...]]`,
 * each property `[name, parameters, type, value...]`. Both directions work on
 * vCard 4.0 content lines; 3.0 cards go through vcard/convert.ts first.
 */

export const JCARD_MEDIA_TYPE = 'application/vcard+json';

export class JcardError extends Error {}

/** Default value types of vCard 4.0 properties (RFC 6350, RFC 6474, RFC 6715, RFC 9554); other names are "unknown". */
const DEFAULT_TYPES: Record<string, string> = {
  SOURCE: 'uri',
  KIND: 'text',
  XML: 'text',
  FN: 'text',
  N: 'text',
  NICKNAME: 'text',
  PHOTO: 'uri',
  BDAY: 'date-and-or-time',
  ANNIVERSARY: 'date-and-or-time',
  GENDER: 'text',
  ADR: 'text',
  TEL: 'text',
  EMAIL: 'text',
  IMPP: 'uri',
  LANG: 'language-tag',
  TZ: 'text',
  GEO: 'uri',
  TITLE: 'text',
  ROLE: 'text',
  LOGO: 'uri',
  ORG: 'text',
  MEMBER: 'uri',
  RELATED: 'uri',
  CATEGORIES: 'text',
  NOTE: 'text',
  PRODID: 'text',
  REV: 'timestamp',
  SOUND: 'uri',
  UID: 'uri',
  CLIENTPIDMAP: 'text',
  URL: 'uri',
  VERSION: 'text',
  KEY: 'uri',
  FBURL: 'uri',
  CALADRURI: 'uri',
  CALURI: 'uri',
  BIRTHPLACE: 'text',
  DEATHPLACE: 'text',
  DEATHDATE: 'date-and-or-time',
  EXPERTISE: 'text',
  HOBBY: 'text',
  INTEREST: 'text',
  'ORG-DIRECTORY': 'uri',
  CREATED: 'timestamp',
  GRAMGENDER: 'text',
  LANGUAGE: 'language-tag',
  PRONOUNS: 'text',
  SOCIALPROFILE: 'uri',
};

/** Structured values, whose components are separated by `;` (N and ADR always have all their components). */
const STRUCTURED = new Set(['N', 'ADR', 'ORG', 'GENDER', 'CLIENTPIDMAP']);
const ALWAYS_ARRAY = new Set(['N', 'ADR']);
/** Text lists, whose items become separate jCard values. */
const TEXT_LISTS = new Set(['NICKNAME', 'CATEGORIES']);
const DATE_TYPES = new Set(['date-and-or-time', 'date', 'time', 'date-time', 'timestamp']);

type JcardValue = string | number | boolean | (string | string[])[];
type JcardProperty = [string, Record<string, string | string[]>, string, ...JcardValue[]];

function defaultType(name: string): string {
  return DEFAULT_TYPES[name] ?? 'unknown';
}

/** Splits at separators that no backslash escapes, keeping the escapes in each part. */
function splitUnescaped(value: string, separator: ',' | ';'): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && i + 1 < value.length) {
      current += ch + value[i + 1];
      i++;
    } else if (ch === separator) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

// ---- vCard 4.0 to jCard ------------------------------------------------------

function jcardParams(line: ContentLine): Record<string, string | string[]> {
  const params: Record<string, string | string[]> = {};
  if (line.group !== undefined) params.group = line.group;
  for (const param of line.params) {
    if (param.name === 'VALUE') continue;
    const key = param.name.toLowerCase();
    // RFC 6350 writes line breaks in LABEL as `\n`, and jCard carries them unescaped (RFC 7095 section 3.3.1.3).
    const values = key === 'label' ? param.values.map((value) => value.replace(/\\n/gi, '\n')) : param.values;
    const existing = params[key];
    const merged = existing === undefined ? values : [...(Array.isArray(existing) ? existing : [existing]), ...values];
    params[key] = merged.length === 1 ? merged[0] : merged;
  }
  return params;
}

function structuredValue(name: string, raw: string): JcardValue {
  const components = splitUnescaped(raw, ';').map((component) => {
    const items = splitUnescaped(component, ',').map(unescapeText);
    return items.length === 1 ? items[0] : items;
  });
  if (components.length === 1 && !ALWAYS_ARRAY.has(name) && typeof components[0] === 'string') return components[0];
  return components;
}

function jcardValues(name: string, type: string, raw: string): JcardValue[] {
  if (type === 'text') {
    if (STRUCTURED.has(name)) return [structuredValue(name, raw)];
    if (TEXT_LISTS.has(name)) return splitUnescaped(raw, ',').map(unescapeText);
    return [unescapeText(raw)];
  }
  if (DATE_TYPES.has(type)) return splitUnescaped(raw, ',').map((item) => toExtendedDate(item.trim()));
  if (type === 'utc-offset') return [raw.trim().replace(/^([+-]\d{2})(\d{2})$/, '$1:$2')];
  if (type === 'boolean') return [raw.trim().toUpperCase() === 'TRUE'];
  if (type === 'integer' || type === 'float') {
    const number = Number(raw.trim());
    return [Number.isFinite(number) ? number : raw];
  }
  return [raw];
}

/** Builds the jCard of vCard 4.0 lines; VERSION comes first, as RFC 7095 section 3.3.1.1 requires. */
export function linesToJcard(lines: ContentLine[]): ['vcard', JcardProperty[]] {
  const properties = lines.filter((line) => line.name !== 'BEGIN' && line.name !== 'END');
  properties.sort((a, b) => Number(b.name === 'VERSION') - Number(a.name === 'VERSION'));
  const jcard = properties.map((line): JcardProperty => {
    const type = line.params.find((param) => param.name === 'VALUE')?.values[0]?.toLowerCase() ?? defaultType(line.name);
    return [line.name.toLowerCase(), jcardParams(line), type, ...jcardValues(line.name, type, line.value)];
  });
  return ['vcard', jcard];
}

// ---- jCard to vCard 4.0 ------------------------------------------------------

/** A single jCard value: a string, a number or a boolean (RFC 7095 section 3.3). */
type JcardScalar = string | number | boolean;
/** A property value: a scalar, or a structured value whose components are scalars or arrays of scalars. */
type JcardInput = JcardScalar | (JcardScalar | JcardScalar[])[];

function isScalar(value: unknown): value is JcardScalar {
  if (typeof value === 'number') return Number.isFinite(value);
  return typeof value === 'string' || typeof value === 'boolean';
}

/**
 * Checks the shape of one property value. Structured values nest at most two
 * levels (components, then list items), so anything deeper, an object, null
 * or a number JSON cannot hold exactly (1e400 parses as Infinity) is rejected.
 */
function checkValue(value: unknown, propertyName: string): JcardInput {
  const invalid = () => new JcardError(`a value of ${propertyName} must be a string, a finite number, a boolean or an array of them (at most two levels deep)`);
  if (isScalar(value)) return value;
  if (!Array.isArray(value)) throw invalid();
  for (const component of value) {
    if (isScalar(component)) continue;
    if (!Array.isArray(component) || !component.every(isScalar)) throw invalid();
  }
  return value as JcardInput;
}

/** Escapes a text value; a lone carriage return counts as a line break, so it cannot end the content line. */
function escapeTextValue(value: JcardScalar): string {
  return escapeText(String(value).replace(/\r\n?/g, '\n'));
}

function formatStructured(value: JcardInput): string {
  if (!Array.isArray(value)) return escapeTextValue(value);
  const components = value.map((component) =>
    Array.isArray(component) ? component.map(escapeTextValue).join(',') : escapeTextValue(component),
  );
  return components.join(';');
}

function formatValue(name: string, type: string, value: JcardInput): string {
  if (Array.isArray(value)) return formatStructured(value);
  if (type === 'text') return STRUCTURED.has(name) ? formatStructured(value) : escapeTextValue(value);
  // Only text values have an escape for line breaks; in any other value one would end the content line.
  if (/[\r\n]/.test(String(value))) throw new JcardError(`the ${type} value of ${name} contains a line break`);
  if (DATE_TYPES.has(type)) return toBasicDate(String(value));
  if (type === 'utc-offset') return String(value).replace(':', '');
  if (type === 'boolean') return value === true || String(value).toLowerCase() === 'true' ? 'TRUE' : 'FALSE';
  return String(value);
}

function paramsFromJcard(raw: Record<string, unknown>, propertyName: string): { group?: string; params: Parameter[] } {
  let group: string | undefined;
  const params: Parameter[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key.toLowerCase() === 'group') {
      if (typeof value !== 'string' || !/^[A-Za-z0-9-]+$/.test(value)) throw new JcardError(`invalid group of ${propertyName}: ${JSON.stringify(value)}`);
      group = value;
      continue;
    }
    if (!/^[A-Za-z0-9-]+$/.test(key)) throw new JcardError(`invalid parameter name in ${propertyName}: ${JSON.stringify(key)}`);
    const list: unknown[] = Array.isArray(value) ? value : [value];
    if (list.some((item) => typeof item !== 'string' && !(typeof item === 'number' && Number.isFinite(item)))) {
      throw new JcardError(`parameter ${key} of ${propertyName} must be a string or an array of strings`);
    }
    params.push({ name: key.toUpperCase(), values: list.map(String) });
  }
  return { group, params };
}

function propertyFromJcard(entry: unknown, index: number): ContentLine {
  if (!Array.isArray(entry) || entry.length < 4) throw new JcardError(`property ${index} is not an array of name, parameters, type and value`);
  const [rawName, rawParams, rawType, ...rawValues] = entry as unknown[];
  if (typeof rawName !== 'string' || !/^[A-Za-z0-9-]+$/.test(rawName)) throw new JcardError(`property ${index} has an invalid name: ${JSON.stringify(rawName)}`);
  if (rawParams === null || typeof rawParams !== 'object' || Array.isArray(rawParams)) throw new JcardError(`parameters of ${rawName} must be an object`);
  if (typeof rawType !== 'string' || !/^[A-Za-z0-9-]+$/.test(rawType)) throw new JcardError(`value type of ${rawName} must be a string`);
  const name = rawName.toUpperCase();
  const type = rawType.toLowerCase();
  const { group, params } = paramsFromJcard(rawParams as Record<string, unknown>, rawName);
  if (type !== defaultType(name) && type !== 'unknown') params.push({ name: 'VALUE', values: [type] });
  const value = rawValues.map((item) => formatValue(name, type, checkValue(item, rawName))).join(',');
  return { group, name, params, value };
}

/** Parses jCard text into vCard 4.0 content lines, BEGIN and END included. */
export function jcardToLines(text: string): ContentLine[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new JcardError(`the body is not valid JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(json) || json[0] !== 'vcard' || !Array.isArray(json[1])) {
    throw new JcardError('a jCard is an array of "vcard" and an array of properties');
  }
  const properties = (json[1] as unknown[]).map(propertyFromJcard);
  return [{ name: 'BEGIN', params: [], value: 'VCARD' }, ...properties, { name: 'END', params: [], value: 'VCARD' }];
}
