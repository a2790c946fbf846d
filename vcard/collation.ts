import type { Collation, TextMatch } from '../storage/types';

/**
 * Collations for CARDDAV:text-match (RFC 6352 section 8.3, RFC 4790). Every
 * operation compares canonical forms: a string matches when its canonical
 * form equals, contains, starts or ends with the canonical form of the needle.
 * The query index stores the same canonical forms, so SQL and this module
 * agree on every match.
 */

export const COLLATIONS: readonly Collation[] = ['i;unicode-casemap', 'i;ascii-casemap', 'i;octet'];

/**
 * Simple titlecase mappings that differ from the simple uppercase mapping
 * that `toUpperCase` gives for a single code point (UnicodeData.txt field 14).
 */
const TITLECASE_EXCEPTIONS = new Map<number, number>([
  [0x01c4, 0x01c5],
  [0x01c5, 0x01c5],
  [0x01c6, 0x01c5],
  [0x01c7, 0x01c8],
  [0x01c8, 0x01c8],
  [0x01c9, 0x01c8],
  [0x01ca, 0x01cb],
  [0x01cb, 0x01cb],
  [0x01cc, 0x01cb],
  [0x01f1, 0x01f2],
  [0x01f2, 0x01f2],
  [0x01f3, 0x01f2],
]);

const ASCII_ONLY = /^[\x00-\x7f]*$/;

function isGeorgianMkhedruli(codePoint: number): boolean {
  // Their uppercase forms (Mtavruli) exist since Unicode 11, but the titlecase of each is the letter itself.
  return (codePoint >= 0x10d0 && codePoint <= 0x10fa) || (codePoint >= 0x10fd && codePoint <= 0x10ff);
}

function titlecaseCodePoint(ch: string): string {
  const codePoint = ch.codePointAt(0)!;
  const exception = TITLECASE_EXCEPTIONS.get(codePoint);
  if (exception !== undefined) return String.fromCodePoint(exception);
  if (isGeorgianMkhedruli(codePoint)) return ch;
  const upper = ch.toUpperCase();
  // A result of several code points is a full mapping (ß to SS); the simple mapping keeps the character.
  return [...upper].length === 1 ? upper : ch;
}

/**
 * Canonical form of the i;unicode-casemap collation (RFC 5051): NFKD
 * decomposition, then the simple titlecase mapping of each code point, then
 * NFKD again for the few mappings that yield a composed character. So
 * 'MÜLLER' and 'Müller' have the same form, and so do 'ΣΟΦΊΑ' and 'Σοφία'.
 * NOTE: the Unicode version is that of the Node.js build, so a Node upgrade
 * may change the form of characters assigned in the newer Unicode version.
 */
export function foldUnicodeCasemap(text: string): string {
  if (ASCII_ONLY.test(text)) return text.toUpperCase();
  let mapped = '';
  for (const ch of text.normalize('NFKD')) mapped += titlecaseCodePoint(ch);
  return mapped.normalize('NFKD');
}

/** Canonical form of the i;ascii-casemap collation (RFC 4790 section 9.2): only a-z and A-Z are folded. */
export function foldAsciiCasemap(text: string): string {
  return text.replace(/[A-Z]/g, (ch) => ch.toLowerCase());
}

export function canonicalForm(text: string, collation: Collation): string {
  if (collation === 'i;unicode-casemap') return foldUnicodeCasemap(text);
  if (collation === 'i;ascii-casemap') return foldAsciiCasemap(text);
  return text;
}

/** Applies one text-match, negate-condition included, to one value. */
export function textMatches(value: string, match: TextMatch): boolean {
  const haystack = canonicalForm(value, match.collation);
  const needle = canonicalForm(match.text, match.collation);
  let result: boolean;
  switch (match.matchType) {
    case 'equals':
      result = haystack === needle;
      break;
    case 'starts-with':
      result = haystack.startsWith(needle);
      break;
    case 'ends-with':
      result = haystack.endsWith(needle);
      break;
    case 'contains':
      result = haystack.includes(needle);
      break;
  }
  return match.negate ? !result : result;
}
