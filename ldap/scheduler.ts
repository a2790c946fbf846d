import type { Logger } from 'pino';
import type { Config } from '../server/config';
import type { Storage } from '../storage/types';
import { DirectoryError } from './errors';
import { DeleteGuardError, reportCounts, syncDirectory } from './sync';

export interface SyncScheduler {
  /** Cancels the next run and waits for a running one to finish. */
  stop(): Promise<void>;
}

/**
 * Syncs the directory at start and then every ldap.syncIntervalSeconds,
 * counted from the end of the previous run, so runs never overlap. A failed
 * run is logged and retried at the next interval.
 */
export function scheduleDirectorySync(storage: Storage, config: Config, parentLogger: Logger): SyncScheduler {
  const logger = parentLogger.child({ component: 'ldap-sync' });
  const intervalMs = config.ldap.syncIntervalSeconds * 1000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const run = async () => {
    const started = Date.now();
    try {
      const report = await syncDirectory(storage, config, { logger });
      logger.info(reportCounts(report), 'directory sync finished');
    } catch (error) {
      const fields = { ms: Date.now() - started, nextRunSeconds: config.ldap.syncIntervalSeconds };
      if (error instanceof DeleteGuardError) {
        logger.error({ ...fields, removals: error.removals, existing: error.existing, err: error }, 'directory sync stopped by ldap.maxDeleteShare');
      } else if (error instanceof DirectoryError) {
        logger.error({ ...fields, ...error.logFields(), err: error }, 'directory sync failed; retrying at the next interval');
      } else {
        logger.error({ ...fields, err: error }, 'directory sync failed; retrying at the next interval');
      }
    }
  };

  const tick = () => {
    timer = undefined;
    running = run().finally(() => {
      running = undefined;
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };

  logger.info({ intervalSeconds: config.ldap.syncIntervalSeconds }, 'directory sync scheduled');
  tick();
  return {
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
