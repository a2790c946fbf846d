/**
 * Access matrix: every method on every kind of URL for every kind of caller,
 * with the status each cell must return written out below. Every card carries
 * a random marker in its UID and FN, and no response may contain a marker of
 * a card the caller may not read. A mutating request that is denied must
 * leave the whole store as it was.
 */
import { randomBytes } from 'node:crypto';
import { syncDirectory } from '../../ldap/sync';
import { startTestApp, type TestApp } from '../helpers/app';
import { generatePeople, startSlapd, type Slapd } from '../helpers/slapd';
import { logger, writeConfig } from '../ldap/fixture';
import { basicAuth, Client, parseMultistatus, portOf, type Reply, XMLNS } from '../robustness/support';
import { storeSnapshot } from './support';

jest.setTimeout(300_000);

const METHODS = [
  'OPTIONS',
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'PROPFIND0',
  'PROPFIND1',
  'PROPPATCH',
  'MKCOL',
  'MKCOL_EXT',
  'MULTIGET',
  'SYNC',
  'QUERY',
  'MOVE',
  'COPY',
  'ACL',
  'LOCK',
] as const;
type Method = (typeof METHODS)[number];

/** Methods that would change the store if they succeeded. */
const MUTATING = new Set<Method>(['PUT', 'DELETE', 'PROPPATCH', 'MKCOL', 'MKCOL_EXT', 'MOVE', 'COPY', 'ACL', 'LOCK']);

const CALLERS = ['anonymous', 'wrongPassword', 'alice', 'bob', 'rita', 'walt'] as const;
type Caller = (typeof CALLERS)[number];
/** Callers with valid credentials; `anonymous` and `wrongPassword` use alice's URLs. */
const USERS = ['alice', 'bob', 'rita', 'walt', 'victor'] as const;
type UserName = (typeof USERS)[number];

/**
 * Rows of expected statuses in the order of METHODS. `207+` is a PROPPATCH
 * that applies its change; a plain 207 PROPPATCH must deny every property.
 */
const ROW = {
  /** Root, /dav/, the own principal and the own home: collections without cards. */
  collection: '200 200 200 405 403 207 207 207 405 405 403 403 403 405 405 405 405',
  ownBook: '200 200 200 405 204 207 207 207+ 405 405 207 207 207 405 405 405 405',
  ownCard: '200 200 200 204 204 207 207 403 405 405 403 403 403 405 405 405 405',
  /** A book shared read-only, and a book shared read-write: neither lets a grantee change the book itself. */
  grantedBook: '200 200 200 403 403 207 207 403 405 405 207 207 207 405 405 405 405',
  readCard: '200 200 200 403 403 207 207 403 405 405 403 403 403 405 405 405 405',
  writeCard: '200 200 200 204 204 207 207 403 405 405 403 403 403 405 405 405 405',
  /** Another user's URLs, and a shared book at its owner's URL, do not exist for the caller. */
  hidden: '404 404 404 404 404 404 404 404 404 404 404 404 404 404 404 404 404',
  anonymous: '200 401 401 401 401 401 401 401 401 401 401 401 401 401 401 401 401',
  wrongPassword: '401 401 401 401 401 401 401 401 401 401 401 401 401 401 401 401 401',
} as const;
type RowName = keyof typeof ROW;

interface Shape {
  name: string;
  /** The URL this caller requests, from the caller's user name (alice for the callers without credentials). */
  url: (me: UserName) => string;
  /** The expected row for each authenticated caller. */
  rows: Record<'alice' | 'bob' | 'rita' | 'walt', RowName>;
}

const home = (user: string) => `/dav/addressbooks/${user}/`;
const roBook = (me: UserName) => (me === 'rita' ? `${home('rita')}alice-ro/` : `${home('alice')}team-ro/`);
const rwBook = (me: UserName) => (me === 'walt' ? `${home('walt')}alice-rw/` : `${home('alice')}team-rw/`);

const all = (row: RowName) => ({ alice: row, bob: row, rita: row, walt: row });

