/**
 * Concurrency against the real server process on a real SQLite file (WAL).
 * The tests cover creation races that mix If-None-Match and UID conflicts,
 * readers during bulk writes, and a slowly read REPORT beside writers. They
 * also run readers while `cardinal ldap sync` rewrites the directory book
 * from another process.
 * The races of test/robustness/concurrency.test.ts (If-Match, If-None-Match,
 * same UID at many hrefs, DELETE) are not repeated here.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Attribute, Change, type Client as LdapClient } from 'ldapts';
import { BASE_DN, generatePeople, personAttributes, personDN, SERVICE, startSlapd, type Slapd } from '../helpers/slapd';
import {
  basicAuth,
  carddav,
  Client,
  currentSyncToken,
  expectDavError,
  multigetBody,
  parseMultistatus,
  PROPFIND_ETAG,
  syncBody,
  type Reply,
} from '../robustness/support';
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
  type LatencySummary,
} from './support';

jest.setTimeout(600_000);

const PARALLEL = 16;
const WRITERS = 8;
const READERS = 4;
/** Cards each writer stores during the bulk-write phase. */
const CARDS_PER_WRITER = 600;
const PEOPLE = generatePeople(4000);
/** A read that takes longer than this counts as hung. */
const READ_BOUND_MS = 10_000;

let slapd: Slapd;
let server: CardinalProcess;
let dataDir: string;
let configFile: string;
let alice: Client;
let bob: Client;

const HOME = '/dav/addressbooks/alice/';
const DIRECTORY = `${HOME}directory/`;
const BULK = `${HOME}bulk/`;
const SMALL = '/dav/addressbooks/bob/contacts/';
/** Filler that makes each bulk card about 2 KB, so a REPORT over the book is larger than the socket buffers. */
const NOTE = `NOTE:${'lorem ipsum dolor sit amet '.repeat(70).trim()}`;

function card(uid: string, fn: string, extra: string[] = []): string {
  return ['BEGIN:VCARD', 'VERSION:3.0', `UID:${uid}`, `FN:${fn}`, `N:${fn};;;;`, ...extra, 'END:VCARD', ''].join('\r\n');
}

function countStatuses(replies: Reply[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const reply of replies) counts[reply.status] = (counts[reply.status] ?? 0) + 1;
  return counts;
}

/** Sends `request` in a loop until `stop` is set, recording each status and duration. */
async function loop(stop: { done: boolean }, request: (round: number) => Promise<Reply>, record: { statuses: number[]; durations: number[]; failures: string[] }): Promise<void> {
  for (let round = 0; !stop.done; round++) {
    const started = performance.now();
    const reply = await request(round).catch((error: Error) => ({ status: 0, text: error.message }) as Reply);
    record.durations.push(performance.now() - started);
    record.statuses.push(reply.status);
    if (reply.status < 200 || reply.status >= 300) record.failures.push(`${reply.status} ${reply.text.slice(0, 200)}`);
  }
}

function newRecord(): { statuses: number[]; durations: number[]; failures: string[] } {
  return { statuses: [], durations: [], failures: [] };
}

beforeAll(async () => {
  slapd = await startSlapd(PEOPLE);
  dataDir = mkdtempSync(join(tmpdir(), 'cardinal-concurrency-'));
  await addUser(dataDir, 'alice', 'alice-password');
  await addUser(dataDir, 'bob', 'bob-password');
  configFile = writeConfigFile({
    logLevel: 'warn',
    ldap: { url: slapd.url, bindDN: SERVICE.sync.dn, bindPassword: SERVICE.sync.password, baseDN: BASE_DN, pageSize: 500, syncIntervalSeconds: 0 },
  });
  const first = await spawnCli(['ldap', 'sync', '--config', configFile, '--data', dataDir]).done;
  if (first.code !== 0) throw new Error(`the first directory sync failed (exit ${first.code}):\n${first.stdout}${first.stderr}`);
  server = await startQuietCardinal(dataDir, { args: ['--config', configFile] });
  alice = new Client(server.port, basicAuth('alice', 'alice-password'));
  bob = new Client(server.port, basicAuth('bob', 'bob-password'));
  expect((await alice.mkcol(BULK)).status).toBe(201);
  for (let i = 0; i < 50; i++) expect((await bob.put(`${SMALL}small-${i}.vcf`, card(`small-${i}`, `Small ${i}`))).status).toBe(201);
});

afterAll(async () => {
  if (server) await stopCardinal(server);
  await slapd?.destroy();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  removeConfigs();
});

