/**
 * Directory outages under load. With 4,000 people mirrored and the real
 * server process serving readers and writers, `cardinal ldap sync` runs in
 * another process against an unreachable slapd, a wrong bind password, a
 * frozen slapd (SIGSTOP) before the bind and in the middle of the paged
 * search (behind a relay that stops forwarding at that point), and a
 * service account whose paged searches the server caps. Each
 * sync must fail and leave the mirror as it was (same cards, same ETags, same
 * sync token), and no reader may see an error. test/ldap/sync.test.ts checks
 * the same failures in-process without load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
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
 */
async function expectFailedSyncUnderLoad(label: string, configFile: string, expectedExit: number): Promise<string> {
  const before = await mirrorState();
  expect(before.count).toBe(PEOPLE.length);
  const load = startLoad(label);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const started = performance.now();
  const result = await spawnCli(['ldap', 'sync', '--config', configFile, '--data', dataDir]).done;
  const seconds = (performance.now() - started) / 1000;
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
  return result.stderr;
}

/** LDAP protocolOp tag of a SearchResultEntry (APPLICATION 4, constructed). */
const SEARCH_RESULT_ENTRY = 0x64;

/**
 * Splits whole LDAP messages off the front of `data`: each is a BER SEQUENCE
 * whose length is short form or long form. Returns the messages and the rest.
 */
function splitLdapMessages(data: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let offset = 0;
  while (data.length - offset >= 2) {
    let length = data[offset + 1];
    let header = 2;
    if (length & 0x80) {
      const octets = length & 0x7f;
      if (data.length - offset < 2 + octets) break;
      length = 0;
      for (let i = 0; i < octets; i++) length = length * 256 + data[offset + 2 + i];
      header += octets;
    }
    if (data.length - offset < header + length) break;
    messages.push(data.subarray(offset, offset + header + length));
    offset += header + length;
  }
  return { messages, rest: data.subarray(offset) };
}

/**
 * Returns the protocolOp tag of one LDAP message, which follows the messageID
 * INTEGER. A messageID has at most four octets, so its length is short form.
 */
function protocolOp(message: Buffer): number {
  let offset = message[1] & 0x80 ? 2 + (message[1] & 0x7f) : 2;
  offset += 2 + message[offset + 1];
  return message[offset];
}

/**
 * Starts a TCP relay on 127.0.0.1 in front of `target`. It forwards whole
 * messages from slapd until `entries` search result entries have passed, then
 * calls `onHold` and forwards nothing more from slapd.
 */
async function startHoldingRelay(target: URL, entries: number, onHold: () => void): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let pending = Buffer.alloc(0);
    let passed = 0;
    let holding = false;
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (holding) return;
      const { messages, rest } = splitLdapMessages(Buffer.concat([pending, chunk]));
      pending = Buffer.from(rest);
      for (const message of messages) {
        client.write(message);
        if (protocolOp(message) === SEARCH_RESULT_ENTRY) passed += 1;
        if (passed === entries) {
          holding = true;
          onHold();
          return;
        }
      }
    });
    for (const [socket, other] of [[client, upstream], [upstream, client]] as const) {
      socket.on('error', () => other.destroy());
      socket.on('close', () => other.destroy());
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const { port } = relay.address() as AddressInfo;
  return {
    url: `ldap://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
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
  // The relay passes a quarter of the entries, then stops slapd and forwards nothing more, so the
  // freeze lands mid-search however late this process's event loop runs.
  const relay = await startHoldingRelay(new URL(slapd.url), PEOPLE.length / 4, () => {
    signalSlapd('SIGSTOP');
    frozen = true;
  });
  try {
    const stderr = await expectFailedSyncUnderLoad('frozen mid-search', ldapConfig({ url: relay.url, pageSize: 20 }), 1);
    expect(stderr).toMatch(/timed out|timeout/i);
    expect(frozen).toBe(true);
    const progress = [...stderr.matchAll(/^reading the directory: (\d+)$/gm)].map((match) => Number(match[1]));
    const entriesRead = Math.max(...progress);
    expect(entriesRead).toBeGreaterThan(0);
    expect(entriesRead).toBeLessThanOrEqual(PEOPLE.length / 4);
  } finally {
    if (frozen) signalSlapd('SIGCONT');
    await relay.close();
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
