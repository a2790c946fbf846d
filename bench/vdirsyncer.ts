/**
 * vdirsyncer (Debian's 0.19) syncing the server's address book into a local folder: the
 * first sync downloads every card, and a second sync with nothing changed only compares
 * ETags from one PROPFIND Depth 1. Each run also reads the server's CPU time from /proc
 * before and after, to show how much of the wall time the server spent.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { BookState, MetricResult } from './measurements';
import { formatSeconds } from './measurements';
import { checkCommand, runCommand } from './process';
import { isolatedEnv } from './servers';

export interface VdirsyncerResults {
  initial: MetricResult;
  serverShare: MetricResult;
  noop: MetricResult;
}

interface SyncRun {
  seconds: number;
  /** Server CPU seconds divided by wall seconds. */
  serverShare: number;
}

/** One vdirsyncer setup: its own HOME, config, status folder and local folder. */
class VdirsyncerSetup {
  readonly home: string;
  readonly localDir: string;
  private readonly config: string;

  constructor(
    private readonly state: BookState,
    root: string,
    private readonly timeoutMs: number,
  ) {
    this.home = root;
    rmSync(root, { recursive: true, force: true });
    this.localDir = path.join(root, 'local');
    mkdirSync(this.localDir, { recursive: true });
    this.config = path.join(root, 'vdirsyncer.conf');
    const server = state.server;
    // JSON strings are valid vdirsyncer values. With `collections = null` the pair syncs
    // the two configured folders themselves, with no collections to discover or create.
    const value = (text: string) => JSON.stringify(text);
    writeFileSync(
      this.config,
      [
        '[general]',
        `status_path = ${value(path.join(root, 'status') + '/')}`,
        '',
        '[pair bench]',
        'a = "bench_local"',
        'b = "bench_server"',
        'collections = null',
        '',
        '[storage bench_local]',
        'type = "filesystem"',
        `path = ${value(this.localDir + '/')}`,
        'fileext = ".vcf"',
        '',
        '[storage bench_server]',
        'type = "carddav"',
        `url = ${value(server.origin + server.bookPath)}`,
        `username = ${value(server.username)}`,
        `password = ${value(server.password)}`,
        '',
      ].join('\n'),
    );
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...isolatedEnv(this.home), XDG_CONFIG_HOME: path.join(this.home, '.config') };
  }

  /** Runs `vdirsyncer discover`, which vdirsyncer requires once before the first sync of a pair. */
  async discover(): Promise<void> {
    const result = await runCommand('vdirsyncer', ['-c', this.config, 'discover', 'bench'], { env: this.env, timeoutMs: this.timeoutMs });
    checkCommand('vdirsyncer discover', result);
  }

  async sync(): Promise<SyncRun> {
    const server = this.state.server;
    const cpuBefore = server.cpuSeconds();
    const result = await runCommand('vdirsyncer', ['-c', this.config, 'sync'], { env: this.env, timeoutMs: this.timeoutMs });
    const cpuAfter = server.cpuSeconds();
    if (result.signal === 'SIGKILL') throw new Error(`vdirsyncer sync timed out after ${this.timeoutMs / 1000} s`);
    checkCommand('vdirsyncer sync', result);
    return { seconds: result.seconds, serverShare: (cpuAfter - cpuBefore) / result.seconds };
  }

  countLocalCards(): number {
    return readdirSync(this.localDir).filter((name) => name.endsWith('.vcf')).length;
  }
}

/**
 * Runs vdirsyncer's initial sync `runs` times, each into an empty folder, then the no-op
 * re-sync `noopRuns` times on the folder of the last one.
 */
export async function measureVdirsyncer(
  state: BookState,
  workDir: string,
  runs: number,
  noopRuns: number,
  timeoutMs: number,
): Promise<VdirsyncerResults> {
  const initial: number[] = [];
  const shares: number[] = [];
  let setup: VdirsyncerSetup | undefined;
  let note: string | undefined;
  // The budget counts the sync runs only, because discovery is setup.
  let syncSeconds = 0;
  for (let run = 1; run <= runs; run++) {
    setup = new VdirsyncerSetup(state, path.join(workDir, `vdirsyncer-${run}`), timeoutMs);
    await setup.discover();
    const result = await setup.sync();
    syncSeconds += result.seconds;
    const files = setup.countLocalCards();
    if (files !== state.n) throw new Error(`${state.server.kind}: vdirsyncer fetched ${files} cards, expected ${state.n}`);
    initial.push(result.seconds);
    shares.push(result.serverShare);
    const share = (result.serverShare * 100).toFixed(1);
    state.log(`${state.server.kind}: vdirsyncer initial sync, run ${run}/${runs}: ${formatSeconds(result.seconds)}, server CPU ${share}% of it`);
    if (run < runs && syncSeconds > state.plan.budgetSeconds) {
      note = `${run} of ${runs} runs, time budget of ${state.plan.budgetSeconds} s used up`;
      break;
    }
    if (run < runs) rmSync(setup.home, { recursive: true, force: true });
  }

  const noop: number[] = [];
  let noopNote: string | undefined;
  const noopStarted = performance.now();
  for (let run = 1; run <= noopRuns && setup; run++) {
    const result = await setup.sync();
    noop.push(result.seconds);
    state.log(`${state.server.kind}: vdirsyncer no-op re-sync, run ${run}/${noopRuns}: ${formatSeconds(result.seconds)}`);
    if (run < noopRuns && (performance.now() - noopStarted) / 1000 > state.plan.budgetSeconds) {
      noopNote = `${run} of ${noopRuns} runs, time budget of ${state.plan.budgetSeconds} s used up`;
      break;
    }
  }
  if (setup) rmSync(setup.home, { recursive: true, force: true });
  return { initial: { values: initial, note }, serverShare: { values: shares, note }, noop: { values: noop, note: noopNote } };
}
