/**
 * The benchmark command: `node dist/bench/run.js [options]` after `npm run build`.
 * It compares Cardinal with Radicale and Xandikos on 127.0.0.1, each with a fresh store per N.
 * The Markdown report goes to stdout and progress lines to stderr. See docs/benchmarks.md.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { CardSet } from './cards';
import { HttpStatusError, HttpTimeoutError } from './http';
import { killRunningServers } from './process';
import {
  BookState,
  emailNeedle,
  FN_NEEDLE,
  largeDelta,
  measureBulkPut,
  measureMultiget,
  measurePropfind,
  measureQuery,
  measureSyncDelta,
  measureSyncInitial,
  MetricResult,
  RunPlan,
  SMALL_DELTA,
} from './measurements';
import { measurePaired, PairedResults } from './paired';
import { METRIC_IDS, MetricId, renderPaired, renderTables, renderTargets, Results, ServerResults } from './report';
import { CardinalOptions, commitOf, createServer, REPO_ROOT, SERVER_KINDS, ServerKind } from './servers';
import { measureVdirsyncer } from './vdirsyncer';

/** Measurements that --skip accepts. The CPU share comes with vdirsyncer's initial sync. */
const SKIPPABLE: readonly MetricId[] = METRIC_IDS.filter((id) => id !== 'vdirsyncerShare');

const USAGE = `Usage: node dist/bench/run.js [options]

Compares Cardinal with Radicale and Xandikos on 127.0.0.1 and prints a Markdown report.

Options:
  --n LIST               card counts to run, comma-separated (default 1000,10000,100000);
                         none for the paired measurement alone
  --servers LIST         servers to run, from cardinal,radicale,xandikos (default all three)
  --quick                N = 200 and every measurement once; a smoke test
  --runs R               runs of each request measurement (default 5)
  --warmup W             untimed runs before the runs of each request measurement, for every
                         server (default 60; 1 with --quick; 0 for none)
  --warmup-budget SECONDS
                         no further untimed run starts after they took this long (default 10)
  --upload-runs R        runs of the bulk PUT and of vdirsyncer's initial sync (default 3)
  --budget SECONDS       no further run of a measurement starts after its runs took this long (default 120)
  --peer-upload-budget SECONDS
                         time a peer may spend on its upload before its book is seeded on disk (default 120)
  --request-timeout SECONDS
                         longest wait for one response (default 600)
  --vdirsyncer-timeout SECONDS
                         longest wait for one vdirsyncer run (default 1800)
  --skip LIST            measurements to leave out, from ${SKIPPABLE.join(',')}
  --paired SMALL,LARGE   also run Cardinal with SMALL and with LARGE cards at the same time and
                         time their 1% sync and multiget in turns, for the scaling targets
                         (default 1000,100000 when --n has both and Cardinal runs; 20,200 with
                         --quick; none to leave it out)
  --paired-runs R        rounds of the paired measurement, each with --runs timed runs per
                         server (default 4; 1 with --quick)
  --cardinal-root DIR    built checkout of Cardinal to run (default: this repository)
  --cardinal-node-args ARGS
                         extra node arguments for the Cardinal server, space-separated
                         (for example "--cpu-prof --cpu-prof-dir=/tmp/prof")
  --work-dir DIR         parent folder of the servers' stores (default: the system temp folder)
  --keep                 keep the stores and logs after the run
  --json FILE            also write every sample as JSON to FILE
  -h, --help             print this help
`;

export interface BenchOptions {
  sizes: number[];
  servers: ServerKind[];
  plan: RunPlan;
  skip: Set<MetricId>;
  vdirsyncerTimeoutMs: number;
  cardinal: CardinalOptions;
  workDir?: string;
  keep: boolean;
  json?: string;
  quick: boolean;
  /** Sizes of the paired measurement, small then large, or undefined to leave it out. */
  paired?: [number, number];
  pairedRuns: number;
}

class UsageError extends Error {}

