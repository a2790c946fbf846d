/**
 * Property-based tests and a fuzz run over the vCard reader and every XML
 * request body the server takes. Inputs are generated in-process: vCards
 * built from real property names with mutations, truncations and random
 * bytes, jCards, and XML trees from the DAV and CardDAV vocabulary with
 * mutations. No input may throw out of the reader, get a 5xx or hang, every
 * rejection is a DAV:error naming its condition, and every card the server
 * accepts reads back and parses again.
 *
 * The default run uses fixed seeds. CARDINAL_RELIABILITY_LONG=1 runs many
 * more cases from fresh seeds, and CARDINAL_RELIABILITY_SEED replays one.
 */
import fc from 'fast-check';
import { startTestApp, type TestApp } from '../helpers/app';
import {
  carddav,
  Client,
  dav,
  parseMultistatus,
  parseXml,
  person,
  portOf,
  readWholeBook,
  type Reply,
} from '../robustness/support';
import { ContentLineError, foldLine, formatContentLine, parseContentLine, unfoldBytes } from '../../vcard/contentline';
import { computeEtag, prepareCard } from '../../vcard/pipeline';
import { LONG_MODE, propertySeed } from './support';

jest.setTimeout(LONG_MODE ? 3_600_000 : 120_000);

/** Runs of each property: the default run is sized for CI, the long run for an unattended hour. */
const RUNS = LONG_MODE
  ? { cards: 200_000, lines: 200_000, puts: 10_000, xml: 20_000 }
  : { cards: 3_000, lines: 3_000, puts: 400, xml: 700 };
/** Bound for one generated request, so a hang fails the run instead of the whole test timing out. */
const CASE_TIMEOUT_MS = 10_000;
const MAX_CARD = 16 * 1024;

const BOOK = '/dav/addressbooks/alice/contacts/';
const KEPT_CARD = `${BOOK}kept.vcf`;
const BOB_BOOK = '/dav/addressbooks/bob/contacts/';
const BOB_CARD = `${BOB_BOOK}secret.vcf`;
const CARDINAL_ERROR = '{urn:x-cardinal:ns}error';
const CARDINAL_DESCRIPTION = '{urn:x-cardinal:ns}description';

/** Runs a property with the seed and counts of this file; prints the seed so a failure can be replayed. */
async function check<T>(name: string, fixedSeed: number, numRuns: number, property: fc.IAsyncProperty<T> | fc.IProperty<T>): Promise<void> {
  const seed = propertySeed(name, fixedSeed);
  await fc.assert(property, { seed, numRuns, plugins: [fc.timeout(CASE_TIMEOUT_MS)] });
}

/** Counts outcomes by a label and prints them after a run, for the reliability figures. */
class Tally {
  private readonly counts = new Map<string, number>();

  add(label: string): void {
    this.counts.set(label, (this.counts.get(label) ?? 0) + 1);
  }

  print(title: string): void {
    const rows = [...this.counts].sort((a, b) => b[1] - a[1]).map(([label, count]) => `  ${count}\t${label}`);
    process.stdout.write(`${title}\n${rows.join('\n')}\n`);
  }
}

/**
 * Checks that a reply is an application/xml DAV:error and returns the names
 * of its condition elements, CARDINAL_ERROR when it names none.
 */
function errorConditions(reply: Reply, request: string): string[] {
  const excerpt = reply.text.slice(0, 300);
  expect({ request, status: reply.status, contentType: reply.headers['content-type'], excerpt }).toEqual({
    request,
    status: reply.status,
    contentType: expect.stringMatching(/^application\/xml\b/),
    excerpt,
  });
  const root = parseXml(reply.text);
  expect({ request, root: root.name }).toEqual({ request, root: dav('error') });
  return root.children.map((c) => c.name).filter((name) => name !== CARDINAL_DESCRIPTION);
}

// ---------------------------------------------------------------------------
// vCard generators

const PROPERTY_NAMES = [
  'FN', 'N', 'UID', 'EMAIL', 'TEL', 'ADR', 'ORG', 'TITLE', 'NOTE', 'PHOTO', 'BDAY', 'CATEGORIES', 'URL', 'NICKNAME',
  'KIND', 'MEMBER', 'REV', 'GEO', 'LABEL', 'X-ABLabel', 'item1.EMAIL', 'item1.X-ABLABEL', 'x-custom', 'fn', 'tel',
  'BEGIN', 'END', 'VERSION', 'X-CRM-ACCOUNT', 'X-CRM-LEAD-STATE', 'X-CRM-LEAD-SOURCE', 'X-CRM-CASE',
];

