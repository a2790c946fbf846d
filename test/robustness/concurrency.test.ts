/**
 * Racing writers. Conditional PUTs, UID uniqueness and sync-collection must
 * hold when many requests for the same card or UID arrive at once.
 */
import { startTestApp, type TestApp } from '../helpers/app';
import { loadConfig } from '../../server/config';
import { addUser, UserError } from '../../server/users';
import {
  carddav,
  Client,
  currentSyncToken,
  dav,
  escapeXmlText,
  expectDavError,
  okProp,
  parseXml,
  person,
  portOf,
  readWholeBook,
  syncCollection,
  type Reply,
} from './support';

const PARALLEL = 50;

let app: TestApp;
let client: Client;
let bookCount = 0;

beforeAll(async () => {
  app = await startTestApp({ maxResourceSize: 4096, maxXmlBody: 65536 });
  await app.addUser('alice');
  client = new Client(portOf(app), app.auth('alice'));
});

afterAll(() => app.close());

async function newBook(): Promise<string> {
  bookCount += 1;
  const path = `/dav/addressbooks/alice/race-${bookCount}/`;
  const reply = await client.mkcol(path);
  if (reply.status !== 201) throw new Error(`MKCOL ${path} returned ${reply.status}: ${reply.text}`);
  return path;
}

function countStatuses(replies: Reply[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const reply of replies) counts[reply.status] = (counts[reply.status] ?? 0) + 1;
  return counts;
}

test('If-None-Match star race has one winner', async () => {
  const book = await newBook();
  const href = `${book}contended.vcf`;
  const bodies = Array.from({ length: PARALLEL }, (_, i) => person('contended', `Writer ${i}`));
  const replies = await Promise.all(bodies.map((body) => client.put(href, body, { 'If-None-Match': '*' })));
  expect(countStatuses(replies)).toEqual({ 201: 1, 412: PARALLEL - 1 });
  for (const reply of replies.filter((r) => r.status === 412)) expectDavError(reply, 412);

  const winner = replies.findIndex((r) => r.status === 201);
  const stored = await client.get(href);
  expect(stored.text).toBe(bodies[winner]);
  expect(stored.headers.etag).toBe(replies[winner].headers.etag);
  expect([...(await readWholeBook(client, book)).keys()]).toEqual([href]);
});

test('same UID at many hrefs has one winner', async () => {
  const book = await newBook();
  const hrefs = Array.from({ length: PARALLEL }, (_, i) => `${book}uid-${i}.vcf`);
  const replies = await Promise.all(hrefs.map((href, i) => client.put(href, person('shared-uid', `Writer ${i}`))));
  expect(countStatuses(replies)).toEqual({ 201: 1, 409: PARALLEL - 1 });

  const winner = hrefs[replies.findIndex((r) => r.status === 201)];
  for (const reply of replies.filter((r) => r.status === 409)) {
    const error = expectDavError(reply, 409, carddav('no-uid-conflict'));
    const condition = error.children.find((c) => c.name === carddav('no-uid-conflict'));
    expect(condition?.children.map((c) => [c.name, c.text])).toEqual([[dav('href'), winner]]);
  }
  expect([...(await readWholeBook(client, book)).keys()]).toEqual([winner]);
});

test('If-Match race from one ETag has one winner', async () => {
  const book = await newBook();
  const href = `${book}edited.vcf`;
  const created = await client.put(href, person('edited', 'Original'));
  const etag = created.headers.etag as string;
  const bodies = Array.from({ length: PARALLEL }, (_, i) => person('edited', `Editor ${i}`));
  const replies = await Promise.all(bodies.map((body) => client.put(href, body, { 'If-Match': etag })));
  expect(countStatuses(replies)).toEqual({ 204: 1, 412: PARALLEL - 1 });

  const winner = replies.findIndex((r) => r.status === 204);
  const stored = await client.get(href);
  expect(stored.text).toBe(bodies[winner]);
  expect(stored.headers.etag).toBe(replies[winner].headers.etag);
});

test('DELETE race with If-Match has one winner', async () => {
  const book = await newBook();
  const href = `${book}deleted.vcf`;
  const etag = (await client.put(href, person('deleted'))).headers.etag as string;
  const replies = await Promise.all(Array.from({ length: PARALLEL }, () => client.delete(href, { 'If-Match': etag })));
  expect(countStatuses(replies)).toEqual({ 204: 1, 412: PARALLEL - 1 });
  expect((await client.get(href)).status).toBe(404);
});

