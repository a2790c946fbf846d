/** Segments that pathSegment leaves as they are: unreserved characters (RFC 3986 section 2.3) and `@`. */
const UNRESERVED = /^[A-Za-z0-9._~@-]*$/;

/**
 * Percent-encodes a name as one URL path segment. The result contains no
 * character that XML escapes, so it can go into an href without a scan.
 * The storage keeps this form of each card's name for listings it renders
 * itself, so the server's hrefs and the stored form come from this one function.
 */
export function pathSegment(name: string): string {
  if (UNRESERVED.test(name)) return name;
  return encodeURIComponent(name).replace(/%40/g, '@');
}

/** Returns the stored `segment` column of a card or removal: its path segment, or null when that is the name itself. */
export function storedSegment(name: string): string | null {
  const segment = pathSegment(name);
  return segment === name ? null : segment;
}