const PARAMETERS = [
  'TYPE=work', 'TYPE=home,cell', 'TYPE="work,voice"', 'PREF=1', 'CELL', 'ENCODING=QUOTED-PRINTABLE', 'CHARSET=UTF-8',
  'CHARSET=ISO-8859-1', 'CHARSET=bogus-charset', 'ENCODING=b', 'ENCODING=BASE64', 'VALUE=uri', 'VALUE=text',
  'X-P="a;b:c"', "X-Q=^n^^^'", 'LANGUAGE=de', 'LABEL="1 Main St"', 'A=', 'TYPE',
];
const BROKEN_PARAMETERS = ['"', '=B', 'A B=1', ''];

const TRICKY_VALUES = [
  '', ' ', '\\', '\\n', '\\,', ';;;;', 'Lovelace;Ada;;;', 'a\\;b', '=0D=0A', '=C3=A9', '=E9', '=', '=\r\n', '=\r\n=41',
  '<x>&amp;</x>', ']]>', '\u0000', '\u0001', '\uFEFF', '\uFFFE', '\u2028', 'VCARD', 'urn:uuid:00000000-0000-0000-0000-000000000000',
  'data:image/jpeg;base64,AAAA', 'mailto:ada@example.com', 'open', 'disqualified', 'org', 'group',
];

/** Property values; most have no line break, because a break inside a value usually makes the rest of it a broken line. */
const value = fc.oneof(
  { weight: 12, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).map((v) => v.replace(/[\r\n]/g, ' ')) },
  { weight: 8, arbitrary: fc.constantFrom(...TRICKY_VALUES) },
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((v) => v.replace(/[\r\n]/g, ' ')) },
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 60, maxLength: 300 }).map((v) => v.replace(/[\r\n]/g, ' ')) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
);

const contentLine = fc
  .record({
    name: fc.oneof({ weight: 40, arbitrary: fc.constantFrom(...PROPERTY_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }),
    params: fc.array(
      fc.oneof(
        { weight: 40, arbitrary: fc.constantFrom(...PARAMETERS) },
        { weight: 1, arbitrary: fc.constantFrom(...BROKEN_PARAMETERS) },
        { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
      ),
      { maxLength: 3 },
    ),
    value,
    separator: fc.oneof({ weight: 40, arbitrary: fc.constant(':') }, { weight: 1, arbitrary: fc.constantFrom(';', '') }),
  })
  .map(({ name, params, value: text, separator }) => `${name}${params.map((p) => `;${p}`).join('')}${separator}${text}`);

const structuredCard = fc
  .record({
    version: fc.oneof({ weight: 12, arbitrary: fc.constantFrom('3.0', '4.0') }, { weight: 1, arbitrary: fc.constantFrom('2.1', '5.0', '', ' 4.0 ', '4.0\\,3.0') }),
    uid: fc.option(fc.oneof({ weight: 8, arbitrary: fc.uuid() }, { weight: 1, arbitrary: fc.constantFrom('dup-1', 'dup-2', ' ', '') }), { nil: undefined }),
    fn: fc.option(value, { nil: undefined, freq: 12 }),
    lines: fc.array(contentLine, { maxLength: 8 }),
    eol: fc.constantFrom('\r\n', '\r\n', '\n', '\r'),
    bom: fc.boolean(),
    folds: fc.array(fc.nat(), { maxLength: 3 }),
  })
  .map(({ version, uid, fn, lines, eol, bom, folds }) => {
    const all = ['BEGIN:VCARD', `VERSION:${version}`];
    if (uid !== undefined) all.push(`UID:${uid}`);
    if (fn !== undefined) all.push(`FN:${fn}`);
    all.push(...lines, 'END:VCARD');
    let bytes = Buffer.from(all.join(eol) + eol);
    // Folds at byte offsets, so some split a UTF-8 sequence as careless writers do.
    for (const at of folds) {
      const offset = at % bytes.length;
      bytes = Buffer.concat([bytes.subarray(0, offset), Buffer.from('\r\n '), bytes.subarray(offset)]);
    }
    return bom ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]) : bytes;
  });

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; at: number; length: number };

