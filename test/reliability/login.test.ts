/**
 * Password guessing against the real server process: failed logins are
 * limited per user name and per client address. Secrets (password hashes,
 * the LDAP bind password, plain passwords, Basic credentials) must never
 * reach the log output or any response. That is checked at the default log
 * level and at the error level, through failed logins, directory syncs and
 * a directory outage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runCli } from '../helpers/server';
import { BASE_DN, generatePeople, SERVICE, startSlapd, type Slapd } from '../helpers/slapd';
import { basicAuth, Client, parseMultistatus, XMLNS, type Reply } from '../robustness/support';
import { addUser, DATABASE_FILE, removeConfigs, startQuietCardinal, stopCardinal, waitUntil, writeConfigFile, type CardinalProcess } from './support';

jest.setTimeout(180_000);

const MAX_FAILURES_PER_USER = 5;
const MAX_FAILURES_PER_ADDRESS = 12;
const WINDOW_SECONDS = 600;
const PEOPLE = generatePeople(20);
const LOCAL_USERS = ['alice', 'bob', 'carol', 'dave'];
const password = (name: string) => `${name} has a long passphrase`;

let slapd: Slapd;

beforeAll(async () => {
  slapd = await startSlapd(PEOPLE);
});

afterAll(async () => {
  await slapd?.destroy();
  removeConfigs();
});

interface Running {
  server: CardinalProcess;
  dataDir: string;
  configFile: string;
  /** Every reply the test received, for the secret checks. */
  replies: Reply[];
  client: (name: string, secret: string, address?: string) => LoggedClient;
}

/** A client that records every reply and sends X-Forwarded-For when an address is given. */
class LoggedClient {
  constructor(
    private readonly client: Client,
    private readonly replies: Reply[],
    private readonly address?: string,
  ) {}

  async request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
    const all: Record<string, string> = { ...headers };
    if (this.address !== undefined) all['X-Forwarded-For'] = this.address;
    if (body !== undefined) all['Content-Type'] = 'application/xml; charset=utf-8';
    const reply = await this.client.request(method, path, { headers: all, body });
    this.replies.push(reply);
    return reply;
  }

  propfind(path: string, depth = '0', body?: string): Promise<Reply> {
    return this.request('PROPFIND', path, body, { Depth: depth });
  }
}

async function start(options: { logLevel: string; trustProxy: boolean; syncIntervalSeconds: number }): Promise<Running> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cardinal-login-'));
  for (const name of LOCAL_USERS) await addUser(dataDir, name, password(name));
  const configFile = writeConfigFile({
    logLevel: options.logLevel,
    trustProxy: options.trustProxy,
    ldap: {
      url: slapd.url,
      bindDN: SERVICE.sync.dn,
      bindPassword: SERVICE.sync.password,
      baseDN: BASE_DN,
      pageSize: 200,
      timeoutSeconds: 3,
      connectTimeoutSeconds: 2,
      syncIntervalSeconds: options.syncIntervalSeconds,
    },
    auth: {
      ldap: { enabled: true, cacheSeconds: 60 },
      rateLimit: { windowSeconds: WINDOW_SECONDS, maxFailuresPerUser: MAX_FAILURES_PER_USER, maxFailuresPerAddress: MAX_FAILURES_PER_ADDRESS },
    },
  });
  const server = await startQuietCardinal(dataDir, { args: ['--config', configFile] });
  const replies: Reply[] = [];
  return {
    server,
    dataDir,
    configFile,
    replies,
    client: (name, secret, address) => new LoggedClient(new Client(server.port, basicAuth(name, secret)), replies, address),
  };
}

async function stop(running: Running | undefined): Promise<void> {
  if (!running) return;
  await stopCardinal(running.server);
  rmSync(running.dataDir, { recursive: true, force: true });
}

const home = (name: string) => `/dav/addressbooks/${name}/`;

