import { Worker } from 'node:worker_threads';

/**
 * Copies the write-ahead log into the database file from a worker thread
 * with its own connection, so that no request waits for the copy and its
 * fsync. The connection that writes turns SQLite's automatic checkpoint off
 * while this runs. A PASSIVE checkpoint does not wait for writers or
 * readers. The log is reused from its start once a checkpoint has copied all
 * of it, which a RESTART checkpoint forces, waiting for the writer, when the
 * log has grown past its limit. After each checkpoint the worker reports
 * whether it copied the whole log, so that an idle server can end it.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
db.pragma('journal_size_limit = ' + workerData.journalSizeLimit);
const pageSize = db.pragma('page_size', { simple: true });
let running = true;
function checkpoint() {
  if (!running) return;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    // Under steady writes a PASSIVE checkpoint never catches up with the end of the log, so the log
    // is never reused and grows without bound. Past the limit a RESTART checkpoint waits for the
    // writer, copies the rest, and makes the next commit start the log again from its beginning.
    if (result.log * pageSize > workerData.restartBytes) db.pragma('wal_checkpoint(RESTART)');
    else parentPort.postMessage({ copied: result.busy === 0 && result.checkpointed === result.log });
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message || error) });
  }
}
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  running = false;
  clearInterval(timer);
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    db.close();
  } finally {
    parentPort.close();
  }
});
`;

export interface CheckpointOptions {
  intervalMs: number;
  /**
   * Time without writes after which a worker that has copied the whole log
   * ends. The next write starts a new one. A worker thread kept about 8 MB
   * of the server's resident memory, and 6.7 MB of it went back to the
   * system when the worker ended.
   */
  idleMs: number;
  /**
   * Bytes the log file is truncated to after a checkpoint reset it, and the
   * size of log past which the worker makes the log restart.
   */
  journalSizeLimit: number;
  onError?: (message: string) => void;
  /** Called when the worker ends without being stopped, so the caller can checkpoint some other way. */
  onLost?: () => void;
}

export class BackgroundCheckpointer {
  /** The running worker; undefined while the database is idle. */
  private worker: Worker | undefined;
  /** Writes noted so far, and the time of the last one on the monotonic clock. */
  private writes = 0;
  private lastWrite = performance.now();
  /** The write count when the running worker was asked to end because the database was idle. */
  private writesAtRetire: number | undefined;
  private stopped?: Promise<void>;
  /** Set when a worker ended unasked or failed to start, after which commits checkpoint themselves. */
  private lost = false;

  constructor(
    private readonly file: string,
    private readonly options: CheckpointOptions,
  ) {
    // The first worker also copies what an earlier process left in the log.
    this.worker = this.startWorker();
  }

  /**
   * Notes a committed write, and starts a worker when none runs. Writes by
   * other processes are not noted: their connections checkpoint in their own
   * commits, and what they leave in the log waits for this process's next write.
   */
  wrote(): void {
    this.writes++;
    this.lastWrite = performance.now();
    if (this.worker === undefined && this.stopped === undefined && !this.lost) this.restart();
  }

  /** Whether a worker runs. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Runs one last checkpoint and ends the worker. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (worker === undefined) return resolve();
      // The worker does not keep the process alive while it runs, but its last checkpoint must finish
      // before the process exits: without this, a stopping server exited before it logged "stopped".
      worker.ref();
      worker.once('exit', () => resolve());
      if (this.writesAtRetire === undefined) worker.postMessage('stop');
    });
    return this.stopped;
  }

  /**
   * Starts a worker after an idle time. The write that calls for it is
   * committed already, so a thread that cannot start counts as a lost worker
   * instead of failing the write.
   */
  private restart(): void {
    try {
      this.worker = this.startWorker();
    } catch (error) {
      this.options.onError?.(`the checkpoint worker failed to start: ${(error as Error).message}`);
      this.lost = true;
      this.options.onLost?.();
    }
  }

  private startWorker(): Worker {
    const options = this.options;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
      workerData: {
        driver: require.resolve('better-sqlite3'),
        file: this.file,
        intervalMs: options.intervalMs,
        journalSizeLimit: options.journalSizeLimit,
        restartBytes: options.journalSizeLimit,
      },
    });
    worker.on('message', (message: { error?: string; copied?: boolean }) => {
      if (message.error) options.onError?.(message.error);
      const idle = performance.now() - this.lastWrite >= options.idleMs;
      if (message.copied && idle && this.writesAtRetire === undefined && this.stopped === undefined) {
        this.writesAtRetire = this.writes;
        worker.postMessage('stop');
      }
    });
    worker.on('error', (error) => options.onError?.(error.message));
    worker.once('exit', () => {
      const writesAtRetire = this.writesAtRetire;
      this.worker = undefined;
      this.writesAtRetire = undefined;
      if (this.stopped !== undefined) return;
      if (writesAtRetire === undefined) {
        this.lost = true;
        return options.onLost?.();
      }
      // A write committed after the worker was asked to end may have missed its last checkpoint.
      if (this.writes !== writesAtRetire) this.restart();
    });
    worker.unref();
    return worker;
  }
}