const SNIPPETS = ['\r\n', '\n ', ':', ';', '"', '=', '\\', '\u0000', 'END:VCARD\r\n', 'BEGIN:VCARD\r\n', '<', '&', ']]>', '\uFFFF'].map((s) => Buffer.from(s));

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.oneof(fc.constantFrom(...SNIPPETS), fc.uint8Array({ minLength: 1, maxLength: 8 })),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 80 }) }),
);

/** Applies byte-level mutations; positions wrap around the current length. */
function mutate(input: Buffer, mutations: Mutation[]): Buffer {
  let bytes = input;
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    switch (m.kind) {
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'flip':
        bytes = Buffer.from(bytes);
        bytes[at] ^= 1 << m.bit;
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
        break;
      case 'duplicate':
        bytes = Buffer.concat([bytes.subarray(0, at + m.length), bytes.subarray(at)]);
        break;
    }
  }
  return bytes;
}

const cardBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 5, arbitrary: structuredCard },
  { weight: 3, arbitrary: fc.tuple(structuredCard, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([card, ms]) => mutate(card, ms)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(person('cut', 'Ada Lovelace', ['EMAIL:ada@example.com'])), fc.nat()).map(([card, at]) => Buffer.from(card.slice(0, at % card.length))) },
);

const jcardBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record({
      version: fc.constantFrom('4.0', '4.0', '3.0', 4),
      fn: fc.option(value, { nil: undefined, freq: 6 }),
      uid: fc.option(fc.uuid(), { nil: undefined }),
      extra: fc.array(fc.tuple(fc.constantFrom('email', 'tel', 'note', 'x-custom', 'adr', 'n', 'bday', 'BEGIN', ''), fc.jsonValue({ maxDepth: 2 })), { maxLength: 4 }),
    })
    .map(({ version, fn, uid, extra }) => {
      const properties: unknown[] = [['version', {}, 'text', version]];
      if (fn !== undefined) properties.push(['fn', {}, 'text', fn]);
      if (uid !== undefined) properties.push(['uid', {}, 'uri', `urn:uuid:${uid}`]);
      for (const [name, json] of extra) properties.push([name, {}, 'text', json]);
      return Buffer.from(JSON.stringify(['vcard', properties]));
    }),
  fc.jsonValue({ maxDepth: 3 }).map((json) => Buffer.from(JSON.stringify(json))),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
);

// ---------------------------------------------------------------------------
// In-process properties of the vCard reader

describe('vCard reader properties', () => {
  test('prepareCard accepts or rejects every input', async () => {
    const tally = new Tally();
    await check(
      'prepareCard',
      20_240_601,
      RUNS.cards,
      fc.property(cardBytes, (input) => {
        const result = prepareCard(input);
        if (!result.ok) {
          tally.add(`rejected ${result.condition}`);
          expect(['valid-address-data', 'supported-address-data']).toContain(result.condition);
          expect(result.message).toMatch(/\S/);
          return;
        }
        tally.add(result.repaired ? 'accepted after repair' : 'accepted unchanged');
        expect(result.etag).toBe(computeEtag(result.data));
        if (!result.repaired) expect(result.data.equals(input)).toBe(true);
        // What is stored must be read back as the same card without another repair.
        const again = prepareCard(result.data);
        expect(again).toMatchObject({ ok: true, repaired: false, uid: result.uid, version: result.version, etag: result.etag });
        expect(again.ok && again.properties).toEqual(result.properties);
      }),
    );
    tally.print('prepareCard outcomes');
  });

  test('content lines survive format and parse', async () => {
    await check(
      'content line round trip',
      20_240_602,
      RUNS.lines,
      fc.property(contentLine, (line) => {
        let parsed;
        try {
          parsed = parseContentLine(line);
        } catch (error) {
          expect(error).toBeInstanceOf(ContentLineError);
          return;
        }
        expect(parseContentLine(formatContentLine(parsed))).toEqual(parsed);
      }),
    );
  });

  test('folding and unfolding restore a line', async () => {
    await check(
      'fold round trip',
      20_240_603,
      RUNS.lines,
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }).map((s) => s.replace(/[\r\n]/g, '')), (line) => {
        const folded = foldLine(line);
        for (const physical of folded.split('\r\n')) expect(Buffer.byteLength(physical)).toBeLessThanOrEqual(75);
        expect(unfoldBytes(Buffer.from(folded)).toString('utf8')).toBe(line);
      }),
    );
  });
});

