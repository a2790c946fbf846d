/**
 * Login with the directory password, through the in-process app against a
 * real slapd: user creation at first login, aliases, injection attempts,
 * caching, loss of access at the next sync, rate limits and principal search.
 */
import { syncDirectory } from '../../ldap/sync';
import { startTestApp, type TestApp } from '../helpers/app';
import { generatePeople, personDN, startSlapd, type Slapd } from '../helpers/slapd';
import { basic, logger, writeConfig } from './fixture';

jest.setTimeout(120_000);

const PEOPLE = generatePeople(5000);
const PERSON = PEOPLE[9];
const COLLEAGUE = PEOPLE[19];

const CURRENT_PRINCIPAL =
  '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>';
const HOME_SET =
  '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"><d:prop><c:addressbook-home-set/></d:prop></d:propfind>';
const LISTING = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:displayname/></d:prop></d:propfind>';

function firstHref(body: string, property: string): string | undefined {
  return new RegExp(`<[a-z]+:${property}><d:href>([^<]*)</d:href>`).exec(body)?.[1];
}

describe('directory login', () => {
  let slapd: Slapd;
  let app: TestApp;

  async function propfind(url: string, auth: string, body: string, depth = '0') {
    return app.http().propfind(url).set('Authorization', auth).set('Depth', depth).set('Content-Type', 'application/xml').send(body);
  }

  async function principalOf(auth: string): Promise<string | undefined> {
    const response = await propfind('/dav/', auth, CURRENT_PRINCIPAL);
    expect(response.status).toBe(207);
    return firstHref(response.text, 'current-user-principal');
  }

  beforeAll(async () => {
    slapd = await startSlapd(PEOPLE);
    app = await startTestApp({}, writeConfig(slapd, { auth: { ldap: { enabled: true, loginAttribute: ['uid', 'mail'], cacheSeconds: 60 } } }));
    await app.addUser('alice');
    await syncDirectory(app.storage, app.config, { logger });
  });

  afterAll(async () => {
    await app?.close();
    await slapd?.destroy();
  });

  test('first login creates the user', async () => {
    const principal = await principalOf(basic(PERSON.uid, PERSON.password));

    expect(principal).toBe(`/dav/principals/${PERSON.uid}/`);
    const user = await app.storage.getUser(PERSON.uid);
    expect(user?.passwordHash).toBeNull();
    const account = await app.storage.getDirectoryAccount({ userId: user?.id ?? 0 });
    expect(account?.active).toBe(true);
  });

  test('principal chain resolves for each alias', async () => {
    for (const login of [PERSON.uid, PERSON.mail]) {
      const auth = basic(login, PERSON.password);
      const principal = await principalOf(auth);
      expect(principal).toBe(`/dav/principals/${PERSON.uid}/`);

      const homeSet = await propfind(principal as string, auth, HOME_SET);
      expect(homeSet.status).toBe(207);
      const home = firstHref(homeSet.text, 'addressbook-home-set') as string;
      expect(home).toBe(`/dav/addressbooks/${PERSON.uid}/`);

      const listing = await propfind(home, auth, LISTING, '1');
      expect(listing.status).toBe(207);
      expect(listing.text).toContain(`<d:href>${home}contacts/</d:href>`);
      expect(listing.text).toContain(`<d:href>${home}directory/</d:href>`);
      expect(listing.text).toContain('<d:displayname>Company directory</d:displayname>');
    }
    expect((await app.storage.listDirectoryAccounts()).filter((account) => account.userName === PERSON.uid)).toHaveLength(1);
  });

  test('directory book is read-only', async () => {
    const auth = basic(PERSON.uid, PERSON.password);
    const card = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:planted\r\nFN:Planted\r\nEND:VCARD\r\n';
    const put = await app.http().put(`/dav/addressbooks/${PERSON.uid}/directory/planted.vcf`).set('Authorization', auth).set('Content-Type', 'text/vcard').send(card);

    expect(put.status).toBe(403);
    expect(put.text).toContain('need-privileges');
  });

  test('wrong directory password gets 401', async () => {
    const response = await propfind('/dav/', basic(PERSON.uid, 'wrong'), CURRENT_PRINCIPAL);

    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Basic /);
  });

  test('empty password gets 401', async () => {
    // An LDAP simple bind with an empty password would succeed as an unauthenticated bind.
    const response = await propfind('/dav/', basic(COLLEAGUE.uid, ''), CURRENT_PRINCIPAL);

    expect(response.status).toBe(401);
    expect(await app.storage.getUser(COLLEAGUE.uid)).toBeUndefined();
  });

  test('filter injection at login fails', async () => {
    const attempts = ['*)(uid=*', '*', `${COLLEAGUE.uid.slice(0, 4)}*`, `${COLLEAGUE.uid})(|(uid=*`, `*)(|(objectClass=*`];
    for (const login of attempts) {
      const response = await propfind('/dav/', basic(login, COLLEAGUE.password), CURRENT_PRINCIPAL);
      expect(response.status).toBe(401);
    }
    expect(await app.storage.getUser(COLLEAGUE.uid)).toBeUndefined();
    expect((await app.storage.listDirectoryAccounts()).map((account) => account.userName)).toEqual([PERSON.uid]);
  });

  test('cached login survives a directory outage', async () => {
    const auth = basic(PERSON.uid, PERSON.password);
    expect(await principalOf(auth)).toBe(`/dav/principals/${PERSON.uid}/`);
    await slapd.stop();
    try {
      expect(await principalOf(auth)).toBe(`/dav/principals/${PERSON.uid}/`);
      const uncached = await propfind('/dav/', basic(COLLEAGUE.uid, COLLEAGUE.password), CURRENT_PRINCIPAL);
      expect(uncached.status).toBe(503);
      expect(uncached.headers['retry-after']).toBeDefined();
      expect(uncached.text).toContain('<d:error');
    } finally {
      await slapd.start();
    }
  });

  test('removed user loses access at the next sync', async () => {
    const auth = basic(COLLEAGUE.uid, COLLEAGUE.password);
    expect(await principalOf(auth)).toBe(`/dav/principals/${COLLEAGUE.uid}/`);
    const admin = await slapd.admin();
    await admin.del(personDN(COLLEAGUE.uid));
    await admin.unbind();

    // The cached login still works until the sync notices the removal.
    expect(await principalOf(auth)).toBe(`/dav/principals/${COLLEAGUE.uid}/`);
    const report = await syncDirectory(app.storage, app.config, { logger });
    expect(report.removed).toHaveLength(1);

    const refused = await propfind('/dav/', auth, CURRENT_PRINCIPAL);
    expect(refused.status).toBe(401);
    const user = await app.storage.getUser(COLLEAGUE.uid);
    expect((await app.storage.getDirectoryAccount({ userId: user?.id ?? 0 }))?.active).toBe(false);
  });

  test('principal search finds colleagues', async () => {
    const auth = basic(PERSON.uid, PERSON.password);
    const other = PEOPLE[29];
    await principalOf(basic(other.uid, other.password));
    const body = (match: string, prop = 'd:displayname') =>
      '<?xml version="1.0" encoding="utf-8"?>' +
      '<d:principal-property-search xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav" xmlns:cs="http://calendarserver.org/ns/">' +
      `<d:property-search><d:prop><${prop}/></d:prop><d:match>${match}</d:match></d:property-search>` +
      '<d:prop><d:displayname/><cs:email-address-set/><c:principal-address/></d:prop></d:principal-property-search>';

    const byName = await app.http().report('/dav/principals/').set('Authorization', auth).set('Depth', '0').set('Content-Type', 'application/xml').send(body(other.cn.toUpperCase()));
    expect(byName.status).toBe(207);
    expect(byName.text).toContain(`<d:href>/dav/principals/${other.uid}/</d:href>`);
    expect(byName.text).toContain(`<d:displayname>${other.cn}</d:displayname>`);
    expect(byName.text).toContain(`<cs:email-address>${other.mail}</cs:email-address>`);
    expect(byName.text).toMatch(new RegExp(`<c(ard)?:principal-address><d:href>/dav/addressbooks/${PERSON.uid}/directory/[0-9a-f-]+\\.vcf</d:href>`));

    const byMail = await app.http().report('/dav/principals/').set('Authorization', auth).set('Content-Type', 'application/xml').send(body(other.mail, 'cs:email-address-set'));
    expect(byMail.text).toContain(`<d:href>/dav/principals/${other.uid}/</d:href>`);
    expect(byMail.text).not.toContain(`<d:href>/dav/principals/${PERSON.uid}/</d:href>`);

    const none = await app.http().report('/dav/principals/').set('Authorization', auth).set('Content-Type', 'application/xml').send(body('no such person'));
    expect(none.status).toBe(207);
    expect(none.text).not.toContain('<d:response>');
  });

  test('search property set lists displayname', async () => {
    const response = await app
      .http()
      .report('/dav/principals/')
      .set('Authorization', basic(PERSON.uid, PERSON.password))
      .set('Content-Type', 'application/xml')
      .send('<?xml version="1.0" encoding="utf-8"?><d:principal-search-property-set xmlns:d="DAV:"/>');

    expect(response.status).toBe(200);
    expect(response.text).toContain('<d:principal-search-property><d:prop><d:displayname/></d:prop>');
  });
});

