import type { Config } from '../server/config';
import { databasePath } from '../server/config';
import { checkDatabaseWritable, storageOpenError } from './access';
import { SqliteOptions, SqliteStorage } from './sqlite';
import type { Storage } from './types';

export interface OpenOptions {
  /** Set by the server, which runs long enough to checkpoint in the background. */
  server?: { onCheckpointError: (message: string) => void };
}

/** Opens the configured backend; SQLite in the data folder is the only one so far. */
export function openStorage(config: Config, options: OpenOptions = {}): Storage {
  const sqlite: SqliteOptions = { synchronous: config.storage.synchronous };
  if (options.server) {
    sqlite.checkpointIntervalMs = BACKGROUND_CHECKPOINT_MS;
    sqlite.onCheckpointError = options.server.onCheckpointError;
  }
  const file = databasePath(config);
  checkDatabaseWritable(file);
  try {
    return new SqliteStorage(file, sqlite);
  } catch (error) {
    throw storageOpenError(file, error);
  }
}

const BACKGROUND_CHECKPOINT_MS = 1000;

export type { Storage } from './types';
/** Whether a storage error means that another process kept the database locked. */
export { isBusy } from './sqlite';