// ---------------------------------------------------------------------------
// Requests against the server

let app: TestApp;
let alice: Client;
let bob: Client;
const KEPT = person('kept', 'Kept Card', ['EMAIL:kept@example.com']);
const BOB_SECRET = person('bob-secret', 'Bob Secret');

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: MAX_CARD, maxXmlBody: 1024 * 1024 });
  await app.addUser('alice');
  await app.addUser('bob');
  alice = new Client(portOf(app), app.auth('alice'));
  bob = new Client(portOf(app), app.auth('bob'));
  for (const [client, href, card] of [[alice, KEPT_CARD, KEPT], [bob, BOB_CARD, BOB_SECRET]] as const) {
    const reply = await client.put(href, card);
    if (reply.status !== 201) throw new Error(`PUT ${href} returned ${reply.status}: ${reply.text}`);
  }
});

afterAll(() => app?.close());

/** Checks that the two cards stored before a run are unchanged. */
async function expectSeededCardsKept(): Promise<void> {
  expect((await alice.get(KEPT_CARD)).text).toBe(KEPT);
  expect((await bob.get(BOB_CARD)).text).toBe(BOB_SECRET);
}

const VCARD_TYPES = ['text/vcard', 'text/vcard; charset=utf-8', 'text/x-vcard', 'text/directory', 'text/vcard; version=4.0', ''];
const OTHER_TYPES = ['application/octet-stream', 'text/plain', 'application/xml', 'text/vcard+xml', 'multipart/form-data; boundary=x'];

const putRequest = fc.oneof(
  { weight: 8, arbitrary: fc.record({ contentType: fc.constantFrom(...VCARD_TYPES), body: cardBytes }) },
  { weight: 8, arbitrary: fc.record({ contentType: fc.constantFrom(...VCARD_TYPES), body: structuredCard }) },
  { weight: 1, arbitrary: fc.record({ contentType: fc.constantFrom(...OTHER_TYPES), body: cardBytes }) },
  { weight: 2, arbitrary: fc.record({ contentType: fc.constantFrom('application/vcard+json', 'application/vcard+json; charset=utf-8'), body: jcardBytes }) },
  {
    weight: 1,
    arbitrary: fc.record({
      contentType: fc.constant('text/vcard'),
      body: fc.nat({ max: 3 * MAX_CARD }).map((size) => Buffer.from(person('large', 'Large Card', [`NOTE:${'n'.repeat(size)}`]))),
    }),
  },
);

const PUT_CONDITIONS: Record<number, string[]> = {
  403: [carddav('valid-address-data'), carddav('supported-address-data'), carddav('max-resource-size'), '{urn:x-cardinal:ns}no-change-to-disqualified-lead'],
  409: [carddav('no-uid-conflict'), '{urn:x-cardinal:ns}no-linked-contacts'],
  412: [CARDINAL_ERROR],
};

/** An index into the cards stored so far for a PUT that replaces one, or null for a new card. */
const reuseIndex = fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() });

describe('PUT fuzz', () => {
  test('generated cards stored or rejected', async () => {
    const tally = new Tally();
    let count = 0;
    /** Bytes of every card this run stored, by href, as GET returned them. */
    const stored = new Map<string, Buffer>();
    await check(
      'PUT fuzz',
      20_240_604,
      RUNS.puts,
      fc.asyncProperty(putRequest, fc.constantFrom(undefined, undefined, undefined, undefined, '*'), reuseIndex, async ({ contentType, body }, ifNoneMatch, reuse) => {
        count += 1;
        const earlier = [...stored.keys()];
        const href = reuse !== null && earlier.length > 0 ? earlier[reuse % earlier.length] : `${BOOK}fuzz-${count}.vcf`;
        const headers: Record<string, string> = contentType === '' ? {} : { 'Content-Type': contentType };
        if (ifNoneMatch !== undefined) headers['If-None-Match'] = ifNoneMatch;
        const reply = await alice.request('PUT', href, { headers, body });
        if (reply.status === 201 || reply.status === 204) {
          tally.add(`${reply.status}${reply.headers.etag === undefined ? ' without ETag (repaired)' : ''}`);
          expect({ href, status: reply.status }).toEqual({ href, status: stored.has(href) ? 204 : 201 });
          stored.set(href, await expectStoredCardReadable(href, body, reply));
          return;
        }
        const conditions = errorConditions(reply, `PUT ${contentType}`);
        tally.add(`${reply.status} ${conditions[0]}`);
        expect({ status: reply.status, conditions, allowed: Object.keys(PUT_CONDITIONS).map(Number).includes(reply.status) }).toEqual({
          status: reply.status,
          conditions,
          allowed: true,
        });
        expect(PUT_CONDITIONS[reply.status]).toContain(conditions[0]);
        // A rejected PUT leaves what was stored before, or nothing.
        const after = await alice.get(href);
        const before = stored.get(href);
        if (before === undefined) expect({ href, status: after.status }).toEqual({ href, status: 404 });
        else expect({ href, unchanged: after.body.equals(before) }).toEqual({ href, unchanged: true });
      }),
    );
    tally.print(`PUT fuzz outcomes (${count} requests)`);

    // Every listing method must agree on what was stored, and each stored card must parse again.
    const cards = await readWholeBook(alice, BOOK);
    for (const [href, card] of cards) {
      const parsed = prepareCard(Buffer.from(card.data));
      expect({ href, ok: parsed.ok, repaired: parsed.ok && parsed.repaired }).toEqual({ href, ok: true, repaired: false });
    }
    await expectSeededCardsKept();
  });
});

