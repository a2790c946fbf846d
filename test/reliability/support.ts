/**
 * Shared tools for the reliability tests: a seeded random generator, the real
 * server as a child process on a data folder the test owns, tmpfs and
 * read-only mounts, and checks of the SQLite file opened read-only.
 * Tests that spawn the server need `npm run build` first.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { findFreePort, repoRoot, runCli } from '../helpers/server';
import { Client, dav, okProp, parseMultistatus, PROPFIND_ETAG, syncBody } from '../robustness/support';

/** True when CARDINAL_RELIABILITY_LONG=1 selects the long runs (`npm run test:reliability:long`). */
export const LONG_MODE = process.env.CARDINAL_RELIABILITY_LONG === '1';

/** True when CARDINAL_SKIP_MOUNT=1 allows the tests that mount file systems to be skipped. */
export const SKIP_MOUNT = process.env.CARDINAL_SKIP_MOUNT === '1';

/** Name of the database file inside a data folder. */
export const DATABASE_FILE = 'cardinal.sqlite3';

export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  /** An element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
}

/** Returns a mulberry32 generator: the same seed gives the same sequence. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)],
  };
}

/**
 * Returns the seed of a randomised test: CARDINAL_RELIABILITY_SEED when set,
 * a fresh one otherwise. Prints it, so a failing run can be replayed.
 */
export function reliabilitySeed(testName: string): number {
  const given = process.env.CARDINAL_RELIABILITY_SEED;
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`CARDINAL_RELIABILITY_SEED must be an integer from 0 to 4294967295, not ${JSON.stringify(given)}`);
    }
    process.stdout.write(`${testName}: seed ${seed} (from CARDINAL_RELIABILITY_SEED)\n`);
    return seed;
  }
  const seed = Math.floor(Math.random() * 0x100000000);
  process.stdout.write(`${testName}: seed ${seed}; replay with CARDINAL_RELIABILITY_SEED=${seed}\n`);
  return seed;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CardinalProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  /** The last OUTPUT_KEPT characters of stdout and stderr. */
  output(): string;
  /** Only stderr, in full. */
  stderr(): string;
  exited: Promise<ExitStatus>;
  /** True until the process has exited. */
  running(): boolean;
}

/** Characters of server output kept for failure messages. */
const OUTPUT_KEPT = 200_000;

export interface StartCardinalOptions {
  /** Extra arguments appended to `cardinal serve`. */
  args?: string[];
  /** Maximum wait for the "listening" log line, in milliseconds. */
  startTimeoutMs?: number;
}

/** Spawns `cardinal serve` on an existing data folder without waiting for it to listen. */
export async function spawnCardinal(dataDir: string, options: StartCardinalOptions = {}): Promise<CardinalProcess> {
  const port = await findFreePort();
  const args = [join(repoRoot, 'bin', 'cardinal.js'), 'serve', '--data', dataDir, '--host', '127.0.0.1', '--port', String(port), ...(options.args ?? [])];
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('cardinal serve started without a PID');
  let output = '';
  let stderr = '';
  const append = (chunk: string): void => {
    output += chunk;
    if (output.length > 2 * OUTPUT_KEPT) output = output.slice(-OUTPUT_KEPT);
  };
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    append(chunk);
  });
  let alive = true;
  const exited = new Promise<ExitStatus>((resolve) =>
    child.once('exit', (code, signal) => {
      alive = false;
      resolve({ code, signal });
    }),
  );
  return { child, pid: child.pid, port, output: () => output.slice(-OUTPUT_KEPT), stderr: () => stderr, exited, running: () => alive };
}