test('interleaved PUT and DELETE agree with sync', async () => {
  const book = await newBook();
  const names = Array.from({ length: 30 }, (_, i) => `card-${i}.vcf`);
  for (const name of names.slice(0, 20)) await client.put(`${book}${name}`, person(`uid-${name}`));
  const early = await currentSyncToken(client, book);

  // Every card gets a fixed script of writes, and the scripts of all cards run at once.
  const scripts = names.map(async (name, i) => {
    const href = `${book}${name}`;
    const steps: (() => Promise<Reply>)[] = [];
    if (i % 3 === 0) steps.push(() => client.put(href, person(`uid-${name}`, `Edited ${i}`)));
    if (i % 4 === 0) steps.push(() => client.delete(href));
    if (i % 5 === 0) steps.push(() => client.put(href, person(`uid-${name}`, `Recreated ${i}`)));
    if (i >= 20) steps.push(() => client.put(href, person(`uid-${name}`, `New ${i}`)));
    if (i % 7 === 0) steps.push(() => client.delete(href));
    for (const step of steps) await step();
  });
  const racers = Array.from({ length: 20 }, (_, i) => client.put(`${book}${names[i % names.length]}`, person(`uid-${names[i % names.length]}`, `Racer ${i}`)));
  await Promise.all([...scripts, ...racers]);

  const final = await readWholeBook(client, book);
  const changed = await syncCollection(client, book, early);
  const reported = new Map(changed.responses.map((r) => [r.href, r]));
  // Every name was written after the early token: the first 20 existed then and must be reported either way.
  for (const [i, name] of names.entries()) {
    const href = `${book}${name}`;
    const response = reported.get(href);
    const card = final.get(href);
    if (card) expect({ href, status: response?.propstats[0]?.status, etag: response && okProp(response, dav('getetag'))?.text }).toEqual({ href, status: 200, etag: card.etag });
    else if (i < 20 || response) expect({ href, status: response?.status }).toEqual({ href, status: 404 });
  }
  for (const href of reported.keys()) expect(names.map((n) => `${book}${n}`)).toContain(href);

  const paged = new Map<string, string | undefined>();
  let token = early;
  for (let page = 0; page < 100; page++) {
    const reply = await client.report(book, syncBodyWithLimit(token, 4));
    const root = parseXml(reply.text);
    const responses = root.children.filter((c) => c.name === dav('response'));
    let truncated = false;
    for (const response of responses) {
      const href = response.children.find((c) => c.name === dav('href'))?.text ?? '';
      if (href === book) {
        truncated = true;
        continue;
      }
      const propstat = response.children.find((c) => c.name === dav('propstat'));
      const etag = propstat?.children.find((c) => c.name === dav('prop'))?.children.find((c) => c.name === dav('getetag'))?.text;
      paged.set(href, etag);
    }
    token = root.children.find((c) => c.name === dav('sync-token'))?.text ?? token;
    if (!truncated) break;
  }
  for (const [href, card] of final) {
    if (reported.has(href)) expect({ href, etag: paged.get(href) }).toEqual({ href, etag: card.etag });
  }
  for (const [href, etag] of paged) if (etag === undefined) expect({ href, present: final.has(href) }).toEqual({ href, present: false });

  const after = await syncCollection(client, book, await currentSyncToken(client, book));
  expect(after.responses).toEqual([]);
});

function syncBodyWithLimit(token: string, limit: number): string {
  return (
    '<d:sync-collection xmlns:d="DAV:">' +
    `<d:sync-token>${escapeXmlText(token)}</d:sync-token><d:sync-level>1</d:sync-level>` +
    `<d:limit><d:nresults>${limit}</d:nresults></d:limit><d:prop><d:getetag/></d:prop></d:sync-collection>`
  );
}

test('parallel user add raises UserError', async () => {
  const config = loadConfig({ data: app.dataDir });
  const results = await Promise.allSettled([addUser(app.storage, config, 'twin', 'one'), addUser(app.storage, config, 'twin', 'two')]);
  expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(failure?.reason).toBeInstanceOf(UserError);
  expect(String(failure?.reason?.message)).toMatch(/already exists/);
});
