import type { Access, AddressBook, Storage, User } from '../storage/types';
import { pathSegment } from '../storage/segment';
import { DavError } from './errors';

export const DAV_ROOT = '/dav/';
export const PRINCIPALS = `${DAV_ROOT}principals/`;
export const HOMES = `${DAV_ROOT}addressbooks/`;

/** The resource a request path names, resolved for the authenticated user. */
export type Resource =
  | { kind: 'root'; href: string }
  | { kind: 'principals'; href: string }
  | { kind: 'principal'; href: string; owner: User }
  | { kind: 'homes'; href: string }
  | { kind: 'home'; href: string; owner: User }
  | { kind: 'book'; href: string; owner: User; book: AddressBook; access: Access }
  | { kind: 'new-book'; href: string; owner: User; slug: string }
  | { kind: 'card'; href: string; owner: User; book: AddressBook; access: Access; name: string; exists: boolean };

/** Percent-encodes a name as one URL path segment; the result needs no XML escaping. */
export const encodeSegment = pathSegment;

export function principalHref(user: User): string {
  return `${PRINCIPALS}${encodeSegment(user.name)}/`;
}

export function homeHref(user: User): string {
  return `${HOMES}${encodeSegment(user.name)}/`;
}

/** Returns a book's href in a user's home: its own slug, or the mount of a shared book. */
export function bookHref(viewer: User, mount: string): string {
  return `${homeHref(viewer)}${encodeSegment(mount)}/`;
}

/** Splits a request path into decoded segments; malformed escapes are a client error. */
export function decodePath(path: string): string[] {
  try {
    return path
      .split('/')
      .filter((segment) => segment !== '')
      .map((segment) => decodeURIComponent(segment));
  } catch {
    throw new DavError(400, undefined, `the request path is not valid percent-encoded UTF-8: ${path}`);
  }
}

/** Control characters (Unicode category Cc: U+0000 to U+001F, U+007F to U+009F). */
const CONTROL = /\p{Cc}/u;

/**
 * Rejects a decoded user, book or card segment that cannot be stored and
 * addressed as one path segment. Clients resolve a dot segment against the
 * parent (RFC 3986 section 5.2.4), a slash (sent as %2F) would split the
 * name, and control characters are rejected too.
 */
function checkSegment(segment: string, what: string): void {
  let problem: string | undefined;
  if (segment === '.' || segment === '..') problem = 'is a dot segment';
  else if (segment.includes('/')) problem = 'contains a slash (%2F)';
  else if (CONTROL.test(segment)) problem = 'contains a control character';
  if (problem) throw new DavError(400, undefined, `the ${what} name ${JSON.stringify(segment)} ${problem}; choose another name`);
}

function notFound(): DavError {
  return new DavError(404, undefined, 'no resource exists at this URL');
}

/**
 * Resolves a path. Another user's principal, home, books and cards resolve as
 * not found, so guessing URLs reveals nothing, not even whether a user exists.
 */
export async function resolveResource(storage: Storage, user: User, path: string, method: string): Promise<Resource> {
  const segments = decodePath(path);
  const asCollection = path.endsWith('/') ? path : `${path}/`;
  if (segments.length === 0) return { kind: 'root', href: '/' };
  if (segments[0] !== 'dav') throw notFound();
  if (segments.length === 1) return { kind: 'root', href: DAV_ROOT };

  const [, area, ownerName, slug, name, ...rest] = segments;
  if (area !== 'principals' && area !== 'addressbooks') throw notFound();
  if (ownerName === undefined) {
    return area === 'principals' ? { kind: 'principals', href: PRINCIPALS } : { kind: 'homes', href: HOMES };
  }
  checkSegment(ownerName, 'user');
  if (ownerName !== user.name) throw notFound();
  const owner = user;
  if (area === 'principals') {
    if (slug !== undefined) throw notFound();
    return { kind: 'principal', href: asCollection, owner };
  }
  if (slug === undefined) return { kind: 'home', href: asCollection, owner };
  checkSegment(slug, 'address book');
  // A shared book appears in the viewer's home; its owner stays the user who made it.
  const visible = await storage.findVisibleBook(owner.id, slug);
  if (name === undefined) {
    return visible
      ? { kind: 'book', href: asCollection, owner: visible.owner, book: visible.book, access: visible.access }
      : { kind: 'new-book', href: asCollection, owner, slug };
  }
  const book = visible?.book;
  if (rest.length > 0) throw notFound();
  if (!book || !visible) {
    // RFC 4918 section 9.7.1: a PUT into a missing collection is a conflict, not a missing resource.
    throw new DavError(method === 'PUT' ? 409 : 404, undefined, 'the address book does not exist');
  }
  const exists = (await storage.getCardMeta(book.id, name)) !== undefined;
  // A card stored under such a name before this check existed stays readable and deletable.
  if (!exists) checkSegment(name, 'card');
  return { kind: 'card', href: path, owner: visible.owner, book, access: visible.access, name, exists };
}