/**
 * Checks that an accepted card reads back: GET returns it, and it parses as a
 * stored card without repair. Returns the bytes GET returned.
 */
async function expectStoredCardReadable(href: string, sent: Buffer, put: Reply): Promise<Buffer> {
  const got = await alice.get(href);
  expect({ href, status: got.status }).toEqual({ href, status: 200 });
  if (put.headers.etag !== undefined) {
    // An ETag promises the stored bytes are the ones sent.
    expect(got.headers.etag).toBe(put.headers.etag);
    expect(got.body.equals(sent)).toBe(true);
  }
  const parsed = prepareCard(got.body);
  expect({ href, ok: parsed.ok, repaired: parsed.ok && parsed.repaired, etag: parsed.ok && `"${parsed.etag}"` }).toEqual({
    href,
    ok: true,
    repaired: false,
    etag: got.headers.etag,
  });
  return got.body;
}

// ---------------------------------------------------------------------------
// XML generators

/** Namespace URIs by the prefix the generated bodies use; x is a private namespace for dead properties. */
const NAMESPACES: Record<string, string> = { d: 'DAV:', card: 'urn:ietf:params:xml:ns:carddav', cs: 'http://calendarserver.org/ns/', x: 'urn:x-test' };

const PROPERTIES = [
  'd:displayname', 'd:getetag', 'd:resourcetype', 'd:sync-token', 'd:current-user-principal', 'd:current-user-privilege-set',
  'd:acl', 'd:owner', 'd:supported-report-set', 'd:getcontenttype', 'd:getcontentlength', 'd:principal-URL',
  'd:principal-collection-set', 'd:quota-used-bytes', 'd:lockdiscovery', 'card:address-data', 'card:addressbook-description',
  'card:supported-address-data', 'card:max-resource-size', 'card:addressbook-home-set', 'card:principal-address',
  'card:supported-collation-set', 'cs:getctag', 'cs:email-address-set', 'cs:first-name', 'cs:last-name', 'x:color', 'x:item',
];

/** Children each element usually has in a request body; generation follows it most of the time and strays from it sometimes. */
const GRAMMAR: Record<string, string[]> = {
  'd:propfind': ['d:prop', 'd:allprop', 'd:propname', 'd:include'],
  'd:prop': PROPERTIES,
  'd:include': PROPERTIES,
  'd:propertyupdate': ['d:set', 'd:remove'],
  'd:set': ['d:prop'],
  'd:remove': ['d:prop'],
  'd:mkcol': ['d:set'],
  'd:resourcetype': ['d:collection', 'card:addressbook', 'd:principal'],
  'card:addressbook-multiget': ['d:prop', 'd:href', 'd:allprop'],
  'card:addressbook-query': ['d:prop', 'card:filter', 'card:limit', 'd:allprop'],
  'card:filter': ['card:prop-filter'],
  'card:prop-filter': ['card:text-match', 'card:param-filter', 'card:is-not-defined'],
  'card:param-filter': ['card:text-match', 'card:is-not-defined'],
  'card:limit': ['card:nresults'],
  'card:address-data': ['card:prop', 'card:allprop'],
  'd:sync-collection': ['d:sync-token', 'd:sync-level', 'd:limit', 'd:prop'],
  'd:limit': ['d:nresults'],
  'd:principal-property-search': ['d:property-search', 'd:prop', 'd:apply-to-principal-collection-set'],
  'd:property-search': ['d:prop', 'd:match'],
  'x:item': ['x:item', 'x:sub'],
};