const SHAPES: Shape[] = [
  { name: 'root', url: () => '/', rows: all('collection') },
  { name: 'dav root', url: () => '/dav/', rows: all('collection') },
  { name: 'own principal', url: (me) => `/dav/principals/${me}/`, rows: all('collection') },
  { name: 'other principal', url: () => '/dav/principals/victor/', rows: all('hidden') },
  { name: 'own home', url: (me) => home(me), rows: all('collection') },
  { name: 'own book', url: (me) => `${home(me)}contacts/`, rows: all('ownBook') },
  { name: 'own card', url: (me) => `${home(me)}contacts/${me}.vcf`, rows: all('ownCard') },
  { name: 'other home', url: () => home('victor'), rows: all('hidden') },
  { name: 'other book', url: () => `${home('victor')}contacts/`, rows: all('hidden') },
  { name: 'other card', url: () => `${home('victor')}contacts/victor.vcf`, rows: all('hidden') },
  { name: 'read-only book', url: roBook, rows: { alice: 'ownBook', bob: 'hidden', rita: 'grantedBook', walt: 'hidden' } },
  { name: 'read-only card', url: (me) => `${roBook(me)}ro.vcf`, rows: { alice: 'ownCard', bob: 'hidden', rita: 'readCard', walt: 'hidden' } },
  { name: 'read-write book', url: rwBook, rows: { alice: 'ownBook', bob: 'hidden', rita: 'hidden', walt: 'grantedBook' } },
  { name: 'read-write card', url: (me) => `${rwBook(me)}rw.vcf`, rows: { alice: 'ownCard', bob: 'hidden', rita: 'hidden', walt: 'writeCard' } },
  { name: 'directory book', url: (me) => `${home(me)}directory/`, rows: all('grantedBook') },
  { name: 'directory card', url: (me) => `${home(me)}directory/DIRECTORY_CARD`, rows: all('readCard') },
  { name: 'directory at owner URL', url: () => `${home('_directory')}directory/`, rows: all('hidden') },
  { name: 'directory card at owner URL', url: () => `${home('_directory')}directory/DIRECTORY_CARD`, rows: all('hidden') },
];

/** Marker keys: one per seeded card. */
type MarkerKey = UserName | 'ro' | 'rw' | 'directory';

/** The markers each caller may see; every other marker must stay out of its responses. */
const READABLE: Record<Caller, MarkerKey[]> = {
  anonymous: [],
  wrongPassword: [],
  alice: ['alice', 'ro', 'rw', 'directory'],
  bob: ['bob', 'directory'],
  rita: ['rita', 'ro', 'directory'],
  walt: ['walt', 'rw', 'directory'],
};

const MARKERS = Object.fromEntries(
  (['alice', 'bob', 'rita', 'walt', 'victor', 'ro', 'rw', 'directory'] as MarkerKey[]).map((key) => [key, `mk${key}${randomBytes(6).toString('hex')}`]),
) as Record<MarkerKey, string>;

function seedCard(key: MarkerKey): string {
  const marker = MARKERS[key];
  return ['BEGIN:VCARD', 'VERSION:3.0', `UID:${marker}`, `FN:Owner ${key} ${marker}`, `N:${marker};Owner;;;`, 'END:VCARD', ''].join('\r\n');
}

/** The seeded books, by owner, slug and card name. */
const SEED: { owner: UserName; slug: string; card: string; key: MarkerKey }[] = [
  ...(['alice', 'bob', 'rita', 'walt', 'victor'] as const).map((user) => ({ owner: user, slug: 'contacts', card: `${user}.vcf`, key: user })),
  { owner: 'alice', slug: 'team-ro', card: 'ro.vcf', key: 'ro' },
  { owner: 'alice', slug: 'team-rw', card: 'rw.vcf', key: 'rw' },
];

let slapd: Slapd;
let app: TestApp;
let directoryCard = '';

function password(user: UserName): string {
  return `${user}-password`;
}

