/**
 * The measurements, each run against one server's address book. Every measured request also
 * checks its response (status and number of DAV:response elements), so that a server cannot
 * win by returning wrong results fast.
 */
import type { BenchCard, CardSet } from './cards';
import { countResponses, parseSyncToken, runPool } from './http';
import type { BenchServer } from './servers';

/** Concurrent clients of the bulk upload. */
export const UPLOAD_CLIENTS = 8;
/** hrefs in one addressbook-multiget. */
export const MULTIGET_HREFS = 500;
/** Cards changed before the small sync-collection delta. */
export const SMALL_DELTA = 10;
/** Share of the cards changed before the large sync-collection delta. */
export const LARGE_DELTA_SHARE = 0.01;

/** Returns the number of cards changed before the large sync-collection delta: 1% of `n`, at least one. */
export function largeDelta(n: number): number {
  return Math.max(1, Math.round(n * LARGE_DELTA_SHARE));
}

/** The FN text-match needle: a family name of the German locale, with a non-ASCII letter. */
export const FN_NEEDLE = 'Müller';
/** First candidate stride through the card indices when picking cards to change (a prime). */
const EDIT_STRIDE = 7919;

const XML = 'application/xml; charset=utf-8';
const VCARD = 'text/vcard; charset=utf-8';

export interface Logger {
  (message: string): void;
}

/** Outcome of one measurement: its samples, and a remark for the table when a run differed from the plan. */
export interface MetricResult {
  /** One value per run: seconds, cards per second, a share, or MB, as the metric defines. */
  values: number[];
  note?: string;
  /** Set when the measurement did not run, with the reason. */
  skipped?: string;
}

export interface RunPlan {
  /** Runs of each request measurement. */
  runs: number;
  /**
   * Untimed runs before the runs of each request measurement, for every server alike, so that the
   * median describes a server that has been running, not one that has just started.
   */
  warmups: number;
  /** No further untimed run starts after they have taken this long, in seconds. */
  warmupSeconds: number;
  /** Runs of the bulk upload and of vdirsyncer's initial sync. */
  uploadRuns: number;
  /** No further run of a measurement starts after its runs have taken this long, in seconds. */
  budgetSeconds: number;
  /** Maximum time of a peer's upload before it stops and the book is seeded instead, in seconds. */
  peerUploadBudgetSeconds: number;
  /** Maximum wait for one response, in milliseconds. */
  requestTimeoutMs: number;
}

/** State of one server's main address book while it is measured. */
export class BookState {
  /** Sync token from the latest sync-collection report. */
  syncToken?: string;
  private nextEdit = 0;
  private readonly edits = new Map<number, number>();
  /** Coprime to N, so that N consecutive picks visit every card once. */
  private readonly stride: number;

  constructor(
    readonly server: BenchServer,
    readonly cards: CardSet,
    readonly plan: RunPlan,
    readonly log: Logger,
  ) {
    let stride = EDIT_STRIDE;
    while (greatestCommonDivisor(stride, this.n) !== 1) stride++;
    this.stride = stride;
  }

  get n(): number {
    return this.cards.cards.length;
  }

  href(card: BenchCard, bookPath = this.server.bookPath): string {
    return bookPath + encodeURIComponent(card.name);
  }

  /** Changes `count` cards not changed before (until all were), as a client edit would. */
  async editCards(count: number): Promise<void> {
    const indices: number[] = [];
    for (let i = 0; i < count; i++) indices.push((this.nextEdit++ * this.stride) % this.n);
    await runPool(indices, UPLOAD_CLIENTS, async (index) => {
      const edit = (this.edits.get(index) ?? 0) + 1;
      this.edits.set(index, edit);
      await this.server.client.expect('PUT', this.href(this.cards.cards[index]), [200, 201, 204], {
        headers: { 'Content-Type': VCARD },
        body: this.cards.edited(index, edit),
        timeoutMs: this.plan.requestTimeoutMs,
      });
    });
  }
}

function greatestCommonDivisor(a: number, b: number): number {
  return b === 0 ? a : greatestCommonDivisor(b, a % b);
}

function elapsedSeconds(started: number): number {
  return (performance.now() - started) / 1000;
}

