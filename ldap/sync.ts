import type { Entry } from 'ldapts';
import type { Logger } from 'pino';
import type { Config } from '../server/config';
import type { AddressBook, CardInput, CardMeta, Storage, User } from '../storage/types';
import { parseContentLine, splitLines, unescapeText, unfoldBytes } from '../vcard/contentline';
import { prepareCard } from '../vcard/pipeline';
import { binaryAttributes, buildCard, directoryId, formattedName, RelatedEntry, requestedAttributes } from './card';
import { close, connectAsService, searchPages } from './client';
import { DirectoryError } from './errors';
import { normalizeDN } from './escape';

/** Owner of the mirrored book. The user-name rule forbids a leading underscore, so no real user can take this name. */
export const DIRECTORY_USER = '_directory';

/** Stored cards read per storage round trip while comparing. */
const LIST_PAGE = 1000;
/** Entries built between two yields to the event loop, so a sync inside `cardinal serve` does not stall requests. */
const BUILD_BATCH = 500;
/** Skipped entries logged one by one before the rest are only counted. */
const MAX_SKIP_LOGS = 10;

export interface SyncProgress {
  phase: 'search' | 'build' | 'write';
  done: number;
  /** Known for build and write; the search does not know how many entries will come. */
  total?: number;
}

export interface SyncOptions {
  logger: Logger;
  /** Compute and report the changes without writing anything. */
  dryRun?: boolean;
  /** Apply the changes even when they remove more than ldap.maxDeleteShare of the cards. */
  force?: boolean;
  /** Called after each page and phase; the sync waits for a returned promise. */
  onProgress?: (progress: SyncProgress) => void | Promise<void>;
}

export interface CardSummary {
  name: string;
  fn: string;
}

export interface SyncReport {
  dryRun: boolean;
  /** Entries the directory returned. */
  entries: number;
  added: CardSummary[];
  changed: CardSummary[];
  removed: CardSummary[];
  unchanged: number;
  /** Entries without an identifier, duplicates, and entries whose card failed validation. */
  skipped: number;
  /** The book's sync sequence before and after; equal when nothing was written. */
  seqBefore: number;
  seqAfter: number;
  durationMs: number;
}

/** A sync that stopped because it would remove more cards than ldap.maxDeleteShare allows. */
export class DeleteGuardError extends Error {
  override name = 'DeleteGuardError';

  constructor(
    readonly removals: number,
    readonly existing: number,
    readonly maxShare: number,
  ) {
    super(
      `the sync would remove ${removals} of ${existing} directory cards (${formatShare(removals / existing)}), ` +
        `more than ldap.maxDeleteShare (${formatShare(maxShare)}); nothing was changed. ` +
        'Check ldap.baseDN and ldap.filter, then run `cardinal ldap sync --force` to apply it',
    );
  }
}

function formatShare(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}

/** Finds the system user that owns the mirror, if the directory was ever synced. */
export async function findDirectoryBook(storage: Storage, config: Config): Promise<{ owner: User; book: AddressBook } | undefined> {
  const owner = await storage.getUser(DIRECTORY_USER);
  if (!owner) return undefined;
  const book = await storage.getBook(owner.id, config.ldap.book.slug);
  return book && { owner, book };
}

/**
 * Creates the system user, the mirrored book and its read grant to everyone
 * when missing, and brings the book's display name in line with the configuration.
 */
export async function ensureDirectoryBook(storage: Storage, config: Config): Promise<AddressBook> {
  const { slug, displayName } = config.ldap.book;
  const owner = (await storage.getUser(DIRECTORY_USER)) ?? (await storage.createUser(DIRECTORY_USER, null));
  let book = (await storage.getBook(owner.id, slug)) ?? (await storage.createBook(owner.id, slug, displayName));
  if (!book) book = (await storage.getBook(owner.id, slug)) as AddressBook;
  if (book.displayName !== displayName) {
    await storage.updateBook(book.id, { displayName });
    book = (await storage.getBook(owner.id, slug)) as AddressBook;
  }
  await storage.grant(book.id, { kind: 'everyone' }, 'read', slug);
  return book;
}

