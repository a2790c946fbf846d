/**
 * Escapes an assertion value for an LDAP search filter (RFC 4515 section 3):
 * `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`, so
 * input such as `*)(uid=*` matches literally and cannot add filter terms.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\u0000]/g, (ch) => `\\${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Escapes an attribute value for use in a DN (RFC 4514 section 2.4): the
 * special characters `" + , ; < > \` and NUL anywhere, a leading space or `#`,
 * and a trailing space.
 */
export function escapeDNValue(value: string): string {
  let escaped = value.replace(/["+,;<>\\\u0000]/g, (ch) => (ch === '\u0000' ? '\\00' : `\\${ch}`));
  if (escaped.startsWith(' ') || escaped.startsWith('#')) escaped = `\\${escaped}`;
  if (escaped.endsWith(' ') && !escaped.endsWith('\\ ')) escaped = `${escaped.slice(0, -1)}\\ `;
  return escaped;
}

/**
 * Normalises a DN string for comparing references such as `manager` with
 * entry DNs: attribute types and values lower-cased, spaces around `=` and
 * `,` dropped. It does not resolve hex escapes or multi-valued RDN order.
 */
export function normalizeDN(dn: string): string {
  return dn
    .split(/(?<!\\),/)
    .map((rdn) => rdn.trim().replace(/\s*=\s*/, '=').toLowerCase())
    .join(',');
}
