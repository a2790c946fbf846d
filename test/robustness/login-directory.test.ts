/**
 * Directory logins behind the failed-login limits: credentials the directory
 * accepted within the cache lifetime keep working while the client address
 * is blocked, as cached local credentials do.
 */
import { hashPassword } from '../../server/passwords';
import { startTestApp, type TestApp } from '../helpers/app';
import { generatePeople, startSlapd, type Slapd } from '../helpers/slapd';
import { writeConfig } from '../ldap/fixture';
import { basicAuth, Client, expectDavError, portOf } from './support';

jest.setTimeout(120_000);

const PEOPLE = generatePeople(5);
const SYNCING = PEOPLE[0];
const NEWCOMER = PEOPLE[1];

let slapd: Slapd;
let app: TestApp;

beforeAll(async () => {
  slapd = await startSlapd(PEOPLE);
  const config = writeConfig(slapd, {
    auth: { ldap: { enabled: true }, rateLimit: { windowSeconds: 600, maxFailuresPerUser: 3, maxFailuresPerAddress: 3 } },
  });
  app = await startTestApp({}, config);
  await app.addUser('alice');
});

afterAll(async () => {
  await app?.close();
  await slapd?.destroy();
});

function client(name: string, password: string): Client {
  return new Client(portOf(app), basicAuth(name, password));
}

test('cached directory login passes a blocked address', async () => {
  const syncing = client(SYNCING.uid, SYNCING.password);
  expect((await syncing.propfind('/dav/', '0')).status).toBe(207);

  const attacker = client('alice', 'wrong');
  for (let i = 0; i < 3; i++) expect((await attacker.propfind('/dav/', '0')).status).toBe(401);
  expectDavError(await client(NEWCOMER.uid, NEWCOMER.password).propfind('/dav/', '0'), 429);

  expect((await syncing.propfind('/dav/', '0')).status).toBe(207);
});

test('cached directory login with a wrong password is limited', async () => {
  expectDavError(await client(SYNCING.uid, 'wrong').propfind('/dav/', '0'), 429);
});

test('local password shadows a cached directory login', async () => {
  expect(await app.storage.setPassword(SYNCING.uid, await hashPassword('a local password'))).toBe(true);
  const reply = await client(SYNCING.uid, SYNCING.password).propfind('/dav/', '0');
  expect(reply.status).not.toBe(207);
});
