import { randomUUID } from 'node:crypto';
import {
  ContentLine,
  escapeText,
  paramValues,
  parseContentLine,
  serializeLines,
  splitLines,
  splitStructured,
  unescapeText,
  unfoldBytes,
} from './contentline';
import type { IndexedProperty } from '../storage/types';
import { cardVersion, ConversionError, convertLines } from './convert';

/**
 * Customer records kept as vCard extension properties, so every CardDAV
 * client can show and edit them. docs/crm.md describes them for users.
 * An account is a card with KIND:org (X-ADDRESSBOOKSERVER-KIND:org in vCard
 * 3.0), and a contact links to its account's UID with X-CRM-ACCOUNT. A lead
 * has X-CRM-LEAD-STATE and X-CRM-LEAD-SOURCE, and X-CRM-CASE lists cases.
 * This module reads and checks those properties, and rewrites a card where
 * the server maintains a value itself. It does no I/O.
 */

export const CRM_PROPERTY = {
  account: 'X-CRM-ACCOUNT',
  leadState: 'X-CRM-LEAD-STATE',
  leadSource: 'X-CRM-LEAD-SOURCE',
  case: 'X-CRM-CASE',
} as const;

export const LEAD_STATES = ['open', 'qualified', 'disqualified'] as const;
export const LEAD_SOURCES = ['inbound', 'outbound'] as const;
export const CASE_STATUSES = ['open', 'pending', 'closed'] as const;

export type LeadState = (typeof LEAD_STATES)[number];
export type LeadSource = (typeof LEAD_SOURCES)[number];
export type CaseStatus = (typeof CASE_STATUSES)[number];

/** Properties the server writes itself; a client's values for them are replaced on every write. */
export const STAMP_PROPERTY = {
  qualified: 'X-CRM-LEAD-QUALIFIED-AT',
  disqualified: 'X-CRM-LEAD-DISQUALIFIED-AT',
  reactivated: 'X-CRM-LEAD-REACTIVATED-AT',
  converted: 'X-CRM-LEAD-CONVERTED-AT',
} as const;

export type StampKind = keyof typeof STAMP_PROPERTY;

const STAMP_KINDS = Object.keys(STAMP_PROPERTY) as StampKind[];
const STAMP_NAMES = new Set<string>(Object.values(STAMP_PROPERTY));
/** The properties that make a card an account with the value `org`: vCard 4.0's and Apple's for 3.0. */
export const KIND_PROPERTIES: ReadonlySet<string> = new Set(['KIND', 'X-ADDRESSBOOKSERVER-KIND']);

/**
 * Names of the rules, used as the local names of the precondition elements
 * in Cardinal's XML namespace (`<cardinal:valid-lead-state/>`).
 */
export type CrmRule =
  | 'valid-lead-state'
  | 'valid-lead-source'
  | 'valid-account-link'
  | 'valid-case'
  | 'no-change-to-disqualified-lead'
  | 'no-linked-contacts';

export interface CrmViolation {
  rule: CrmRule;
  message: string;
}

export interface CrmCase {
  reference: string;
  /** The STATUS parameter, lower case; undefined when the line has none. */
  status?: string;
  subject?: string;
}

/** The CRM reading of one card. Values are as written, so `validateCrmCard` can name what is wrong. */
export interface CrmCard {
  uid: string;
  version: string;
  fn: string;
  /** The first component of ORG, unescaped. */
  org?: string;
  /** The first EMAIL and TEL, for reports. */
  email?: string;
  phone?: string;
  isAccount: boolean;
  /** Values of X-CRM-ACCOUNT, trimmed. */
  accountLinks: string[];
  /** Values of X-CRM-LEAD-STATE, trimmed. */
  leadStates: string[];
  /** Values of X-CRM-LEAD-SOURCE, trimmed. */
  leadSources: string[];
  cases: CrmCase[];
  /** Server-maintained stamps found in the card, latest value of each kind. */
  stamps: Partial<Record<StampKind, string>>;
}