async function fetchEntries(config: Config, options: SyncOptions): Promise<Entry[]> {
  const ldap = config.ldap;
  const client = await connectAsService(ldap);
  const entries: Entry[] = [];
  try {
    const pages = searchPages(client, {
      baseDN: ldap.baseDN,
      filter: ldap.filter,
      scope: ldap.scope,
      attributes: requestedAttributes(ldap.attributes),
      binaryAttributes: binaryAttributes(ldap.attributes),
      pageSize: ldap.pageSize,
    });
    for await (const page of pages) {
      for (const entry of page) entries.push(entry);
      await options.onProgress?.({ phase: 'search', done: entries.length });
    }
  } finally {
    await close(client);
  }
  return entries;
}

interface BuiltSet {
  cards: Map<string, { input: CardInput; fn: string }>;
  /** Identifiers of every entry found, including those whose card was skipped. */
  ids: Set<string>;
  skipped: number;
}

async function buildCards(entries: Entry[], config: Config, options: SyncOptions): Promise<BuiltSet> {
  const map = config.ldap.attributes;
  const byDN = new Map<string, RelatedEntry>();
  for (const entry of entries) {
    const id = directoryId(entry, map.uid);
    if (id !== undefined) byDN.set(normalizeDN(entry.dn), { id, fn: formattedName(entry, map) });
  }
  const context = {
    config: config.ldap,
    findEntry: (dn: string) => byDN.get(normalizeDN(dn)),
    maxBytes: config.limits.maxResourceSize,
  };
  const cards = new Map<string, { input: CardInput; fn: string }>();
  const ids = new Set<string>();
  let skipped = 0;
  const skip = (entry: Entry, reason: string) => {
    skipped++;
    if (skipped <= MAX_SKIP_LOGS) options.logger.warn({ reason }, 'directory entry skipped');
    options.logger.debug({ dn: entry.dn, reason }, 'directory entry skipped');
  };

  for (let i = 0; i < entries.length; i++) {
    if (i > 0 && i % BUILD_BATCH === 0) {
      await options.onProgress?.({ phase: 'build', done: i, total: entries.length });
      await new Promise((resolve) => setImmediate(resolve));
    }
    const entry = entries[i];
    const built = buildCard(entry, context);
    if (built.id !== undefined && ids.has(built.id)) {
      skip(entry, `another entry has the same ${map.uid}`);
      continue;
    }
    if (built.id !== undefined) ids.add(built.id);
    if (!built.ok) {
      skip(entry, built.reason);
      continue;
    }
    if (built.droppedPhoto) options.logger.debug({ dn: entry.dn }, 'directory photo left out: the card would exceed limits.maxResourceSize');
    // The same validation as a PUT, so the mirror contains no card that a client upload would be rejected for.
    const prepared = prepareCard(built.data);
    if (!prepared.ok) {
      skip(entry, `invalid vCard: ${prepared.message}`);
      continue;
    }
    cards.set(built.name, {
      fn: built.fn,
      input: { name: built.name, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties },
    });
  }
  if (skipped > MAX_SKIP_LOGS) options.logger.warn({ skipped }, 'directory entries skipped in total');
  await options.onProgress?.({ phase: 'build', done: entries.length, total: entries.length });
  return { cards, ids, skipped };
}

async function storedCards(storage: Storage, book: AddressBook | undefined): Promise<Map<string, CardMeta>> {
  const stored = new Map<string, CardMeta>();
  if (!book) return stored;
  for (let afterId = 0; ; ) {
    const page = await storage.listCardMeta(book.id, afterId, LIST_PAGE);
    for (const card of page) stored.set(card.name, card);
    if (page.length < LIST_PAGE) break;
    afterId = page[page.length - 1].id;
  }
  return stored;
}