/**
 * Runs `request` up to plan.warmups times, untimed, and starts no further run once they have
 * taken plan.warmupSeconds. `afterRun` gets the number (from 1) and the value of each run.
 */
export async function runUntimed<T>(plan: RunPlan, request: () => Promise<T>, afterRun?: (run: number, value: T) => void): Promise<void> {
  const started = performance.now();
  for (let run = 1; run <= plan.warmups; run++) {
    const value = await request();
    afterRun?.(run, value);
    if (elapsedSeconds(started) > plan.warmupSeconds) return;
  }
}

/**
 * Runs `warmUp` (by default `once`) up to state.plan.warmups times, untimed,
 * and then `once` up to `runs` times, and returns the values of the later
 * runs. Neither kind of run starts after the runs of its kind so far have taken
 * their time budget, so a slow server gets fewer runs, and the note records that.
 */
export async function repeat(
  label: string,
  state: BookState,
  runs: number,
  once: (run: number) => Promise<number>,
  format: (value: number) => string,
  warmUp: () => Promise<unknown> = () => once(0),
): Promise<MetricResult> {
  await runUntimed(state.plan, warmUp, (run, value) => {
    const suffix = typeof value === 'number' ? `: ${format(value)}` : '';
    state.log(`${state.server.kind}: ${label}, untimed run ${run}/${state.plan.warmups}${suffix}`);
  });
  const values: number[] = [];
  const started = performance.now();
  for (let run = 1; run <= runs; run++) {
    const value = await once(run);
    values.push(value);
    state.log(`${state.server.kind}: ${label}, run ${run}/${runs}: ${format(value)}`);
    if (run < runs && elapsedSeconds(started) > state.plan.budgetSeconds) {
      return { values, note: `${run} of ${runs} runs, time budget of ${state.plan.budgetSeconds} s used up` };
    }
  }
  return { values };
}

/** Times one request, checks its status, and returns the seconds and the body. */
async function timedRequest(
  state: BookState,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ seconds: number; body: Buffer }> {
  const started = performance.now();
  const response = await state.server.client.expect(method, path, [207], {
    headers: { 'Content-Type': XML, ...headers },
    body,
    timeoutMs: state.plan.requestTimeoutMs,
  });
  return { seconds: elapsedSeconds(started), body: response.body };
}

function checkCount(request: string, server: BenchServer, actual: number, expected: number, atLeast = false): void {
  const ok = atLeast ? actual >= expected : actual === expected;
  if (!ok) {
    throw new Error(`${server.kind}: ${request} returned ${actual} responses, expected ${atLeast ? 'at least ' : ''}${expected}`);
  }
}

/** Uploads the cards with 8 concurrent clients, starting no new PUT after `deadline`. */
async function upload(state: BookState, bookPath: string, deadline: number): Promise<{ completed: number; seconds: number }> {
  const started = performance.now();
  const completed = await runPool(
    state.cards.cards,
    UPLOAD_CLIENTS,
    async (card) => {
      await state.server.client.expect('PUT', state.href(card, bookPath), [201, 204], {
        headers: { 'Content-Type': VCARD, 'If-None-Match': '*' },
        body: card.text,
        timeoutMs: state.plan.requestTimeoutMs,
      });
    },
    deadline,
  );
  return { completed, seconds: elapsedSeconds(started) };
}

/**
 * Bulk PUT into an empty book, in cards per second. The first run fills the main book. A
 * peer whose first run exceeds the upload budget keeps its partial rate, its main book is
 * then seeded on disk, and the note records both. Later runs go into new books that are
 * removed afterwards, so that every run starts empty.
 */