/** A card split into logical lines (unfolded), each with its parsed form. */
interface CardLines {
  raw: string[];
  parsed: ContentLine[];
}

function readLines(data: Buffer): CardLines {
  const raw: string[] = [];
  const parsed: ContentLine[] = [];
  for (const line of splitLines(unfoldBytes(data).toString('utf8'))) {
    try {
      parsed.push(parseContentLine(line));
      raw.push(line);
    } catch {
      // Stored cards passed the pipeline; a line it let through but this parser cannot read carries no CRM value.
    }
  }
  return { raw, parsed };
}

function firstValue(lines: ContentLine[], name: string): string | undefined {
  const line = lines.find((candidate) => candidate.name === name);
  return line === undefined ? undefined : unescapeText(line.value).trim();
}

function textValues(lines: ContentLine[], name: string): string[] {
  return lines.filter((line) => line.name === name).map((line) => unescapeText(line.value).trim());
}

function orgName(line: ContentLine | undefined): string | undefined {
  if (!line) return undefined;
  const name = unescapeText(splitStructured(line.value)[0] ?? '').trim();
  return name === '' ? undefined : name;
}

function describeLines(lines: ContentLine[]): CrmCard {
  const stamps: Partial<Record<StampKind, string>> = {};
  for (const kind of STAMP_KINDS) {
    const values = textValues(lines, STAMP_PROPERTY[kind]);
    if (values.length > 0) stamps[kind] = values.sort()[values.length - 1];
  }
  return {
    uid: firstValue(lines, 'UID') ?? '',
    version: firstValue(lines, 'VERSION') ?? '',
    fn: firstValue(lines, 'FN') ?? '',
    org: orgName(lines.find((line) => line.name === 'ORG')),
    email: firstValue(lines, 'EMAIL'),
    phone: firstValue(lines, 'TEL'),
    isAccount: lines.some((line) => KIND_PROPERTIES.has(line.name) && unescapeText(line.value).trim().toLowerCase() === 'org'),
    accountLinks: textValues(lines, CRM_PROPERTY.account),
    leadStates: textValues(lines, CRM_PROPERTY.leadState),
    leadSources: textValues(lines, CRM_PROPERTY.leadSource),
    cases: lines
      .filter((line) => line.name === CRM_PROPERTY.case)
      .map((line) => ({
        reference: unescapeText(line.value).trim(),
        status: paramValues(line, 'STATUS')[0]?.trim().toLowerCase(),
        subject: paramValues(line, 'SUBJECT')[0],
      })),
    stamps,
  };
}

/** Reads the CRM properties of a card that passed `prepareCard`. */
export function describeCard(data: Buffer): CrmCard {
  return describeLines(readLines(data).parsed);
}

/**
 * Returns false when a card's properties show without parsing it again that
 * isCrmCard is false for it: it has no X-CRM- property and no KIND.
 */
export function mayBeCrmCard(properties: readonly IndexedProperty[]): boolean {
  return properties.some((property) => property.name.startsWith('X-CRM-') || KIND_PROPERTIES.has(property.name));
}

/** True when the server's CRM rules apply to a card: an account, or a card with any X-CRM- property. */
export function isCrmCard(card: CrmCard): boolean {
  return (
    card.isAccount ||
    card.accountLinks.length > 0 ||
    card.leadStates.length > 0 ||
    card.leadSources.length > 0 ||
    card.cases.length > 0 ||
    Object.keys(card.stamps).length > 0
  );
}

/** Returns the name linked contacts carry in ORG: the account's ORG, or its FN when it has none. */
export function accountName(card: CrmCard): string {
  return card.org ?? card.fn;
}

/** Returns the lead state in lower case, or undefined when the card is no lead or its state is invalid. */
export function leadState(card: CrmCard): LeadState | undefined {
  const value = card.leadStates[0]?.toLowerCase();
  return (LEAD_STATES as readonly string[]).includes(value ?? '') ? (value as LeadState) : undefined;
}

