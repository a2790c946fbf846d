import type { Config } from '../server/config';
import { databasePath } from '../server/config';
import { SqliteStorage } from './sqlite';
import type { Storage } from './types';

/** Opens the configured backend; SQLite in the data folder is the only one so far. */
export function openStorage(config: Config): Storage {
  return new SqliteStorage(databasePath(config), { synchronous: config.storage.synchronous });
}

export type { Storage } from './types';
