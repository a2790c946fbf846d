/**
 * The paired measurement behind the two scaling targets, which divide a request's time at a large N
 * by the same request's time at a small N. Runs minutes apart also measure how the machine's speed
 * drifted in between (see "How much the runs vary" in docs/benchmarks.md). So here two Cardinal
 * servers, one per size, run at the same time and take turns of a few seconds each.
 */
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

import type { CardSet } from './cards';
import {
  BookState,
  formatSeconds,
  largeDelta,
  Logger,
  measureBulkPut,
  MetricResult,
  multigetRequest,
  RunPlan,
  runUntimed,
  syncDeltaOnce,
  syncLatestOnce,
} from './measurements';
import { CardinalOptions, createServer } from './servers';

/** Medians of the paired measurement: each request at the small and at the large N. */
export interface PairedResults {
  small: number;
  large: number;
  syncSmall: MetricResult;
  syncLarge: MetricResult;
  multigetSmall: MetricResult;
  multigetLarge: MetricResult;
}

/** One server of the pair, with its timed samples in seconds. */
interface Side {
  state: BookState;
  delta: number;
  multiget: () => Promise<number>;
  sync: number[];
  multigets: number[];
}

/** Interval at which a server's CPU time is read while waiting for it to go idle, in milliseconds. */
const IDLE_POLL_MS = 50;
/** Consecutive intervals without CPU time that count as idle. */
const IDLE_POLLS = 2;
/** Maximum wait for a server to go idle, in milliseconds. */
const IDLE_WAIT_MS = 5_000;

/**
 * Runs one turn of one side, the way the per-N runs measure a server. Untimed syncs from the
 * latest token come first. Then `plan.runs` timed runs change 1% of the cards and sync from the
 * previous token. Last come untimed multigets and `plan.runs` timed ones.
 */
async function takeTurn(side: Side, plan: RunPlan): Promise<void> {
  const label = `paired sync after ${side.delta} changes`;
  await runUntimed(plan, () => syncLatestOnce(side.state));
  for (let run = 0; run < plan.runs; run++) side.sync.push(await syncDeltaOnce(side.state, side.delta, label));
  await runUntimed(plan, side.multiget);
  for (let run = 0; run < plan.runs; run++) side.multigets.push(await side.multiget());
}

/**
 * Returns a function that runs a full garbage collection in this process. The client's own
 * garbage from one server's turn (up to plan.warmups + plan.runs multigets of 500 cards) would
 * otherwise be collected during the other server's requests.
 */
function garbageCollector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** Waits until the server used no CPU time for IDLE_POLLS polls in a row, or IDLE_WAIT_MS passed. */
async function waitUntilIdle(state: BookState): Promise<void> {
  const deadline = performance.now() + IDLE_WAIT_MS;
  let quiet = 0;
  let last = state.server.cpuSeconds();
  while (quiet < IDLE_POLLS && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, IDLE_POLL_MS));
    const now = state.server.cpuSeconds();
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}

/**
 * Starts Cardinal with `small` and with `large` cards (uploaded untimed), then runs `rounds`
 * rounds. In a round each server takes a turn (see takeTurn) once the other has gone idle, and
 * which goes first alternates from round to round.
 */
export async function measurePaired(
  small: CardSet,
  large: CardSet,
  rounds: number,
  plan: RunPlan,
  cardinal: CardinalOptions,
  root: string,
  log: Logger,
): Promise<PairedResults> {
  const sides: Side[] = [];
  const servers = ['small', 'large'].map((side) => createServer('cardinal', path.join(root, `paired-${side}`), cardinal));
  try {
    for (const [index, cards] of [small, large].entries()) {
      const n = cards.cards.length;
      const server = servers[index];
      const sideLog: Logger = (message) => log(`paired N=${n} ${message}`);
      await server.start();
      const state = new BookState(server, cards, plan, sideLog);
      sideLog('cardinal: upload, untimed');
      await measureBulkPut(new BookState(server, cards, { ...plan, uploadRuns: 1 }, sideLog));
      await server.warmUp();
      sides.push({ state, delta: largeDelta(n), multiget: multigetRequest(state).once, sync: [], multigets: [] });
    }

    const collectGarbage = garbageCollector();
    const started = performance.now();
    let note: string | undefined;
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? sides : [...sides].reverse();
      for (const side of order) {
        // The other server may still be checkpointing its last edits, and this side should not pay for that.
        for (const other of sides) if (other !== side) await waitUntilIdle(other.state);
        collectGarbage();
        await takeTurn(side, plan);
      }
      const latest = (values: number[]) => values.slice(-plan.runs).map(formatSeconds).join(', ');
      const figures = sides.map((side) => `N=${side.state.n} syncs ${latest(side.sync)}; multigets ${latest(side.multigets)}`);
      log(`paired: round ${round}/${rounds}: ${figures.join('; ')}`);
      if (round < rounds && (performance.now() - started) / 1000 > plan.budgetSeconds) {
        note = `${round} of ${rounds} rounds, time budget of ${plan.budgetSeconds} s used up`;
        break;
      }
    }
    const [smallSide, largeSide] = sides;
    const result = (values: number[]): MetricResult => ({ values, note });
    return {
      small: smallSide.state.n,
      large: largeSide.state.n,
      syncSmall: result(smallSide.sync),
      syncLarge: result(largeSide.sync),
      multigetSmall: result(smallSide.multigets),
      multigetLarge: result(largeSide.multigets),
    };
  } finally {
    for (const server of servers) await server.shutdown();
  }
}
