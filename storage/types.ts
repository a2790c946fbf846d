/**
 * The storage contract. The SQLite backend implements it today. A PostgreSQL
 * backend for several server nodes will implement the same interface, so every
 * method is asynchronous, and no caller may assume that one process owns the
 * data. SQL and transactions stay behind this interface.
 */

export interface User {
  id: number;
  name: string;
  /** `scrypt$N$r$p$salt$hash`, salt and hash base64; null for directory-only users. */
  passwordHash: string | null;
  createdAt: number;
}

export interface AddressBook {
  id: number;
  /** Random identifier baked into sync tokens, so a token never matches a recreated book. */
  uuid: string;
  ownerId: number;
  /** The URL segment under the owner's address book home. */
  slug: string;
  displayName: string;
  description: string;
  /** Sequence number of the latest change; the sync token and CS:getctag derive from it. */
  syncSeq: number;
  createdAt: number;
  modifiedAt: number;
}

/** A user's rights on a book: all of them as its owner, or those of a grant. */
export type Access = 'owner' | 'write' | 'read';

export type Grantee = { kind: 'user'; id: number } | { kind: 'group'; id: number } | { kind: 'everyone' };

/** A book as one user sees it in their address book home. */
export interface VisibleBook {
  book: AddressBook;
  owner: User;
  access: Access;
  /** The URL segment under the viewer's home: the slug for an own book, the grant's mount otherwise. */
  mount: string;
}

/** The origin of a group's membership: the command line, or a mirrored LDAP directory. */
export type GroupSource = 'local' | 'ldap';

export interface Group {
  id: number;
  name: string;
  source: GroupSource;
}

/** A grant on one book, with the grantee's name resolved for display. */
export interface BookGrant {
  grantee: Grantee;
  /** The user or group name; undefined for everyone. */
  granteeName?: string;
  access: 'read' | 'write';
  mount: string;
}

/** A card without its body, as listings and sync reports need it. */
export interface CardMeta {
  id: number;
  bookId: number;
  /** The last URL segment, decoded, for example `1234.vcf`. */
  name: string;
  uid: string;
  /** The strong entity tag, without quotes: 32 hexadecimal digits from computeEtag. */
  etag: string;
  size: number;
  modifiedAt: number;
  seq: number;
}

/** The fields of a card that listings and sync reports show. */
export type CardSummary = Pick<CardMeta, 'name' | 'etag' | 'size' | 'modifiedAt' | 'seq'>;

export interface Card extends CardMeta {
  data: Buffer;
}

/** A card with the XML form of its body, which storage keeps beside the body. */
export interface CardXml extends CardSummary {
  /** The body escaped for XML element content, as UTF-8 (xmlText in vcard/xmltext.ts). */
  xml: Buffer;
}

/** One parameter value of an indexed property; a parameter with several values gives one entry per value. */
export interface IndexedParameter {
  /** Upper-case parameter name, for example `TYPE`. */
  name: string;
  /** The value with RFC 6868 escapes removed. */
  value: string;
}

/** A property of a card as the query index stores it (RFC 6352 section 10.5). */
export interface IndexedProperty {
  /** Upper-case group, for example `ITEM1` for `item1.EMAIL`; absent for an ungrouped property. */
  group?: string;
  /** Upper-case property name without group, for example `EMAIL`. */
  name: string;
  /**
   * The value with text escapes removed; a structured value (N, ADR) keeps its
   * `;` separators. Absent for properties whose values are not indexed (PHOTO,
   * LOGO, SOUND, KEY).
   */
  value?: string;
  params: IndexedParameter[];
}

export type Collation = 'i;unicode-casemap' | 'i;ascii-casemap' | 'i;octet';
export type MatchType = 'equals' | 'contains' | 'starts-with' | 'ends-with';

/** CARDDAV:text-match (RFC 6352 section 10.5.4). */
export interface TextMatch {
  text: string;
  matchType: MatchType;
  collation: Collation;
  negate: boolean;
}

/** CARDDAV:param-filter (RFC 6352 section 10.5.2). */
export interface ParamFilter {
  /** Upper-case parameter name. */
  name: string;
  isNotDefined: boolean;
  textMatch?: TextMatch;
}