test('creation race mixing hrefs has one winner', async () => {
  expect((await alice.mkcol(`${HOME}race/`)).status).toBe(201);
  const shared = `${HOME}race/contended.vcf`;
  // Half the clients create the same href with If-None-Match: *, the other half each their own href, all with one UID.
  const attempts = Array.from({ length: PARALLEL }, (_, i) => ({
    href: i % 2 === 0 ? shared : `${HOME}race/own-${i}.vcf`,
    body: card('contended-uid', `Creator ${i}`),
    headers: (i % 2 === 0 ? { 'If-None-Match': '*' } : {}) as Record<string, string>,
  }));
  const replies = await Promise.all(attempts.map(({ href, body, headers }) => alice.put(href, body, headers)));

  expect(replies.filter((reply) => reply.status === 201)).toHaveLength(1);
  const winner = attempts[replies.findIndex((reply) => reply.status === 201)];
  for (const [i, reply] of replies.entries()) {
    if (reply.status === 201) continue;
    if (reply.status === 412) {
      expect({ i, href: attempts[i].href }).toEqual({ i, href: shared });
      expectDavError(reply, 412);
    } else {
      const error = expectDavError(reply, 409, carddav('no-uid-conflict'));
      const condition = error.children.find((node) => node.name === carddav('no-uid-conflict'));
      expect(condition?.children.map((node) => node.text)).toEqual([winner.href]);
    }
  }
  const listing = await listEtags(alice, `${HOME}race/`);
  expect([...listing.keys()]).toEqual([winner.href]);
  expect((await alice.get(winner.href)).text).toBe(winner.body);
});

describe('reads during bulk writes', () => {
  const figures: Record<string, LatencySummary> = {};
  const reads = (round: number): Promise<Reply> => {
    switch (round % 4) {
      case 0:
        return alice.get(`${BULK}seed-${round % 100}.vcf`);
      case 1:
        return alice.propfind(BULK, '0', PROPFIND_ETAG);
      case 2:
        return bob.propfind(SMALL, '1', PROPFIND_ETAG);
      default:
        return alice.report(BULK, multigetBody(Array.from({ length: 20 }, (_, i) => `${BULK}seed-${(round + i) % 100}.vcf`)));
    }
  };

  beforeAll(async () => {
    for (let i = 0; i < 100; i++) expect((await alice.put(`${BULK}seed-${i}.vcf`, card(`seed-${i}`, `Seed ${i}`, [NOTE]))).status).toBe(201);
  });

  afterAll(() => {
    process.stdout.write(`read latency (ms) without and with ${WRITERS} writers: ${JSON.stringify(figures)}\n`);
  });

  test('readers alone all succeed', async () => {
    const stop = { done: false };
    const record = newRecord();
    const readers = Array.from({ length: READERS }, () => loop(stop, reads, record));
    await new Promise((resolve) => setTimeout(resolve, 5000));
    stop.done = true;
    await Promise.all(readers);
    figures.idle = summarizeLatency(record.durations);
    expect(record.failures).toEqual([]);
    expect(record.statuses.length).toBeGreaterThan(20);
  });

  test('readers beside writers all succeed', async () => {
    const stop = { done: false };
    const record = newRecord();
    const writes: Reply[] = [];
    const writeDurations: number[] = [];
    const readers = Array.from({ length: READERS }, () => loop(stop, reads, record));
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; i < CARDS_PER_WRITER; i++) {
        const started = performance.now();
        writes.push(await alice.put(`${BULK}w${w}-${i}.vcf`, card(`w${w}-${i}`, `Writer ${w} card ${i}`, [NOTE])));
        writeDurations.push(performance.now() - started);
      }
    });
    const started = performance.now();
    await Promise.all(writers);
    const writeSeconds = (performance.now() - started) / 1000;
    stop.done = true;
    await Promise.all(readers);
    figures.busy = summarizeLatency(record.durations);
    figures.writes = summarizeLatency(writeDurations);
    process.stdout.write(`${writes.length} PUTs by ${WRITERS} writers in ${writeSeconds.toFixed(1)} s\n`);

    expect(countStatuses(writes)).toEqual({ 201: WRITERS * CARDS_PER_WRITER });
    expect(record.failures).toEqual([]);
    expect(record.statuses.length).toBeGreaterThan(20);
    expect(figures.busy.maxMs).toBeLessThan(READ_BOUND_MS);
    expect((await listEtags(alice, BULK)).size).toBe(100 + WRITERS * CARDS_PER_WRITER);
  });
});

/**
 * Starts a REPORT and stops reading its body after the first chunk. Returns
 * how many bytes arrived so far, and `finish` to read the rest.
 */
