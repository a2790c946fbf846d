/**
 * End-to-end scenario with Debian's vdirsyncer and khard against a real Cardinal server.
 * The tests run in order and share state, because each step uses the contacts of the one before.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startServer, type RunningServer } from '../helpers/server';

jest.setTimeout(120_000);

const CLIENT_TIMEOUT_MS = 60_000;
const FIXTURES = path.join(__dirname, 'fixtures');

/** Name of the default address book that `cardinal user add` creates. */
const DEFAULT_BOOK = 'contacts';

const ALICE = { name: 'alice', password: 'alice-secret' };
const BOB = { name: 'bob', password: 'bob-secret' };

interface ProcessResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface HttpResult {
  method: string;
  url: string;
  status: number;
  headers: Headers;
  body: string;
}

interface RequestOptions {
  user: { name: string; password: string };
  depth?: '0' | '1';
  headers?: Record<string, string>;
  body?: string;
}

/** One user's vdirsyncer and khard setup, isolated under its own temporary HOME. */
interface Client {
  home: string;
  /** Folder that vdirsyncer fills and khard reads. */
  addressBookDir: string;
  vdirsyncer(args: string[], input?: string): Promise<ProcessResult>;
  khard(args: string[]): Promise<ProcessResult>;
}

function principalUrl(server: RunningServer, user: string): string {
  return `${server.url}dav/principals/${user}/`;
}

function homeUrl(server: RunningServer, user: string): string {
  return `${server.url}dav/addressbooks/${user}/`;
}

function bookUrl(server: RunningServer, user: string): string {
  return `${homeUrl(server, user)}${DEFAULT_BOOK}/`;
}

/**
 * URL of a card that vdirsyncer uploaded. vdirsyncer 0.19 names an upload `<UID>.vcf` when
 * the UID contains only `[A-Za-z0-9_.+-]`, which is true of the UIDs that khard generates.
 */
function cardUrl(server: RunningServer, user: string, uid: string): string {
  return `${bookUrl(server, user)}${uid}.vcf`;
}

async function runProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input = '',
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: CLIENT_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      resolve({ command: [command, ...args].join(' '), code, signal, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

function describeProcess(result: ProcessResult): string {
  return (
    `${result.command} exited with ${result.code} (signal ${result.signal})\n` +
    `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`
  );
}

/** Throws with the full client output unless the process exited with status 0. */
function expectSuccess(result: ProcessResult): ProcessResult {
  if (result.code !== 0) {
    throw new Error(describeProcess(result));
  }
  return result;
}

/** Replaces every `{{name}}` in a fixture and fails on a placeholder left without a value. */
async function renderFixture(name: string, values: Record<string, string>): Promise<string> {
  const template = await readFile(path.join(FIXTURES, name), 'utf8');
  return template.replace(/\{\{(\w+)\}\}/g, (placeholder: string, key: string) => {
    const value = values[key];
    if (value === undefined) {
      throw new Error(`fixture ${name} has no value for ${placeholder}`);
    }
    return value;
  });
}

async function createClient(root: string, server: RunningServer, user: typeof ALICE): Promise<Client> {
  const home = path.join(root, user.name);
  const configDir = path.join(home, '.config');
  const contactsDir = path.join(home, 'contacts');
  await mkdir(configDir, { recursive: true });

  const vdirsyncerConfig = path.join(configDir, 'vdirsyncer.conf');
  await writeFile(
    vdirsyncerConfig,
    await renderFixture('vdirsyncer.conf', {
      status_path: JSON.stringify(path.join(home, 'vdirsyncer-status') + '/'),
      local_path: JSON.stringify(contactsDir + '/'),
      url: JSON.stringify(server.url),
      username: JSON.stringify(user.name),
      password: JSON.stringify(user.password),
    }),
  );

  // vdirsyncer names the local folder after the last URL segment of the server's book.
  const addressBookDir = path.join(contactsDir, DEFAULT_BOOK);
  const khardConfig = path.join(configDir, 'khard.conf');
  await writeFile(khardConfig, await renderFixture('khard.conf', { addressbook_path: addressBookDir + '/' }));

  // A minimal environment keeps the real user's configuration, proxies and editor out.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    XDG_CONFIG_HOME: configDir,
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    EDITOR: '/bin/false',
    VISUAL: '/bin/false',
  };

  return {
    home,
    addressBookDir,
    vdirsyncer: (args, input) => runProcess('vdirsyncer', ['-c', vdirsyncerConfig, ...args], env, input),
    khard: (args) => runProcess('khard', ['-c', khardConfig, ...args], env),
  };
}

/**
 * Runs `vdirsyncer discover`, which prompts "Should vdirsyncer attempt to create it? [y/N]"
 * for each server book that has no local folder yet. The pair syncs only collections found
 * on the server, so answering "y" can only create a local folder. Each answer is one line.
 */
async function discover(client: Client): Promise<ProcessResult> {
  return expectSuccess(await client.vdirsyncer(['discover'], 'y\n'.repeat(10)));
}

async function sync(client: Client): Promise<ProcessResult> {
  return expectSuccess(await client.vdirsyncer(['sync']));
}

async function request(method: string, url: string, options: RequestOptions): Promise<HttpResult> {
  const credentials = Buffer.from(`${options.user.name}:${options.user.password}`).toString('base64');
  const headers: Record<string, string> = { Authorization: `Basic ${credentials}`, ...options.headers };
  if (options.depth !== undefined) {
    headers.Depth = options.depth;
  }
  if (options.body !== undefined && headers['Content-Type'] === undefined) {
    headers['Content-Type'] = 'application/xml; charset=utf-8';
  }

  const response = await fetch(url, { method, headers, body: options.body, redirect: 'manual' });
  return { method, url, status: response.status, headers: response.headers, body: await response.text() };
}

/** Throws with the request and the full response body unless the status is one of `expected`. */
function expectStatus(result: HttpResult, ...expected: number[]): HttpResult {
  if (!expected.includes(result.status)) {
    throw new Error(
      `${result.method} ${result.url} returned ${result.status}, expected ${expected.join(' or ')}\n${result.body}`,
    );
  }
  return result;
}

const PROPFIND_ETAGS =
  '<?xml version="1.0" encoding="utf-8"?>' +
  '<propfind xmlns="DAV:"><prop><resourcetype/><getcontenttype/><getetag/></prop></propfind>';

function multigetBody(hrefs: string[]): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<C:addressbook-multiget xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">' +
    '<prop><getetag/><C:address-data/></prop>' +
    hrefs.map((href) => `<href>${href}</href>`).join('') +
    '</C:addressbook-multiget>'
  );
}