/** CARDDAV:prop-filter (RFC 6352 section 10.5.1). */
export interface PropFilter {
  /** Upper-case group; when absent, properties in any group or none match. */
  group?: string;
  /** Upper-case property name. */
  name: string;
  /** The `test` attribute: true for allof, false for anyof. */
  allOf: boolean;
  isNotDefined: boolean;
  textMatches: TextMatch[];
  paramFilters: ParamFilter[];
}

/** CARDDAV:filter (RFC 6352 section 10.5); no prop-filters matches every card. */
export interface CardFilter {
  allOf: boolean;
  propFilters: PropFilter[];
}

export interface CardInput {
  name: string;
  uid: string;
  etag: string;
  data: Buffer;
  properties: IndexedProperty[];
}

export interface BookChanges {
  displayName?: string;
  description?: string;
  /** Dead properties to set, keyed by Clark name; null removes one. */
  properties?: Map<string, string | null>;
}

export interface Change {
  name: string;
  seq: number;
  /** Present for a card that exists now; absent for a removed one. */
  card?: CardSummary;
}

export type PutResult =
  | { kind: 'created' | 'replaced'; card: CardMeta }
  | { kind: 'precondition-failed' }
  | { kind: 'uid-conflict'; existingName: string }
  | { kind: 'book-missing' };

export interface PutCondition {
  /** `If-Match` entity tags without quotes; `*` matches any existing card. */
  ifMatch?: string[];
  /** `If-None-Match: *`: the card must not exist. */
  ifNoneMatchAny?: boolean;
  /** `If-None-Match` with entity tags: fail when the current tag is one of them. */
  ifNoneMatch?: string[];
}

/** One card write of a batch that `putCards` applies in a single transaction. */
export interface CardWrite {
  bookId: number;
  input: CardInput;
  condition: PutCondition;
}

export type DeleteResult = 'deleted' | 'not-found' | 'precondition-failed';

/** Card writes and removals for one book that `applyBookChanges` commits as a whole. */
export interface BookChangeSet {
  /** Cards to create or replace, matched by name. */
  upserts: CardInput[];
  /** Names of cards to remove; a name that does not exist is skipped. */
  deletes: string[];
  /** The book's sync sequence the changes were computed against; another value rejects the whole set. */
  expectedSeq?: number;
  /**
   * Directory identifiers present in the directory. When given, directory
   * accounts listed here become active and all others inactive, in the same transaction.
   */
  activeDirectoryIds?: string[];
}

export type ApplyResult =
  | { kind: 'applied'; created: number; replaced: number; deleted: number; seq: number }
  | { kind: 'seq-mismatch'; seq: number }
  | { kind: 'uid-conflict'; name: string; existingName: string }
  | { kind: 'book-missing' };

/** The link between a Cardinal user and the directory entry that logs in as them. */
export interface DirectoryAccount {
  userId: number;
  userName: string;
  directoryId: string;
  /** False from the first sync that no longer finds the entry until it is found or logs in again. */
  active: boolean;
}

export interface ChangePage {
  changes: Change[];
  /** The sequence number a client may continue from. */
  seq: number;
  truncated: boolean;
}

/**
 * A stored card field that the storage writes into a layout: the ETag, the
 * body's size in bytes, or the XML form of the body (see CardXml).
 * renderChanges writes the first two only.
 */
export type LayoutField = 'etag' | 'size' | 'xml';

/**
 * The text of one listing entry around the values that differ from card to
 * card, for renderChanges and renderCards. Texts go into the output
 * unchanged, so they must be escaped for the output's format already.
 */
export interface CardLayout {
  /** `texts[0]`, the entry's href, `texts[1]`, then each field followed by the next text. */
  texts: string[];
  fields: LayoutField[];
}

export interface ChangeLayout {
  /** A present card, whose href is its name as a URL path segment. */
  card: CardLayout;
  /** A removed card: the first text, its name as a URL path segment, the second text. */
  removed: [string, string];
}

/** An entry of renderCards: the href as it goes into the output, and the name of the requested card (undefined when the href names none). */
export interface CardEntry {
  href: string;
  name: string | undefined;
}

export interface CardsLayout {
  /** The layout of a card in the book. */
  card: CardLayout;
  /** A name that is not in the book: the first text, the entry's href, the second text. */
  missing: [string, string];
  /** Text before the first entry and after the last, to have a whole document in one piece. */
  around?: [string, string];
}

