/** Unit tests of the LDAP pieces that need no server: escaping, card building, configuration checks and login limits. */
import type { Entry } from 'ldapts';
import { buildCard, cardName, directoryId } from '../../ldap/card';
import { DEFAULT_AUTH_CONFIG, DEFAULT_LDAP_CONFIG, ldapConfigProblem, type LdapConfig } from '../../ldap/config';
import { escapeDNValue, escapeFilterValue, normalizeDN } from '../../ldap/escape';
import { LoginLimiter } from '../../server/login-guard';
import { prepareCard } from '../../vcard/pipeline';

const LDAP: LdapConfig = { ...DEFAULT_LDAP_CONFIG, url: 'ldap://127.0.0.1:389', baseDN: 'dc=example,dc=com' };

function entry(values: Record<string, string | string[] | Buffer>): Entry {
  return { dn: 'uid=jdoe,ou=people,dc=example,dc=com', entryUUID: '0b5f4c2e-1c1d-4d6a-9a0e-6f1d2c3b4a59', ...values } as Entry;
}

function build(values: Record<string, string | string[] | Buffer>, ldap = LDAP, maxBytes = 1024 * 1024) {
  return buildCard(entry(values), { config: ldap, findEntry: () => undefined, maxBytes });
}

describe('filter escaping', () => {
  test.each([
    ['*)(uid=*', '\\2a\\29\\28uid=\\2a'],
    ['a\\b', 'a\\5cb'],
    ['nul\u0000', 'nul\\00'],
    ['Jürgen', 'Jürgen'],
  ])('escapes %j', (input, expected) => {
    expect(escapeFilterValue(input)).toBe(expected);
  });
});

describe('DN escaping', () => {
  test.each([
    ['a,b', 'a\\,b'],
    ['a+b=c', 'a\\+b=c'],
    ['"q"<x>;', '\\"q\\"\\<x\\>\\;'],
    ['back\\slash', 'back\\\\slash'],
    [' lead', '\\ lead'],
    ['#hash', '\\#hash'],
    ['trail ', 'trail\\ '],
  ])('escapes %j', (input, expected) => {
    expect(escapeDNValue(input)).toBe(expected);
  });

  test('normalizes case and spaces', () => {
    expect(normalizeDN('UID=jdoe, OU=People,dc=Example , dc=com')).toBe('uid=jdoe,ou=people,dc=example,dc=com');
  });
});