describe('login rate limit', () => {
  let slapd: Slapd;
  let app: TestApp;

  async function attempt(name: string, password: string) {
    return app.http().propfind('/dav/').set('Authorization', basic(name, password)).set('Depth', '0');
  }

  beforeAll(async () => {
    slapd = await startSlapd(PEOPLE.slice(0, 20));
    const config = writeConfig(slapd, {
      auth: { ldap: { enabled: true }, rateLimit: { windowSeconds: 600, maxFailuresPerUser: 3, maxFailuresPerAddress: 6 } },
    });
    app = await startTestApp({}, config);
    await app.addUser('alice');
    await app.addUser('bob');
    await app.addUser('carol');
  });

  afterAll(async () => {
    await app?.close();
    await slapd?.destroy();
  });

  test('local user blocked after failures', async () => {
    for (let i = 0; i < 3; i++) expect((await attempt('alice', 'wrong')).status).toBe(401);

    const blocked = await attempt('alice', 'alice-password');

    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(590);
    expect(blocked.text).toContain('<d:error');
    expect(blocked.text).toContain('too many failed logins');
    expect((await attempt('bob', 'bob-password')).status).toBe(207);
  });

  test('directory user blocked after failures', async () => {
    const person = PEOPLE[1];
    for (let i = 0; i < 3; i++) expect((await attempt(person.uid, 'wrong')).status).toBe(401);

    expect((await attempt(person.uid, person.password)).status).toBe(429);
    expect(await app.storage.getUser(person.uid)).toBeUndefined();
  });

  test('client address blocked after failures', async () => {
    // Three failures for alice and three for the directory user already count against 127.0.0.1.
    // carol has not logged in yet, so her password needs a fresh check, which the address limit blocks.
    const blocked = await attempt('carol', 'carol-password');

    expect(blocked.status).toBe(429);
  });

  test('recent login passes the address limit', async () => {
    // bob logged in above, so his cached credentials keep working behind the blocked address.
    expect((await attempt('bob', 'bob-password')).status).toBe(207);
  });
});