/** A run of rendered changes, as renderChanges returns it. */
export interface RenderedChanges {
  /** The entries, as UTF-8. */
  bytes: Buffer;
  /** Number of entries in `bytes`. */
  count: number;
  /** The sequence number a client may continue from. */
  seq: number;
  /** Whether changes up to `untilSeq` remain after this run. */
  truncated: boolean;
}

/** The comparison listCardsWithProperty makes between a property's value and the value given. */
export type PropertyMatch = 'equals' | 'contains';

export interface Storage {
  close(): Promise<void>;

  /** Creates a user, and with `book` their first address book in the same transaction. */
  createUser(name: string, passwordHash: string | null, book?: { slug: string; displayName: string }): Promise<User>;
  getUser(name: string): Promise<User | undefined>;
  getUserById(id: number): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  setPassword(name: string, passwordHash: string): Promise<boolean>;
  /** Removes the user with every address book they own. */
  removeUser(name: string): Promise<boolean>;

  createBook(ownerId: number, slug: string, displayName: string, description?: string): Promise<AddressBook | undefined>;
  getBook(ownerId: number, slug: string): Promise<AddressBook | undefined>;
  listBooks(ownerId: number): Promise<AddressBook[]>;
  /** Applies every change in one transaction, so a PROPPATCH succeeds or fails as a whole. */
  updateBook(bookId: number, changes: BookChanges): Promise<void>;
  /** Dead properties set by clients, keyed by Clark name, with their XML content. */
  getBookProperties(bookId: number): Promise<Map<string, string>>;
  /**
   * Removes a book with its cards. The book disappears for clients at once, and its cards are
   * deleted in batches, so that other requests are served meanwhile.
   */
  deleteBook(bookId: number): Promise<void>;
  /**
   * Finishes the removals that a stopped process left half done, and returns how many books it
   * removed. The server runs it at start.
   */
  finishRemovals(): Promise<number>;

  /**
   * Lists own books first, then books granted to the user, to a group of theirs or to everyone.
   * A granted book whose mount clashes with an own slug is left out.
   */
  listVisibleBooks(userId: number): Promise<VisibleBook[]>;
  findVisibleBook(userId: number, mount: string): Promise<VisibleBook | undefined>;
  grant(bookId: number, grantee: Grantee, access: 'read' | 'write', mount: string): Promise<void>;
  revoke(bookId: number, grantee: Grantee): Promise<boolean>;
  /** Every grant on a book, users and groups by name. */
  listGrants(bookId: number): Promise<BookGrant[]>;

  /** Creates a group; undefined when the name is taken. */
  createGroup(name: string, source?: GroupSource): Promise<Group | undefined>;
  getGroup(name: string): Promise<Group | undefined>;
  listGroups(): Promise<Group[]>;
  /** Removes a group with its memberships and the grants made to it. */
  removeGroup(name: string): Promise<boolean>;
  /** Adds users to a group; returns how many were not members before. */
  addGroupMembers(groupId: number, userIds: number[]): Promise<number>;
  /** Removes users from a group; returns how many were members. */
  removeGroupMembers(groupId: number, userIds: number[]): Promise<number>;
  /** Replaces a group's whole membership in one transaction, as a directory import needs. */
  setGroupMembers(groupId: number, userIds: number[]): Promise<void>;
  listGroupMembers(groupId: number): Promise<User[]>;
  /** The groups a user belongs to, by name. */
  listUserGroups(userId: number): Promise<Group[]>;