describe('card building', () => {
  const values = { cn: 'Jane Doe', sn: 'Doe', givenName: 'Jane', mail: ['jane@example.com', 'jd@example.com'], telephoneNumber: '+1 555 0100', o: 'Example', ou: 'R&D; Lab' };

  test('same entry gives same bytes', () => {
    const first = build(values);
    const second = build({ ...values });

    if (!first.ok) throw new Error(first.reason);
    if (!second.ok) throw new Error(second.reason);
    expect(first.data.equals(second.data)).toBe(true);
    expect(first.name).toBe('0b5f4c2e-1c1d-4d6a-9a0e-6f1d2c3b4a59.vcf');
  });

  test('card passes PUT validation unchanged', () => {
    const built = build(values);
    if (!built.ok) throw new Error(built.reason);

    const prepared = prepareCard(built.data);

    expect(prepared.ok).toBe(true);
    if (!prepared.ok) return;
    expect(prepared.repaired).toBe(false);
    expect(prepared.uid).toBe('0b5f4c2e-1c1d-4d6a-9a0e-6f1d2c3b4a59');
    const text = built.data.toString();
    expect(text).toContain('EMAIL;TYPE=work:jane@example.com\r\nEMAIL;TYPE=work:jd@example.com\r\n');
    expect(text).toContain('ORG:Example;R&D\\; Lab\r\n');
  });

  test('vCard 3.0 has N and no RELATED', () => {
    const ldap = { ...LDAP, vcardVersion: '3.0' as const };
    const built = buildCard(entry({ cn: 'Solo', manager: 'uid=boss,dc=example,dc=com' }), {
      config: ldap,
      findEntry: () => ({ id: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', fn: 'Boss' }),
      maxBytes: 1 << 20,
    });
    if (!built.ok) throw new Error(built.reason);

    const text = built.data.toString();
    expect(text).toContain('VERSION:3.0\r\n');
    expect(text).toContain('N:;;;;\r\n');
    expect(text).not.toContain('RELATED');
    expect(prepareCard(built.data).ok).toBe(true);
  });

  test('control characters are dropped', () => {
    const built = build({ cn: 'Bad\u0007Name\r\nSecond' });
    if (!built.ok) throw new Error(built.reason);

    expect(built.data.toString()).toContain('FN:BadName\\nSecond\r\n');
    const prepared = prepareCard(built.data);
    if (!prepared.ok) throw new Error(prepared.message);
    expect(prepared.repaired).toBe(false);
  });

  test('oversized photo is left out', () => {
    const photo = Buffer.alloc(4096, 0xff);
    const small = build({ cn: 'Photo Person', jpegPhoto: photo }, LDAP, 2048);
    const large = build({ cn: 'Photo Person', jpegPhoto: photo });

    if (!small.ok) throw new Error(small.reason);
    if (!large.ok) throw new Error(large.reason);
    expect(small.droppedPhoto).toBe(true);
    expect(small.data.toString()).not.toContain('PHOTO');
    expect(large.droppedPhoto).toBe(false);
    expect(large.data.toString()).toContain('PHOTO:data:image/jpeg;base64,');
  });

  test('entry without name or id is skipped', () => {
    expect(build({}).ok).toBe(false);
    expect(buildCard({ dn: 'uid=x', cn: 'No Id' } as Entry, { config: LDAP, findEntry: () => undefined, maxBytes: 1 << 20 }).ok).toBe(false);
  });

  test('fn falls back to given and family name', () => {
    const built = build({ givenName: 'Ada', sn: 'Lovelace' });
    if (!built.ok) throw new Error(built.reason);
    expect(built.fn).toBe('Ada Lovelace');
  });

  test('objectGUID reads as a UUID', () => {
    const guid = Buffer.from('3f2504e04f8941d39a0c0305e82c3301', 'hex');
    expect(directoryId({ dn: 'cn=x', objectGUID: guid } as Entry, 'objectGUID')).toBe('e004253f-894f-d341-9a0c-0305e82c3301');
  });

  test('unsafe identifier is hashed in the name', () => {
    expect(cardName('a/b c')).toMatch(/^[0-9a-f]{32}\.vcf$/);
    expect(cardName('emp-00042')).toBe('emp-00042.vcf');
  });
});

describe('configuration checks', () => {
  test('defaults are valid', () => {
    expect(ldapConfigProblem(DEFAULT_LDAP_CONFIG, DEFAULT_AUTH_CONFIG)).toBeUndefined();
    expect(ldapConfigProblem(LDAP, DEFAULT_AUTH_CONFIG)).toBeUndefined();
  });

  test.each([
    [{ url: 'http://x' }, 'invalid ldap.url'],
    [{ baseDN: '' }, 'ldap.baseDN is missing'],
    [{ filter: '(uid=a' }, 'invalid ldap.filter'],
    [{ scope: 'base' }, 'ldap.scope'],
    [{ pageSize: -1 }, 'ldap.pageSize'],
    [{ maxDeleteShare: 1.5 }, 'ldap.maxDeleteShare'],
    [{ startTLS: true, url: 'ldaps://x:636' }, 'ldap.startTLS'],
    [{ bindPassword: 'a', bindPasswordFile: '/f' }, 'not both'],
    [{ book: { slug: 'a/b', displayName: 'x' } }, 'ldap.book.slug'],
    [{ attributes: { ...DEFAULT_LDAP_CONFIG.attributes, uid: '' } }, 'ldap.attributes.uid'],
    [{ attributes: { ...DEFAULT_LDAP_CONFIG.attributes, email: 'bad attr' } }, 'ldap.attributes.email'],
  ])('rejects %j', (override, message) => {
    expect(ldapConfigProblem({ ...LDAP, ...override } as LdapConfig, DEFAULT_AUTH_CONFIG)).toContain(message);
  });

  test('directory login needs a url', () => {
    const auth = { ...DEFAULT_AUTH_CONFIG, ldap: { ...DEFAULT_AUTH_CONFIG.ldap, enabled: true } };
    expect(ldapConfigProblem(DEFAULT_LDAP_CONFIG, auth)).toContain('auth.ldap.enabled needs ldap.url');
  });
});

describe('login limiter', () => {
  const limits = { windowSeconds: 900, maxFailuresPerUser: 10, maxFailuresPerAddress: 50 };

  test('blocks user after max failures', () => {
    const limiter = new LoginLimiter(limits);
    for (let i = 0; i < 9; i++) limiter.recordFailure('Alice', '10.0.0.1', 1_000);
    expect(limiter.retryAfter('alice', '10.0.0.2', 1_000)).toBe(0);

    limiter.recordFailure('alice', '10.0.0.1', 1_000);

    expect(limiter.retryAfter('ALICE', '10.0.0.2', 1_000)).toBe(900);
    expect(limiter.retryAfter('alice', '10.0.0.2', 1_000 + 900_000)).toBe(0);
  });

  test('blocks address after max failures', () => {
    const limiter = new LoginLimiter(limits);
    for (let i = 0; i < 50; i++) limiter.recordFailure(`user${i}`, '10.0.0.9', 5_000);

    expect(limiter.retryAfter('someone', '10.0.0.9', 6_000)).toBe(899);
    expect(limiter.retryAfter('someone', '10.0.0.8', 6_000)).toBe(0);
  });

  test('success clears user failures', () => {
    const limiter = new LoginLimiter(limits);
    for (let i = 0; i < 9; i++) limiter.recordFailure('bob', '10.0.0.1', 1_000);
    limiter.recordSuccess('bob');
    limiter.recordFailure('bob', '10.0.0.1', 1_000);

    expect(limiter.retryAfter('bob', '10.0.0.3', 1_000)).toBe(0);
  });
});