export async function measureBulkPut(state: BookState): Promise<MetricResult> {
  const { server, plan, n } = state;
  const budget = server.canSeed ? plan.peerUploadBudgetSeconds : Infinity;
  const values: number[] = [];
  const started = performance.now();
  for (let run = 1; run <= plan.uploadRuns; run++) {
    const bookPath = run === 1 ? server.bookPath : await server.createBook(`bulk-${run}`);
    const { completed, seconds } = await upload(state, bookPath, performance.now() + budget * 1000);
    const rate = completed / seconds;
    values.push(rate);
    state.log(`${server.kind}: bulk PUT, run ${run}/${plan.uploadRuns}: ${completed} of ${n} cards in ${seconds.toFixed(1)} s (${rate.toFixed(0)} cards/s)`);
    if (completed < n) {
      if (run === 1) {
        state.log(`${server.kind}: upload budget of ${budget} s used up; seeding the storage folder with all ${n} cards`);
        await server.seed(state.cards.cards);
      } else await deleteBook(state, bookPath);
      const counts = `${completed.toLocaleString('en-US')} of ${n.toLocaleString('en-US')}`;
      return { values, note: `${counts} cards uploaded in the ${budget} s budget; book seeded on disk` };
    }
    if (run > 1) await deleteBook(state, bookPath);
    if (run < plan.uploadRuns && elapsedSeconds(started) > plan.budgetSeconds) {
      return { values, note: `${run} of ${plan.uploadRuns} runs, time budget of ${plan.budgetSeconds} s used up` };
    }
  }
  return { values };
}

async function deleteBook(state: BookState, bookPath: string): Promise<void> {
  try {
    await state.server.deleteBook(bookPath);
  } catch (error) {
    // A book left behind costs disk space only; the measurements use the main book.
    state.log(`${state.server.kind}: could not remove ${bookPath} after the upload: ${(error as Error).message.split('\n')[0]}`);
  }
}

const PROPFIND_GETETAG = '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>';

/** PROPFIND Depth 1 of the book with DAV:getetag, in seconds. */
export async function measurePropfind(state: BookState): Promise<MetricResult> {
  return repeat('PROPFIND Depth 1', state, state.plan.runs, async () => {
    const { seconds, body } = await timedRequest(state, 'PROPFIND', state.server.bookPath, { Depth: '1' }, PROPFIND_GETETAG);
    checkCount('PROPFIND Depth 1', state.server, countResponses(body), state.n, true);
    return seconds;
  }, formatSeconds);
}

/** Cards of the multiget: `count` of them spread evenly over the book. */
export function multigetSample(cards: readonly BenchCard[], count: number): BenchCard[] {
  const size = Math.min(count, cards.length);
  return Array.from({ length: size }, (_, i) => cards[Math.floor((i * cards.length) / size)]);
}

/**
 * Returns the number of hrefs and a function that times one addressbook-multiget of up to 500
 * hrefs spread over the book (getetag and address-data) and checks that every card came back.
 */
export function multigetRequest(state: BookState): { hrefs: number; once: () => Promise<number> } {
  const sample = multigetSample(state.cards.cards, MULTIGET_HREFS);
  const body =
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">' +
    '<D:prop><D:getetag/><C:address-data/></D:prop>' +
    sample.map((card) => `<D:href>${state.href(card)}</D:href>`).join('') +
    '</C:addressbook-multiget>';
  const once = async () => {
    const response = await timedRequest(state, 'REPORT', state.server.bookPath, { Depth: '0' }, body);
    checkCount('addressbook-multiget', state.server, countResponses(response.body), sample.length);
    const missing = sample.find((card) => !response.body.includes(card.uid));
    if (missing) throw new Error(`${state.server.kind}: addressbook-multiget did not return the card ${missing.uid}`);
    return response.seconds;
  };
  return { hrefs: sample.length, once };
}

/** addressbook-multiget of 500 hrefs with getetag and address-data, in seconds. */
export async function measureMultiget(state: BookState): Promise<MetricResult> {
  const { hrefs, once } = multigetRequest(state);
  const result = await repeat(`multiget of ${hrefs}`, state, state.plan.runs, once, formatSeconds);
  if (hrefs < MULTIGET_HREFS) result.note = `${hrefs} hrefs, the whole book`;
  return result;
}