  getCard(bookId: number, name: string): Promise<Card | undefined>;
  getCardMeta(bookId: number, name: string): Promise<CardMeta | undefined>;
  /** Cards by name; missing names are absent from the result. */
  getCards(bookId: number, names: string[]): Promise<Card[]>;
  /** Card metadata by name, read like `getCards` but without the bodies. */
  getCardMetas(bookId: number, names: string[]): Promise<CardMeta[]>;
  /** Cards by name with the XML form of their bodies instead of the bodies, for reports that send them unchanged. */
  getCardXml(bookId: number, names: string[]): Promise<CardXml[]>;
  /** One page of card metadata ordered by id, starting after `afterId`. */
  listCardMeta(bookId: number, afterId: number, limit: number): Promise<CardMeta[]>;
  /**
   * The summary of every card of a book, ordered by id, in pages of up to
   * `pageSize`, all read from one state of the book: writes committed while
   * the pages are read do not show. A backend reads it in one read
   * transaction (a REPEATABLE READ cursor in PostgreSQL). Stopping the
   * iteration early releases the transaction.
   */
  snapshotCardMeta(bookId: number, pageSize: number): AsyncIterable<CardSummary[]>;
  /** One page of full cards ordered by id, starting after `afterId`. */
  listCards(bookId: number, afterId: number, limit: number): Promise<Card[]>;
  countCards(bookId: number): Promise<number>;
  /**
   * One page of metadata of the cards that match `filter`, ordered by id,
   * starting after `afterId`, evaluated on the query index without reading
   * card bodies. It rejects a filter with a text-match on a property whose
   * values are not indexed (see `IndexedProperty.value`), so callers evaluate
   * such a filter on the cards themselves.
   */
  queryCards(bookId: number, filter: CardFilter, afterId: number, limit: number): Promise<CardMeta[]>;
  /** Cards with this UID in any of the books, in one round trip. */
  findCardsByUid(bookIds: number[], uid: string): Promise<Card[]>;
  /**
   * Cards that have an indexed property `name` (upper case), with exactly
   * `value` when given, in the listed books or in every book when `bookIds` is undefined.
   * With `match` 'contains', the value needs only to contain `value`, ignoring the case of ASCII letters.
   */
  listCardsWithProperty(name: string, value?: string, bookIds?: number[], match?: PropertyMatch): Promise<Card[]>;

  /**
   * Writes a card, its change-log entry and the book's sequence bump in one
   * transaction, after checking the preconditions and the UID inside it.
   */
  putCard(bookId: number, input: CardInput, condition: PutCondition): Promise<PutResult>;
  deleteCard(bookId: number, name: string, ifMatch?: string[]): Promise<DeleteResult>;
  /**
   * Writes several cards in one transaction: all of them, or none when one
   * fails its condition or UID check. Then `committed` is false, the last
   * result is the failed write, and the writes after it were not tried.
   */
  putCards(writes: CardWrite[]): Promise<{ committed: boolean; results: PutResult[] }>;
  /**
   * Applies a directory sync to one book in one transaction, through the
   * same card writes and removals as putCard and deleteCard (index rows,
   * tombstones, one sequence bump per card). Nothing is written unless every change applies.
   */
  applyBookChanges(bookId: number, changes: BookChangeSet): Promise<ApplyResult>;

  /** Creates a user without a password together with its directory account, in one transaction. */
  createDirectoryUser(name: string, directoryId: string): Promise<User>;
  getDirectoryAccount(key: { directoryId: string } | { userId: number }): Promise<DirectoryAccount | undefined>;
  setDirectoryAccountActive(userId: number, active: boolean): Promise<void>;
  listDirectoryAccounts(): Promise<DirectoryAccount[]>;

  /**
   * Changes after `sinceSeq` in sequence order, at most `limit` of them. With
   * `sinceSeq` 0 it lists the current cards only, without removals.
   */
  changesSince(bookId: number, sinceSeq: number, limit: number): Promise<ChangePage>;

  /**
   * Writes the first `limit` changes after `sinceSeq` up to and including
   * `untilSeq` into `layout`. The database produces the bytes, so a long
   * listing needs no work per change in JavaScript. The entries may come in
   * any order (SQLite's come in sequence order). With `sinceSeq` 0 it lists
   * the current cards only, without removals. The returned `seq` is
   * `untilSeq` unless the run was truncated.
   */
  renderChanges(bookId: number, sinceSeq: number, untilSeq: number, limit: number, layout: ChangeLayout): Promise<RenderedChanges>;

  /**
   * Writes one entry per element of `entries` into `layout`, in their order:
   * the card layout for a name in the book, the missing layout otherwise.
   * Entries given as names alone have their names as hrefs, for a layout
   * whose texts contain the collection's href. Returns the bytes as UTF-8, or
   * undefined when one of the cards lacks the XML form that the layout
   * needs, so the caller builds those entries itself.
   */
  renderCards(bookId: number, entries: readonly CardEntry[] | readonly string[], layout: CardsLayout): Promise<Buffer | undefined>;
}