/** Reads the UID from the card summary that `khard new` prints ("UID: ..."). */
function uidFromKhardOutput(output: string): string {
  const match = /^\s*UID:\s*(\S+)\s*$/m.exec(output);
  if (match === null) {
    throw new Error(`khard new printed no UID:\n${output}`);
  }
  return match[1];
}

async function listVcfFiles(folder: string): Promise<string[]> {
  const names = await readdir(folder);
  return names.filter((name) => name.endsWith('.vcf')).sort();
}

describe('vdirsyncer and khard', () => {
  let server: RunningServer;
  let workDir: string;
  let alice: Client;
  let adaUid: string;
  let graceUid: string;

  beforeAll(async () => {
    server = await startServer();
    await server.addUser(ALICE.name, ALICE.password);
    await server.addUser(BOB.name, BOB.password);
    workDir = await mkdtemp(path.join(os.tmpdir(), 'cardinal-e2e-'));
    alice = await createClient(workDir, server, ALICE);
  });

  afterAll(async () => {
    await server?.stop();
    if (workDir !== undefined) {
      await rm(workDir, { recursive: true, force: true });
    }
  });

  test('discover finds default address book', async () => {
    const result = await discover(alice);

    // vdirsyncer prints the discovered collections on stderr, as `- "contacts" ("Contacts")`.
    expect(result.stderr).toContain(`"${DEFAULT_BOOK}" ("Contacts")`);
    expect(await listVcfFiles(alice.addressBookDir)).toEqual([]);
  });

  test('initial sync of empty book', async () => {
    await sync(alice);

    expect(await listVcfFiles(alice.addressBookDir)).toEqual([]);
  });

  test('khard contacts reach server', async () => {
    const ada = expectSuccess(await alice.khard(['new', '-i', path.join(FIXTURES, 'ada.yaml')]));
    const grace = expectSuccess(await alice.khard(['new', '-i', path.join(FIXTURES, 'grace.yaml')]));
    adaUid = uidFromKhardOutput(ada.stdout);
    graceUid = uidFromKhardOutput(grace.stdout);

    await sync(alice);

    const adaCard = expectStatus(await request('GET', cardUrl(server, ALICE.name, adaUid), { user: ALICE }), 200);
    expect(adaCard.body).toContain(`UID:${adaUid}`);
    expect(adaCard.body).toContain('FN:Ada Lovelace');
    expect(adaCard.body).toContain('ada@example.org');
    expect(adaCard.headers.get('content-type')).toMatch(/^text\/vcard/);
    expect(adaCard.headers.get('etag')).toMatch(/^"/);

    const graceCard = expectStatus(await request('GET', cardUrl(server, ALICE.name, graceUid), { user: ALICE }), 200);
    expect(graceCard.body).toContain('FN:Grace Hopper');

    const listing = expectStatus(
      await request('PROPFIND', bookUrl(server, ALICE.name), { user: ALICE, depth: '1', body: PROPFIND_ETAGS }),
      207,
    );
    expect(listing.body).toContain(`${adaUid}.vcf`);
    expect(listing.body).toContain(`${graceUid}.vcf`);
  });

  test('server edit reaches khard', async () => {
    const url = cardUrl(server, ALICE.name, adaUid);
    const current = expectStatus(await request('GET', url, { user: ALICE }), 200);
    const etag = current.headers.get('etag');
    expect(etag).not.toBeNull();
    const edited = current.body.replace('ada@example.org', 'countess@example.org');
    expect(edited).not.toEqual(current.body);

    const put = await request('PUT', url, {
      user: ALICE,
      headers: { 'If-Match': etag ?? '', 'Content-Type': 'text/vcard; charset=utf-8' },
      body: edited,
    });
    expectStatus(put, 204);

    await sync(alice);

    const details = expectSuccess(await alice.khard(['show', `uid:${adaUid}`]));
    expect(details.stdout).toContain('countess@example.org');
    expect(details.stdout).not.toContain('ada@example.org');
    expect(details.stdout).toContain('Ada Lovelace');
  });

  test('khard removal deletes on server', async () => {
    const removed = expectSuccess(await alice.khard(['remove', '--force', `uid:${graceUid}`]));
    expect(removed.stdout).toContain('Grace Hopper');

    // Ada stays, because vdirsyncer aborts a sync whose deletions would empty one side.
    await sync(alice);

    expectStatus(await request('GET', cardUrl(server, ALICE.name, graceUid), { user: ALICE }), 404);
    expectStatus(await request('GET', cardUrl(server, ALICE.name, adaUid), { user: ALICE }), 200);

    const listing = expectStatus(
      await request('PROPFIND', bookUrl(server, ALICE.name), { user: ALICE, depth: '1', body: PROPFIND_ETAGS }),
      207,
    );
    expect(listing.body).not.toContain(graceUid);
    expect(listing.body).toContain(`${adaUid}.vcf`);

    const listed = expectSuccess(await alice.khard(['list', '--parsable']));
    expect(listed.stdout).toContain(adaUid);
    expect(listed.stdout).not.toContain(graceUid);
  });

  test('bob syncs only his own book', async () => {
    const bob = await createClient(workDir, server, BOB);

    const discovered = await discover(bob);
    expect(discovered.stderr).toContain(`"${DEFAULT_BOOK}" ("Contacts")`);
    await sync(bob);

    expect(await listVcfFiles(bob.addressBookDir)).toEqual([]);

    // khard exits with 1 and "Found no contacts" on an empty address book.
    const listed = await bob.khard(['list']);
    expect(listed.stdout).toContain('Found no contacts');
    expect(listed.stdout).not.toContain('Lovelace');
  });

  test('bob cannot read alice URLs', async () => {
    const targets: Array<[string, string, RequestOptions]> = [
      ['PROPFIND', principalUrl(server, ALICE.name), { user: BOB, depth: '0', body: PROPFIND_ETAGS }],
      ['PROPFIND', homeUrl(server, ALICE.name), { user: BOB, depth: '1', body: PROPFIND_ETAGS }],
      ['PROPFIND', bookUrl(server, ALICE.name), { user: BOB, depth: '1', body: PROPFIND_ETAGS }],
      ['GET', cardUrl(server, ALICE.name, adaUid), { user: BOB }],
      [
        'REPORT',
        bookUrl(server, ALICE.name),
        { user: BOB, body: multigetBody([new URL(cardUrl(server, ALICE.name, adaUid)).pathname]) },
      ],
    ];

    for (const [method, url, options] of targets) {
      const result = expectStatus(await request(method, url, options), 403, 404);
      expect(result.body).not.toContain(adaUid);
      expect(result.body).not.toContain('Lovelace');
    }
  });

  test('bob cannot change alice cards', async () => {
    const url = cardUrl(server, ALICE.name, adaUid);
    const before = expectStatus(await request('GET', url, { user: ALICE }), 200);

    const overwrite = await request('PUT', url, {
      user: BOB,
      headers: { 'Content-Type': 'text/vcard; charset=utf-8' },
      body: before.body.replace('Ada Lovelace', 'Mallory'),
    });
    expectStatus(overwrite, 403, 404);
    expectStatus(await request('DELETE', url, { user: BOB }), 403, 404);

    const planted = await request('PUT', cardUrl(server, ALICE.name, 'planted-by-bob'), {
      user: BOB,
      headers: { 'If-None-Match': '*', 'Content-Type': 'text/vcard; charset=utf-8' },
      body: 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:planted-by-bob\r\nFN:Mallory\r\nN:;Mallory;;;\r\nEND:VCARD\r\n',
    });
    expectStatus(planted, 403, 404);

    const after = expectStatus(await request('GET', url, { user: ALICE }), 200);
    expect(after.body).toEqual(before.body);
    expect(after.headers.get('etag')).toEqual(before.headers.get('etag'));

    const listing = expectStatus(
      await request('PROPFIND', bookUrl(server, ALICE.name), { user: ALICE, depth: '1', body: PROPFIND_ETAGS }),
      207,
    );
    expect(listing.body).not.toContain('planted-by-bob');
  });

  test('wrong password gets 401', async () => {
    const result = await request('PROPFIND', server.url, {
      user: { name: ALICE.name, password: 'wrong' },
      depth: '0',
      body: PROPFIND_ETAGS,
    });

    expectStatus(result, 401);
    expect(result.headers.get('www-authenticate')).toMatch(/^Basic /i);
  });
});