describe('login by DN template', () => {
  let slapd: Slapd;
  let app: TestApp;

  beforeAll(async () => {
    slapd = await startSlapd(PEOPLE.slice(0, 20));
    const config = writeConfig(slapd, {
      ldap: { bindDN: '', bindPassword: '' },
      auth: { ldap: { enabled: true, userDNTemplate: 'uid={login},ou=people,dc=example,dc=com' } },
    });
    app = await startTestApp({}, config);
  });

  afterAll(async () => {
    await app?.close();
    await slapd?.destroy();
  });

  test('binds as the templated DN', async () => {
    const person = PEOPLE[4];
    const response = await app
      .http()
      .propfind('/dav/')
      .set('Authorization', basic(person.uid, person.password))
      .set('Depth', '0')
      .set('Content-Type', 'application/xml')
      .send(CURRENT_PRINCIPAL);

    expect(response.status).toBe(207);
    expect(response.text).toContain(`/dav/principals/${person.uid}/`);
  });

  test('DN injection fails', async () => {
    const person = PEOPLE[5];
    // Leading spaces and case are not listed: uid matching ignores them (RFC 4518), so they name the same entry.
    for (const login of [`${person.uid},ou=people`, `${person.uid}+cn=x`, `x,uid=${person.uid}`, `${person.uid}\\`, '*']) {
      const response = await app.http().propfind('/dav/').set('Authorization', basic(login, person.password)).set('Depth', '0');
      expect([login, response.status]).toEqual([login, 401]);
    }
    expect(await app.storage.getUser(person.uid)).toBeUndefined();
  });
});
