import { Worker } from 'node:worker_threads';

/**
 * Copies the write-ahead log into the database file from a worker thread
 * with its own connection, so that no request waits for the copy and its
 * fsync. The connection that writes turns SQLite's automatic checkpoint off
 * while this runs. A PASSIVE checkpoint does not wait for writers or
 * readers. The log is reused from its start once a checkpoint has copied all
 * of it, which a RESTART checkpoint forces, waiting for the writer, when the
 * log has grown past its limit.
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
   * Bytes the log file is truncated to after a checkpoint reset it, and the
   * size of log past which the worker makes the log restart.
   */
  journalSizeLimit: number;
  onError?: (message: string) => void;
  /** Called when the worker ends without being stopped, so the caller can checkpoint some other way. */
  onLost?: () => void;
}

export class BackgroundCheckpointer {
  private readonly worker: Worker;
  private stopped?: Promise<void>;
  private exited = false;

  constructor(file: string, options: CheckpointOptions) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
      workerData: {
        driver: require.resolve('better-sqlite3'),
        file,
        intervalMs: options.intervalMs,
        journalSizeLimit: options.journalSizeLimit,
        restartBytes: options.journalSizeLimit,
      },
    });
    this.worker.on('message', (message: { error?: string }) => {
      if (message.error) options.onError?.(message.error);
    });
    this.worker.on('error', (error) => options.onError?.(error.message));
    this.worker.once('exit', () => {
      this.exited = true;
      if (this.stopped === undefined) options.onLost?.();
    });
    this.worker.unref();
  }

  /** Runs one last checkpoint and ends the worker. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      // The worker does not keep the process alive while it runs, but its last checkpoint must finish
      // before the process exits: without this, a stopping server exited before it logged "stopped".
      this.worker.ref();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage('stop');
    });
    return this.stopped;
  }
}
