/**
 * The background checkpoint: a server's storage copies the write-ahead log
 * into the database file from its worker, the worker ends while nothing is
 * written and starts again with the next write, and a lost worker hands the
 * job back to SQLite's checkpoints in commits.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BackgroundCheckpointer } from '../../storage/checkpoint';
import { SqliteStorage } from '../../storage/sqlite';
import type { CardInput } from '../../storage/types';
import { prepareCard } from '../../vcard/pipeline';

/** Error that the next worker thread raises as it starts, as when the process has no memory or threads left. */
let mockWorkerFailure: Error | undefined;

jest.mock('node:worker_threads', () => {
  const actual = jest.requireActual<typeof import('node:worker_threads')>('node:worker_threads');
  class FailingWorker extends actual.Worker {
    constructor(...args: ConstructorParameters<typeof actual.Worker>) {
      const failure = mockWorkerFailure;
      mockWorkerFailure = undefined;
      if (failure) throw failure;
      super(...args);
    }
  }
  return { ...actual, Worker: FailingWorker };
});

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardinal-checkpoint-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function input(index: number): CardInput {
  const note = 'x'.repeat(2000);
  const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:card-${index}\r\nFN:Person ${index}\r\nNOTE:${note}\r\nEND:VCARD\r\n`;
  const prepared = prepareCard(Buffer.from(text));
  if (!prepared.ok) throw new Error(prepared.message);
  return { name: `card-${index}.vcf`, uid: prepared.uid, etag: prepared.etag, data: prepared.data, properties: prepared.properties };
}

/** Writes 40 cards of 2 KB: fewer log pages than the 1,000 at which SQLite checkpoints in a commit. */
async function fill(storage: SqliteStorage): Promise<number> {
  const user = await storage.createUser('alice', null);
  const book = await storage.createBook(user.id, 'contacts', 'Contacts');
  if (!book) throw new Error('book not created');
  for (let index = 0; index < 40; index++) await storage.putCard(book.id, input(index), {});
  return book.id;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 600));

test('worker copies the log into the database', async () => {
  const file = join(dir, 'cardinal.sqlite3');
  const storage = new SqliteStorage(file, { checkpointIntervalMs: 50 });
  try {
    await fill(storage);
    await settle();
    expect(statSync(file).size).toBeGreaterThan(400_000);
  } finally {
    await storage.close();
  }
});

test('without the worker the log keeps the pages', async () => {
  const file = join(dir, 'cardinal.sqlite3');
  const storage = new SqliteStorage(file);
  try {
    await fill(storage);
    await settle();
    expect(statSync(file).size).toBeLessThan(100_000);
  } finally {
    await storage.close();
  }
});

test('a worker that cannot open the file is reported lost', async () => {
  const lost = new Promise<string>((resolve) => {
    const checkpointer = new BackgroundCheckpointer(join(dir, 'missing.sqlite3'), {
      intervalMs: 50,
      idleMs: 60_000,
      journalSizeLimit: 1 << 20,
      onLost: () => resolve('lost'),
    });
    void checkpointer;
  });
  await expect(lost).resolves.toBe('lost');
});

/** Waits until `check` returns true, for up to 5 s. */
async function until(check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited > 5000) throw new Error('timed out after 5 s waiting for the condition');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('idle worker ends, write restarts it', async () => {
  const file = join(dir, 'cardinal.sqlite3');
  await new SqliteStorage(file).close();
  const checkpointer = new BackgroundCheckpointer(file, { intervalMs: 20, idleMs: 100, journalSizeLimit: 1 << 20 });
  try {
    expect(checkpointer.running).toBe(true);
    await until(() => !checkpointer.running);
    checkpointer.wrote();
    expect(checkpointer.running).toBe(true);
    await until(() => !checkpointer.running);
  } finally {
    await checkpointer.stop();
  }
  expect(checkpointer.running).toBe(false);
  checkpointer.wrote();
  expect(checkpointer.running).toBe(false);
});

test('writes after idle reach the file', async () => {
  const file = join(dir, 'cardinal.sqlite3');
  const storage = new SqliteStorage(file, { checkpointIntervalMs: 20, checkpointIdleMs: 100 });
  try {
    const bookId = await fill(storage);
    await settle();
    const before = statSync(file).size;
    expect(before).toBeGreaterThan(80_000);
    for (let index = 40; index < 80; index++) await storage.putCard(bookId, input(index), {});
    await settle();
    expect(statSync(file).size).toBeGreaterThan(before + 80_000);
  } finally {
    await storage.close();
  }
});

test('write during retirement restarts the worker', async () => {
  const file = join(dir, 'cardinal.sqlite3');
  await new SqliteStorage(file).close();
  const checkpointer = new BackgroundCheckpointer(file, { intervalMs: 20, idleMs: 100, journalSizeLimit: 1 << 20 });
  // The write lands after the worker was asked to end and before it has ended.
  const post = jest.spyOn(Worker.prototype, 'postMessage');
  let retiring: Promise<void> | undefined;
  post.mockImplementation(function (this: Worker, message: unknown) {
    post.mockRestore();
    Worker.prototype.postMessage.call(this, message);
    if (message === 'stop') {
      retiring = new Promise((resolve) => this.once('exit', () => resolve()));
      checkpointer.wrote();
    }
  });
  try {
    await until(() => retiring !== undefined);
    await retiring;
    // The checkpointer's own exit listener ran first and started another worker for the write.
    expect(checkpointer.running).toBe(true);
  } finally {
    post.mockRestore();
    await checkpointer.stop();
  }
});

test('worker that cannot start is lost', async () => {
  const file = join(dir, 'cardinal.sqlite3');
  await new SqliteStorage(file).close();
  const errors: string[] = [];
  let lost = 0;
  const checkpointer = new BackgroundCheckpointer(file, {
    intervalMs: 20,
    idleMs: 100,
    journalSizeLimit: 1 << 20,
    onError: (message) => errors.push(message),
    onLost: () => lost++,
  });
  try {
    await until(() => !checkpointer.running);
    mockWorkerFailure = new Error('no thread left');
    expect(() => checkpointer.wrote()).not.toThrow();
    expect(checkpointer.running).toBe(false);
    expect(lost).toBe(1);
    expect(errors).toEqual(['the checkpoint worker failed to start: no thread left']);
    // A lost worker is not started again: commits checkpoint from then on.
    checkpointer.wrote();
    expect(checkpointer.running).toBe(false);
    expect(lost).toBe(1);
  } finally {
    mockWorkerFailure = undefined;
    await checkpointer.stop();
  }
});