/** Returns the sync-collection request the benchmark sends: getetag from `token`, or from the start without one. */
export function syncBody(token: string | undefined): string {
  const tokenElement = token === undefined ? '<D:sync-token/>' : `<D:sync-token>${escapeXml(token)}</D:sync-token>`;
  return (
    '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">' +
    `${tokenElement}<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>`
  );
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Runs one sync-collection report, keeps its new token, and returns seconds and response count. */
async function syncOnce(state: BookState, token: string | undefined): Promise<{ seconds: number; responses: number }> {
  // RFC 6578 section 3.2 defines sync-collection with Depth 0 only.
  const { seconds, body } = await timedRequest(state, 'REPORT', state.server.bookPath, { Depth: '0' }, syncBody(token));
  const next = parseSyncToken(body);
  if (next === undefined) throw new Error(`${state.server.kind}: sync-collection returned no sync-token`);
  state.syncToken = next;
  return { seconds, responses: countResponses(body) };
}

/** sync-collection with an empty token (a client's first sync), getetag only, in seconds. */
export async function measureSyncInitial(state: BookState): Promise<MetricResult> {
  return repeat('sync-collection, initial', state, state.plan.runs, async () => {
    const { seconds, responses } = await syncOnce(state, undefined);
    checkCount('initial sync-collection', state.server, responses, state.n, true);
    return seconds;
  }, formatSeconds);
}

/**
 * Changes `changes` cards (untimed), then times one sync-collection from the previous token and
 * checks that it lists at least those changes. Returns seconds.
 */
export async function syncDeltaOnce(state: BookState, changes: number, label: string): Promise<number> {
  if (state.syncToken === undefined) await syncOnce(state, undefined);
  await state.editCards(changes);
  const { seconds, responses } = await syncOnce(state, state.syncToken);
  checkCount(label, state.server, responses, changes, true);
  return seconds;
}

/** Times one sync-collection from the latest token, as an untimed warm-up run. Returns seconds. */
export async function syncLatestOnce(state: BookState): Promise<number> {
  return (await syncOnce(state, state.syncToken)).seconds;
}

/**
 * sync-collection from the previous token after `changes` cards were changed, in seconds.
 * The edits are untimed, and each run changes cards that earlier runs left alone.
 */
export async function measureSyncDelta(state: BookState, changes: number, label: string): Promise<MetricResult> {
  if (state.syncToken === undefined) await syncOnce(state, undefined);
  return repeat(
    label,
    state,
    state.plan.runs,
    () => syncDeltaOnce(state, changes, label),
    formatSeconds,
    // An untimed run syncs from the latest token without changing cards first.
    () => syncLatestOnce(state),
  );
}

/** Cards whose FN or EMAIL contains the needle, compared without case. */
function expectedMatches(cards: readonly BenchCard[], property: 'EMAIL' | 'FN', needle: string): number {
  const folded = needle.toLowerCase();
  return cards.filter((card) =>
    property === 'FN' ? card.fn.toLowerCase().includes(folded) : card.emails.some((email) => email.toLowerCase().includes(folded)),
  ).length;
}

/** Returns the EMAIL needle: the first address of the middle card, which no other card contains. */
export function emailNeedle(cards: readonly BenchCard[]): string {
  return cards[Math.floor(cards.length / 2)].emails[0];
}

/** addressbook-query with one text-match (contains, i;unicode-casemap), getetag and address-data, in seconds. */
export async function measureQuery(state: BookState, property: 'EMAIL' | 'FN', needle: string): Promise<MetricResult> {
  const body =
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">' +
    '<D:prop><D:getetag/><C:address-data/></D:prop>' +
    `<C:filter><C:prop-filter name="${property}">` +
    `<C:text-match collation="i;unicode-casemap" match-type="contains">${escapeXml(needle)}</C:text-match>` +
    '</C:prop-filter></C:filter></C:addressbook-query>';
  const expected = expectedMatches(state.cards.cards, property, needle);
  let matched = 0;
  const result = await repeat(`addressbook-query ${property}`, state, state.plan.runs, async () => {
    const response = await timedRequest(state, 'REPORT', state.server.bookPath, { Depth: '1' }, body);
    matched = countResponses(response.body);
    return response.seconds;
  }, formatSeconds);
  if (matched !== expected) {
    result.note = `${matched} matches, expected ${expected}`;
    state.log(`${state.server.kind}: addressbook-query ${property} contains "${needle}" returned ${matched} matches, expected ${expected}`);
  }
  return result;
}

export function formatSeconds(seconds: number): string {
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}