export function leadSource(card: CrmCard): LeadSource | undefined {
  const value = card.leadSources[0]?.toLowerCase();
  return (LEAD_SOURCES as readonly string[]).includes(value ?? '') ? (value as LeadSource) : undefined;
}

/** Returns a case's status, where a case without a STATUS parameter counts as open. */
export function caseStatus(entry: CrmCase): string {
  return entry.status ?? 'open';
}

/**
 * Checks the values a card carries on its own: lead state and source, the
 * form of the account link, and the cases. Whether the link points at a
 * readable account needs storage and is checked by the caller.
 */
export function validateCrmCard(card: CrmCard): CrmViolation | undefined {
  const states = LEAD_STATES.join(', ');
  if (card.leadStates.length > 1) return { rule: 'valid-lead-state', message: `a card may carry one ${CRM_PROPERTY.leadState}; use one of ${states}` };
  if (card.leadStates.length === 1 && leadState(card) === undefined) {
    return { rule: 'valid-lead-state', message: `invalid ${CRM_PROPERTY.leadState} "${card.leadStates[0]}"; use one of ${states}` };
  }
  const sources = LEAD_SOURCES.join(', ');
  if (card.leadSources.length > 1) return { rule: 'valid-lead-source', message: `a card may carry one ${CRM_PROPERTY.leadSource}; use one of ${sources}` };
  if (card.leadSources.length === 1 && leadSource(card) === undefined) {
    return { rule: 'valid-lead-source', message: `invalid ${CRM_PROPERTY.leadSource} "${card.leadSources[0]}"; use one of ${sources}` };
  }
  if (card.leadSources.length === 1 && card.leadStates.length === 0) {
    return { rule: 'valid-lead-state', message: `a lead with ${CRM_PROPERTY.leadSource} needs ${CRM_PROPERTY.leadState} (one of ${states})` };
  }

  if (card.accountLinks.length > 1) return { rule: 'valid-account-link', message: `a contact may link to one account; the card has ${card.accountLinks.length} ${CRM_PROPERTY.account} properties` };
  const link = card.accountLinks[0];
  if (link !== undefined) {
    if (link === '') return { rule: 'valid-account-link', message: `${CRM_PROPERTY.account} is empty; set it to the UID of an account card` };
    if (card.isAccount) return { rule: 'valid-account-link', message: `an account (KIND:org) cannot link to another account with ${CRM_PROPERTY.account}` };
    if (link === card.uid) return { rule: 'valid-account-link', message: `${CRM_PROPERTY.account} names the card's own UID` };
  }

  const references = new Set<string>();
  for (const entry of card.cases) {
    if (entry.reference === '') return { rule: 'valid-case', message: `${CRM_PROPERTY.case} needs a case reference as its value` };
    if (references.has(entry.reference)) return { rule: 'valid-case', message: `case ${entry.reference} appears twice in ${CRM_PROPERTY.case}` };
    references.add(entry.reference);
    if (entry.status !== undefined && !(CASE_STATUSES as readonly string[]).includes(entry.status)) {
      return { rule: 'valid-case', message: `invalid STATUS "${entry.status}" on case ${entry.reference}; use one of ${CASE_STATUSES.join(', ')}` };
    }
  }
  return undefined;
}

/** Converts the lines of a card to `target`; lines already in it, or of a card that does not convert, come back as they are. */
function inVersion(lines: ContentLine[], target: string | undefined): ContentLine[] {
  if (target !== '3.0' && target !== '4.0') return lines;
  try {
    return convertLines(lines, target).map((entry) => entry.line);
  } catch (error) {
    if (error instanceof ConversionError) return lines;
    throw error;
  }
}

/** Properties that a client rewrites on every save or the server maintains, so they are no part of the card's content. */
const NOT_CONTENT = new Set(['REV', 'PRODID', ...STAMP_NAMES]);

/** Renders a content line in a form that ignores parameter order, escapes and folding. */
function normalizedLine(line: ContentLine): string {
  const params = line.params
    .map((param) => `${param.name}=${param.values.slice().sort().join(',')}`)
    .sort()
    .join(';');
  return `${line.group?.toLowerCase() ?? ''}.${line.name};${params}:${unescapeText(line.value)}`;
}

