/**
 * Directory outages under load. With 4,000 people mirrored and the real
 * server process serving readers and writers, `cardinal ldap sync` runs in
 * another process against an unreachable slapd, a wrong bind password, a
 * frozen slapd (SIGSTOP) before the bind and in the middle of the paged
 * search, and a service account whose paged searches the server caps. Each
 * sync must fail and leave the mirror as it was (same cards, same ETags, same
 * sync token), and no reader may see an error. test/ldap/sync.test.ts checks
 * the same failures in-process without load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { findFreePort } from '../helpers/server';
import { BASE_DN, generatePeople, SERVICE, startSlapd, type Slapd } from '../helpers/slapd';
import { basicAuth, Client, currentSyncToken, PROPFIND_ETAG, syncBody, type Reply } from '../robustness/support';
import {
  addUser,
  describeSnapshot,
  listEtags,
  removeConfigs,
  spawnCli,
  startQuietCardinal,
  stopCardinal,
  summarizeLatency,
  writeConfigFile,
  type CardinalProcess,
} from './support';

jest.setTimeout(300_000);

const PEOPLE = generatePeople(4000);
const READERS = 4;
const WRITERS = 4;
/** A sync that has not exited after this long counts as hung. */
const SYNC_BOUND_MS = 60_000;

let slapd: Slapd;
let server: CardinalProcess;
let dataDir: string;
let alice: Client;
let bob: Client;

const DIRECTORY = '/dav/addressbooks/alice/directory/';
const OWN = '/dav/addressbooks/bob/contacts/';

function ldapConfig(overrides: Record<string, unknown> = {}): string {
  return writeConfigFile({
    logLevel: 'warn',
    ldap: {
      url: slapd.url,
      bindDN: SERVICE.sync.dn,
      bindPassword: SERVICE.sync.password,
      baseDN: BASE_DN,
      pageSize: 250,
      timeoutSeconds: 2,
      connectTimeoutSeconds: 2,
      syncIntervalSeconds: 0,
      ...overrides,
    },
  });
}

function card(uid: string, fn: string): string {
  return ['BEGIN:VCARD', 'VERSION:3.0', `UID:${uid}`, `FN:${fn}`, `N:${fn};;;;`, 'END:VCARD', ''].join('\r\n');
}

interface Load {
  stop: () => Promise<{ reads: number; writes: number; failures: string[]; readLatency: ReturnType<typeof summarizeLatency> }>;
}

/**
 * Waits for a timer. A request that fails before any I/O rejects at once,
 * and a loop of such requests would run on microtasks alone and starve the
 * event loop, timers of the test included.
 */
function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 50));
}

/** Runs readers of the directory and of an own book, and writers of the own book, until `stop`. */
function startLoad(label: string): Load {
  let done = false;
  const failures: string[] = [];
  const durations: number[] = [];
  let writes = 0;
  const hrefs: string[] = [];
  const check = (what: string, reply: Reply, ok: number[]) => {
    if (!ok.includes(reply.status)) failures.push(`${what}: ${reply.status} ${reply.text.slice(0, 200)}`);
  };
  const readers = Array.from({ length: READERS }, async (_, r) => {
    for (let round = 0; !done; round++) {
      const started = performance.now();
      try {
        switch ((round + r) % 4) {
          case 0: {
            const listing = await listEtags(alice, DIRECTORY);
            if (listing.size !== PEOPLE.length) failures.push(`directory listing has ${listing.size} cards`);
            if (hrefs.length === 0) hrefs.push(...listing.keys());
            break;
          }
          case 1:
            if (hrefs.length > 0) check('GET directory card', await alice.get(hrefs[(round * 131) % hrefs.length]), [200]);
            break;
          case 2:
            check('PROPFIND own book', await bob.propfind(OWN, '1', PROPFIND_ETAG), [207]);
            break;
          default:
            check('sync-collection directory', await alice.report(DIRECTORY, syncBody('')), [207]);
        }
      } catch (error) {
        failures.push(`reader: ${(error as Error).message.slice(0, 200)}`);
        await pause();
      }
      durations.push(performance.now() - started);
    }
  });
  // Labels name the case in prose; hrefs and UIDs take a slug of it.
  const slug = label.replace(/[^a-z0-9]+/gi, '-');
  const writers = Array.from({ length: WRITERS }, async (_, w) => {
    for (let i = 0; !done; i++) {
      const href = `${OWN}${slug}-w${w}-${i % 20}.vcf`;
      try {
        check('PUT own card', await bob.put(href, card(`${slug}-w${w}-${i % 20}`, `Writer ${w} round ${i}`)), [201, 204]);
        writes += 1;
      } catch (error) {
        failures.push(`writer: ${(error as Error).message.slice(0, 200)}`);
        await pause();
      }
    }
  });
  return {
    stop: async () => {
      done = true;
      await Promise.all([...readers, ...writers]);
      return { reads: durations.length, writes, failures, readLatency: summarizeLatency(durations) };
    },
  };
}

/** The mirror as a client sees it: every href with its ETag, and the sync token. */
async function mirrorState(): Promise<{ cards: string; count: number; token: string }> {
  const listing = await listEtags(alice, DIRECTORY);
  return { cards: describeSnapshot(listing), count: listing.size, token: await currentSyncToken(alice, DIRECTORY) };
}

/**
 * Runs one failing sync under load and checks that it failed, that the
 * mirror is unchanged and that no reader or writer saw an error.
 * `during` runs once the CLI has printed a stderr line matching `trigger`.
 */
