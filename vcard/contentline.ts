/**
 * vCard content lines (RFC 6350 section 3.3, RFC 2426 section 4):
 * `[group "."] name *(";" param) ":" value`, folded at 75 octets.
 * This reader is deliberately tolerant of what real clients write (LF-only
 * line ends, lower-case names, repeated TYPE parameters) and keeps every
 * property it does not know, so cards survive a round trip untouched.
 */

export interface Parameter {
  /** Upper-case parameter name; a bare 2.1-style value such as `CELL` gets the name `TYPE`. */
  name: string;
  values: string[];
}

export interface ContentLine {
  group?: string;
  /** Upper-case property name. */
  name: string;
  params: Parameter[];
  /** The raw value, still escaped. */
  value: string;
}

export class ContentLineError extends Error {}

const NAME = /^[A-Za-z0-9-]+$/;

/** Joins folded lines. Folding may split a UTF-8 sequence, so this works on bytes. */
export function unfoldBytes(data: Buffer): Buffer {
  return Buffer.from(data.toString('latin1').replace(/\r?\n[ \t]/g, ''), 'latin1');
}

export function splitLines(unfolded: string): string[] {
  return unfolded.split(/\r\n|\n|\r/).filter((line) => line.length > 0);
}

function splitParamValues(raw: string): string[] {
  const values: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of raw) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      values.push(current);
      current = '';
    } else current += ch;
  }
  values.push(current);
  return values.map(decodeParamValue);
}

/** RFC 6868 caret escapes in parameter values. */
function decodeParamValue(value: string): string {
  return value.replace(/\^(\^|n|')/g, (_, ch: string) => (ch === 'n' ? '\n' : ch === "'" ? '"' : '^'));
}

export function parseContentLine(line: string): ContentLine {
  let quoted = false;
  let colon = -1;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === ':' && !quoted) {
      colon = i;
      break;
    }
  }
  if (colon < 0) throw new ContentLineError(`line has no ':' separator: ${abbreviate(line)}`);
  const head = line.slice(0, colon);
  const value = line.slice(colon + 1);

  const parts: string[] = [];
  let current = '';
  quoted = false;
  for (const ch of head) {
    if (ch === '"') quoted = !quoted;
    if (ch === ';' && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);

  const fullName = parts[0];
  const dot = fullName.lastIndexOf('.');
  const group = dot >= 0 ? fullName.slice(0, dot) : undefined;
  const name = dot >= 0 ? fullName.slice(dot + 1) : fullName;
  if (!NAME.test(name) || (group !== undefined && !NAME.test(group))) {
    throw new ContentLineError(`invalid property name: ${abbreviate(fullName)}`);
  }

  const params: Parameter[] = [];
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (!NAME.test(part)) throw new ContentLineError(`invalid parameter in ${name}: ${abbreviate(part)}`);
      params.push({ name: 'TYPE', values: [part] });
      continue;
    }
    const paramName = part.slice(0, eq);
    if (!NAME.test(paramName)) throw new ContentLineError(`invalid parameter name in ${name}: ${abbreviate(paramName)}`);
    params.push({ name: paramName.toUpperCase(), values: splitParamValues(part.slice(eq + 1)) });
  }
  return { group, name: name.toUpperCase(), params, value };
}

/**
 * Encodes one parameter value: RFC 6868 caret escapes for `^`, line breaks
 * and `"`, then double quotes when the value contains `:`, `;` or `,`.
 * parseContentLine reads the result back as the same value.
 */
export function formatParamValue(value: string): string {
  const encoded = value.replace(/\^/g, '^^').replace(/\r\n|\r|\n/g, '^n').replace(/"/g, "^'");
  return /[:;,]/.test(encoded) ? `"${encoded}"` : encoded;
}

/** Serializes a content line without folding: group, name, parameters with their values encoded, and the value as it is. */
export function formatContentLine(line: ContentLine): string {
  let text = line.group === undefined ? line.name : `${line.group}.${line.name}`;
  for (const param of line.params) text += `;${param.name}=${param.values.map(formatParamValue).join(',')}`;
  return `${text}:${line.value}`;
}

export function paramValues(line: ContentLine, name: string): string[] {
  return line.params.filter((p) => p.name === name).flatMap((p) => p.values);
}

/** Removes text escapes (RFC 6350 section 3.4). Structured values are split by the caller first. */
export function unescapeText(value: string): string {
  return value.replace(/\\([\\,;nN])/g, (_, ch: string) => (ch === 'n' || ch === 'N' ? '\n' : ch));
}

export function escapeText(value: string): string {
  return value.replace(/[\\,;]/g, (ch) => '\\' + ch).replace(/\r?\n/g, '\\n');
}

/** Splits a structured value (N, ADR) at unescaped semicolons, keeping escapes in each part. */
export function splitStructured(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && i + 1 < value.length) {
      current += ch + value[i + 1];
      i++;
    } else if (ch === ';') {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

/** Folds one logical line at 75 octets without splitting a UTF-8 sequence. */
export function foldLine(line: string): string {
  if (Buffer.byteLength(line) <= 75) return line;
  const pieces: string[] = [];
  let current = '';
  let currentBytes = 0;
  let limit = 75;
  for (const ch of line) {
    const bytes = Buffer.byteLength(ch);
    if (currentBytes + bytes > limit) {
      pieces.push(current);
      current = '';
      currentBytes = 0;
      limit = 74; // continuation lines start with one space
    }
    current += ch;
    currentBytes += bytes;
  }
  pieces.push(current);
  return pieces.join('\r\n ');
}

export function serializeLines(lines: string[]): Buffer {
  return Buffer.from(lines.map(foldLine).join('\r\n') + '\r\n', 'utf8');
}

function abbreviate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