/**
 * True when two cards hold the same content: the same content lines in any
 * order, leaving out REV, PRODID and the server's stamps. A client that
 * re-serializes a card it did not change produces such a copy.
 */
export function sameContent(a: Buffer, b: Buffer): boolean {
  // A client may read a 3.0 card as 4.0 or jCard, or a 4.0 card as 3.0, and send that back, so `a` is compared in the version of `b`.
  const linesB = readLines(b).parsed;
  const linesA = inVersion(readLines(a).parsed, cardVersion(linesB));
  const normalize = (lines: ContentLine[]) =>
    lines
      .filter((line) => !NOT_CONTENT.has(line.name))
      .map(normalizedLine)
      .sort();
  const left = normalize(linesA);
  const right = normalize(linesB);
  return left.length === right.length && left.every((line, i) => line === right[i]);
}

/**
 * Checks the read-only rule of disqualified leads: a card stored as a
 * disqualified lead may only be stored again with its state back to open
 * (a reactivation, which may change other values too), or with the same
 * content (see `sameContent`).
 */
export function checkLeadTransition(previous: CrmCard | undefined, previousData: Buffer | undefined, next: CrmCard, nextData: Buffer): CrmViolation | undefined {
  if (!previous || leadState(previous) !== 'disqualified') return undefined;
  if (leadState(next) === 'open') return undefined;
  if (previousData && sameContent(previousData, nextData)) return undefined;
  return {
    rule: 'no-change-to-disqualified-lead',
    message: `the lead "${previous.fn}" is disqualified and read-only; to change it, reactivate it first by setting ${CRM_PROPERTY.leadState}:open`,
  };
}

