import { FilterParser } from 'ldapts';

/** Directory attributes that feed each vCard property; an empty string leaves the property out. */
export interface LdapAttributeMap {
  /** The entry's stable identifier, which becomes the card's UID and URL; never empty. */
  uid: string;
  fn: string;
  familyName: string;
  givenName: string;
  email: string;
  workPhone: string;
  cellPhone: string;
  title: string;
  organization: string;
  organizationalUnit: string;
  photo: string;
  /** A DN attribute; it becomes RELATED when the DN names another mirrored entry. */
  manager: string;
}

export interface LdapConfig {
  /** `ldap://host:port` or `ldaps://host:port`; empty disables the directory. */
  url: string;
  /** Upgrade an ldap:// connection with the StartTLS extended operation before binding. */
  startTLS: boolean;
  /** DN of the account that reads the directory; empty binds anonymously. */
  bindDN: string;
  bindPassword: string;
  /** File holding the bind password (its first line), as an alternative to bindPassword. */
  bindPasswordFile: string;
  baseDN: string;
  /** RFC 4515 filter selecting the people to mirror and to let log in. */
  filter: string;
  scope: 'one' | 'sub';
  /** Entries per page of a paged search (RFC 2696); 0 sends one unpaged search. */
  pageSize: number;
  /** Limit for each LDAP operation, in seconds. */
  timeoutSeconds: number;
  connectTimeoutSeconds: number;
  /** Seconds between syncs in `cardinal serve`; 0 leaves syncing to `cardinal ldap sync`. */
  syncIntervalSeconds: number;
  tls: {
    /** PEM file with the CA certificates to trust instead of the system store. */
    caFile: string;
    /** Verify the server certificate and host name. */
    rejectUnauthorized: boolean;
  };
  /** The mirrored address book, mounted under this slug in every user's home. */
  book: { slug: string; displayName: string };
  /** Maximum share of mirrored cards one sync may remove without --force, from 0 to 1. */
  maxDeleteShare: number;
  vcardVersion: '3.0' | '4.0';
  attributes: LdapAttributeMap;
}

export interface AuthConfig {
  ldap: {
    /** Check HTTP Basic credentials of users who are not local by binding to the directory. */
    enabled: boolean;
    /** Attribute (or list of attributes) that a login name is matched against; the first one also names new users. */
    loginAttribute: string | string[];
    /** DN of a user with `{login}` standing for the RFC 4514-escaped login; empty finds the DN by a search. */
    userDNTemplate: string;
    /** How long a successful directory login is remembered, in seconds; 0 binds on every request. */
    cacheSeconds: number;
  };
  rateLimit: {
    windowSeconds: number;
    /** Failed logins for one user name within the window before further attempts get 429. */
    maxFailuresPerUser: number;
    /** Failed logins from one client address within the window before further attempts get 429. */
    maxFailuresPerAddress: number;
  };
}

export const DEFAULT_LDAP_CONFIG: LdapConfig = {
  url: '',
  startTLS: false,
  bindDN: '',
  bindPassword: '',
  bindPasswordFile: '',
  baseDN: '',
  filter: '(objectClass=inetOrgPerson)',
  scope: 'sub',
  pageSize: 500,
  timeoutSeconds: 30,
  connectTimeoutSeconds: 10,
  syncIntervalSeconds: 3600,
  tls: { caFile: '', rejectUnauthorized: true },
  book: { slug: 'directory', displayName: 'Company directory' },
  maxDeleteShare: 0.2,
  vcardVersion: '4.0',
  attributes: {
    uid: 'entryUUID',
    fn: 'cn',
    familyName: 'sn',
    givenName: 'givenName',
    email: 'mail',
    workPhone: 'telephoneNumber',
    cellPhone: 'mobile',
    title: 'title',
    organization: 'o',
    organizationalUnit: 'ou',
    photo: 'jpegPhoto',
    manager: 'manager',
  },
};

export const DEFAULT_AUTH_CONFIG: AuthConfig = {
  ldap: { enabled: false, loginAttribute: 'uid', userDNTemplate: '', cacheSeconds: 60 },
  rateLimit: { windowSeconds: 900, maxFailuresPerUser: 10, maxFailuresPerAddress: 50 },
};

/** An attribute description: a name or a numeric OID (RFC 4512 section 1.4), without options. */
const ATTRIBUTE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$/;
const SLUG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function isCount(value: unknown, min: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min;
}

/** Returns the attributes a login name is compared with, in configured order. */
export function loginAttributes(auth: AuthConfig): string[] {
  const value = auth.ldap.loginAttribute;
  return Array.isArray(value) ? value : [value];
}