const ROOTS = [
  'd:propfind', 'd:propertyupdate', 'd:mkcol', 'card:addressbook-multiget', 'card:addressbook-query', 'd:sync-collection',
  'd:principal-property-search', 'd:principal-search-property-set', 'd:expand-property', 'd:acl-principal-prop-set', 'd:principal-match',
];
const ALL_NAMES = [...new Set([...ROOTS, ...Object.keys(GRAMMAR), ...Object.values(GRAMMAR).flat(), 'd:href', 'd:match', 'd:sync-level', 'd:nresults'])];

const HREFS = [
  KEPT_CARD, `${BOOK}fuzz-1.vcf`, `${BOOK}missing.vcf`, BOB_CARD, `${BOOK}../../bob/contacts/secret.vcf`, `${BOOK}%2e%2e/%2e%2e/bob/contacts/secret.vcf`,
  `http://127.0.0.1${BOB_CARD}`, `${BOOK}%ZZ.vcf`, `${BOOK}a%2Fb.vcf`, BOOK, '/dav/principals/alice/', '', 'mailto:ada@example.com',
];

/** Text for elements whose content the server reads. */
const TEXT_VALUES = [
  ...HREFS, '1', '0', '-1', '2', '1.5', '99999999999999999999', 'infinite', 'infinity', 'Ada', 'ada@example.com', 'Lovelace',
  'urn:x-cardinal:sync:0:0', 'http://example.com/ns/sync/1', '\u00e9', ' ', '&amp;', '&lt;x&gt;',
];

const ATTRIBUTES: Record<string, string[]> = {
  name: ['FN', 'EMAIL', 'TEL', 'N', 'UID', 'item1.EMAIL', 'TYPE', '', 'fn', 'X-CRM-ACCOUNT', 'a b', '1'],
  test: ['anyof', 'allof', 'oneof', ''],
  'match-type': ['equals', 'contains', 'starts-with', 'ends-with', 'regex', ''],
  collation: ['i;unicode-casemap', 'i;ascii-casemap', 'i;octet', 'i;unknown', ''],
  'negate-condition': ['yes', 'no', 'maybe'],
  'content-type': ['text/vcard', 'application/vcard+json', 'text/plain', 'TEXT/VCARD'],
  version: ['3.0', '4.0', '2.1', ''],
  novalue: ['yes', 'no'],
};

interface XmlTree {
  name: string;
  attrs: [string, string][];
  content: (XmlTree | string)[];
}

const attribute = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...Object.keys(ATTRIBUTES)).chain((name) => fc.tuple(fc.constant(name), fc.constantFrom(...ATTRIBUTES[name]))) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('xml:lang', 'x:attr', 'href'), fc.string({ maxLength: 8 })) },
);

const text = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...TEXT_VALUES) }, { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) });

function element(name: string, depth: number): fc.Arbitrary<XmlTree> {
  const allowed = GRAMMAR[name] ?? [];
  const childArbitraries: fc.WeightedArbitrary<XmlTree | string>[] = [{ weight: 1, arbitrary: text }];
  if (depth > 0) {
    if (allowed.length > 0) childArbitraries.push({ weight: 8, arbitrary: fc.constantFrom(...allowed).chain((c) => element(c, depth - 1)) });
    childArbitraries.push({ weight: 1, arbitrary: fc.constantFrom(...ALL_NAMES).chain((c) => element(c, depth - 1)) });
  }
  return fc.record({
    name: fc.constant(name),
    attrs: fc.array(attribute, { maxLength: 2 }),
    content: fc.array(fc.oneof(...childArbitraries), { maxLength: allowed.length > 0 ? 4 : 1 }),
  });
}

function escapeText(value: string): string {
  return value.replace(/&(?!(amp|lt|gt);)/g, '&amp;').replace(/</g, '&lt;');
}