/** Formats a time as a vCard UTC timestamp, `20240131T235959Z`. */
export function formatTimestamp(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** Returns the stamp that a change of lead state earns, if any. */
function stampFor(previous: LeadState | undefined, next: LeadState | undefined): StampKind | undefined {
  if (next === previous || next === undefined) return undefined;
  if (next === 'qualified') return 'qualified';
  if (next === 'disqualified') return 'disqualified';
  return previous === undefined ? undefined : 'reactivated';
}

/** Quotes a parameter value when it needs it, with RFC 6868 caret escapes. */
function formatParamValue(value: string): string {
  const escaped = value.replace(/\^/g, '^^').replace(/"/g, "^'").replace(/\r?\n/g, '^n');
  return /[;:,"^\s]/.test(value) ? `"${escaped}"` : escaped;
}

/** Index of the colon that ends a content line's name and parameters. */
function valueColon(line: string): number {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === ':' && !quoted) return i;
  }
  return -1;
}

export interface RewriteOptions {
  /** The stored version of the card at the same URL, when it has the same UID. */
  previous?: CrmCard;
  /** The account the card links to, when it links to one. */
  account?: CrmCard;
  now: Date;
  /** Stamps to set on top of those a state change earns, such as `converted`. */
  extraStamps?: StampKind[];
}

/**
 * Applies the values the server maintains, and returns the new bytes or
 * undefined when nothing changed. Lead state and source become lower case.
 * The stamps are kept from the stored version, never taken from the client,
 * and set on a state change. A case keeps the STATUS and SUBJECT of the
 * stored version when the client dropped them. A linked contact's ORG gets
 * its account's name, and an account without ORG gets its FN.
 */
export function rewriteCrmCard(data: Buffer, card: CrmCard, options: RewriteOptions): Buffer | undefined {
  const { raw, parsed } = readLines(data);
  let changed = false;
  const lines = raw.slice();

  for (let i = 0; i < parsed.length; i++) {
    const line = parsed[i];
    if (line.name !== CRM_PROPERTY.leadState && line.name !== CRM_PROPERTY.leadSource) continue;
    const normalized = unescapeText(line.value).trim().toLowerCase();
    if (line.value !== normalized) {
      lines[i] = lines[i].slice(0, valueColon(lines[i]) + 1) + normalized;
      changed = true;
    }
  }

  if (options.previous) {
    const stored = new Map(options.previous.cases.map((entry) => [entry.reference, entry]));
    for (let i = 0; i < parsed.length; i++) {
      if (parsed[i].name !== CRM_PROPERTY.case) continue;
      const reference = unescapeText(parsed[i].value).trim();
      const before = stored.get(reference);
      if (!before) continue;
      let added = '';
      if (paramValues(parsed[i], 'STATUS').length === 0 && before.status !== undefined) added += `;STATUS=${formatParamValue(before.status)}`;
      if (paramValues(parsed[i], 'SUBJECT').length === 0 && before.subject !== undefined) added += `;SUBJECT=${formatParamValue(before.subject)}`;
      if (added !== '') {
        const colon = valueColon(lines[i]);
        lines[i] = lines[i].slice(0, colon) + added + lines[i].slice(colon);
        changed = true;
      }
    }
  }

  let orgTarget: string | undefined;
  if (options.account) orgTarget = accountName(options.account);
  else if (card.isAccount && card.org === undefined) orgTarget = card.fn;
  if (orgTarget !== undefined && orgTarget !== '') {
    const index = parsed.findIndex((line) => line.name === 'ORG');
    if (index < 0) {
      lines.splice(lines.length - 1, 0, `ORG:${escapeText(orgTarget)}`);
      parsed.splice(parsed.length - 1, 0, parseContentLine(`ORG:${escapeText(orgTarget)}`));
      changed = true;
    } else if (orgName(parsed[index]) !== orgTarget) {
      const colon = valueColon(lines[index]);
      const units = splitStructured(parsed[index].value).slice(1);
      lines[index] = lines[index].slice(0, colon + 1) + [escapeText(orgTarget), ...units].join(';');
      changed = true;
    }
  }

  const desired: Partial<Record<StampKind, string>> = { ...(options.previous?.stamps ?? {}) };
  const earned = stampFor(options.previous ? leadState(options.previous) : undefined, leadState(card));
  const timestamp = formatTimestamp(options.now);
  for (const kind of [...(earned ? [earned] : []), ...(options.extraStamps ?? [])]) desired[kind] = timestamp;
  const present = parsed.filter((line) => STAMP_NAMES.has(line.name)).map((line) => `${line.name}:${unescapeText(line.value).trim()}`);
  const wanted = STAMP_KINDS.filter((kind) => desired[kind] !== undefined).map((kind) => `${STAMP_PROPERTY[kind]}:${desired[kind]}`);
  if (present.length !== wanted.length || !wanted.every((entry) => present.includes(entry))) {
    const kept = lines.filter((_, i) => !STAMP_NAMES.has(parsed[i].name));
    kept.splice(kept.length - 1, 0, ...wanted);
    lines.splice(0, lines.length, ...kept);
    changed = true;
  }

  return changed ? serializeLines(lines) : undefined;
}

/** Builds a new account card named `name`, in the same vCard version as the card it comes from. */
export function buildAccountCard(name: string, version: string): { uid: string; data: Buffer } {
  const uid = randomUUID();
  const kind = version === '4.0' ? 'KIND:org' : 'X-ADDRESSBOOKSERVER-KIND:org';
  const lines = ['BEGIN:VCARD', `VERSION:${version === '4.0' ? '4.0' : '3.0'}`, `UID:${uid}`, `FN:${escapeText(name)}`, 'N:;;;;', `ORG:${escapeText(name)}`, kind, 'END:VCARD'];
  return { uid, data: serializeLines(lines) };
}

/** Adds an X-CRM-ACCOUNT line before END:VCARD, replacing any earlier one. */
export function linkToAccount(data: Buffer, accountUid: string): Buffer {
  const { raw, parsed } = readLines(data);
  const lines = raw.filter((_, i) => parsed[i].name !== CRM_PROPERTY.account);
  lines.splice(lines.length - 1, 0, `${CRM_PROPERTY.account}:${escapeText(accountUid)}`);
  return serializeLines(lines);
}
