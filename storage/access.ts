import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../server/config';

/**
 * Raised when the database or its folder cannot be created, written or
 * opened. It is a ConfigError, so the command line prints its message alone
 * and exits with status 1.
 */
export class StorageAccessError extends ConfigError {}

const REASONS: Record<string, string> = {
  EROFS: 'its file system is mounted read-only',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted (an immutable file?)',
  ENOTDIR: 'a part of the path is not a folder',
  ENOSPC: 'the disk is full',
};

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const known = code === undefined ? undefined : REASONS[code];
  if (known) return `${known} (${code})`;
  return code ? `${(error as Error).message} (${code})` : String((error as Error).message ?? error);
}

/** Returns why the current process cannot write `path`, or undefined when it can. */
function writeProblem(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (error) {
    return reason(error);
  }
}

function nearestExistingFolder(dir: string): string {
  let current = dir;
  while (!existsSync(current) && dirname(current) !== current) current = dirname(current);
  return current;
}

/**
 * Creates the database's folder when missing and checks that the process
 * can write the folder, the database file and its -wal and -shm files.
 * SQLite would otherwise open a write-protected file read-only without an
 * error and fail only at the first write. access(2) reports a read-only
 * mount (EROFS) also to root, which file modes do not stop.
 */
export function checkDatabaseWritable(file: string): void {
  const dir = dirname(file);
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      // A recursive mkdir reports ENOENT for a read-only parent, so the reason comes from the nearest existing folder.
      const ancestor = nearestExistingFolder(dir);
      const problem = writeProblem(ancestor);
      const why = problem ? `${ancestor} is not writable: ${problem}` : reason(error);
      throw new StorageAccessError(`cannot create the data folder ${dir}: ${why}; create it or choose another with --data`);
    }
  }
  const folderProblem = writeProblem(dir);
  if (folderProblem) {
    throw new StorageAccessError(
      `the data folder ${dir} is not writable: ${folderProblem}; SQLite needs to create files beside the database there, ` +
        'so make the folder writable for the user running Cardinal',
    );
  }
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    if (!existsSync(path)) continue;
    const problem = writeProblem(path);
    if (problem) throw new StorageAccessError(`the database file ${path} is not writable: ${problem}; make it writable for the user running Cardinal`);
  }
}

/** Wraps an error raised while opening the database in a StorageAccessError naming the file; other errors pass unchanged. */
export function storageOpenError(file: string, error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return error;
  return new StorageAccessError(`cannot open the database ${file}: ${reason(error)}`);
}