function serializeTree(tree: XmlTree, root: boolean): string {
  const declarations = root ? Object.entries(NAMESPACES).map(([prefix, uri]) => ` xmlns:${prefix}="${uri}"`).join('') : '';
  // A repeated attribute is not well-formed, so only the last value of each name is written.
  const unique = new Map(tree.attrs);
  const attributes = [...unique].map(([name, v]) => ` ${name}="${escapeText(v).replace(/"/g, '&quot;')}"`).join('');
  const content = tree.content.map((c) => (typeof c === 'string' ? escapeText(c) : serializeTree(c, false))).join('');
  return content === '' ? `<${tree.name}${declarations}${attributes}/>` : `<${tree.name}${declarations}${attributes}>${content}</${tree.name}>`;
}

const XML_SNIPPETS = [
  '<', '>', '&', '&amp;', '&#0;', '&#xD800;', '&unknown;', ']]>', '<!--', '-->', '<?pi x?>', '<![CDATA[x]]>', '"', "'",
  '</d:prop>', '<d:prop>', '\u0000', '\uFFFE', '<!DOCTYPE x>', ' xmlns:d="urn:other"', ' xmlns="DAV:"', '<x:y/>', 'DAV:',
];

const XML_PROLOGS = [
  '<?xml version="1.0" encoding="utf-8"?>', '<?xml version="1.0" encoding="ISO-8859-1"?>', '<?xml version="1.1"?>',
  '<?xml version="1.0" encoding="UTF-16"?>', '\ufeff', ' \r\n', '<?xml version="1.0" standalone="yes"?>',
];

const xmlMutation = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), snippet: fc.oneof(fc.constantFrom(...XML_SNIPPETS), fc.string({ maxLength: 6 })) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 60 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('namespace' as const), uri: fc.constantFrom('dav:', 'urn:x', '', 'DAV', 'urn:ietf:params:xml:ns:caldav') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), byte: fc.constantFrom(0xff, 0xc3, 0x80, 0xfe, 0xed) }) },
);

type XmlMutation = typeof xmlMutation extends fc.Arbitrary<infer T> ? T : never;

/** Applies text mutations, then byte mutations, to a serialized body. */
function mutateXml(xml: string, mutations: XmlMutation[]): Buffer {
  let body = xml;
  const bytes: { at: number; byte: number }[] = [];
  for (const m of mutations) {
    const at = body.length === 0 ? 0 : ('at' in m ? m.at : 0) % body.length;
    if (m.kind === 'truncate') body = body.slice(0, at);
    else if (m.kind === 'insert') body = body.slice(0, at) + m.snippet + body.slice(at);
    else if (m.kind === 'delete') body = body.slice(0, at) + body.slice(at + m.length);
    else if (m.kind === 'duplicate') body = body.slice(0, at + m.length) + body.slice(at);
    else if (m.kind === 'namespace') body = body.replace(/"DAV:"|"urn:ietf:params:xml:ns:carddav"/, `"${m.uri}"`);
    else bytes.push({ at: m.at, byte: m.byte });
  }
  let buffer = Buffer.from(body);
  for (const { at, byte } of bytes) {
    const offset = buffer.length === 0 ? 0 : at % buffer.length;
    buffer = Buffer.concat([buffer.subarray(0, offset), Buffer.from([byte]), buffer.subarray(offset)]);
  }
  return buffer;
}

interface Target {
  method: 'PROPFIND' | 'PROPPATCH' | 'REPORT' | 'MKCOL';
  path: string;
  depth?: string;
  /** The root element this request takes. */
  root: string;
}

const TARGETS: Target[] = [
  { method: 'PROPFIND', path: BOOK, depth: '1', root: 'd:propfind' },
  { method: 'PROPFIND', path: BOOK, depth: '0', root: 'd:propfind' },
  { method: 'PROPFIND', path: '/dav/addressbooks/alice/', depth: '1', root: 'd:propfind' },
  { method: 'PROPFIND', path: '/dav/principals/alice/', depth: '0', root: 'd:propfind' },
  { method: 'PROPFIND', path: '/dav/', depth: '1', root: 'd:propfind' },
  { method: 'PROPFIND', path: KEPT_CARD, depth: '0', root: 'd:propfind' },
  { method: 'PROPPATCH', path: BOOK, root: 'd:propertyupdate' },
  { method: 'PROPPATCH', path: '/dav/addressbooks/alice/', root: 'd:propertyupdate' },
  { method: 'REPORT', path: BOOK, root: 'card:addressbook-multiget' },
  { method: 'REPORT', path: BOOK, root: 'card:addressbook-query' },
  { method: 'REPORT', path: BOOK, root: 'd:sync-collection' },
  { method: 'REPORT', path: '/dav/principals/', root: 'd:principal-property-search' },
  { method: 'REPORT', path: '/dav/principals/', root: 'd:principal-search-property-set' },
  { method: 'REPORT', path: '/dav/addressbooks/alice/', root: 'd:sync-collection' },
  { method: 'MKCOL', path: '/dav/addressbooks/alice/', root: 'd:mkcol' },
];