function clientFor(caller: Caller): Client {
  const port = portOf(app);
  if (caller === 'anonymous') return new Client(port);
  if (caller === 'wrongPassword') return new Client(port, basicAuth('alice', 'not-the-password'));
  return new Client(port, basicAuth(caller, password(caller)));
}

/** Puts the store back into its seeded state after a request that was allowed to change it. */
async function reseed(): Promise<void> {
  const storage = app.storage;
  for (const { owner, slug, card, key } of SEED) {
    const user = await storage.getUser(owner);
    if (!user) throw new Error(`user ${owner} is missing`);
    let book = await storage.getBook(user.id, slug);
    if (!book) book = await storage.createBook(user.id, slug, slug);
    if (!book) throw new Error(`cannot create ${owner}/${slug}`);
    await storage.updateBook(book.id, { displayName: slug, description: '' });
    for (const meta of await storage.listCardMeta(book.id, 0, 1000)) {
      if (meta.name !== card) await storage.deleteCard(book.id, meta.name);
    }
    const stored = await storage.getCard(book.id, card);
    if (stored?.data.toString('utf8') !== seedCard(key)) {
      const reply = await new Client(portOf(app), basicAuth(owner, password(owner))).put(`${home(owner)}${slug}/${card}`, seedCard(key));
      if (reply.status !== 201 && reply.status !== 204) throw new Error(`reseeding ${owner}/${slug}/${card} returned ${reply.status}: ${reply.text}`);
    }
  }
  const alice = await storage.getUser('alice');
  const rita = await storage.getUser('rita');
  const walt = await storage.getUser('walt');
  const ro = alice && (await storage.getBook(alice.id, 'team-ro'));
  const rw = alice && (await storage.getBook(alice.id, 'team-rw'));
  if (!ro || !rw || !rita || !walt) throw new Error('shared books or grantees are missing');
  if ((await storage.listGrants(ro.id)).length === 0) await storage.grant(ro.id, { kind: 'user', id: rita.id }, 'read', 'alice-ro');
  if ((await storage.listGrants(rw.id)).length === 0) await storage.grant(rw.id, { kind: 'user', id: walt.id }, 'write', 'alice-rw');
}

beforeAll(async () => {
  const people = generatePeople(3).map((person, i) => (i === 0 ? { ...person, cn: `Directory ${MARKERS.directory}`, sn: MARKERS.directory } : person));
  slapd = await startSlapd(people);
  // Wrong passwords are part of the matrix, so the failed-login limits must not turn them into 429.
  const config = writeConfig(slapd, { auth: { rateLimit: { windowSeconds: 60, maxFailuresPerUser: 1_000_000, maxFailuresPerAddress: 1_000_000 } } });
  app = await startTestApp({}, config);
  for (const user of USERS) await app.addUser(user, password(user));
  for (const user of ['alice'] as const) {
    const owner = await app.storage.getUser(user);
    if (!owner) throw new Error('alice is missing');
    await app.storage.createBook(owner.id, 'team-ro', 'team-ro');
    await app.storage.createBook(owner.id, 'team-rw', 'team-rw');
  }
  await reseed();
  await syncDirectory(app.storage, app.config, { logger });
  const alice = clientFor('alice');
  const listing = parseMultistatus((await alice.propfind(`${home('alice')}directory/`, '1', `<d:propfind ${XMLNS}><d:prop><d:getetag/></d:prop></d:propfind>`)).text);
  for (const response of listing.responses) {
    if (!response.href.endsWith('/')) {
      const card = await alice.get(response.href);
      if (card.text.includes(MARKERS.directory)) directoryCard = response.href.slice(response.href.lastIndexOf('/') + 1);
    }
  }
  if (directoryCard === '') throw new Error('the directory card with the marker was not mirrored');
});

afterAll(async () => {
  await app?.close();
  await slapd?.destroy();
});

