import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import pino from 'pino';
import type { Config, ConfigOverrides } from '../server/config';
import type { Storage } from '../storage/types';
import { DirectoryError, resultCodeName } from './errors';
import { CardSummary, DeleteGuardError, syncDirectory, SyncProgress, SyncReport } from './sync';

/** Exit status of `cardinal ldap sync` when ldap.maxDeleteShare stopped it; other failures exit with 1. */
export const EXIT_DELETE_GUARD = 2;
/** Cards listed by name per kind of change; the rest are counted. */
const LISTED = 10;

const PHASES: Record<SyncProgress['phase'], string> = { search: 'reading the directory', build: 'building cards', write: 'writing' };

/** Shows progress as a bar on a terminal, and as plain lines on stderr otherwise. */
function progressReporter(): { onProgress: (progress: SyncProgress) => void; finish: () => void } {
  if (!process.stderr.isTTY) {
    return {
      onProgress: (progress) => {
        const count = progress.total === undefined ? `${progress.done}` : `${progress.done}/${progress.total}`;
        process.stderr.write(`${PHASES[progress.phase]}: ${count}\n`);
      },
      finish: () => undefined,
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: '{phase} [{bar}] {value}/{total}', stream: process.stderr, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let phase: SyncProgress['phase'] | undefined;
  return {
    onProgress: (progress) => {
      // The search does not know its total, so the bar grows with the entries read.
      const total = progress.total ?? Math.max(progress.done, 1);
      if (progress.phase !== phase) {
        if (phase) bar.stop();
        phase = progress.phase;
        bar.start(total, progress.done, { phase: PHASES[progress.phase] });
      } else {
        bar.setTotal(total);
        bar.update(progress.done);
      }
    },
    finish: () => {
      if (phase) bar.stop();
    },
  };
}

function listChanges(label: string, cards: CardSummary[]): void {
  for (const card of cards.slice(0, LISTED)) console.log(`  ${label} ${card.fn || '(no name)'} (${card.name})`);
  if (cards.length > LISTED) console.log(`  ${label} ... and ${cards.length - LISTED} more`);
}

function printReport(report: SyncReport): void {
  const heading = report.dryRun ? 'directory sync (dry run, nothing written)' : 'directory sync';
  console.log(
    `${heading}: ${report.entries} entries; added ${report.added.length}, changed ${report.changed.length}, ` +
      `removed ${report.removed.length}, unchanged ${report.unchanged}, skipped ${report.skipped}; ${report.durationMs} ms`,
  );
  listChanges('+', report.added);
  listChanges('~', report.changed);
  listChanges('-', report.removed);
}

/** Runs `cardinal ldap sync`: one sync, its report on stdout, and the exit status. */
export async function runSyncCommand(storage: Storage, config: Config, options: { dryRun?: boolean; force?: boolean }): Promise<void> {
  // Warnings about skipped entries go to stderr, so stdout contains only the report.
  const logger = pino({ level: config.logLevel === 'info' ? 'warn' : config.logLevel }, pino.destination(2));
  const progress = progressReporter();
  try {
    const report = await syncDirectory(storage, config, { logger, dryRun: options.dryRun, force: options.force, onProgress: progress.onProgress });
    progress.finish();
    printReport(report);
  } catch (error) {
    progress.finish();
    if (error instanceof DeleteGuardError) {
      console.error(`cardinal: ldap sync stopped: ${error.message}`);
      process.exitCode = EXIT_DELETE_GUARD;
      return;
    }
    if (error instanceof DirectoryError) {
      const code = error.resultCode === undefined ? '' : ` [LDAP result ${error.resultCode} ${resultCodeName(error.resultCode)}]`;
      console.error(`cardinal: ldap sync failed, nothing was changed: ${error.message}${code}`);
      process.exitCode = 1;
      return;
    }
    throw error;
  } finally {
    logger.flush();
  }
}

/** The helpers of server/cli.ts that a command module uses. */
export interface LdapCommandTools {
  withCommonOptions(command: Command): Command;
  withStorage<T>(options: ConfigOverrides, work: (storage: Storage, config: Config) => Promise<T>): Promise<T>;
}

export function addLdapCommands(program: Command, tools: LdapCommandTools): void {
  const ldap = program.command('ldap').description('mirror the company LDAP directory into a shared address book');
  tools
    .withCommonOptions(ldap.command('sync').description('run one directory sync and print what it added, changed and removed'))
    .option('--dry-run', 'report the changes without writing anything')
    .option('--force', 'apply the changes even when they remove more than ldap.maxDeleteShare of the cards')
    .action(async (options: ConfigOverrides & { dryRun?: boolean; force?: boolean }) => {
      await tools.withStorage(options, (storage, config) => runSyncCommand(storage, config, options));
    });
}