const xmlRequest = fc
  .record({
    target: fc.constantFrom(...TARGETS),
    otherRoot: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...ROOTS) }),
    prolog: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('', '<?xml version="1.0" encoding="utf-8"?>\n') }, { weight: 1, arbitrary: fc.constantFrom(...XML_PROLOGS) }),
  })
  .chain(({ target, otherRoot, prolog }) =>
    fc.record({
      target: fc.constant(target),
      body: fc.oneof(
        { weight: 8, arbitrary: element(otherRoot ?? target.root, 5).map((tree) => Buffer.from(prolog + serializeTree(tree, true))) },
        {
          weight: 6,
          arbitrary: fc
            .tuple(element(otherRoot ?? target.root, 5), fc.array(xmlMutation, { minLength: 1, maxLength: 3 }))
            .map(([tree, ms]) => mutateXml(prolog + serializeTree(tree, true), ms)),
        },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)) },
      ),
    }),
  );

/** Conditions a 403 to an XML request may name: DAV and CardDAV precondition elements, never only a Cardinal error. */
const XML_403_CONDITIONS = [
  dav('supported-report'),
  dav('valid-sync-token'),
  dav('valid-resourcetype'),
  dav('need-privileges'),
  dav('propfind-finite-depth'),
  carddav('supported-filter'),
  carddav('supported-collation'),
  carddav('supported-address-data'),
];

describe('XML body fuzz', () => {
  test('generated XML bodies processed or rejected', async () => {
    const tally = new Tally();
    let count = 0;
    await check(
      'XML fuzz',
      20_240_605,
      RUNS.xml,
      fc.asyncProperty(xmlRequest, async ({ target, body }) => {
        count += 1;
        const path = target.method === 'MKCOL' ? `${target.path}fuzz-book-${count}/` : target.path;
        const headers: Record<string, string> = { 'Content-Type': 'application/xml; charset=utf-8' };
        if (target.depth !== undefined) headers.Depth = target.depth;
        const reply = await alice.request(target.method, path, { headers, body });
        const request = `${target.method} ${path} ${JSON.stringify(body.toString('latin1').slice(0, 400))}`;
        expect({ request, status: reply.status, serverError: reply.status >= 500 }).toEqual({ request, status: reply.status, serverError: false });
        expect(reply.text).not.toContain('Bob Secret');
        if (reply.status === 207) {
          tally.add(`${target.method} 207`);
          expect(() => parseMultistatus(reply.text)).not.toThrow();
          return;
        }
        if (reply.status === 200 && target.path === '/dav/principals/' && body.includes('principal-search-property-set')) {
          // principal-search-property-set returns the set itself with 200 (dav/principal-search.ts).
          tally.add(`${target.method} 200`);
          expect(parseXml(reply.text).name).toBe(dav('principal-search-property-set'));
          return;
        }
        if (reply.status === 201) {
          tally.add(`${target.method} 201`);
          expect(target.method).toBe('MKCOL');
          expect((await alice.delete(path)).status).toBe(204);
          return;
        }
        const conditions = errorConditions(reply, request);
        tally.add(`${target.method} ${reply.status} ${conditions[0]}`);
        const allowed = target.method === 'MKCOL' ? [400, 403, 415] : [400, 403];
        expect({ request, status: reply.status, allowed: allowed.includes(reply.status) }).toEqual({ request, status: reply.status, allowed: true });
        if (reply.status === 403) {
          expect({ request, condition: XML_403_CONDITIONS.includes(conditions[0]) ? 'named' : conditions[0] }).toEqual({ request, condition: 'named' });
        }
      }),
    );
    tally.print(`XML fuzz outcomes (${count} requests)`);
    await expectSeededCardsKept();
    expect((await readWholeBook(alice, BOOK)).get(KEPT_CARD)?.data).toBe(KEPT);
  });
});
