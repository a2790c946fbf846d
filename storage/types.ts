/**
 * The storage contract. The SQLite backend implements it today; a PostgreSQL
 * backend for several server nodes will implement the same interface, so every
 * method is asynchronous and no caller may assume that one process owns the data.
 * SQL and transactions stay behind this interface.
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

/** What a user may do with a book: everything as its owner, or what a grant allows. */
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

/** A card without its body, as listings and sync reports need it. */
export interface CardMeta {
  id: number;
  bookId: number;
  /** The last URL segment, decoded, for example `1234.vcf`. */
  name: string;
  uid: string;
  /** The strong entity tag, without quotes. */
  etag: string;
  size: number;
  modifiedAt: number;
  seq: number;
}

export interface Card extends CardMeta {
  data: Buffer;
}

/** An indexed property value of a card, used by queries. */
export interface IndexedProperty {
  /** Upper-case property name without group, for example `EMAIL`. */
  name: string;
  /** The value with escapes removed. */
  value: string;
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
  card?: CardMeta;
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

export type DeleteResult = 'deleted' | 'not-found' | 'precondition-failed';

export interface ChangePage {
  changes: Change[];
  /** The sequence number a client may continue from. */
  seq: number;
  truncated: boolean;
}

export interface Storage {
  close(): Promise<void>;

  createUser(name: string, passwordHash: string | null): Promise<User>;
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
  deleteBook(bookId: number): Promise<void>;

  /** Own books first, then books granted to the user, a group of theirs or everyone; a mount that clashes with an own slug is left out. */
  listVisibleBooks(userId: number): Promise<VisibleBook[]>;
  findVisibleBook(userId: number, mount: string): Promise<VisibleBook | undefined>;
  grant(bookId: number, grantee: Grantee, access: 'read' | 'write', mount: string): Promise<void>;
  revoke(bookId: number, grantee: Grantee): Promise<boolean>;

  getCard(bookId: number, name: string): Promise<Card | undefined>;
  getCardMeta(bookId: number, name: string): Promise<CardMeta | undefined>;
  /** Cards by name, in one round trip; missing names are absent from the result. */
  getCards(bookId: number, names: string[]): Promise<Card[]>;
  /** One page of card metadata ordered by id, starting after `afterId`. */
  listCardMeta(bookId: number, afterId: number, limit: number): Promise<CardMeta[]>;
  /** One page of full cards ordered by id, starting after `afterId`. */
  listCards(bookId: number, afterId: number, limit: number): Promise<Card[]>;
  countCards(bookId: number): Promise<number>;

  /**
   * Writes a card, its change-log entry and the book's sequence bump in one
   * transaction, after checking the preconditions and the UID inside it.
   */
  putCard(bookId: number, input: CardInput, condition: PutCondition): Promise<PutResult>;
  deleteCard(bookId: number, name: string, ifMatch?: string[]): Promise<DeleteResult>;

  /**
   * Changes after `sinceSeq` in sequence order, at most `limit` of them. With
   * `sinceSeq` 0 it lists the current cards only, without removals.
   */
  changesSince(bookId: number, sinceSeq: number, limit: number): Promise<ChangePage>;
}
