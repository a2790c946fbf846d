/**
 * Failed-login limits behind one shared client address: an attacker who
 * exhausts the per-address limit must not lock out a client whose password
 * the server verified moments ago, while fresh password checks stay blocked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../helpers/app';
import { basicAuth, Client, expectDavError, portOf, PROPFIND_ETAG, type Reply } from './support';

const MAX_FAILURES_PER_USER = 3;
const MAX_FAILURES_PER_ADDRESS = 6;

let app: TestApp;
let configFile: string;
let configDir: string;

beforeAll(() => {
  configDir = mkdtempSync(join(tmpdir(), 'cardinal-login-config-'));
  configFile = join(configDir, 'config.json');
  const rateLimit = { windowSeconds: 600, maxFailuresPerUser: MAX_FAILURES_PER_USER, maxFailuresPerAddress: MAX_FAILURES_PER_ADDRESS };
  writeFileSync(configFile, JSON.stringify({ auth: { rateLimit } }));
});

afterAll(() => rmSync(configDir, { recursive: true, force: true }));

// Each test gets a new server, so it starts with no failures counted.
beforeEach(async () => {
  app = await startTestApp({}, configFile);
  for (const name of ['syncing', 'newcomer']) await app.addUser(name);
});

afterEach(() => app.close());

function propfindHome(client: Client, name: string): Promise<Reply> {
  return client.propfind(`/dav/addressbooks/${name}/`, '0', PROPFIND_ETAG);
}

test('verified client passes address limit', async () => {
  const port = portOf(app);
  const syncing = new Client(port, app.auth('syncing'));
  expect((await propfindHome(syncing, 'syncing')).status).toBe(207);

  for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i++) {
    const guesser = new Client(port, basicAuth(`guess-${i}`, 'wrong'));
    expect((await propfindHome(guesser, `guess-${i}`)).status).toBe(401);
  }

  const fresh = await propfindHome(new Client(port, app.auth('newcomer')), 'newcomer');
  expectDavError(fresh, 429);
  expect(Number(fresh.headers['retry-after'])).toBeGreaterThan(0);
  for (let i = 0; i < 3; i++) expect((await propfindHome(syncing, 'syncing')).status).toBe(207);
});

test('verified client passes user limit', async () => {
  const port = portOf(app);
  const syncing = new Client(port, app.auth('syncing'));
  expect((await propfindHome(syncing, 'syncing')).status).toBe(207);

  const guesser = new Client(port, basicAuth('syncing', 'wrong'));
  for (let i = 0; i < MAX_FAILURES_PER_USER; i++) expect((await propfindHome(guesser, 'syncing')).status).toBe(401);

  expectDavError(await propfindHome(guesser, 'syncing'), 429);
  expect((await propfindHome(syncing, 'syncing')).status).toBe(207);
});

test('wrong password is still limited', async () => {
  const port = portOf(app);
  const syncing = new Client(port, app.auth('syncing'));
  expect((await propfindHome(syncing, 'syncing')).status).toBe(207);

  const guesser = new Client(port, basicAuth('syncing', 'wrong'));
  const statuses: number[] = [];
  for (let i = 0; i <= MAX_FAILURES_PER_USER; i++) statuses.push((await propfindHome(guesser, 'syncing')).status);
  expect(statuses).toEqual([...Array<number>(MAX_FAILURES_PER_USER).fill(401), 429]);
});