/** Reads FN from stored cards, so a report can name what it removes. */
async function storedNames(storage: Storage, book: AddressBook, names: string[]): Promise<CardSummary[]> {
  const cards = new Map((await storage.getCards(book.id, names)).map((card) => [card.name, card]));
  return names.map((name) => {
    const data = cards.get(name)?.data;
    let fn = '';
    if (data) {
      for (const line of splitLines(unfoldBytes(data).toString('utf8'))) {
        if (!/^FN[;:]/i.test(line)) continue;
        fn = unescapeText(parseContentLine(line).value);
        break;
      }
    }
    return { name, fn };
  });
}

async function accountsChange(storage: Storage, ids: Set<string>): Promise<boolean> {
  return (await storage.listDirectoryAccounts()).some((account) => account.active !== ids.has(account.directoryId));
}

/**
 * Runs one sync: reads every entry under ldap.baseDN, builds their cards and
 * writes the difference to the mirrored book in one transaction. Any
 * directory error (bind, timeout, connection, result code, referral) raises a
 * DirectoryError before anything is written, so an outage never reads as
 * an empty directory.
 */
export async function syncDirectory(storage: Storage, config: Config, options: SyncOptions): Promise<SyncReport> {
  const started = Date.now();
  if (config.ldap.url === '') throw new DirectoryError('ldap.url is not set in the configuration');
  const entries = await fetchEntries(config, options);
  const built = await buildCards(entries, config, options);

  const book = options.dryRun ? (await findDirectoryBook(storage, config))?.book : await ensureDirectoryBook(storage, config);
  const stored = await storedCards(storage, book);
  const upserts: CardInput[] = [];
  const added: CardSummary[] = [];
  const changed: CardSummary[] = [];
  for (const [name, { input, fn }] of built.cards) {
    const current = stored.get(name);
    if (!current) added.push({ name, fn });
    else if (current.etag !== input.etag) changed.push({ name, fn });
    else continue;
    upserts.push(input);
  }
  const deletes = [...stored.keys()].filter((name) => !built.cards.has(name));
  if (deletes.length > 0 && deletes.length > config.ldap.maxDeleteShare * stored.size && !options.force) {
    throw new DeleteGuardError(deletes.length, stored.size, config.ldap.maxDeleteShare);
  }
  const removed = book && deletes.length > 0 ? await storedNames(storage, book, deletes) : [];
  const seqBefore = book?.syncSeq ?? 0;
  let seqAfter = seqBefore;

  if (!options.dryRun && book) {
    const accounts = await accountsChange(storage, built.ids);
    if (upserts.length > 0 || deletes.length > 0 || accounts) {
      await options.onProgress?.({ phase: 'write', done: 0, total: upserts.length + deletes.length });
      const result = await storage.applyBookChanges(book.id, {
        upserts,
        deletes,
        expectedSeq: book.syncSeq,
        activeDirectoryIds: [...built.ids],
      });
      if (result.kind === 'seq-mismatch') {
        throw new DirectoryError('the directory book changed while the sync ran (another sync?); nothing was written, run the sync again');
      }
      if (result.kind === 'uid-conflict') throw new DirectoryError(`card ${result.name} clashes with the UID of ${result.existingName}; nothing was written`);
      if (result.kind === 'book-missing') throw new DirectoryError('the directory book was removed while the sync ran; nothing was written');
      seqAfter = result.seq;
      await options.onProgress?.({ phase: 'write', done: upserts.length + deletes.length, total: upserts.length + deletes.length });
    }
  }

  return {
    dryRun: Boolean(options.dryRun),
    entries: entries.length,
    added,
    changed,
    removed,
    unchanged: built.cards.size - added.length - changed.length,
    skipped: built.skipped,
    seqBefore,
    seqAfter,
    durationMs: Date.now() - started,
  };
}

/** Returns the counts of a report for a log line. */
export function reportCounts(report: SyncReport): Record<string, number | boolean> {
  return {
    entries: report.entries,
    added: report.added.length,
    changed: report.changed.length,
    removed: report.removed.length,
    unchanged: report.unchanged,
    skipped: report.skipped,
    ms: report.durationMs,
    dryRun: report.dryRun,
  };
}
