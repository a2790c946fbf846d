/**
 * The real server on a real SQLite file, killed with SIGKILL at random
 * moments while eight writers create, replace and delete cards and a client
 * syncs. After every kill the file must pass `PRAGMA integrity_check`, and
 * after every restart each card must be in the last state the server
 * acknowledged, or, for a request whose connection was cut, in the state
 * before or after it. Sync tokens must never go backwards, and syncing from
 * any token the server handed out must reach the full listing.
 *
 * CARDINAL_RELIABILITY_LONG=1 raises the kills from 20 to 100, and
 * CARDINAL_RELIABILITY_SEED replays a run. Needs `npm run build` first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { basicAuth, Client, escapeXmlText, parseMultistatus, person, type Reply, XMLNS } from '../robustness/support';
import {
  addUser,
  applySyncDelta,
  type BookSnapshot,
  type CardinalProcess,
  checkDatabase,
  DATABASE_FILE,
  describeSnapshot,
  diffSnapshots,
  listEtags,
  LONG_MODE,
  parseSyncToken,
  type Random,
  reliabilitySeed,
  residentKiB,
  seededRandom,
  startCardinal,
  stopCardinal,
  syncChanges,
} from './support';

const KILLS = LONG_MODE ? 100 : 20;
jest.setTimeout(LONG_MODE ? 1_800_000 : 300_000);

const BOOK = '/dav/addressbooks/alice/contacts/';
const PASSWORD = 'alice-password';
const WRITERS = 8;
/** Each writer owns its cards, so the requests on one card never overlap and the expected state is exact. */
const CARDS_PER_WRITER = 6;
/** Client sync states kept to sync from after each restart. */
const KEPT_SYNC_STATES = 24;

type CardState = { present: false } | { present: true; body: Buffer; etag?: string };

interface ModelCard {
  href: string;
  uid: string;
  /** The last state the server acknowledged, or that a check after a restart found. */
  state: CardState;
  /** Set while a request on the card lost its connection: the states before and after it. */
  inDoubt?: [CardState, CardState];
  writes: number;
}

interface SyncState {
  token: string;
  snapshot: BookSnapshot;
}

interface Counts {
  acknowledged: number;
  rejectedAsExpected: number;
  cut: number;
  syncs: number;
  maxRssKiB: number;
}