const PROPFIND_BODY =
  `<?xml version="1.0" encoding="utf-8"?><d:propfind ${XMLNS}><d:prop>` +
  '<d:displayname/><d:resourcetype/><d:getetag/><d:owner/><d:acl/><d:current-user-privilege-set/><d:current-user-principal/>' +
  '<d:principal-URL/><card:addressbook-home-set/><card:addressbook-description/><d:sync-token/><d:supported-report-set/>' +
  '</d:prop></d:propfind>';

const PROPPATCH_BODY = `<?xml version="1.0" encoding="utf-8"?><d:propertyupdate ${XMLNS}><d:set><d:prop><d:displayname>Renamed</d:displayname></d:prop></d:set></d:propertyupdate>`;

const MKCOL_BODY =
  `<?xml version="1.0" encoding="utf-8"?><d:mkcol ${XMLNS}><d:set><d:prop>` +
  '<d:resourcetype><d:collection/><card:addressbook/></d:resourcetype><d:displayname>New</d:displayname></d:prop></d:set></d:mkcol>';

const ACL_BODY =
  '<?xml version="1.0" encoding="utf-8"?><d:acl xmlns:d="DAV:"><d:ace><d:principal><d:all/></d:principal>' +
  '<d:grant><d:privilege><d:all/></d:privilege></d:grant></d:ace></d:acl>';

const LOCK_BODY =
  '<?xml version="1.0" encoding="utf-8"?><d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>' +
  '<d:locktype><d:write/></d:locktype><d:owner>tester</d:owner></d:lockinfo>';

/** Every seeded card's href as its owner and its grantees see it, so a multiget requests cards of other books too. */
function allCardHrefs(): string[] {
  const hrefs = SEED.map(({ owner, slug, card }) => `${home(owner)}${slug}/${card}`);
  hrefs.push(`${home('rita')}alice-ro/ro.vcf`, `${home('walt')}alice-rw/rw.vcf`, `${home('_directory')}directory/${directoryCard}`);
  for (const user of USERS) hrefs.push(`${home(user)}directory/${directoryCard}`);
  return hrefs;
}

function send(client: Client, method: Method, url: string): Promise<Reply> {
  const xml = { 'Content-Type': 'application/xml; charset=utf-8' };
  const moved = url.endsWith('/') ? `${url.slice(0, -1)}-moved/` : `${url}-moved`;
  switch (method) {
    case 'PUT': {
      const name = url.slice(url.lastIndexOf('/') + 1);
      const key = SEED.find(({ card }) => card === name)?.key ?? (name === directoryCard ? 'directory' : undefined);
      // An existing card gets its own UID back with another FN; anything else gets a new card.
      const body = key ? seedCard(key).replace('FN:Owner', 'FN:Edited') : seedCard('alice').replace(MARKERS.alice, `new${MARKERS.alice}`);
      return client.put(url, body);
    }
    case 'PROPFIND0':
      return client.propfind(url, '0', PROPFIND_BODY);
    case 'PROPFIND1':
      return client.propfind(url, '1', PROPFIND_BODY);
    case 'PROPPATCH':
      return client.proppatch(url, PROPPATCH_BODY);
    case 'MKCOL':
      return client.mkcol(url);
    case 'MKCOL_EXT':
      return client.mkcol(url, MKCOL_BODY);
    case 'MULTIGET': {
      const hrefs = [...allCardHrefs(), url].map((href) => `<d:href>${href}</d:href>`).join('');
      return client.report(url, `<card:addressbook-multiget ${XMLNS}><d:prop><d:getetag/><card:address-data/></d:prop>${hrefs}</card:addressbook-multiget>`);
    }
    case 'SYNC':
      return client.report(url, `<d:sync-collection ${XMLNS}><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/><card:address-data/></d:prop></d:sync-collection>`);
    case 'QUERY':
      return client.report(url, `<card:addressbook-query ${XMLNS}><d:prop><d:getetag/><card:address-data/></d:prop></card:addressbook-query>`);
    case 'MOVE':
    case 'COPY':
      return client.request(method, url, { headers: { Destination: `http://127.0.0.1:${client.port}${moved}`, Overwrite: 'F' } });
    case 'ACL':
      return client.request('ACL', url, { headers: xml, body: ACL_BODY });
    case 'LOCK':
      return client.request('LOCK', url, { headers: { ...xml, Timeout: 'Second-60' }, body: LOCK_BODY });
    default:
      return client.request(method, url);
  }
}

