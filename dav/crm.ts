import type { Card, PutCondition, Storage, User } from '../storage/types';
import {
  CRM_PROPERTY,
  CrmCard,
  CrmRule,
  checkLeadTransition,
  describeCard,
  isCrmCard,
  KIND_PROPERTIES,
  leadState,
  mayBeCrmCard,
  rewriteCrmCard,
  validateCrmCard,
} from '../vcard/crm';
import { escapeText } from '../vcard/contentline';
import { PreparedCard, prepareCard } from '../vcard/pipeline';
import type { DavContext } from './context';
import { DavError } from './errors';
import { bookHref, encodeSegment, Resource } from './resource';
import { clark, escapeXml, NS, tag } from './xml';

/**
 * The server side of the CRM rules (vcard/crm.ts has the card-level checks):
 * the checks that need storage, run from PUT and DELETE. When a rule applies,
 * the write is made conditional on the stored version that was checked, so
 * a concurrent change makes it fail with 412 instead of slipping past a rule.
 */

type CardResource = Extract<Resource, { kind: 'card' }>;
type BookResource = Extract<Resource, { kind: 'book' }>;

function etagMatches(etag: string | undefined, tags: string[]): boolean {
  return etag !== undefined && tags.some((candidate) => candidate === '*' || candidate === etag);
}

/**
 * Builds a 403 that names CARDDAV:valid-address-data for generic clients and
 * the Cardinal rule for those that know it, and logs the rule.
 */
function ruleViolation(dc: DavContext, rule: CrmRule, message: string): DavError {
  dc.log.info({ user: dc.user.name, path: dc.ctx.path, rule }, 'card rejected by a CRM rule');
  return new DavError(403, clark(NS.CARDDAV, 'valid-address-data'), message, undefined, [clark(NS.CARDINAL, rule)]);
}

/** Hrefs of cards, as `viewer` reaches them; cards in books the viewer cannot read are only counted. */
async function describeCards(storage: Storage, viewer: User, cards: Card[]): Promise<{ hrefs: string[]; hidden: number }> {
  const mounts = new Map((await storage.listVisibleBooks(viewer.id)).map((visible) => [visible.book.id, visible.mount]));
  const hrefs: string[] = [];
  let hidden = 0;
  for (const card of cards) {
    const mount = mounts.get(card.bookId);
    if (mount === undefined) hidden++;
    else hrefs.push(bookHref(viewer, mount) + encodeSegment(card.name));
  }
  return { hrefs, hidden };
}

/** Cards that link to the account with this UID, leaving out the cards in `exclude` (book id and name). */
async function linkedContacts(storage: Storage, accountUid: string, exclude: (card: Card) => boolean): Promise<Card[]> {
  const cards = await storage.listCardsWithProperty(CRM_PROPERTY.account, accountUid);
  return cards.filter((card) => !exclude(card));
}

/** Builds a 409 naming the contacts that still link to an account, so the client can unlink them first. */
async function linkedContactsError(dc: DavContext, what: string, cards: Card[]): Promise<DavError> {
  dc.log.info({ user: dc.user.name, path: dc.ctx.path, linked: cards.length }, 'write rejected: contacts link to the account');
  const { hrefs, hidden } = await describeCards(dc.storage, dc.user, cards);
  const elsewhere = hidden > 0 ? ` (${hidden} of them in address books you cannot read)` : '';
  return new DavError(
    409,
    clark(NS.CARDINAL, 'no-linked-contacts'),
    `${what}: ${cards.length} contact${cards.length === 1 ? '' : 's'} link to it with ${CRM_PROPERTY.account}${elsewhere}; remove or change those links first`,
    hrefs.map((href) => tag(clark(NS.DAV, 'href'), escapeXml(href))).join(''),
  );
}

/** Finds the account a contact links to, among the books the user can read. */
async function findReadableAccount(storage: Storage, user: User, uid: string): Promise<CrmCard | undefined> {
  const bookIds = (await storage.listVisibleBooks(user.id)).map((visible) => visible.book.id);
  // The link is compared unescaped, but the UID column stores the value as the card wrote it (`acme\,inc`), so both spellings are looked up.
  const spellings = new Set([uid, escapeText(uid)]);
  for (const spelling of spellings) {
    for (const card of await storage.findCardsByUid(bookIds, spelling)) {
      const view = describeCard(card.data);
      if (view.isAccount && view.uid === uid) return view;
    }
  }
  return undefined;
}

function preconditionFailed(): DavError {
  return new DavError(412, undefined, 'the card does not match the If-Match or If-None-Match condition');
}

/**
 * Checks a client's preconditions against the stored version read here, then
 * returns a condition that holds only while that version is still the stored one.
 */
function pinCondition(stored: Card | undefined, condition: PutCondition): PutCondition {
  if (condition.ifMatch && !etagMatches(stored?.etag, condition.ifMatch)) throw preconditionFailed();
  if (condition.ifNoneMatchAny && stored) throw preconditionFailed();
  if (condition.ifNoneMatch && etagMatches(stored?.etag, condition.ifNoneMatch)) throw preconditionFailed();
  return stored ? { ifMatch: [stored.etag] } : { ifNoneMatchAny: true };
}

/**
 * Runs the CRM rules on a PUT and returns the card to store with the write
 * condition. A card that the server rewrote is marked repaired, so no ETag is
 * sent. A card that no rule concerns comes back unchanged.
 */