function startPausedReport(path: string, body: string): Promise<{ received: () => number; ended: () => boolean; finish: () => Promise<{ status: number; text: string }> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method: 'REPORT',
        path,
        agent: false,
        headers: { Authorization: basicAuth('alice', 'alice-password'), 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        let ended = false;
        let onEnd: (() => void) | undefined;
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          bytes += chunk.length;
          res.pause();
        });
        res.on('end', () => {
          ended = true;
          onEnd?.();
        });
        res.once('data', () =>
          resolve({
            received: () => bytes,
            ended: () => ended,
            finish: () =>
              new Promise((done) => {
                onEnd = () => done({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
                res.removeAllListeners('data');
                res.on('data', (chunk: Buffer) => {
                  chunks.push(chunk);
                  bytes += chunk.length;
                });
                if (ended) onEnd();
                else res.resume();
              }),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('paused sync REPORT does not block writers', async () => {
  const total = (await listEtags(alice, BULK)).size;
  expect(total).toBeGreaterThanOrEqual(4000);
  const report = await startPausedReport(BULK, syncBody('', { addressData: true }));

  const writes: Reply[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    writes.push(await alice.put(`${BULK}during-report-${i}.vcf`, card(`during-report-${i}`, `During ${i}`)));
    expect(performance.now() - started).toBeLessThan(READ_BOUND_MS);
  }
  writes.push(await alice.put(`${BULK}seed-0.vcf`, card('seed-0', 'Seed 0 edited', [NOTE])));
  writes.push(await alice.delete(`${BULK}seed-1.vcf`));
  expect(countStatuses(writes)).toEqual({ 201: 20, 204: 2 });
  // The REPORT is still open: the client has read only part of it.
  expect(report.ended()).toBe(false);
  const receivedWhileWriting = report.received();

  const { status, text } = await report.finish();
  expect(status).toBe(207);
  const parsed = parseMultistatus(text);
  process.stdout.write(`paused REPORT: ${receivedWhileWriting} of ${Buffer.byteLength(text)} bytes read while 22 writes completed\n`);
  expect(receivedWhileWriting).toBeLessThan(Buffer.byteLength(text));
  // Every card that existed when the REPORT started is listed, each once.
  const hrefs = parsed.responses.map((response) => response.href);
  expect(new Set(hrefs).size).toBe(hrefs.length);
  expect(hrefs.length).toBe(total);
  expect(hrefs.filter((href) => href.includes('during-report-'))).toEqual([]);
  expect(parsed.syncToken).toMatch(/^urn:/);
  expect((await alice.get(`${BULK}during-report-19.vcf`)).status).toBe(200);
});

describe('reads during an LDAP sync', () => {
  let admin: LdapClient;

  beforeAll(async () => {
    admin = await slapd.admin();
  });

  afterAll(async () => {
    await admin?.unbind();
  });

  test('listings show the old or the new mirror', async () => {
    const before = await listEtags(alice, DIRECTORY);
    expect(before.size).toBe(PEOPLE.length);
    // Changes spread over the whole book, so a listing that mixed both states would show it on every page.
    for (let i = 1; i <= PEOPLE.length; i += 8) {
      await admin.modify(personDN(PEOPLE[i - 1].uid), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [`Title ${i}`] }) }));
    }
    for (let i = 2; i <= 200; i += 20) await admin.del(personDN(PEOPLE[i - 1].uid));
    for (let i = 0; i < 20; i++) await admin.add(personDN(`n${i}`), personAttributes({ ...PEOPLE[0], uid: `n${i}`, cn: `Newcomer ${i}`, mail: `n${i}@example.com`, manager: undefined }));

    const stop = { done: false };
    const listings: string[] = [];
    const record = newRecord();
    const directoryReader = async () => {
      while (!stop.done) {
        const started = performance.now();
        try {
          listings.push(describeSnapshot(await listEtags(alice, DIRECTORY)));
          record.statuses.push(207);
        } catch (error) {
          record.failures.push((error as Error).message.slice(0, 300));
        }
        record.durations.push(performance.now() - started);
      }
    };
    const hrefs = [...before.keys()];
    const others = [
      (round: number) => alice.get(hrefs[(round * 37) % hrefs.length]).then((reply) => (reply.status === 404 ? { ...reply, status: 200 } : reply)),
      () => alice.propfind(BULK, '0', PROPFIND_ETAG),
      () => bob.propfind(SMALL, '1', PROPFIND_ETAG),
      () => bob.report(SMALL, syncBody('')),
    ];
    const readers = [directoryReader(), directoryReader(), ...others.map((request) => loop(stop, request, record))];

    const sync = await spawnCli(['ldap', 'sync', '--config', configFile, '--data', dataDir]).done;
    // A few more rounds after the commit, so some listings see the new state.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    stop.done = true;
    await Promise.all(readers);
    expect({ code: sync.code, stderr: sync.stderr.slice(-500) }).toEqual({ code: 0, stderr: expect.any(String) });

    const after = await listEtags(alice, DIRECTORY);
    expect(after.size).toBe(PEOPLE.length - 10 + 20);
    const oldState = describeSnapshot(before);
    const newState = describeSnapshot(after);
    expect(newState).not.toBe(oldState);
    const seen = { old: 0, new: 0, mixed: 0 };
    for (const listing of listings) {
      if (listing === oldState) seen.old += 1;
      else if (listing === newState) seen.new += 1;
      else seen.mixed += 1;
    }
    process.stdout.write(`directory listings during the sync: ${JSON.stringify(seen)}; other reads ${JSON.stringify(summarizeLatency(record.durations))}\n`);
    expect(record.failures).toEqual([]);
    expect(seen.mixed).toBe(0);
    expect(seen.old + seen.new).toBe(listings.length);
    expect(listings.length).toBeGreaterThan(2);
    expect(await currentSyncToken(alice, DIRECTORY)).toMatch(/^urn:/);
  });
});
