/**
 * The real server on a data folder that runs out of space, which is a small
 * tmpfs filled with a ballast file and large cards. Then on a data folder or
 * database file it cannot write: read-only mounts, because root ignores file
 * modes. These tests mount file systems, so they need root. Without root they
 * fail, unless CARDINAL_SKIP_MOUNT=1 skips them. Needs `npm run build` first.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/server';
import { basicAuth, Client, dav, expectDavError, person, readWholeBook, type Reply } from '../robustness/support';
import {
  addUser,
  bindReadOnly,
  type CardinalProcess,
  checkDatabase,
  DATABASE_FILE,
  mountTmpfs,
  remountReadOnly,
  remountReadWrite,
  SKIP_MOUNT,
  spawnCardinal,
  startCardinal,
  stopCardinal,
  unmount,
} from './support';

jest.setTimeout(120_000);

const describeMounted = SKIP_MOUNT ? describe.skip : describe;
const BOOK = '/dav/addressbooks/alice/contacts/';
const PASSWORD = 'alice-password';
const MiB = 1024 * 1024;

/** Builds a valid vCard 3.0 with a base64 PHOTO of `photoBytes` bytes, which the server stores unchanged. */
function cardWithPhoto(uid: string, photoBytes: number, fill: number): Buffer {
  const photo = Buffer.alloc(photoBytes, fill).toString('base64');
  return Buffer.from(person(uid, `Photo ${uid}`, [`PHOTO;ENCODING=b;TYPE=JPEG:${photo}`]));
}

function freeBytes(dir: string): number {
  const stats = statfsSync(dir);
  return stats.bavail * stats.bsize;
}