async function expectFailedSyncUnderLoad(
  label: string,
  configFile: string,
  expectedExit: number,
  options: { trigger?: RegExp; during?: () => void | Promise<void> } = {},
): Promise<string> {
  const before = await mirrorState();
  expect(before.count).toBe(PEOPLE.length);
  const load = startLoad(label);
  await new Promise((resolve) => setTimeout(resolve, 500));
  let triggered: Promise<void> | undefined;
  const started = performance.now();
  const sync = spawnCli(['ldap', 'sync', '--config', configFile, '--data', dataDir], (line) => {
    if (options.trigger && options.during && triggered === undefined && options.trigger.test(line)) triggered = Promise.resolve(options.during());
  });
  const result = await sync.done;
  const seconds = (performance.now() - started) / 1000;
  await triggered;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const figures = await load.stop();
  process.stdout.write(
    `${label}: sync exited ${result.code} after ${seconds.toFixed(1)} s; ${figures.reads} reads (median ${figures.readLatency.medianMs} ms, max ${figures.readLatency.maxMs} ms), ${figures.writes} writes\n`,
  );

  expect({ label, code: result.code, stderr: result.stderr.slice(-400) }).toEqual({ label, code: expectedExit, stderr: expect.any(String) });
  expect(seconds * 1000).toBeLessThan(SYNC_BOUND_MS);
  expect(figures.failures).toEqual([]);
  expect(figures.reads).toBeGreaterThan(READERS);
  expect(figures.writes).toBeGreaterThan(WRITERS);
  const after = await mirrorState();
  expect(after.count).toBe(before.count);
  expect(after.token).toBe(before.token);
  expect(after.cards === before.cards).toBe(true);
  if (options.trigger) expect({ label, triggered: triggered !== undefined }).toEqual({ label, triggered: true });
  return result.stderr;
}

beforeAll(async () => {
  slapd = await startSlapd(PEOPLE);
  dataDir = mkdtempSync(join(tmpdir(), 'cardinal-ldap-outage-'));
  await addUser(dataDir, 'alice', 'alice-password');
  await addUser(dataDir, 'bob', 'bob-password');
  const first = await spawnCli(['ldap', 'sync', '--config', ldapConfig(), '--data', dataDir]).done;
  if (first.code !== 0) throw new Error(`the first directory sync failed (exit ${first.code}):\n${first.stdout}${first.stderr}`);
  server = await startQuietCardinal(dataDir, { args: ['--config', ldapConfig()] });
  alice = new Client(server.port, basicAuth('alice', 'alice-password'));
  bob = new Client(server.port, basicAuth('bob', 'bob-password'));
});

afterAll(async () => {
  if (server) await stopCardinal(server);
  await slapd?.destroy();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  removeConfigs();
});

/** Sends SIGSTOP or SIGCONT to the slapd this test started. */
function signalSlapd(signal: 'SIGSTOP' | 'SIGCONT'): void {
  const pid = slapd.pid();
  if (pid === undefined) throw new Error('slapd is not running');
  process.kill(pid, signal);
}

test('stopped slapd changes nothing', async () => {
  await slapd.stop();
  try {
    const stderr = await expectFailedSyncUnderLoad('stopped', ldapConfig(), 1);
    expect(stderr).toContain('ECONNREFUSED');
  } finally {
    await slapd.start();
  }
});

test('closed port changes nothing', async () => {
  const port = await findFreePort();
  await expectFailedSyncUnderLoad('closed port', ldapConfig({ url: `ldap://127.0.0.1:${port}` }), 1);
});

test('wrong bind password changes nothing', async () => {
  const stderr = await expectFailedSyncUnderLoad('wrong bind', ldapConfig({ bindPassword: 'not-the-bind-password' }), 1);
  expect(stderr).toContain('invalidCredentials');
});

test('frozen slapd times out', async () => {
  signalSlapd('SIGSTOP');
  try {
    const stderr = await expectFailedSyncUnderLoad('frozen', ldapConfig(), 1);
    expect(stderr).toMatch(/timed out|timeout/i);
  } finally {
    signalSlapd('SIGCONT');
  }
});

test('slapd frozen mid-search times out', async () => {
  let frozen = false;
  try {
    // Small pages make the search long enough for the signal to land while pages are still to come.
    const stderr = await expectFailedSyncUnderLoad('frozen mid-search', ldapConfig({ pageSize: 20 }), 1, {
      trigger: /^reading the directory: (1[0-9]{3}|[2-9][0-9]{3})$/,
      during: () => {
        signalSlapd('SIGSTOP');
        frozen = true;
      },
    });
    expect(stderr).toMatch(/timed out|timeout/i);
  } finally {
    if (frozen) signalSlapd('SIGCONT');
  }
});

test('capped paged search changes nothing', async () => {
  const stderr = await expectFailedSyncUnderLoad('capped', ldapConfig({ bindDN: SERVICE.capped.dn, bindPassword: SERVICE.capped.password }), 1);
  expect(stderr).toContain('sizeLimitExceeded');
});

test('sync after the outages finds no change', async () => {
  const before = await mirrorState();
  const result = await spawnCli(['ldap', 'sync', '--config', ldapConfig(), '--data', dataDir]).done;
  expect(result.code).toBe(0);
  expect(result.stdout).toContain(`${PEOPLE.length} entries; added 0, changed 0, removed 0, unchanged ${PEOPLE.length}`);
  const after = await mirrorState();
  expect(after.cards === before.cards).toBe(true);
  expect(after.token).toBe(before.token);
});