/** Propstat statuses of a PROPPATCH 207. */
function proppatchStatuses(reply: Reply): number[] {
  return parseMultistatus(reply.text).responses.flatMap((response) => response.propstats.map((propstat) => propstat.status));
}

function expectedRow(caller: Caller, shape: Shape): string[] {
  if (caller === 'anonymous' || caller === 'wrongPassword') return ROW[caller].split(' ');
  return ROW[shape.rows[caller]].split(' ');
}

function resolveUrl(shape: Shape, caller: Caller): string {
  const me: UserName = caller === 'anonymous' || caller === 'wrongPassword' ? 'alice' : caller;
  return shape.url(me).replace('DIRECTORY_CARD', directoryCard);
}

describe.each(CALLERS)('%s', (caller) => {
  test.each(SHAPES.map((shape) => [shape.name, shape] as const))('%s', async (_, shape) => {
    const client = clientFor(caller);
    const url = resolveUrl(shape, caller);
    const expected = expectedRow(caller, shape);
    const forbidden = (Object.keys(MARKERS) as MarkerKey[]).filter((key) => !READABLE[caller].includes(key));
    const actual: Record<string, string> = {};
    const expectedStatuses: Record<string, string> = {};

    for (const [index, method] of METHODS.entries()) {
      const before = MUTATING.has(method) ? await storeSnapshot(app.storage) : undefined;
      const reply = await send(client, method, url);
      const cell = `${method} ${url}`;
      const applies = expected[index] === '207+';
      expectedStatuses[method] = expected[index].replace('+', '');
      actual[method] = String(reply.status);

      const exposed = `${JSON.stringify(reply.headers)}\n${reply.text}`;
      for (const key of forbidden) expect({ cell, leaked: exposed.includes(MARKERS[key]) ? key : undefined }).toEqual({ cell, leaked: undefined });
      if (reply.status === 401) expect({ cell, challenge: reply.headers['www-authenticate'] }).toEqual({ cell, challenge: expect.stringMatching(/^Basic /) });
      if (method === 'PROPPATCH' && reply.status === 207) {
        const statuses = proppatchStatuses(reply);
        expect({ cell, statuses }).toEqual({ cell, statuses: applies ? [200] : [403] });
      }

      const changed = applies || (MUTATING.has(method) && /^2/.test(expected[index]) && method !== 'PROPPATCH');
      if (before !== undefined && changed) await reseed();
      else if (before !== undefined) expect({ cell, store: await storeSnapshot(app.storage) }).toEqual({ cell, store: before });
    }
    expect(actual).toEqual(expectedStatuses);
  });
});

test('own card GET returns its marker', async () => {
  const reply = await clientFor('rita').get(`${home('rita')}contacts/rita.vcf`);
  expect(reply.status).toBe(200);
  expect(reply.text).toContain(MARKERS.rita);
  const shared = await clientFor('rita').get(`${home('rita')}alice-ro/ro.vcf`);
  expect(shared.text).toContain(MARKERS.ro);
});

test('multiget names other books as 404', async () => {
  const reply = await send(clientFor('bob'), 'MULTIGET', `${home('bob')}contacts/`);
  const responses = parseMultistatus(reply.text).responses;
  const found = responses.filter((response) => response.propstats.some((propstat) => propstat.status === 200)).map((response) => response.href);
  expect(found).toEqual([`${home('bob')}contacts/bob.vcf`]);
  const missing = responses.filter((response) => response.status === 404).map((response) => response.href);
  expect(missing).toContain(`${home('victor')}contacts/victor.vcf`);
  expect(missing).toContain(`${home('alice')}team-ro/ro.vcf`);
});
