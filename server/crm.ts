import type { Command } from 'commander';
import type { AddressBook, Card, Storage, User } from '../storage/types';
import {
  accountName,
  buildAccountCard,
  caseStatus,
  CRM_PROPERTY,
  CrmCard,
  describeCard,
  LEAD_SOURCES,
  LEAD_STATES,
  leadSource,
  leadState,
  LeadSource,
  LeadState,
  linkToAccount,
  rewriteCrmCard,
  validateCrmCard,
} from '../vcard/crm';
import { listAccountCards } from '../dav/crm';
import { prepareCard } from '../vcard/pipeline';
import { CommandTools, findBook, findUsers } from './groups';
import { UserError } from './users';

/** Address books a report covers, and the OWNER/SLUG label of each. */
interface Scope {
  /** Undefined for every book. */
  bookIds?: number[];
  labels: Map<number, string>;
}

interface ScopeOptions {
  user?: string;
  book?: string;
}

async function bookLabels(storage: Storage): Promise<Map<number, string>> {
  const labels = new Map<number, string>();
  for (const user of await storage.listUsers()) {
    for (const book of await storage.listBooks(user.id)) labels.set(book.id, `${user.name}/${book.slug}`);
  }
  return labels;
}

/** Reads `--user NAME` (the books NAME can read) and `--book OWNER/SLUG`; with neither, every book. */
async function resolveScope(storage: Storage, options: ScopeOptions): Promise<Scope> {
  const labels = await bookLabels(storage);
  if (options.user !== undefined && options.book !== undefined) throw new UserError('pass --user or --book, not both');
  if (options.book !== undefined) return { bookIds: [(await findBook(storage, options.book)).book.id], labels };
  if (options.user !== undefined) {
    const [user] = await findUsers(storage, [options.user]);
    return { bookIds: (await storage.listVisibleBooks(user.id)).map((visible) => visible.book.id), labels };
  }
  return { labels };
}

/** A card with its CRM reading and where it is stored. */
export interface LocatedCard {
  card: Card;
  crm: CrmCard;
  /** `OWNER/SLUG/NAME`. */
  path: string;
}

function locate(scope: Scope, cards: Card[]): LocatedCard[] {
  return cards.map((card) => ({ card, crm: describeCard(card.data), path: `${scope.labels.get(card.bookId) ?? `book ${card.bookId}`}/${card.name}` }));
}

async function listLeads(storage: Storage, scope: Scope): Promise<LocatedCard[]> {
  return locate(scope, await storage.listCardsWithProperty(CRM_PROPERTY.leadState, undefined, scope.bookIds));
}

async function listAccounts(storage: Storage, scope: Scope): Promise<LocatedCard[]> {
  return locate(scope, await listAccountCards(storage, scope.bookIds));
}

/** Formats rows as columns separated by two spaces, with a header row. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function parseChoice<T extends string>(value: string | undefined, choices: readonly T[], option: string): T | undefined {
  if (value === undefined) return undefined;
  const normalized = value.toLowerCase();
  if (!(choices as readonly string[]).includes(normalized)) throw new UserError(`invalid ${option} "${value}": use one of ${choices.join(', ')}`);
  return normalized as T;
}

/** Returns the date of the stamp that records how the lead reached its current state, as YYYY-MM-DD. */
function stateSince(crm: CrmCard): string {
  const state = leadState(crm);
  let stamp = crm.stamps.reactivated;
  if (state === 'qualified') stamp = crm.stamps.qualified;
  else if (state === 'disqualified') stamp = crm.stamps.disqualified;
  return stamp ? `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}` : '';
}

export async function leadsReport(storage: Storage, scopeOptions: ScopeOptions, filter: { state?: string; source?: string }): Promise<string> {
  const state = parseChoice(filter.state, LEAD_STATES, '--state');
  const source = parseChoice(filter.source, LEAD_SOURCES, '--source');
  const leads = (await listLeads(storage, await resolveScope(storage, scopeOptions)))
    .filter(({ crm }) => (state === undefined || leadState(crm) === state) && (source === undefined || leadSource(crm) === source))
    .sort((a, b) => LEAD_STATES.indexOf(leadState(a.crm) ?? 'open') - LEAD_STATES.indexOf(leadState(b.crm) ?? 'open') || a.crm.fn.localeCompare(b.crm.fn));
  if (leads.length === 0) return 'no leads found';
  const rows = leads.map(({ crm, path }) => [
    crm.fn,
    crm.leadStates[0] ?? '',
    crm.leadSources[0] ?? '',
    crm.org ?? '',
    stateSince(crm),
    crm.stamps.converted ? 'yes' : '',
    path,
  ]);
  return formatTable(['NAME', 'STATE', 'SOURCE', 'ORGANIZATION', 'SINCE', 'CONVERTED', 'CARD'], rows);
}