/** Writes a file of zeros until it is `bytes` long or the disk is full; returns the bytes written. */
function writeBallast(file: string, bytes: number): number {
  const chunk = Buffer.alloc(64 * 1024);
  const fd = openSync(file, 'w');
  let written = 0;
  try {
    while (written < bytes) {
      try {
        written += writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

describeMounted('full disk', () => {
  let mountPoint: string;
  let dataDir: string;
  let ballast: string;
  let server: CardinalProcess | undefined;

  beforeAll(async () => {
    mountPoint = mkdtempSync(join(tmpdir(), 'cardinal-full-'));
    mountTmpfs(mountPoint, 16 * MiB);
    dataDir = join(mountPoint, 'data');
    ballast = join(mountPoint, 'ballast');
    await addUser(dataDir, 'alice', PASSWORD);
  });

  afterAll(async () => {
    if (server) await stopCardinal(server, 'SIGKILL');
    unmount(mountPoint);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  test('PUTs on a full disk get 507', async () => {
    server = await startCardinal(dataDir);
    let client = new Client(server.port, basicAuth('alice', PASSWORD));
    const acknowledged = new Map<string, { body: Buffer; etag: string }>();
    const put = async (href: string, body: Buffer, headers: Record<string, string> = {}): Promise<Reply> => {
      const reply = await client.put(href, body, headers);
      if (reply.status === 201 || reply.status === 204) acknowledged.set(href, { body, etag: reply.headers.etag as string });
      return reply;
    };
    for (let i = 0; i < 10; i++) expect((await put(`${BOOK}small-${i}.vcf`, Buffer.from(person(`small-${i}`)))).status).toBe(201);

    // Leave 2.5 MiB. Concurrent PUTs share a commit in the server: each must be stored whole, or get 507 and leave nothing.
    writeBallast(ballast, freeBytes(mountPoint) - 2.5 * MiB);
    const failedHrefs: string[] = [];
    for (let round = 0; round < 3; round++) {
      const burst = await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const href = `${BOOK}burst-${round}-${i}.vcf`;
          const body = i % 3 === 2 ? Buffer.from(person(`burst-${round}-${i}`)) : cardWithPhoto(`burst-${round}-${i}`, 700_000, i);
          return { href, reply: await put(href, body) };
        }),
      );
      for (const { href, reply } of burst) {
        if (reply.status === 201) continue;
        expectDavError(reply, 507, dav('sufficient-disk-space'));
        failedHrefs.push(href);
      }
    }
    expect(failedHrefs.length).toBeGreaterThan(0);

    // One PUT at a time until the disk is full.
    const sequential: Reply[] = [];
    for (let i = 0; i < 40 && sequential.every((reply) => reply.status === 201); i++) {
      const href = `${BOOK}photo-${i}.vcf`;
      const reply = await put(href, cardWithPhoto(`photo-${i}`, 200_000, i));
      sequential.push(reply);
      if (reply.status !== 201) failedHrefs.push(href);
    }
    expectDavError(sequential[sequential.length - 1], 507, dav('sufficient-disk-space'));
    expect(server.running()).toBe(true);

    // Replacing a stored card with a larger one fails and keeps the old bytes.
    const small = `${BOOK}small-0.vcf`;
    const replace = await client.put(small, cardWithPhoto('small-0', 600_000, 7), { 'If-Match': acknowledged.get(small)?.etag as string });
    expectDavError(replace, 507, dav('sufficient-disk-space'));

    // A DELETE on the full disk either removes the card or gets 507 and keeps it.
    const removable = `${BOOK}small-9.vcf`;
    const removal = await client.delete(removable);
    if (removal.status === 204) acknowledged.delete(removable);
    else expectDavError(removal, 507, dav('sufficient-disk-space'));

    const expectStored = async (): Promise<void> => {
      for (const [href, card] of acknowledged) {
        const reply = await client.get(href);
        expect({ href, status: reply.status, etag: reply.headers.etag }).toEqual({ href, status: 200, etag: card.etag });
        expect({ href, identical: reply.body.equals(card.body) }).toEqual({ href, identical: true });
      }
      for (const href of failedHrefs) expect({ href, status: (await client.get(href)).status }).toEqual({ href, status: 404 });
      const cards = await readWholeBook(client, BOOK);
      expect([...cards.keys()].sort()).toEqual([...acknowledged.keys()].sort());
    };
    await expectStored();
    process.stdout.write(`full disk: ${acknowledged.size} cards stored, ${failedHrefs.length} PUTs rejected with 507 before space was freed\n`);

    // A kill while the disk is full leaves a sound file, and the server starts again on the full disk.
    expect((await stopCardinal(server, 'SIGKILL')).signal).toBe('SIGKILL');
    expect(checkDatabase(join(dataDir, DATABASE_FILE))).toEqual({ integrity: 'ok', foreignKeyViolations: 0 });
    server = await startCardinal(dataDir);
    client = new Client(server.port, basicAuth('alice', PASSWORD));
    await expectStored();
    expectDavError(await client.put(`${BOOK}still-full.vcf`, cardWithPhoto('still-full', 600_000, 9)), 507, dav('sufficient-disk-space'));

    unlinkSync(ballast);
    for (const href of failedHrefs) {
      const uid = /\/([^/]+)\.vcf$/.exec(href)?.[1] as string;
      expect({ href, status: (await put(href, Buffer.from(person(uid)))).status }).toEqual({ href, status: 201 });
    }
    failedHrefs.length = 0;
    const replaced = await put(small, cardWithPhoto('small-0', 600_000, 7), { 'If-Match': acknowledged.get(small)?.etag as string });
    expect(replaced.status).toBe(204);
    await expectStored();

    expect((await stopCardinal(server, 'SIGTERM')).code).toBe(0);
    expect(checkDatabase(join(dataDir, DATABASE_FILE))).toEqual({ integrity: 'ok', foreignKeyViolations: 0 });
    server = await startCardinal(dataDir);
    client = new Client(server.port, basicAuth('alice', PASSWORD));
    await expectStored();
  });
});

/** Runs `cardinal serve` on a data folder that should be rejected, and returns its exit and output. */
async function serveExpectingFailure(dataDir: string): Promise<{ code: number | null; stderr: string; output: string }> {
  const server = await spawnCardinal(dataDir);
  const timer = setTimeout(() => void stopCardinal(server, 'SIGKILL'), 20_000);
  const exit = await server.exited;
  clearTimeout(timer);
  return { code: exit.code, stderr: server.stderr(), output: server.output() };
}

function expectStartupError(result: { code: number | null; stderr: string; output: string }, path: string): void {
  expect({ code: result.code, listening: result.output.includes('"msg":"listening"') }).toEqual({ code: 1, listening: false });
  expect(result.stderr).toMatch(/^cardinal: /);
  expect(result.stderr).toContain(path);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

describeMounted('read-only storage', () => {
  let mountPoint: string;

  beforeEach(() => {
    mountPoint = mkdtempSync(join(tmpdir(), 'cardinal-readonly-'));
    mountTmpfs(mountPoint, 4 * MiB);
  });

  afterEach(() => {
    unmount(mountPoint);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  test('read-only data folder stops startup', async () => {
    const dataDir = join(mountPoint, 'data');
    await addUser(dataDir, 'alice', PASSWORD);
    chmodSync(join(dataDir, DATABASE_FILE), 0o444);
    chmodSync(dataDir, 0o555);
    remountReadOnly(mountPoint);

    expectStartupError(await serveExpectingFailure(dataDir), dataDir);
    const add = await runCli(['user', 'add', 'bob', '--password-stdin', '--data', dataDir], 'bob-password\n');
    expectStartupError({ code: add.code, stderr: add.stderr, output: add.stdout }, dataDir);

    remountReadWrite(mountPoint);
    chmodSync(dataDir, 0o755);
    chmodSync(join(dataDir, DATABASE_FILE), 0o644);
    const server = await startCardinal(dataDir);
    try {
      const client = new Client(server.port, basicAuth('alice', PASSWORD));
      expect((await client.put(`${BOOK}after.vcf`, person('after'))).status).toBe(201);
    } finally {
      await stopCardinal(server);
    }
  });

  test('read-only database file stops startup', async () => {
    const dataDir = join(mountPoint, 'data');
    await addUser(dataDir, 'alice', PASSWORD);
    const file = join(dataDir, DATABASE_FILE);
    chmodSync(file, 0o444);
    bindReadOnly(file);
    try {
      expectStartupError(await serveExpectingFailure(dataDir), file);
    } finally {
      unmount(file);
    }
  });

  test('data folder on a read-only mount', async () => {
    remountReadOnly(mountPoint);
    const dataDir = join(mountPoint, 'new-data');
    expectStartupError(await serveExpectingFailure(dataDir), dataDir);
    expect(existsSync(dataDir)).toBe(false);
  });

  test('missing parent folder is created', async () => {
    const dataDir = join(mountPoint, 'several', 'levels', 'data');
    mkdirSync(join(mountPoint, 'several'));
    const server = await startCardinal(dataDir);
    await stopCardinal(server);
    expect(existsSync(join(dataDir, DATABASE_FILE))).toBe(true);
  });
});