function expectRetryAfter(reply: Reply): void {
  const retryAfter = Number(reply.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
}

describe('failed-login limits', () => {
  let running: Running;

  beforeAll(async () => {
    running = await start({ logLevel: 'info', trustProxy: true, syncIntervalSeconds: 0 });
  });

  afterAll(() => stop(running));

  test('one user from one address', async () => {
    const guesser = running.client('alice', 'wrong', '10.0.1.1');
    const statuses: number[] = [];
    for (let i = 0; i <= MAX_FAILURES_PER_USER; i++) statuses.push((await guesser.propfind(home('alice'))).status);
    expect(statuses).toEqual([...Array<number>(MAX_FAILURES_PER_USER).fill(401), 429]);
    expectRetryAfter(running.replies[running.replies.length - 1]);

    // The name is blocked from every address, and for the right password too, because it was never verified.
    const owner = await running.client('alice', password('alice'), '10.0.1.2').propfind(home('alice'));
    expect(owner.status).toBe(429);
    expectRetryAfter(owner);
    // Another user from another address is not affected.
    expect((await running.client('bob', password('bob'), '10.0.1.3').propfind(home('bob'))).status).toBe(207);
  });

  test('user limit ignores name case', async () => {
    const statuses: number[] = [];
    for (const name of ['Dave', 'DAVE', 'dAvE', 'DaVe', 'daVE', 'DAVe']) {
      statuses.push((await running.client(name, 'wrong', '10.0.2.1').propfind(home('dave'))).status);
    }
    expect(statuses).toEqual([...Array<number>(MAX_FAILURES_PER_USER).fill(401), 429]);
  });

  test('many users from one address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i++) {
      // Unknown names, local names and directory names alike count for the address.
      const name = [`nobody${i}`, 'carol', PEOPLE[i % PEOPLE.length].uid][i % 3];
      statuses.push((await running.client(name, `wrong-${i}`, '10.0.3.1').propfind(home(name))).status);
    }
    expect(statuses).toEqual(Array<number>(MAX_FAILURES_PER_ADDRESS).fill(401));

    const next = await running.client('nobody-else', 'wrong', '10.0.3.1').propfind('/dav/');
    expect(next.status).toBe(429);
    expectRetryAfter(next);
    // Even the right password from the blocked address waits, while another address logs in.
    expect((await running.client('carol', password('carol'), '10.0.3.1').propfind(home('carol'))).status).toBe(429);
    expect((await running.client('carol', password('carol'), '10.0.3.2').propfind(home('carol'))).status).toBe(207);
    const person = PEOPLE[15];
    expect((await running.client(person.uid, person.password, '10.0.3.3').propfind(home(person.uid))).status).toBe(207);
  });
});

describe('address limit without a trusted proxy', () => {
  let running: Running;

  beforeAll(async () => {
    running = await start({ logLevel: 'info', trustProxy: false, syncIntervalSeconds: 0 });
  });

  afterAll(() => stop(running));

  test('forged X-Forwarded-For is ignored', async () => {
    const statuses: number[] = [];
    for (let i = 0; i <= MAX_FAILURES_PER_ADDRESS; i++) {
      statuses.push((await running.client(`guess${i}`, 'wrong', `192.0.2.${i + 1}`).propfind('/dav/')).status);
    }
    expect(statuses).toEqual([...Array<number>(MAX_FAILURES_PER_ADDRESS).fill(401), 429]);
  });
});