function parseList(text: string, name: string): string[] {
  const items = text.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) throw new UsageError(`--${name} needs at least one value`);
  return items;
}

function parseCount(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`invalid --${name}: ${text}; use a whole number, 0 or more`);
  return value;
}

function parsePositive(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`invalid --${name}: ${text}; use a positive number`);
  return value;
}

export function parseOptions(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      servers: { type: 'string' },
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      warmup: { type: 'string' },
      'warmup-budget': { type: 'string' },
      'upload-runs': { type: 'string' },
      budget: { type: 'string' },
      'peer-upload-budget': { type: 'string' },
      'request-timeout': { type: 'string' },
      'vdirsyncer-timeout': { type: 'string' },
      skip: { type: 'string' },
      paired: { type: 'string' },
      'paired-runs': { type: 'string' },
      'cardinal-root': { type: 'string' },
      'cardinal-node-args': { type: 'string' },
      'work-dir': { type: 'string' },
      keep: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;

  const quick = values.quick ?? false;
  let sizes = quick ? [200] : [1_000, 10_000, 100_000];
  if (values.n?.trim() === 'none') sizes = [];
  else if (values.n) sizes = parseList(values.n, 'n').map((item) => Math.round(parsePositive(item, 'n', 0)));
  const servers = values.servers ? parseList(values.servers, 'servers') : [...SERVER_KINDS];
  for (const server of servers) {
    if (!(SERVER_KINDS as readonly string[]).includes(server)) {
      throw new UsageError(`unknown server in --servers: ${server}; use ${SERVER_KINDS.join(', ')}`);
    }
  }
  const skip = new Set<MetricId>();
  for (const item of values.skip ? parseList(values.skip, 'skip') : []) {
    if (!(SKIPPABLE as readonly string[]).includes(item)) throw new UsageError(`unknown measurement in --skip: ${item}; use ${SKIPPABLE.join(', ')}`);
    skip.add(item as MetricId);
  }
  const defaultRuns = quick ? 1 : 5;
  let paired: [number, number] | undefined;
  if (values.paired !== undefined && values.paired.trim() !== 'none') {
    const pair = parseList(values.paired, 'paired').map((item) => Math.round(parsePositive(item, 'paired', 0)));
    if (pair.length !== 2 || pair[0] > pair[1]) throw new UsageError(`invalid --paired: ${values.paired}; use two sizes SMALL,LARGE, with SMALL at most LARGE`);
    paired = [pair[0], pair[1]];
  } else if (values.paired === undefined && servers.includes('cardinal')) {
    if (quick) paired = [20, 200];
    else if (sizes.includes(1_000) && sizes.includes(100_000)) paired = [1_000, 100_000];
  }
  return {
    sizes,
    servers: SERVER_KINDS.filter((kind) => servers.includes(kind)),
    plan: {
      runs: Math.round(parsePositive(values.runs, 'runs', defaultRuns)),
      warmups: parseCount(values.warmup, 'warmup', quick ? 1 : 60),
      warmupSeconds: parsePositive(values['warmup-budget'], 'warmup-budget', 10),
      uploadRuns: Math.round(parsePositive(values['upload-runs'], 'upload-runs', quick ? 1 : 3)),
      budgetSeconds: parsePositive(values.budget, 'budget', 120),
      peerUploadBudgetSeconds: parsePositive(values['peer-upload-budget'], 'peer-upload-budget', 120),
      requestTimeoutMs: parsePositive(values['request-timeout'], 'request-timeout', 600) * 1000,
    },
    skip,
    vdirsyncerTimeoutMs: parsePositive(values['vdirsyncer-timeout'], 'vdirsyncer-timeout', 1800) * 1000,
    cardinal: {
      root: path.resolve(values['cardinal-root'] ?? REPO_ROOT),
      nodeArgs: values['cardinal-node-args']?.split(' ').filter((arg) => arg !== '') ?? [],
    },
    workDir: values['work-dir'],
    keep: values.keep ?? false,
    json: values.json,
    quick,
    paired,
    pairedRuns: Math.round(parsePositive(values['paired-runs'], 'paired-runs', quick ? 1 : 4)),
  };
}