export async function enforceCrmRulesOnPut(
  dc: DavContext,
  resource: CardResource,
  card: PreparedCard,
  condition: PutCondition,
): Promise<{ card: PreparedCard; condition: PutCondition }> {
  // Most cards are plain contacts: a new one that cannot be a CRM card skips the rules.
  if (!resource.exists && !mayBeCrmCard(card.properties)) return { card, condition };
  const next = describeCard(card.data);
  const stored = resource.exists ? await dc.storage.getCard(resource.book.id, resource.name) : undefined;
  const previous = stored ? describeCard(stored.data) : undefined;
  if (!isCrmCard(next) && !(previous && isCrmCard(previous))) return { card, condition };

  const pinned = pinCondition(stored, condition);
  const violation = validateCrmCard(next) ?? checkLeadTransition(previous, stored?.data, next, card.data);
  if (violation) throw ruleViolation(dc, violation.rule, violation.message);

  if (stored && previous && leadState(previous) === 'disqualified' && leadState(next) !== 'open') {
    // The same content sent back to a disqualified lead keeps the stored bytes. The response has no ETag when they differ from the sent ones, so the client fetches them.
    const kept = prepareCard(stored.data);
    if (!kept.ok) throw new Error(`a stored card no longer passes the pipeline: ${kept.message}`);
    return { card: { ...kept, repaired: !stored.data.equals(card.data) }, condition: pinned };
  }

  let account: CrmCard | undefined;
  const link = next.accountLinks[0];
  if (link !== undefined) {
    account = await findReadableAccount(dc.storage, dc.user, link);
    if (!account) {
      throw ruleViolation(dc, 'valid-account-link', `${CRM_PROPERTY.account} names ${link}, but no account card (KIND:org) with that UID is in an address book you can read`);
    }
  }

  if (previous?.isAccount && (!next.isAccount || next.uid !== previous.uid)) {
    const self = (other: Card) => other.bookId === resource.book.id && other.name === resource.name;
    const linked = await linkedContacts(dc.storage, previous.uid, self);
    if (linked.length > 0) throw await linkedContactsError(dc, `the card must stay the account with UID ${previous.uid}`, linked);
  }

  const sameCard = previous && previous.uid === next.uid ? previous : undefined;
  const rewritten = rewriteCrmCard(card.data, next, { previous: sameCard, account, now: new Date() });
  if (!rewritten) return { card, condition: pinned };
  const prepared = prepareCard(rewritten);
  if (!prepared.ok) throw new Error(`a CRM rewrite produced an invalid card: ${prepared.message}`);
  dc.log.debug({ book: resource.book.id, card: resource.name, state: leadState(next) }, 'CRM values rewritten');
  return { card: { ...prepared, repaired: true }, condition: pinned };
}

/**
 * Runs the CRM rules on a card DELETE: a disqualified lead stays, and so does
 * an account that contacts link to. Returns the If-Match list to delete with.
 */
export async function enforceCrmRulesOnDelete(dc: DavContext, resource: CardResource, ifMatch: string[] | undefined): Promise<string[] | undefined> {
  const stored = await dc.storage.getCard(resource.book.id, resource.name);
  if (!stored) return ifMatch;
  const card = describeCard(stored.data);
  if (!isCrmCard(card)) return ifMatch;
  if (ifMatch && !etagMatches(stored.etag, ifMatch)) throw new DavError(412, undefined, 'the card does not match If-Match');
  if (leadState(card) === 'disqualified') {
    dc.log.info({ user: dc.user.name, path: dc.ctx.path, rule: 'no-change-to-disqualified-lead' }, 'delete rejected by a CRM rule');
    throw new DavError(
      403,
      clark(NS.CARDINAL, 'no-change-to-disqualified-lead'),
      `the lead "${card.fn}" is disqualified and read-only; reactivate it (${CRM_PROPERTY.leadState}:open) before deleting it`,
    );
  }
  if (card.isAccount) {
    const self = (other: Card) => other.bookId === resource.book.id && other.name === resource.name;
    const linked = await linkedContacts(dc.storage, card.uid, self);
    if (linked.length > 0) throw await linkedContactsError(dc, `the account "${card.fn}" cannot be deleted`, linked);
  }
  return [stored.etag];
}

/**
 * Lists the accounts (KIND:org) of the books, or of every book when
 * `bookIds` is undefined. Only the cards whose kind contains `org` are read,
 * so the individuals of a large book are never loaded.
 */
export async function listAccountCards(storage: Storage, bookIds: number[] | undefined): Promise<Card[]> {
  const seen = new Set<number>();
  const accounts: Card[] = [];
  for (const property of KIND_PROPERTIES) {
    for (const card of await storage.listCardsWithProperty(property, 'org', bookIds, 'contains')) {
      if (seen.has(card.id)) continue;
      seen.add(card.id);
      if (describeCard(card.data).isAccount) accounts.push(card);
    }
  }
  return accounts;
}

/**
 * Refuses to delete a book whose accounts have contacts in other books. Cards
 * inside the book, disqualified leads included, go with it.
 * NOTE: the check and the delete are separate steps, so a link written between them is left dangling.
 */
export async function enforceCrmRulesOnBookDelete(dc: DavContext, resource: BookResource): Promise<void> {
  const bookId = resource.book.id;
  const linked: Card[] = [];
  for (const account of await listAccountCards(dc.storage, [bookId])) {
    const { uid } = describeCard(account.data);
    linked.push(...(await linkedContacts(dc.storage, uid, (other) => other.bookId === bookId)));
  }
  if (linked.length > 0) throw await linkedContactsError(dc, 'the address book contains accounts that contacts in other books link to', linked);
}