describe('SIGKILL during concurrent writes', () => {
  let dataDir: string;
  let server: CardinalProcess | undefined;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cardinal-crash-'));
    await addUser(dataDir, 'alice', PASSWORD);
  });

  afterAll(async () => {
    if (server) await stopCardinal(server, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test(`${KILLS} kills keep every acknowledged write`, async () => {
    const seed = reliabilitySeed('crash test');
    // Separate generators, so the kill moments do not depend on how many syncs ran before them.
    const killMoments = seededRandom(seed);
    const sampling = seededRandom(seed ^ 0x5bd1e995);
    const file = join(dataDir, DATABASE_FILE);
    const problems: string[] = [];
    const counts: Counts = { acknowledged: 0, rejectedAsExpected: 0, cut: 0, syncs: 0, maxRssKiB: 0 };
    const cards: ModelCard[][] = Array.from({ length: WRITERS }, (_, writer) =>
      Array.from({ length: CARDS_PER_WRITER }, (_, index) => ({
        href: `${BOOK}w${writer}-c${index}.vcf`,
        uid: `crash-w${writer}-c${index}`,
        state: { present: false },
        writes: 0,
      })),
    );
    const tokens = new TokenLedger(problems);
    const syncStates: SyncState[] = [];
    const started = Date.now();
    let kills = 0;

    for (let round = 1; round <= KILLS && problems.length === 0; round++) {
      server = await startCardinal(dataDir);
      const client = new Client(server.port, basicAuth('alice', PASSWORD));
      const note = (text: string): number => problems.push(`round ${round}: ${text}`);
      await verify(client, cards, tokens, syncStates, sampling, note, counts);
      if (problems.length > 0) break;

      let killed = false;
      const writers = cards.map((own, writer) =>
        runWriter(client, own, seededRandom(seed ^ (round * 7919 + writer * 104729)), () => killed, note, counts),
      );
      const syncer = runSyncer(client, syncStates, tokens, sampling, () => killed, note, counts);
      await sleep(killMoments.int(80, 900));
      counts.maxRssKiB = Math.max(counts.maxRssKiB, residentKiB(server.pid) ?? 0);
      killed = true;
      const exit = await stopCardinal(server, 'SIGKILL');
      kills += 1;
      if (exit.signal !== 'SIGKILL') note(`the server exited with ${JSON.stringify(exit)} before the kill\n${server.output().slice(-3000)}`);
      await Promise.all([...writers, syncer]);

      const check = checkDatabase(file);
      if (check.integrity !== 'ok') note(`integrity_check after the kill: ${check.integrity}`);
      if (check.foreignKeyViolations !== 0) note(`foreign_key_check after the kill: ${check.foreignKeyViolations} violations`);
    }

    if (problems.length === 0) {
      server = await startCardinal(dataDir);
      const client = new Client(server.port, basicAuth('alice', PASSWORD));
      await verify(client, cards, tokens, syncStates, sampling, (text) => problems.push(`after the last kill: ${text}`), counts);
      const exit = await stopCardinal(server, 'SIGTERM');
      if (exit.code !== 0) problems.push(`SIGTERM after the last check: exit ${JSON.stringify(exit)}`);
      const check = checkDatabase(file);
      if (check.integrity !== 'ok') problems.push(`integrity_check after a clean stop: ${check.integrity}`);
    }
    process.stdout.write(
      `crash test: seed ${seed}, ${kills} kills in ${Math.round((Date.now() - started) / 1000)} s, ` +
        `${counts.acknowledged} writes acknowledged, ${counts.rejectedAsExpected} rejected as expected, ` +
        `${counts.cut} cut by a kill, ${counts.syncs} sync reports, ${tokens.count} tokens, ` +
        `server RSS up to ${Math.round(counts.maxRssKiB / 1024)} MiB\n`,
    );
    expect({ seed, problems }).toEqual({ seed, problems: [] });
    expect(kills).toBe(KILLS);
    expect(counts.acknowledged).toBeGreaterThan(KILLS * 5);
    expect(counts.cut).toBeGreaterThan(0);
  });
});

/**
 * Every sync token the server handed out, by the request that received it.
 * A token may not be older than one whose response had arrived before the
 * request was sent, and one token may not stand for two different states.
 */
class TokenLedger {
  private floor = -1;
  private book: string | undefined;
  private readonly states = new Map<string, string>();

  constructor(private readonly problems: string[]) {}

  get count(): number {
    return this.states.size;
  }

  /** Returns the sequence below which a token received from now on would have gone backwards. */
  current(): number {
    return this.floor;
  }

  /** Records a token received by a request sent when the floor was `floorAtSend`, with the state it names. */
  record(token: string, snapshot: BookSnapshot, floorAtSend: number, source: string): void {
    const { book, seq } = parseSyncToken(token);
    if (this.book !== undefined && book !== this.book) this.problems.push(`${source}: token ${token} names another book than ${this.book}`);
    this.book ??= book;
    if (seq < floorAtSend) this.problems.push(`${source}: token ${token} is older than sequence ${floorAtSend}, received before the request`);
    this.floor = Math.max(this.floor, seq);
    const described = describeSnapshot(snapshot);
    const earlier = this.states.get(token);
    if (earlier !== undefined && earlier !== described) {
      this.problems.push(`${source}: token ${token} was handed out for two states; now, against the earlier one:\n${diffDescribed(described, earlier)}`);
    }
    this.states.set(token, described);
  }
}

/** Builds the bytes of a card's next write. Every write of a card gets new bytes, so a check can tell the old state from the new. */
function cardBody(card: ModelCard, random: Random): Buffer {
  card.writes += 1;
  const large = random.next() < 0.15;
  const filler = 'x'.repeat(large ? random.int(20_000, 120_000) : random.int(10, 2_000));
  return Buffer.from(person(card.uid, `Writer card ${card.uid}`, [`NOTE:write ${card.writes} ${filler}`]));
}

/** A request on one card and the status it must get; the last four must be rejected and change nothing. */
interface Operation {
  kind: 'create' | 'replace' | 'delete' | 'delete-unconditional' | 'stale-replace' | 'create-existing' | 'delete-missing' | 'uid-conflict';
  expected: number;
}

function chooseOperation(card: ModelCard, random: Random): Operation {
  const roll = random.next();
  if (!card.state.present) {
    if (roll < 0.8) return { kind: 'create', expected: 201 };
    if (roll < 0.9) return { kind: 'delete-missing', expected: 404 };
    return { kind: 'uid-conflict', expected: 409 };
  }
  if (roll < 0.5) return { kind: 'replace', expected: 204 };
  if (roll < 0.7) return { kind: 'delete', expected: 204 };
  if (roll < 0.8) return { kind: 'delete-unconditional', expected: 204 };
  if (roll < 0.9) return { kind: 'stale-replace', expected: 412 };
  return { kind: 'create-existing', expected: 412 };
}

/** Creates, replaces and deletes the writer's own cards until the server is killed. */
async function runWriter(
  client: Client,
  own: ModelCard[],
  random: Random,
  killed: () => boolean,
  note: (text: string) => void,
  counts: Counts,
): Promise<void> {
  while (!killed()) {
    const ready = own.filter((card) => card.inDoubt === undefined);
    if (ready.length === 0) return;
    const card = random.pick(ready);
    const operation = chooseOperation(card, random);
    const before = card.state;
    let intended: CardState = before;
    let request: () => Promise<Reply>;
    const etag = before.present ? (before.etag as string) : '';
    switch (operation.kind) {
      case 'create':
      case 'create-existing': {
        const body = cardBody(card, random);
        if (operation.kind === 'create') intended = { present: true, body };
        request = () => client.put(card.href, body, { 'If-None-Match': '*' });
        break;
      }
      case 'replace':
      case 'stale-replace': {
        const body = cardBody(card, random);
        if (operation.kind === 'replace') intended = { present: true, body };
        const condition = operation.kind === 'replace' ? etag : '"not-the-current-etag"';
        request = () => client.put(card.href, body, { 'If-Match': condition });
        break;
      }
      case 'uid-conflict': {
        const other = own.find((candidate) => candidate !== card && candidate.state.present && candidate.inDoubt === undefined);
        if (!other) continue;
        const body = Buffer.from(person(other.uid, 'Duplicate UID'));
        request = () => client.put(card.href, body);
        break;
      }
      case 'delete':
        intended = { present: false };
        request = () => client.delete(card.href, { 'If-Match': etag });
        break;
      case 'delete-unconditional':
        intended = { present: false };
        request = () => client.delete(card.href);
        break;
      case 'delete-missing':
        request = () => client.delete(card.href);
        break;
    }

    let reply: Reply;
    try {
      reply = await request();
    } catch {
      // The connection was cut: the server may or may not have committed the change.
      card.inDoubt = [before, intended];
      counts.cut += 1;
      continue;
    }
    if (reply.status !== operation.expected) {
      note(`${operation.kind} ${card.href}: expected ${operation.expected}, got ${reply.status} ${reply.text.slice(0, 300)}`);
      continue;
    }
    if (intended === before) {
      counts.rejectedAsExpected += 1;
      continue;
    }
    counts.acknowledged += 1;
    if (!intended.present) {
      card.state = intended;
      continue;
    }
    const returned = reply.headers.etag;
    if (typeof returned !== 'string') {
      note(`${operation.kind} ${card.href}: ${reply.status} without an ETag`);
      card.inDoubt = [before, intended];
      continue;
    }
    card.state = { present: true, body: intended.body, etag: returned };
  }
}

/** Syncs from a random earlier token, or from none, until the server is killed, recording each new state. */
async function runSyncer(
  client: Client,
  states: SyncState[],
  tokens: TokenLedger,
  random: Random,
  killed: () => boolean,
  note: (text: string) => void,
  counts: Counts,
): Promise<void> {
  while (!killed()) {
    const from = states.length === 0 || random.next() < 0.25 ? undefined : random.pick(states);
    const floor = tokens.current();
    let result;
    try {
      result = await syncChanges(client, BOOK, from?.token ?? '');
    } catch {
      continue;
    }
    counts.syncs += 1;
    if (result.status !== 207 || result.token === undefined) {
      note(`sync-collection from ${JSON.stringify(from?.token ?? '')}: ${result.status} ${result.text.slice(0, 300)}`);
      return;
    }
    const snapshot = applySyncDelta(from?.snapshot ?? new Map(), result.delta);
    tokens.record(result.token, snapshot, floor, `sync-collection from ${JSON.stringify(from?.token ?? '')}`);
    keepSyncState(states, { token: result.token, snapshot }, random);
  }
}

function keepSyncState(states: SyncState[], state: SyncState, random: Random): void {
  if (states.some((kept) => kept.token === state.token)) return;
  if (states.length >= KEPT_SYNC_STATES) states.splice(random.int(0, states.length - 1), 1);
  states.push(state);
}

function sameState(actual: CardState, expected: CardState): boolean {
  if (!actual.present || !expected.present) return actual.present === expected.present;
  return actual.body.equals(expected.body) && (expected.etag === undefined || actual.etag === expected.etag);
}

function showState(state: CardState): string {
  if (!state.present) return 'absent';
  const text = state.body.toString('utf8');
  return `${state.body.length} bytes (${/NOTE:write \d+/.exec(text)?.[0] ?? 'no NOTE'}), ETag ${state.etag ?? 'not known'}`;
}

/**
 * Checks, with no writer running, that every card is in the state the model
 * expects, that PROPFIND and sync-collection list the same cards, and that
 * every kept sync state reaches the full listing by a sync from its token.
 * Settles the cards whose request was cut to the state found.
 */
async function verify(
  client: Client,
  writers: ModelCard[][],
  tokens: TokenLedger,
  states: SyncState[],
  random: Random,
  note: (text: string) => void,
  counts: Counts,
): Promise<void> {
  const expected: BookSnapshot = new Map();
  for (const card of writers.flat()) {
    const reply = await client.get(card.href);
    if (reply.status !== 200 && reply.status !== 404) {
      note(`GET ${card.href}: ${reply.status} ${reply.text.slice(0, 300)}`);
      continue;
    }
    const etag = reply.headers.etag;
    const actual: CardState = reply.status === 200 ? { present: true, body: reply.body, etag: String(etag) } : { present: false };
    if (card.inDoubt) {
      const [before, after] = card.inDoubt;
      const matchesBefore = sameState(actual, before);
      const matchesAfter = sameState(actual, after);
      if (!matchesBefore && !matchesAfter) {
        note(`${card.href} after a cut request is ${showState(actual)}, neither ${showState(before)} nor ${showState(after)}`);
      }
      if (matchesAfter && !matchesBefore && actual.present && before.present && actual.etag === before.etag) {
        note(`${card.href} has the new bytes of a cut request but still its old ETag ${before.etag}`);
      }
      card.inDoubt = undefined;
      card.state = actual;
    } else if (!sameState(actual, card.state)) {
      note(`${card.href} is ${showState(actual)}, expected ${showState(card.state)}`);
      card.state = actual;
    }
    if (actual.present) expected.set(card.href, actual.etag as string);
  }

  await checkQueryIndex(client, writers.flat(), expected, random, note);

  const listing = await listEtags(client, BOOK);
  if (describeSnapshot(listing) !== describeSnapshot(expected)) {
    note(`PROPFIND Depth 1 differs from what GET found:\n${diffSnapshots(listing, expected)}`);
  }

  const floor = tokens.current();
  const full = await syncChanges(client, BOOK, '');
  counts.syncs += 1;
  if (full.status !== 207 || full.token === undefined) {
    note(`sync-collection without a token: ${full.status} ${full.text.slice(0, 300)}`);
    return;
  }
  const fullSnapshot = applySyncDelta(new Map(), full.delta);
  if (describeSnapshot(fullSnapshot) !== describeSnapshot(expected)) {
    note(`sync-collection without a token differs from what GET found:\n${diffSnapshots(fullSnapshot, expected)}`);
  }
  tokens.record(full.token, fullSnapshot, floor, 'sync-collection without a token');

  for (const state of states) {
    const result = await syncChanges(client, BOOK, state.token);
    counts.syncs += 1;
    if (result.status !== 207 || result.token === undefined) {
      note(`sync-collection from ${state.token}, a token the server handed out: ${result.status} ${result.text.slice(0, 300)}`);
      continue;
    }
    const reached = applySyncDelta(state.snapshot, result.delta);
    if (describeSnapshot(reached) !== describeSnapshot(fullSnapshot)) {
      note(`syncing from ${state.token} reaches another state than the full listing:\n${diffSnapshots(reached, fullSnapshot)}`);
    }
    if (result.token !== full.token) note(`syncing from ${state.token} ends at ${result.token}, the full listing at ${full.token}`);
    tokens.record(result.token, reached, floor, `sync-collection from ${state.token}`);
  }
  if (!states.some((kept) => kept.token === full.token)) {
    states.push({ token: full.token, snapshot: fullSnapshot });
    if (states.length > KEPT_SYNC_STATES) states.shift();
  }
}

function queryBody(propFilters: string[], test: 'anyof' | 'allof'): string {
  return (
    `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/></d:prop>` +
    `<card:filter test="${test}">${propFilters.join('')}</card:filter></card:addressbook-query>`
  );
}

function textFilter(property: string, matchType: string, text: string): string {
  return `<card:prop-filter name="${property}"><card:text-match match-type="${matchType}">${escapeXmlText(text)}</card:text-match></card:prop-filter>`;
}

async function queryHrefs(client: Client, body: string): Promise<string[]> {
  const reply = await client.report(BOOK, body, { Depth: '1' });
  if (reply.status !== 207) throw new Error(`addressbook-query returned ${reply.status}: ${reply.text.slice(0, 300)}`);
  return parseMultistatus(reply.text).responses.map((response) => response.href).sort();
}

/**
 * Checks that the property index the server keeps beside each card agrees
 * with the cards after the kills. A query on the NOTE that every card has
 * must list exactly the present cards. A query on the NOTE of a card's
 * current write must find that card alone.
 */
async function checkQueryIndex(client: Client, cards: ModelCard[], expected: BookSnapshot, random: Random, note: (text: string) => void): Promise<void> {
  const all = await queryHrefs(client, queryBody([textFilter('NOTE', 'starts-with', 'write ')], 'anyof'));
  const present = [...expected.keys()].sort();
  if (all.join('\n') !== present.join('\n')) note(`addressbook-query on NOTE lists\n${all.join('\n')}\ninstead of the present cards\n${present.join('\n')}`);
  const sample = cards.filter((card) => card.state.present);
  for (let i = 0; i < 6 && sample.length > 0; i++) {
    const card = sample.splice(random.int(0, sample.length - 1), 1)[0];
    const state = card.state as Extract<CardState, { present: true }>;
    const written = /NOTE:(write \d+ )/.exec(state.body.toString('utf8'))?.[1] as string;
    const found = await queryHrefs(client, queryBody([textFilter('UID', 'equals', card.uid), textFilter('NOTE', 'starts-with', written)], 'allof'));
    if (found.join('\n') !== card.href) note(`addressbook-query for the NOTE "${written}" of ${card.href} lists [${found.join(', ')}]`);
  }
}

/** Diffs two snapshots written by describeSnapshot. */
function diffDescribed(actual: string, expected: string): string {
  const parse = (text: string): BookSnapshot =>
    new Map(text === '' ? [] : text.split('\n').map((line) => line.split(' ') as [string, string]));
  return diffSnapshots(parse(actual), parse(expected));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