const startedAt = performance.now();

function progress(message: string): void {
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(7);
  process.stderr.write(`[${seconds} s] ${message}\n`);
}

/** Describes the CPU model, cores and memory from /proc, for the record. */
function describeMachine(): string {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown CPU';
  const memory = /^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  const gib = memory ? (Number(memory) / 1024 / 1024).toFixed(1) : '?';
  return `${model}, ${os.cpus().length} cores, ${gib} GiB RAM, Linux ${os.release()}, Node.js ${process.version}`;
}

/** Returns a reason short enough for the table. The progress log keeps the full message. */
function shortReason(error: unknown): string {
  if (error instanceof HttpStatusError) return `failed with HTTP ${error.status}`;
  if (error instanceof HttpTimeoutError) return 'timed out';
  return `failed: ${(error as Error).message.split('\n')[0]}`;
}

async function measureServer(
  kind: ServerKind,
  cards: CardSet,
  options: BenchOptions,
  root: string,
  versions: Map<ServerKind, string>,
): Promise<ServerResults> {
  const n = cards.cards.length;
  const workDir = path.join(root, `${kind}-${n}`);
  const server = createServer(kind, workDir, options.cardinal);
  const results: ServerResults = {};
  const log = (message: string) => progress(`N=${n} ${message}`);
  const state = new BookState(server, cards, options.plan, log);
  const isMeasured = (metric: MetricId) => !options.skip.has(metric);

  async function run(metric: MetricId, measure: () => Promise<MetricResult>): Promise<void> {
    if (!isMeasured(metric)) return;
    try {
      results[metric] = await measure();
    } catch (error) {
      log(`${kind}: ${metric} failed: ${(error as Error).message}`);
      results[metric] = { values: [], skipped: shortReason(error) };
    }
  }

  try {
    if (!versions.has(kind)) versions.set(kind, await server.version());
    log(`${kind}: starting (${versions.get(kind)}) in ${workDir}`);
    await server.start();
    if (isMeasured('put')) {
      await run('put', () => measureBulkPut(state));
    } else if (server.canSeed) {
      await server.seed(cards.cards);
    } else {
      // Cardinal has no seeding path, so its book is filled by an untimed upload.
      await measureBulkPut(new BookState(server, cards, { ...options.plan, uploadRuns: 1 }, log));
    }
    await server.warmUp();
    await run('propfind', () => measurePropfind(state));
    await run('multiget', () => measureMultiget(state));
    await run('syncInitial', () => measureSyncInitial(state));
    const changes = largeDelta(n);
    await run('syncPercent', () => measureSyncDelta(state, changes, `sync-collection after ${changes} changes (1%)`));
    await run('syncTen', () => measureSyncDelta(state, SMALL_DELTA, `sync-collection after ${SMALL_DELTA} changes`));
    await run('queryEmail', () => measureQuery(state, 'EMAIL', emailNeedle(cards.cards)));
    await run('queryFn', () => measureQuery(state, 'FN', FN_NEEDLE));
    if (isMeasured('vdirsyncerInitial') || isMeasured('vdirsyncerNoop')) {
      try {
        const runs = isMeasured('vdirsyncerInitial') ? options.plan.uploadRuns : 1;
        const noopRuns = isMeasured('vdirsyncerNoop') ? options.plan.runs : 0;
        const vdirsyncer = await measureVdirsyncer(state, workDir, runs, noopRuns, options.vdirsyncerTimeoutMs);
        if (isMeasured('vdirsyncerInitial')) {
          results.vdirsyncerInitial = vdirsyncer.initial;
          results.vdirsyncerShare = vdirsyncer.serverShare;
        }
        if (isMeasured('vdirsyncerNoop')) results.vdirsyncerNoop = vdirsyncer.noop;
      } catch (error) {
        log(`${kind}: vdirsyncer failed: ${(error as Error).message}`);
        results.vdirsyncerInitial = { values: [], skipped: shortReason(error) };
      }
    }
    if (isMeasured('peakRss')) {
      const mb = (server.peakRssKib() * 1024) / 1e6;
      results.peakRss = { values: [mb] };
      log(`${kind}: peak RSS ${mb.toFixed(1)} MB`);
    }
  } catch (error) {
    log(`${kind}: stopped early: ${(error as Error).message}\n${server.logTail()}`);
    throw error;
  } finally {
    await server.shutdown();
    if (!options.keep) rmSync(workDir, { recursive: true, force: true });
  }
  return results;
}