export async function accountReport(storage: Storage, scopeOptions: ScopeOptions, name: string): Promise<string> {
  const scope = await resolveScope(storage, scopeOptions);
  const wanted = name.toLowerCase();
  const accounts = (await listAccounts(storage, scope)).filter(
    ({ crm }) => accountName(crm).toLowerCase() === wanted || crm.fn.toLowerCase() === wanted || crm.uid === name,
  );
  if (accounts.length === 0) throw new UserError(`no account named "${name}"; an account is a card with KIND:org or X-ADDRESSBOOKSERVER-KIND:org`);
  const sections: string[] = [];
  for (const account of accounts) {
    const contacts = locate(scope, await storage.listCardsWithProperty(CRM_PROPERTY.account, account.crm.uid, scope.bookIds));
    const lines = [`${accountName(account.crm)}  (UID ${account.crm.uid}, ${account.path})`, ''];
    lines.push(`Contacts: ${contacts.length}`);
    if (contacts.length > 0) {
      const rows = contacts.map(({ crm, path }) => [crm.fn, crm.email ?? '', crm.phone ?? '', path]);
      lines.push(indent(formatTable(['NAME', 'EMAIL', 'PHONE', 'CARD'], rows)));
    }
    const cases = [account, ...contacts].flatMap(({ crm }) => crm.cases.map((entry) => [entry.reference, caseStatus(entry), entry.subject ?? '', crm.fn]));
    lines.push('', `Cases: ${cases.length}`);
    if (cases.length > 0) lines.push(indent(formatTable(['REFERENCE', 'STATUS', 'SUBJECT', 'CARD'], cases)));
    sections.push(lines.join('\n'));
  }
  return sections.join('\n\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

type SourceBucket = LeadSource | 'unspecified';
const SOURCE_BUCKETS: SourceBucket[] = [...LEAD_SOURCES, 'unspecified'];

export interface Funnel {
  total: number;
  /** Lead counts by state, each split by source, with the state's total. */
  states: Record<LeadState, Record<SourceBucket | 'total', number>>;
  /** Cards whose X-CRM-LEAD-STATE is invalid (stored before the rules applied); they are in no count. */
  invalid: number;
}

export async function computeFunnel(storage: Storage, scopeOptions: ScopeOptions): Promise<Funnel> {
  const empty = () => ({ inbound: 0, outbound: 0, unspecified: 0, total: 0 });
  const funnel: Funnel = { total: 0, states: { open: empty(), qualified: empty(), disqualified: empty() }, invalid: 0 };
  for (const { crm } of await listLeads(storage, await resolveScope(storage, scopeOptions))) {
    const state = leadState(crm);
    if (state === undefined || validateCrmCard(crm)?.rule === 'valid-lead-source') {
      funnel.invalid++;
      continue;
    }
    const bucket: SourceBucket = leadSource(crm) ?? 'unspecified';
    funnel.states[state][bucket]++;
    funnel.states[state].total++;
    funnel.total++;
  }
  return funnel;
}

const BAR_WIDTH = 40;
/** Left-aligned partial blocks from one eighth to seven eighths of a cell (U+258F to U+2589). */
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** Draws a horizontal bar of `value / max` times BAR_WIDTH cells, in eighths of a cell. */
export function bar(value: number, max: number): string {
  if (value <= 0 || max <= 0) return '';
  const eighths = Math.max(1, Math.round((value / max) * BAR_WIDTH * 8));
  return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
}

/** Draws the funnel as one bar per state and source, scaled to the largest count. */
export function renderFunnel(funnel: Funnel): string {
  const buckets = SOURCE_BUCKETS.filter((bucket) => bucket !== 'unspecified' || LEAD_STATES.some((state) => funnel.states[state].unspecified > 0));
  const max = Math.max(0, ...LEAD_STATES.flatMap((state) => buckets.map((bucket) => funnel.states[state][bucket])));
  const stateWidth = Math.max(...LEAD_STATES.map((state) => state.length));
  const countWidth = String(Math.max(funnel.total, 1)).length;
  const bucketWidth = Math.max(...buckets.map((bucket) => bucket.length));
  const lines = [`Lead funnel: ${funnel.total} lead${funnel.total === 1 ? '' : 's'}`, ''];
  for (const state of LEAD_STATES) {
    buckets.forEach((bucket, i) => {
      const head = i === 0 ? `${state.padEnd(stateWidth)}  ${String(funnel.states[state].total).padStart(countWidth)}` : ' '.repeat(stateWidth + 2 + countWidth);
      const count = funnel.states[state][bucket];
      lines.push(`${head}  ${bucket.padEnd(bucketWidth)}  ${`${bar(count, max)} ${count}`.trimStart()}`);
    });
  }
  if (funnel.invalid > 0) lines.push('', `${funnel.invalid} card${funnel.invalid === 1 ? ' has' : 's have'} an invalid lead state or source and are not counted`);
  return lines.join('\n');
}

/** Finds a card named `OWNER/SLUG/CARD`, or by UID when unique across all books. */
async function findCard(storage: Storage, reference: string): Promise<{ owner: User; book: AddressBook; card: Card }> {
  const parts = reference.split('/');
  if (parts.length === 3) {
    const { owner, book } = await findBook(storage, `${parts[0]}/${parts[1]}`);
    const card = await storage.getCard(book.id, parts[2]);
    if (!card) throw new UserError(`card ${reference} not found`);
    return { owner, book, card };
  }
  const books: { owner: User; book: AddressBook }[] = [];
  for (const owner of await storage.listUsers()) for (const book of await storage.listBooks(owner.id)) books.push({ owner, book });
  const cards = await storage.findCardsByUid(
    books.map(({ book }) => book.id),
    reference,
  );
  if (cards.length === 0) throw new UserError(`no card has UID ${reference}; name the card as OWNER/SLUG/CARD or by its UID`);
  const where = (card: Card) => books.find(({ book }) => book.id === card.bookId) as { owner: User; book: AddressBook };
  if (cards.length > 1) {
    const paths = cards.map((card) => `${where(card).owner.name}/${where(card).book.slug}/${card.name}`);
    throw new UserError(`UID ${reference} is in ${cards.length} address books (${paths.join(', ')}); name the card as OWNER/SLUG/CARD`);
  }
  return { ...where(cards[0]), card: cards[0] };
}

export interface Conversion {
  accountPath: string;
  accountName: string;
  /** False when the lead already linked to an account, which is kept. */
  accountCreated: boolean;
  contactPath: string;
}

/**
 * Converts a qualified lead: creates an account named after the lead's ORG
 * (unless the lead links to one already) and turns the lead's card into a
 * contact linked to it, in one transaction. The card keeps its lead state
 * and source, so the funnel still counts it, and gets X-CRM-LEAD-CONVERTED-AT.
 */
export async function convertLead(storage: Storage, reference: string, now = new Date()): Promise<Conversion> {
  const { owner, book, card } = await findCard(storage, reference);
  const lead = describeCard(card.data);
  const label = `${owner.name}/${book.slug}`;
  const state = leadState(lead);
  if (state === undefined) throw new UserError(`${label}/${card.name} is not a lead: it has no valid ${CRM_PROPERTY.leadState}`);
  if (state !== 'qualified') throw new UserError(`the lead "${lead.fn}" is ${state}; only a qualified lead can be converted`);
  if (lead.stamps.converted) throw new UserError(`the lead "${lead.fn}" was converted already`);
  if (lead.isAccount) throw new UserError(`the lead "${lead.fn}" is an account card (KIND:org); convert a lead for a person`);

  let account: { crm: CrmCard; name: string; data?: Buffer; bookId: number } | undefined;
  const link = lead.accountLinks[0];
  if (link !== undefined) {
    const readable = (await storage.listVisibleBooks(owner.id)).map((visible) => visible.book.id);
    const linked = (await storage.findCardsByUid(readable, link)).find((candidate) => describeCard(candidate.data).isAccount);
    if (!linked) throw new UserError(`the lead links to ${link}, which is not an account in an address book ${owner.name} can read`);
    account = { crm: describeCard(linked.data), name: linked.name, bookId: linked.bookId };
  } else {
    if (!lead.org) throw new UserError(`the lead "${lead.fn}" has no ORG; set the company name so the account can be named after it`);
    const built = buildAccountCard(lead.org, lead.version);
    account = { crm: describeCard(built.data), name: `${built.uid}.vcf`, data: built.data, bookId: book.id };
  }

  const linkedData = linkToAccount(card.data, account.crm.uid);
  const contactData =
    rewriteCrmCard(linkedData, describeCard(linkedData), { previous: lead, account: account.crm, now, extraStamps: ['converted'] }) ?? linkedData;
  const contact = prepareCard(contactData);
  if (!contact.ok) throw new Error(`the converted contact is not a valid card: ${contact.message}`);

  const writes = [];
  if (account.data) {
    const prepared = prepareCard(account.data);
    if (!prepared.ok) throw new Error(`the new account is not a valid card: ${prepared.message}`);
    writes.push({
      bookId: book.id,
      input: { name: account.name, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties },
      condition: { ifNoneMatchAny: true },
    });
  }
  writes.push({
    bookId: book.id,
    input: { name: card.name, uid: contact.uid, etag: contact.etag, data: contact.data, properties: contact.properties },
    condition: { ifMatch: [card.etag] },
  });
  const { committed, results } = await storage.putCards(writes);
  if (!committed) {
    const failed = results[results.length - 1];
    throw new UserError(`the conversion was not stored (${failed.kind}); the lead changed meanwhile or the book was removed, so run it again`);
  }
  const labels = await bookLabels(storage);
  return {
    accountPath: `${labels.get(account.bookId) ?? label}/${account.name}`,
    accountName: accountName(account.crm),
    accountCreated: account.data !== undefined,
    contactPath: `${label}/${card.name}`,
  };
}

interface CommonOptions extends ScopeOptions {
  config?: string;
  data?: string;
}

function withScopeOptions(command: Command): Command {
  return command
    .option('--user <name>', 'only the address books this user can read (own and shared)')
    .option('--book <owner/slug>', 'only this address book');
}

export function addCrmCommands(program: Command, tools: CommandTools): void {
  const { withCommonOptions, withStorage } = tools;
  const crm = program.command('crm').description('customer records: accounts, contacts, leads and cases (see docs/crm.md)');

  withScopeOptions(withCommonOptions(crm.command('leads').description('list leads as a table')))
    .option('--state <state>', `only leads in this state (${LEAD_STATES.join(', ')})`)
    .option('--source <source>', `only leads from this source (${LEAD_SOURCES.join(', ')})`)
    .action(async (options: CommonOptions & { state?: string; source?: string }) => {
      await withStorage(options, async (storage) => console.log(await leadsReport(storage, options, options)));
    });

  withScopeOptions(withCommonOptions(crm.command('account <name>').description('show an account (by name or UID) with its contacts and cases')))
    .action(async (name: string, options: CommonOptions) => {
      await withStorage(options, async (storage) => console.log(await accountReport(storage, options, name)));
    });

  withScopeOptions(withCommonOptions(crm.command('funnel').description('count leads by state and source, as a bar chart')))
    .option('--json', 'print the counts as JSON instead of a chart')
    .action(async (options: CommonOptions & { json?: boolean }) => {
      await withStorage(options, async (storage) => {
        const funnel = await computeFunnel(storage, options);
        console.log(options.json ? JSON.stringify(funnel, null, 2) : renderFunnel(funnel));
      });
    });

  withCommonOptions(
    crm.command('convert <lead>').description('turn a qualified lead (OWNER/SLUG/CARD or UID) into an account and a contact linked to it'),
  ).action(async (reference: string, options: CommonOptions) => {
    await withStorage(options, async (storage) => {
      const result = await convertLead(storage, reference);
      const account = result.accountCreated ? `created account "${result.accountName}"` : `kept account "${result.accountName}"`;
      console.log(`${account} at ${result.accountPath}; ${result.contactPath} is now its contact`);
    });
  });
}
