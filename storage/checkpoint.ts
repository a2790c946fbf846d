import { Worker } from 'node:worker_threads';

/**
 * Copies the write-ahead log into the database file from a worker thread
 * with its own connection, so that no request waits for the copy and its
 * fsync. The connection that writes turns SQLite's automatic checkpoint off
 * while this runs. A PASSIVE checkpoint does not wait for writers or
 * readers. The log is reused from its start once a checkpoint has copied all
 * of it, which a RESTART checkpoint forces, waiting for the writer, when the
 * log has grown past its limit. After each checkpoint the worker tells
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
  private lastWrite = Date.now();
  /** When the running worker was told to end because the database was idle. */
  private retiredAt: number | undefined;
  private stopped?: Promise<void>;
  /** Set when a worker ended without being told to, after which commits checkpoint themselves. */
  private lost = false;

  constructor(
    private readonly file: string,
    private readonly options: CheckpointOptions,
  ) {
    // The first worker also copies what an earlier process left in the log.
    this.worker = this.startWorker();
  }

  /** Notes a committed write, and starts a worker when none runs. */
  wrote(): void {
    this.lastWrite = Date.now();
    if (this.worker === undefined && this.stopped === undefined && !this.lost) this.worker = this.startWorker();
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
      if (this.retiredAt === undefined) worker.postMessage('stop');
    });
    return this.stopped;
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
      if (message.copied && this.retiredAt === undefined && this.stopped === undefined && Date.now() - this.lastWrite >= options.idleMs) {
        this.retiredAt = Date.now();
        worker.postMessage('stop');
      }
    });
    worker.on('error', (error) => options.onError?.(error.message));
    worker.once('exit', () => {
      const retiredAt = this.retiredAt;
      this.worker = undefined;
      this.retiredAt = undefined;
      if (this.stopped !== undefined) return;
      if (retiredAt === undefined) {
        this.lost = true;
        return options.onLost?.();
      }
      // A write committed after the worker was told to end may have missed its last checkpoint.
      if (this.lastWrite >= retiredAt) this.worker = this.startWorker();
    });
    worker.unref();
    return worker;
  }
}