describe.each(['info', 'error'])('secrets at log level %s', (logLevel) => {
  let running: Running | undefined;
  let output = '';
  let cliOutput = '';
  let replies: Reply[] = [];
  let hashes: string[] = [];

  beforeAll(async () => {
    const started = await start({ logLevel, trustProxy: true, syncIntervalSeconds: 2 });
    running = started;
    const watcher = new Client(started.server.port, basicAuth('dave', password('dave')));
    await waitUntil('the first directory sync', async () => (await watcher.get(`${home('dave')}directory/`)).text.includes(PEOPLE[PEOPLE.length - 1].cn));

    // Failed and successful logins of local and directory users, some of them past the limits.
    for (let i = 0; i < MAX_FAILURES_PER_USER + 2; i++) await started.client('alice', `guess ${i}`, '10.1.0.1').propfind(home('alice'));
    for (let i = 0; i < 3; i++) await started.client(PEOPLE[1].uid, `guess ${i}`, '10.1.0.2').propfind('/dav/');
    const bob = started.client('bob', password('bob'), '10.1.0.3');
    const person = started.client(PEOPLE[2].uid, PEOPLE[2].password, '10.1.0.4');
    expect((await person.propfind('/dav/')).status).toBe(207);

    // Principals and homes with every property, the ways a client could find a hash.
    for (const client of [bob, person]) {
      const name = client === bob ? 'bob' : PEOPLE[2].uid;
      for (const body of [`<d:propfind ${XMLNS}><d:allprop/></d:propfind>`, `<d:propfind ${XMLNS}><d:propname/></d:propfind>`, undefined]) {
        for (const path of ['/dav/', `/dav/principals/${name}/`, '/dav/principals/', home(name)]) {
          const reply = await client.propfind(path, '1', body);
          expect({ path, status: reply.status }).toEqual({ path, status: 207 });
        }
      }
      expect((await client.request('GET', `/dav/principals/${name}/`)).status).toBe(200);
    }
    const search =
      `<d:principal-property-search ${XMLNS}><d:property-search><d:prop><d:displayname/></d:prop>` +
      `<d:match>${PEOPLE[2].givenName}</d:match></d:property-search><d:prop><d:displayname/><cs:email-address-set xmlns:cs="http://calendarserver.org/ns/"/></d:prop></d:principal-property-search>`;
    expect((await bob.request('REPORT', '/dav/principals/', search, { Depth: '0' })).status).toBe(207);

    // Client errors and a directory outage: logins that need slapd get 503, and the scheduled sync fails.
    await bob.request('PROPFIND', home('bob'), '<d:propfind', { Depth: '0' });
    await bob.request('PUT', `${home('bob')}contacts/broken.vcf`, 'BEGIN:VCARD\r\nEND:VCARD\r\n', { 'Content-Type': 'text/vcard' });
    await slapd.stop();
    const failedBefore = (started.server.output().match(/directory sync failed/g) ?? []).length;
    try {
      const outage = await started.client(PEOPLE[3].uid, PEOPLE[3].password, '10.1.0.5').propfind('/dav/');
      expect(outage.status).toBe(503);
      await waitUntil('a failed directory sync', () => (started.server.output().match(/directory sync failed/g) ?? []).length > failedBefore);
    } finally {
      await slapd.start();
    }
    const cli = await runCli(['ldap', 'sync', '--config', started.configFile, '--data', started.dataDir]);
    expect(cli.code).toBe(0);
    const wrongBind = writeConfigFile({ ldap: { url: slapd.url, bindDN: SERVICE.sync.dn, bindPassword: 'not-the-bind-password', baseDN: BASE_DN } });
    const failedCli = await runCli(['ldap', 'sync', '--config', wrongBind, '--data', started.dataDir]);
    expect(failedCli.code).toBe(1);
    cliOutput = cli.stdout + cli.stderr + failedCli.stdout + failedCli.stderr;

    const db = new Database(join(started.dataDir, DATABASE_FILE), { readonly: true, fileMustExist: true });
    try {
      hashes = (db.prepare('SELECT password_hash FROM users WHERE password_hash IS NOT NULL').all() as { password_hash: string }[]).map((row) => row.password_hash);
    } finally {
      db.close();
    }
    await stopCardinal(started.server);
    output = started.server.output();
    replies = started.replies;
  });

  afterAll(() => stop(running));

  /** Returns each hash in full and its salt and digest on their own (`scrypt$N$r$p$salt$hash`). */
  function hashParts(): string[] {
    expect(hashes.length).toBe(LOCAL_USERS.length);
    return hashes.flatMap((hash) => {
      const parts = hash.split('$');
      expect(parts[0]).toBe('scrypt');
      return [hash, parts[4], parts[5]];
    });
  }

  /** Returns the plain passwords the test sent and their Basic credentials. */
  function passwords(): string[] {
    const plain = [...LOCAL_USERS.map(password), PEOPLE[2].password, PEOPLE[3].password];
    return [...plain, ...LOCAL_USERS.map((name) => basicAuth(name, password(name)).slice('Basic '.length))];
  }

  test('log output names the events', () => {
    expect(output).toContain('directory sync failed');
    if (logLevel === 'info') {
      expect(output).toContain('too many failed logins');
      expect(output).toContain('"status":401');
    }
  });

  test('log output holds no secret', () => {
    for (const secret of [...hashParts(), SERVICE.sync.password, 'not-the-bind-password', ...passwords()]) {
      expect({ secret, logged: output.includes(secret) }).toEqual({ secret, logged: false });
      expect({ secret, printed: cliOutput.includes(secret) }).toEqual({ secret, printed: false });
    }
  });

  test('responses hold no secret', () => {
    expect(replies.length).toBeGreaterThan(40);
    expect(replies.some((reply) => reply.status === 429)).toBe(true);
    expect(replies.some((reply) => reply.status === 503)).toBe(true);
    const secrets = [...hashParts(), SERVICE.sync.password, ...passwords(), 'scrypt$'];
    for (const [index, reply] of replies.entries()) {
      const exposed = `${JSON.stringify(reply.headers)}\n${reply.text}`;
      for (const secret of secrets) expect({ index, status: reply.status, secret, sent: exposed.includes(secret) }).toEqual({ index, status: reply.status, secret, sent: false });
    }
  });

  test('propname lists no password property', () => {
    const propnames = replies.filter((reply) => reply.status === 207 && reply.text.includes('principal'));
    expect(propnames.length).toBeGreaterThan(0);
    for (const reply of propnames) {
      for (const response of parseMultistatus(reply.text).responses) {
        for (const propstat of response.propstats) {
          for (const name of propstat.props.keys()) expect(name).not.toMatch(/password|hash|secret/i);
        }
      }
    }
  });
});