/** Starts `cardinal serve` on an existing data folder and resolves once it logs "listening". */
export async function startCardinal(dataDir: string, options: StartCardinalOptions = {}): Promise<CardinalProcess> {
  const server = await spawnCardinal(dataDir, options);
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  let seen = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cardinal serve logged no "listening" within ${timeoutMs} ms\n${server.output()}`)), timeoutMs);
      server.child.stdout?.on('data', (chunk: string) => {
        seen += chunk;
        if (seen.includes('"msg":"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void server.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`cardinal serve exited before listening (exit ${code}, signal ${signal})\n${server.output()}`));
      });
    });
  } catch (error) {
    await stopCardinal(server, 'SIGKILL');
    throw error;
  }
  return server;
}

/** Sends a signal to the server's PID, unless it has exited, and waits for the exit. */
export async function stopCardinal(server: CardinalProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitStatus> {
  if (server.running()) {
    try {
      process.kill(server.pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  return server.exited;
}

/** Creates a user with `cardinal user add --password-stdin` on a data folder. */
export async function addUser(dataDir: string, name: string, password: string): Promise<void> {
  const result = await runCli(['user', 'add', name, '--password-stdin', '--data', dataDir], `${password}\n`);
  if (result.code !== 0) throw new Error(`cardinal user add ${name} failed (exit ${result.code})\n${result.stdout}${result.stderr}`);
}

export interface DatabaseCheck {
  integrity: string;
  foreignKeyViolations: number;
}

/**
 * Opens a database file read-only, as the server left it, and runs
 * `PRAGMA integrity_check` and `PRAGMA foreign_key_check`. The file must not
 * be in use by a running server.
 */
export function checkDatabase(file: string): DatabaseCheck {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.pragma('integrity_check') as { integrity_check: string }[];
    const violations = db.pragma('foreign_key_check') as unknown[];
    return { integrity: rows.map((row) => row.integrity_check).join('\n'), foreignKeyViolations: violations.length };
  } finally {
    db.close();
  }
}

/**
 * Splits a Cardinal sync token, `urn:x-cardinal:sync:BOOK-UUID:SEQ`, into the
 * book's id and its change sequence (the format dav/props.ts `syncToken`
 * writes). Clients treat tokens as opaque, but a test needs the sequence to
 * check that tokens never go backwards.
 */
export function parseSyncToken(token: string): { book: string; seq: number } {
  const match = /^urn:x-cardinal:sync:([0-9a-f-]+):(\d+)$/.exec(token);
  if (!match) throw new Error(`not a Cardinal sync token: ${JSON.stringify(token)}`);
  return { book: match[1], seq: Number(match[2]) };
}

function runMount(args: string[]): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `mount ${args.join(' ')} needs root, and this test runs as uid ${process.getuid?.()}; ` +
        'run it as root or set CARDINAL_SKIP_MOUNT=1 to skip the tests that mount file systems',
    );
  }
  try {
    execFileSync('mount', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(
      `mount ${args.join(' ')} failed: ${stderr || (error as Error).message}; ` +
        'the test needs to mount a tmpfs (root, and mounts allowed in this container), or set CARDINAL_SKIP_MOUNT=1 to skip it',
    );
  }
}

/** Mounts a tmpfs of `sizeBytes` on an existing, empty folder. */
export function mountTmpfs(dir: string, sizeBytes: number): void {
  runMount(['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
}

/** Remounts a mount point read-only; `mountReadWrite` undoes it. */
export function remountReadOnly(dir: string): void {
  runMount(['-o', 'remount,ro', dir]);
}

export function remountReadWrite(dir: string): void {
  runMount(['-o', 'remount,rw', dir]);
}

/** Bind-mounts `path` (a file or a folder) onto itself read-only. */
export function bindReadOnly(path: string): void {
  runMount(['--bind', path, path]);
  runMount(['-o', 'remount,bind,ro', path]);
}

/** Unmounts a mount point, lazily, so a file a dead process left open does not keep it busy. Ignores a path that is not mounted. */
export function unmount(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '');
    if (!/not mounted|no mount point/i.test(stderr)) throw new Error(`umount ${dir} failed: ${stderr.trim()}`);
  }
}

/** Hrefs of a book's cards mapped to their quoted ETags: the state a syncing client holds. */
export type BookSnapshot = Map<string, string>;

/** Lists a book's cards with PROPFIND Depth 1, leaving out the book itself. */
export async function listEtags(client: Client, bookPath: string): Promise<BookSnapshot> {
  const reply = await client.propfind(bookPath, '1', PROPFIND_ETAG);
  if (reply.status !== 207) throw new Error(`PROPFIND Depth 1 on ${bookPath} returned ${reply.status}: ${reply.text.slice(0, 500)}`);
  const snapshot: BookSnapshot = new Map();
  for (const response of parseMultistatus(reply.text).responses) {
    if (response.href === bookPath) continue;
    const etag = okProp(response, dav('getetag'))?.text;
    if (etag === undefined) throw new Error(`PROPFIND listed ${response.href} without a getetag`);
    snapshot.set(response.href, etag);
  }
  return snapshot;
}

export interface SyncResult {
  status: number;
  /** The reply body when the status is not 207. */
  text: string;
  token?: string;
  /** Hrefs whose new ETag the report lists, or null for a removed card. */
  delta: Map<string, string | null>;
}

/** Sends a sync-collection REPORT from a token ('' for a full listing) and returns the changes it lists. */
export async function syncChanges(client: Client, bookPath: string, token: string): Promise<SyncResult> {
  const reply = await client.report(bookPath, syncBody(token));
  const delta = new Map<string, string | null>();
  if (reply.status !== 207) return { status: reply.status, text: reply.text, delta };
  const parsed = parseMultistatus(reply.text);
  for (const response of parsed.responses) {
    if (response.status === 404) delta.set(response.href, null);
    else {
      const etag = okProp(response, dav('getetag'))?.text;
      if (etag === undefined) throw new Error(`sync-collection listed ${response.href} without a getetag or a 404 status`);
      delta.set(response.href, etag);
    }
  }
  return { status: reply.status, text: '', token: parsed.syncToken, delta };
}

/** Returns the state a client reaches by applying a sync-collection delta to its snapshot. */
export function applySyncDelta(snapshot: BookSnapshot, delta: Map<string, string | null>): BookSnapshot {
  const next = new Map(snapshot);
  for (const [href, etag] of delta) {
    if (etag === null) next.delete(href);
    else next.set(href, etag);
  }
  return next;
}

/** Writes a snapshot as sorted `href etag` lines, so two snapshots compare as strings. */
export function describeSnapshot(snapshot: BookSnapshot): string {
  return [...snapshot].map(([href, etag]) => `${href} ${etag}`).sort().join('\n');
}

/** Lists how `actual` differs from `expected`: `+` for an extra card, `-` for a missing one, `~` for another ETag. */
export function diffSnapshots(actual: BookSnapshot, expected: BookSnapshot): string {
  const lines: string[] = [];
  for (const [href, etag] of actual) {
    const wanted = expected.get(href);
    if (wanted === undefined) lines.push(`+ ${href} ${etag}`);
    else if (wanted !== etag) lines.push(`~ ${href} ${etag}, expected ${wanted}`);
  }
  for (const [href, etag] of expected) if (!actual.has(href)) lines.push(`- ${href} ${etag}`);
  return lines.sort().join('\n');
}

/** Returns the resident set size of a running process in KiB, from /proc, or undefined once it is gone. */
export function residentKiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Returns a plain-data image of everything a client can change: every user's
 * books with their settings, dead properties, grants, sync sequence and
 * card ETags. Two equal snapshots mean no request changed the store.
 */
export async function storeSnapshot(storage: import('../../storage/types').Storage): Promise<unknown> {
  const users = [];
  for (const user of await storage.listUsers()) {
    const books = [];
    for (const book of await storage.listBooks(user.id)) {
      const cards = (await storage.listCardMeta(book.id, 0, 100_000)).map((card) => [card.name, card.uid, card.etag]);
      const properties = [...(await storage.getBookProperties(book.id))].sort();
      const grants = (await storage.listGrants(book.id)).map((grant) => [grant.grantee, grant.access, grant.mount]);
      books.push({ slug: book.slug, uuid: book.uuid, displayName: book.displayName, description: book.description, syncSeq: book.syncSeq, properties, grants, cards });
    }
    users.push({ name: user.name, passwordHash: user.passwordHash, books });
  }
  return users;
}

export interface LatencySummary {
  count: number;
  medianMs: number;
  maxMs: number;
}

/** Summarises request durations in milliseconds, rounded to 0.1 ms. */
export function summarizeLatency(durations: number[]): LatencySummary {
  const sorted = [...durations].sort((a, b) => a - b);
  const round = (value: number) => Math.round(value * 10) / 10;
  const median = sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)];
  return { count: sorted.length, medianMs: round(median), maxMs: round(sorted[sorted.length - 1] ?? 0) };
}

/** Writes a configuration file into a new temporary folder and returns its path; `removeConfigs` deletes them all. */
export function writeConfigFile(config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cardinal-reliability-config-'));
  configFolders.push(dir);
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const configFolders: string[] = [];

export function removeConfigs(): void {
  for (const dir of configFolders.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A command line run in a child process. */
export interface CliRun {
  child: ChildProcess;
  /** Resolves with the exit status and the whole output once the command exits. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Runs `node bin/cardinal.js ARGS` in a child process and collects its output. */
export function spawnCli(args: string[]): CliRun {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'cardinal.js'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/**
 * Returns the seed of a property-based test and prints it:
 * CARDINAL_RELIABILITY_SEED when set, a fresh seed in long mode, and
 * `fixedSeed` otherwise, so every default run checks the same cases.
 */
export function propertySeed(testName: string, fixedSeed: number): number {
  if (LONG_MODE || (process.env.CARDINAL_RELIABILITY_SEED ?? '') !== '') return reliabilitySeed(testName);
  process.stdout.write(`${testName}: fixed seed ${fixedSeed}; replay with CARDINAL_RELIABILITY_SEED=${fixedSeed}\n`);
  return fixedSeed;
}

/** Waits until `check` returns true, polling every 100 ms, and fails after `timeoutMs` naming `what`. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts `cardinal serve` at any log level and resolves once it responds to an
 * OPTIONS request, because below the info level it logs no "listening" line.
 */
export async function startQuietCardinal(dataDir: string, options: StartCardinalOptions = {}): Promise<CardinalProcess> {
  const server = await spawnCardinal(dataDir, options);
  const probe = new Client(server.port);
  try {
    await waitUntil(
      `cardinal serve to answer on port ${server.port}`,
      async () => {
        if (!server.running()) throw new Error(`cardinal serve exited before answering\n${server.output()}`);
        return (await probe.request('OPTIONS', '/').catch(() => undefined))?.status === 200;
      },
      options.startTimeoutMs ?? 20_000,
    );
  } catch (error) {
    await stopCardinal(server, 'SIGKILL');
    throw error;
  }
  return server;
}