/**
 * Checks the `ldap` and `auth` sections and returns the first problem as a
 * message naming the key, or undefined when both are valid.
 */
export function ldapConfigProblem(ldap: LdapConfig, auth: AuthConfig): string | undefined {
  const rate = auth.rateLimit;
  if (!isCount(rate.windowSeconds, 1)) return 'auth.rateLimit.windowSeconds must be an integer of at least 1';
  if (!isCount(rate.maxFailuresPerUser, 1)) return 'auth.rateLimit.maxFailuresPerUser must be an integer of at least 1';
  if (!isCount(rate.maxFailuresPerAddress, 1)) return 'auth.rateLimit.maxFailuresPerAddress must be an integer of at least 1';
  if (!isCount(auth.ldap.cacheSeconds, 0)) return 'auth.ldap.cacheSeconds must be an integer of at least 0';
  const logins = loginAttributes(auth);
  if (logins.length === 0 || !logins.every((name) => typeof name === 'string' && ATTRIBUTE.test(name))) {
    return 'auth.ldap.loginAttribute must be an attribute name or a non-empty list of them, such as "uid" or ["uid", "mail"]';
  }
  if (typeof auth.ldap.userDNTemplate !== 'string') return 'auth.ldap.userDNTemplate must be a string';
  if (auth.ldap.userDNTemplate !== '' && !auth.ldap.userDNTemplate.includes('{login}')) {
    return 'auth.ldap.userDNTemplate must contain {login}, for example "uid={login},ou=people,dc=example,dc=com"';
  }
  if (auth.ldap.enabled && ldap.url === '') return 'auth.ldap.enabled needs ldap.url';

  if (ldap.url === '') return undefined;
  if (!/^ldaps?:\/\/[^/?#]+\/?$/i.test(ldap.url)) {
    return `invalid ldap.url: ${ldap.url}; use ldap://host:port or ldaps://host:port`;
  }
  if (ldap.startTLS && /^ldaps:/i.test(ldap.url)) return 'ldap.startTLS applies to ldap:// URLs only; ldaps:// is already encrypted';
  if (ldap.bindPassword !== '' && ldap.bindPasswordFile !== '') return 'set ldap.bindPassword or ldap.bindPasswordFile, not both';
  if (typeof ldap.baseDN !== 'string' || ldap.baseDN.trim() === '') return 'ldap.baseDN is missing';
  try {
    FilterParser.parseString(ldap.filter);
  } catch (error) {
    return `invalid ldap.filter ${ldap.filter}: ${(error as Error).message}`;
  }
  if (ldap.scope !== 'one' && ldap.scope !== 'sub') return 'ldap.scope must be "one" or "sub"';
  if (!isCount(ldap.pageSize, 0) || ldap.pageSize > 2 ** 31 - 1) return 'ldap.pageSize must be an integer of at least 0 (0 turns paging off)';
  if (!isCount(ldap.timeoutSeconds, 1)) return 'ldap.timeoutSeconds must be an integer of at least 1';
  if (!isCount(ldap.connectTimeoutSeconds, 1)) return 'ldap.connectTimeoutSeconds must be an integer of at least 1';
  if (!isCount(ldap.syncIntervalSeconds, 0)) return 'ldap.syncIntervalSeconds must be an integer of at least 0 (0 turns periodic syncs off)';
  if (typeof ldap.tls.rejectUnauthorized !== 'boolean') return 'ldap.tls.rejectUnauthorized must be true or false';
  if (!SLUG.test(ldap.book.slug)) return `invalid ldap.book.slug "${ldap.book.slug}": use 1 to 64 letters, digits or . _ -`;
  if (typeof ldap.book.displayName !== 'string' || ldap.book.displayName.trim() === '') return 'ldap.book.displayName is missing';
  if (typeof ldap.maxDeleteShare !== 'number' || !(ldap.maxDeleteShare >= 0 && ldap.maxDeleteShare <= 1)) {
    return 'ldap.maxDeleteShare must be a number from 0 to 1, such as 0.2 for 20 %';
  }
  if (ldap.vcardVersion !== '3.0' && ldap.vcardVersion !== '4.0') return 'ldap.vcardVersion must be "3.0" or "4.0"';
  for (const [key, name] of Object.entries(ldap.attributes)) {
    if (typeof name !== 'string' || (name !== '' && !ATTRIBUTE.test(name))) {
      return `invalid ldap.attributes.${key}: ${String(name)}; use an attribute name, or "" to leave the property out`;
    }
  }
  if (ldap.attributes.uid === '') return 'ldap.attributes.uid is missing; it names the attribute that identifies an entry, such as entryUUID';
  return undefined;
}
