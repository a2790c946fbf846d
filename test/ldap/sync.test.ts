/**
 * Directory sync against a real slapd with 5,000 generated people and a size
 * limit of 500. The tests run in order and share the directory and the
 * mirror, because each step changes the state the next one starts from.
 */
import net from 'node:net';
import { Attribute, Change, type Client } from 'ldapts';
import { loadConfig, type Config } from '../../server/config';
import { DirectoryError } from '../../ldap/errors';
import { DeleteGuardError, findDirectoryBook, syncDirectory, type SyncProgress } from '../../ldap/sync';
import { startTestApp, type TestApp } from '../helpers/app';
import { findFreePort } from '../helpers/server';
import { generatePeople, personAttributes, personDN, PEOPLE_DN, SERVICE, startSlapd, type Slapd } from '../helpers/slapd';
import { logger, syncCollection, writeConfig, type SyncResult } from './fixture';

jest.setTimeout(120_000);

const PEOPLE = generatePeople(5000);

function replace(type: string, value: string): Change {
  return new Change({ operation: 'replace', modification: new Attribute({ type, values: [value] }) });
}

describe('directory sync', () => {
  let slapd: Slapd;
  let admin: Client;
  let app: TestApp;
  let config: Config;
  let bookUrl: string;
  let lastSync: SyncResult;

  /** Copies the configuration with some `ldap` keys replaced, for variants of one run. */
  function variant(ldap: Partial<Config['ldap']>): Config {
    return { ...config, ldap: { ...config.ldap, ...ldap } };
  }

  async function sync(options: { force?: boolean; dryRun?: boolean; onProgress?: (p: SyncProgress) => Promise<void> } = {}, cfg = config) {
    return syncDirectory(app.storage, cfg, { logger, ...options });
  }

  async function book() {
    const found = await findDirectoryBook(app.storage, config);
    if (!found) throw new Error('the directory book does not exist');
    return found.book;
  }

  async function changesSinceLast(): Promise<SyncResult> {
    const result = await syncCollection(app.http(), bookUrl, app.auth('alice'), lastSync.token);
    lastSync = { token: result.token, responses: lastSync.responses };
    return result;
  }

  /** Expects a failed sync to leave the mirror and its sync token alone. */
  async function expectUnchanged(failure: Promise<unknown>, resultCode?: number): Promise<DirectoryError> {
    const before = await book();
    const error = await failure.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(DirectoryError);
    if (resultCode !== undefined) expect((error as DirectoryError).resultCode).toBe(resultCode);
    const after = await book();
    expect(after.syncSeq).toBe(before.syncSeq);
    expect(await app.storage.countCards(after.id)).toBe(await app.storage.countCards(before.id));
    const changes = await syncCollection(app.http(), bookUrl, app.auth('alice'), lastSync.token);
    expect(changes.responses).toEqual([]);
    expect(changes.token).toBe(lastSync.token);
    return error as DirectoryError;
  }

  beforeAll(async () => {
    slapd = await startSlapd(PEOPLE);
    admin = await slapd.admin();
    app = await startTestApp({}, writeConfig(slapd));
    config = app.config;
    await app.addUser('alice');
    bookUrl = `/dav/addressbooks/alice/${config.ldap.book.slug}/`;
  });

  afterAll(async () => {
    await admin?.unbind();
    await app?.close();
    await slapd?.destroy();
  });

  test('dry run writes nothing', async () => {
    const report = await sync({ dryRun: true });

    expect(report.added).toHaveLength(PEOPLE.length);
    expect(await findDirectoryBook(app.storage, config)).toBeUndefined();
  });

  test('full sync mirrors every entry', async () => {
    const pages: number[] = [];
    const report = await sync({ onProgress: async (p) => void (p.phase === 'search' && pages.push(p.done)) });

    expect(report.entries).toBe(PEOPLE.length);
    expect(report.added).toHaveLength(PEOPLE.length);
    expect(report.skipped).toBe(0);
    // 5,000 entries at 200 per page, past the server's size limit of 500.
    expect(pages).toHaveLength(25);
    const mirror = await book();
    expect(await app.storage.countCards(mirror.id)).toBe(PEOPLE.length);

    lastSync = await syncCollection(app.http(), bookUrl, app.auth('alice'));
    expect(lastSync.responses).toHaveLength(PEOPLE.length);
    expect(lastSync.token).toMatch(/^urn:/);
  });

  test('cards carry mapped attributes', async () => {
    const mirror = await book();
    const cards = await app.storage.listCards(mirror.id, 0, 10_000);
    const byMail = new Map(cards.map((card) => [/EMAIL;TYPE=work:(\S+)/.exec(card.data.toString())?.[1], card.data.toString()]));
    const manager = byMail.get('p00002@example.com') as string;
    const person = byMail.get('p00020@example.com') as string;
    const withPhoto = byMail.get('p00500@example.com') as string;

    expect(person).toContain(`FN:${PEOPLE[19].cn}\r\n`);
    expect(person).toContain(`N:${PEOPLE[19].sn};${PEOPLE[19].givenName};;;\r\n`);
    expect(person).toContain('TEL;TYPE=work:+1 555 0100020\r\n');
    expect(person).toContain('ORG:Example Corp;Finance\r\n');
    expect(person).toContain(`TITLE:${PEOPLE[19].title}\r\n`);
    expect(person).not.toContain('REV');
    const managerUid = /UID:(\S+)/.exec(manager)?.[1];
    expect(person).toContain(`RELATED;TYPE=x-manager:urn:uuid:${managerUid}\r\n`);
    expect(byMail.get('p00003@example.com')).toContain('TEL;TYPE=cell:+1 555 0900003\r\n');
    expect(withPhoto).toContain('PHOTO:data:image/jpeg;base64,');
    expect(cards.some((card) => card.data.toString().includes('FN:Jürgen Müller\r\n'))).toBe(true);
  });

  test('no-op sync keeps etags and token', async () => {
    const mirror = await book();
    const before = await app.storage.listCardMeta(mirror.id, 0, 10_000);

    const report = await sync();

    expect(report.added).toEqual([]);
    expect(report.changed).toEqual([]);
    expect(report.removed).toEqual([]);
    expect(report.unchanged).toBe(PEOPLE.length);
    expect(report.seqAfter).toBe(report.seqBefore);
    const after = await app.storage.listCardMeta(mirror.id, 0, 10_000);
    expect(after.map((card) => card.etag)).toEqual(before.map((card) => card.etag));
    const changes = await changesSinceLast();
    expect(changes.responses).toEqual([]);
  });

  test('incremental change reports one card', async () => {
    await admin.modify(personDN('p00002'), replace('mail', 'p00002.new@example.com'));

    const report = await sync();

    expect(report.changed).toHaveLength(1);
    expect(report.added).toHaveLength(0);
    expect(report.removed).toHaveLength(0);
    const changes = await changesSinceLast();
    expect(changes.responses).toHaveLength(1);
    expect(changes.responses[0].href).toBe(`${bookUrl}${report.changed[0].name}`);
    expect(changes.responses[0].status).toBeUndefined();
    const card = await app.http().get(changes.responses[0].href).set('Authorization', app.auth('alice'));
    expect(card.status).toBe(200);
    expect(card.text).toContain('EMAIL;TYPE=work:p00002.new@example.com');
    expect(card.headers.etag).toBe(changes.responses[0].etag);
  });

  test('rename keeps the card URL', async () => {
    const before = await sync({ dryRun: true });
    expect(before.changed).toEqual([]);
    await admin.modifyDN(personDN('p00003'), 'uid=p00003-renamed');
    await admin.modify(`uid=p00003-renamed,${PEOPLE_DN}`, replace('cn', 'Søren Renamed'));
    // What OpenLDAP's refint overlay would do: the people p00003 manages follow the new DN.
    for (let i = 21; i <= 30; i++) await admin.modify(personDN(`p000${i}`), replace('manager', `uid=p00003-renamed,${PEOPLE_DN}`));

    const report = await sync();

    expect(report.added).toEqual([]);
    expect(report.removed).toEqual([]);
    expect(report.changed).toHaveLength(1);
    expect(report.changed[0].fn).toBe('Søren Renamed');
    const changes = await changesSinceLast();
    expect(changes.responses.map((r) => r.href)).toEqual([`${bookUrl}${report.changed[0].name}`]);
  });

  test('addition and removal reach sync-collection', async () => {
    await admin.del(personDN('p00004'));
    const newcomer = { ...PEOPLE[0], uid: 'n00001', cn: 'Zoë Newcomer', mail: 'n00001@example.com', manager: undefined };
    await admin.add(personDN('n00001'), personAttributes(newcomer));

    const report = await sync();

    expect(report.added.map((card) => card.fn)).toEqual(['Zoë Newcomer']);
    expect(report.removed).toHaveLength(1);
    expect(report.removed[0].fn).toBe(PEOPLE[3].cn);
    // p00031 to p00040 name p00004 as manager, so their RELATED lines go away.
    expect(report.changed).toHaveLength(10);
    const changes = await changesSinceLast();
    const removedHref = `${bookUrl}${report.removed[0].name}`;
    expect(changes.responses.find((r) => r.href === removedHref)?.status).toBe(404);
    expect(changes.responses.filter((r) => r.status === 404)).toHaveLength(1);
    expect(changes.responses).toHaveLength(12);
    const gone = await app.http().get(removedHref).set('Authorization', app.auth('alice'));
    expect(gone.status).toBe(404);
  });

  test('entries without identifier are skipped', async () => {
    // With mobile as the identifier, the two thirds of people without a mobile number have none.
    const report = await sync({ dryRun: true, force: true }, variant({ attributes: { ...config.ldap.attributes, uid: 'mobile' } }));

    // The renamed p00003 keeps its mobile number; the removed p00004 and the newcomer have none.
    const withMobile = PEOPLE.filter((person) => person.mobile !== undefined).length;
    expect(report.entries).toBe(PEOPLE.length);
    expect(report.skipped).toBe(PEOPLE.length - withMobile);
    expect(report.added).toHaveLength(withMobile);
  });

  test('unpaged search above the limit fails', async () => {
    const error = await expectUnchanged(sync({}, variant({ pageSize: 0 })), 4);
    expect(error.message).toContain('sizeLimitExceeded');
  });

  test('paged search capped by the server fails', async () => {
    await expectUnchanged(sync({}, variant({ bindDN: SERVICE.capped.dn, bindPassword: SERVICE.capped.password })), 4);
  });

  test('server refusing paging fails', async () => {
    const error = await expectUnchanged(sync({}, variant({ bindDN: SERVICE.nopaging.dn, bindPassword: SERVICE.nopaging.password })));
    expect(error.resultCode).toBeDefined();
    expect(error.resultCode).not.toBe(0);
  });

  test('wrong bind password fails', async () => {
    await expectUnchanged(sync({}, variant({ bindPassword: 'wrong' })), 49);
  });

  test('connection refused fails', async () => {
    const port = await findFreePort();
    const error = await expectUnchanged(sync({}, variant({ url: `ldap://127.0.0.1:${port}` })));
    expect(error.networkCode).toBe('ECONNREFUSED');
  });

  test('unanswered bind times out', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const error = await expectUnchanged(sync({}, variant({ url: `ldap://127.0.0.1:${port}`, timeoutSeconds: 1 })));
      expect(error.message).toMatch(/timed out/i);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      silent.close();
    }
  });

  test('slapd stopped mid-sync removes nothing', async () => {
    let stopped = false;
    const onProgress = async (progress: SyncProgress) => {
      if (progress.phase === 'search' && progress.done >= 1000 && !stopped) {
        stopped = true;
        await slapd.stop();
      }
    };
    try {
      await expectUnchanged(sync({ onProgress }));
      expect(stopped).toBe(true);
    } finally {
      await slapd.start();
      await admin.unbind().catch(() => undefined);
      admin = await slapd.admin();
    }
    const report = await sync();
    expect(report.added).toEqual([]);
    expect(report.removed).toEqual([]);
    expect(report.changed).toEqual([]);
  });

  test('delete guard stops large removals', async () => {
    // Leaves out p00001 to p01999 but the removed p00004: 1,998 of 5,000 cards (40 %).
    const narrowed = variant({ filter: '(&(objectClass=inetOrgPerson)(!(|(uid=p00*)(uid=p01*))))' });
    const mirror = await book();
    const count = await app.storage.countCards(mirror.id);

    const error = await sync({}, narrowed).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(DeleteGuardError);
    expect((error as DeleteGuardError).removals).toBe(1998);
    expect((await book()).syncSeq).toBe(mirror.syncSeq);
    expect(await app.storage.countCards(mirror.id)).toBe(count);

    const forced = await sync({ force: true }, narrowed);
    expect(forced.removed).toHaveLength(1998);
    expect(await app.storage.countCards(mirror.id)).toBe(count - 1998);

    const restored = await sync();
    expect(restored.added).toHaveLength(1998);
  });
});