export async function runBenchmark(options: BenchOptions, argv: string[]): Promise<string> {
  const loadAtStart = os.loadavg()[0];
  const root = mkdtempSync(path.join(options.workDir ?? os.tmpdir(), 'cardinal-bench-'));
  const results: Results = new Map();
  const versions = new Map<ServerKind, string>();
  let paired: PairedResults | undefined;
  progress(`stores under ${root}`);
  try {
    for (const n of options.sizes) {
      progress(`N=${n}: generating cards`);
      const cards = new CardSet(n);
      const perServer = new Map<ServerKind, ServerResults>();
      results.set(n, perServer);
      for (const kind of options.servers) {
        try {
          perServer.set(kind, await measureServer(kind, cards, options, root, versions));
        } catch (error) {
          perServer.set(kind, {});
          progress(`N=${n} ${kind}: no results: ${(error as Error).message.split('\n')[0]}`);
        }
      }
    }
    if (options.paired) {
      const [small, large] = options.paired;
      progress(`paired: generating ${small} and ${large} cards`);
      try {
        paired = await measurePaired(new CardSet(small), new CardSet(large), options.pairedRuns, options.plan, options.cardinal, root, progress);
      } catch (error) {
        progress(`paired: failed, no results: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  } finally {
    if (!options.keep) rmSync(root, { recursive: true, force: true });
  }

  if (options.json) {
    const plain = Object.fromEntries([...results].map(([n, perServer]) => [n, Object.fromEntries(perServer)]));
    writeFileSync(options.json, JSON.stringify({ argv, results: plain, paired }, null, 2));
  }
  const header = [
    `Command: node dist/bench/run.js ${argv.join(' ')}`.trimEnd(),
    `Commit: ${await commitOf(options.cardinal.root)}${options.cardinal.root === REPO_ROOT ? '' : ` (Cardinal from ${options.cardinal.root})`}`,
    `Machine: ${describeMachine()}`,
    `Servers: ${options.servers.map((kind) => `${kind} ${versions.get(kind) ?? ''}`.trim()).join('; ')}`,
    `Runs: ${options.plan.runs} per request measurement after up to ${options.plan.warmups} untimed ones (at most ${options.plan.warmupSeconds} s of them), ${options.plan.uploadRuns} per upload and initial vdirsyncer sync; medians shown`,
    `Load average (1 min): ${loadAtStart.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end`,
  ];
  if (options.paired) header.push(`Paired: ${options.paired.join(' and ')} cards, ${options.pairedRuns} round${options.pairedRuns === 1 ? '' : 's'} after up to ${options.plan.warmups} untimed ones; medians shown`);
  return [
    ...header.map((line) => `- ${line}`),
    '',
    renderTables(results, options.servers),
    ...(options.paired ? [renderPaired(paired), ''] : []),
    '#### Targets',
    '',
    renderTargets(results, paired),
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (!options) {
    process.stdout.write(USAGE);
    return;
  }
  const report = await runBenchmark(options, argv);
  process.stdout.write(report);
}

if (require.main === module) {
  // A server busy with a long request may ignore SIGTERM, so an interrupted run kills them all.
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.once(name, () => {
      progress(`${name} received; stopping the servers`);
      killRunningServers();
      process.exit(130);
    });
  }
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
}
