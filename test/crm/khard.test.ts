/**
 * End to end with Debian's vdirsyncer 0.19 and khard 0.18 against a real server (`npm run build` first):
 * a sales group shares alice's Customers book, and both members keep customers in it with khard.
 * The tests run in order and share state, because each step builds on the one before.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { runCli, startServer, type RunningServer } from '../helpers/server';

jest.setTimeout(120_000);

const CLIENT_TIMEOUT_MS = 60_000;
const E2E_FIXTURES = path.join(__dirname, '..', 'e2e', 'fixtures');
const FIXTURES = path.join(__dirname, 'fixtures');
const BOOK = 'customers';

const ALICE = { name: 'alice', password: 'alice-secret' };
const BOB = { name: 'bob', password: 'bob-secret' };
type Login = typeof ALICE;

interface ProcessResult {
  command: string;
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Client {
  home: string;
  /** Folder that vdirsyncer fills from the shared book and khard reads. */
  bookDir: string;
  vdirsyncer(args: string[], input?: string): Promise<ProcessResult>;
  khard(args: string[], input?: string): Promise<ProcessResult>;
}

function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: CLIENT_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ command: [command, ...args].join(' '), code, stdout, stderr }));
    child.stdin.end(input);
  });
}

function expectSuccess(result: ProcessResult): ProcessResult {
  if (result.code !== 0) throw new Error(`${result.command} exited with ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  return result;
}

async function renderFixture(file: string, values: Record<string, string>): Promise<string> {
  const template = await readFile(file, 'utf8');
  return template.replace(/\{\{(\w+)\}\}/g, (placeholder: string, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`fixture ${file} has no value for ${placeholder}`);
    return value;
  });
}

async function createClient(root: string, server: RunningServer, login: Login): Promise<Client> {
  const home = path.join(root, login.name);
  const configDir = path.join(home, '.config');
  const contactsDir = path.join(home, 'contacts');
  await mkdir(configDir, { recursive: true });
  const vdirsyncerConfig = path.join(configDir, 'vdirsyncer.conf');
  await writeFile(
    vdirsyncerConfig,
    await renderFixture(path.join(E2E_FIXTURES, 'vdirsyncer.conf'), {
      status_path: JSON.stringify(path.join(home, 'vdirsyncer-status') + '/'),
      local_path: JSON.stringify(contactsDir + '/'),
      url: JSON.stringify(server.url),
      username: JSON.stringify(login.name),
      password: JSON.stringify(login.password),
    }),
  );
  const bookDir = path.join(contactsDir, BOOK);
  const khardConfig = path.join(configDir, 'khard.conf');
  await writeFile(khardConfig, await renderFixture(path.join(FIXTURES, 'khard.conf'), { addressbook_path: bookDir + '/' }));
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
    bookDir,
    vdirsyncer: (args, input) => runProcess('vdirsyncer', ['-c', vdirsyncerConfig, ...args], env, input),
    khard: (args, input) => runProcess('khard', ['-c', khardConfig, ...args], env, input),
  };
}

async function sync(client: Client): Promise<ProcessResult> {
  return expectSuccess(await client.vdirsyncer(['sync']));
}

async function request(method: string, url: string, login: Login, body?: string): Promise<{ status: number; etag: string | null; body: string }> {
  const headers: Record<string, string> = { Authorization: `Basic ${Buffer.from(`${login.name}:${login.password}`).toString('base64')}` };
  const response = await fetch(url, { method, headers, body });
  return { status: response.status, etag: response.headers.get('etag'), body: await response.text() };
}

function uidFromKhardOutput(output: string): string {
  const match = /^\s*UID:\s*(\S+)\s*$/m.exec(output);
  if (match === null) throw new Error(`khard printed no UID:\n${output}`);
  return match[1];
}

/** Writes a khard YAML template to a file in the client's home and returns its path. */
async function yamlFile(client: Client, name: string, text: string): Promise<string> {
  const file = path.join(client.home, name);
  await writeFile(file, text);
  return file;
}

function leadYaml(first: string, last: string, state: string, source: string, phone?: string): string {
  const lines = [`First name : ${first}`, `Last name : ${last}`, `Organisation : ${last} Labs`];
  if (phone) lines.push('Phone :', `    work : ${phone}`);
  lines.push('Private :', `    CRM-LEAD-STATE : ${state}`, `    CRM-LEAD-SOURCE : ${source}`);
  return lines.join('\n') + '\n';
}

/** Counts the leads in a local vdir by state and source, straight from the .vcf files. */
async function countLocalLeads(folder: string): Promise<Record<string, Record<string, number>>> {
  const counts: Record<string, Record<string, number>> = {};
  for (const name of (await readdir(folder)).filter((file) => file.endsWith('.vcf'))) {
    const text = await readFile(path.join(folder, name), 'utf8');
    const state = /^X-CRM-LEAD-STATE:(.*)$/m.exec(text)?.[1].trim();
    const source = /^X-CRM-LEAD-SOURCE:(.*)$/m.exec(text)?.[1].trim() ?? 'unspecified';
    if (state === undefined) continue;
    counts[state] ??= {};
    counts[state][source] = (counts[state][source] ?? 0) + 1;
  }
  return counts;
}

describe('sales team with khard', () => {
  let server: RunningServer;
  let workDir: string;
  let alice: Client;
  let bob: Client;
  let accountUid: string;
  let contactUid: string;
  let leadUid: string;

  const cardUrl = (owner: string, uid: string) => `${server.url}dav/addressbooks/${owner}/${BOOK}/${uid}.vcf`;

  beforeAll(async () => {
    server = await startServer();
    await server.addUser(ALICE.name, ALICE.password);
    await server.addUser(BOB.name, BOB.password);
    expect((await request('MKCOL', `${server.url}dav/addressbooks/alice/${BOOK}/`, ALICE)).status).toBe(201);
    for (const args of [
      ['group', 'add', 'sales', 'alice', 'bob'],
      ['share', `alice/${BOOK}`, '--with', '@sales', '--write'],
    ]) {
      const result = await runCli([...args, '--data', server.dataDir]);
      if (result.code !== 0) throw new Error(`cardinal ${args.join(' ')} failed:\n${result.stderr}`);
    }
    workDir = await mkdtemp(path.join(os.tmpdir(), 'cardinal-crm-e2e-'));
    alice = await createClient(workDir, server, ALICE);
    bob = await createClient(workDir, server, BOB);
  });

  afterAll(async () => {
    await server?.stop();
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  test('both members discover the book', async () => {
    for (const client of [alice, bob]) {
      const discovered = expectSuccess(await client.vdirsyncer(['discover'], 'y\n'.repeat(10)));
      expect(discovered.stderr).toContain(`"${BOOK}"`);
      await sync(client);
    }
  });

  test('alice adds an account and a contact', async () => {
    const accountYaml = 'Formatted name : Acme Corporation\nOrganisation : Acme Corporation\nPrivate :\n    ADDRESSBOOKSERVER-KIND : org\n';
    accountUid = uidFromKhardOutput(expectSuccess(await alice.khard(['new', '-a', BOOK, '-i', await yamlFile(alice, 'account.yaml', accountYaml)])).stdout);
    await sync(alice);

    // The contact names the account only by UID; the server fills ORG with the account's name.
    const contactYaml = `First name : Ada\nLast name : Lovelace\nEmail :\n    work : ada@example.org\nPrivate :\n    CRM-ACCOUNT : ${accountUid}\n    CRM-CASE : C-1042\n`;
    contactUid = uidFromKhardOutput(expectSuccess(await alice.khard(['new', '-a', BOOK, '-i', await yamlFile(alice, 'contact.yaml', contactYaml)])).stdout);
    await sync(alice);

    const stored = await request('GET', cardUrl('alice', contactUid), ALICE);
    expect(stored.status).toBe(200);
    expect(stored.body).toContain(`X-CRM-ACCOUNT:${accountUid}`);
    expect(stored.body).toContain('ORG:Acme Corporation');
  });

  test('bob sees them after a sync', async () => {
    await sync(bob);
    const account = expectSuccess(await bob.khard(['show', `uid:${accountUid}`]));
    expect(account.stdout).toContain('Acme Corporation');
    expect(account.stdout).toContain('ADDRESSBOOKSERVER-KIND: org');
    const contact = expectSuccess(await bob.khard(['show', `uid:${contactUid}`]));
    expect(contact.stdout).toContain('Organisation: Acme Corporation');
    expect(contact.stdout).toContain(`CRM-ACCOUNT: ${accountUid}`);
    expect(contact.stdout).toContain('CRM-CASE: C-1042');
  });

  test('alice gets the server org back', async () => {
    await sync(alice);
    const contact = expectSuccess(await alice.khard(['show', `uid:${contactUid}`]));
    expect(contact.stdout).toContain('Organisation: Acme Corporation');
  });

  test('bad lead state is refused', async () => {
    const file = await yamlFile(bob, 'bad.yaml', leadYaml('Wanda', 'Warm', 'warm', 'inbound'));
    const uid = uidFromKhardOutput(expectSuccess(await bob.khard(['new', '-a', BOOK, '-i', file])).stdout);
    const result = await bob.vdirsyncer(['sync']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('403');
    expect((await request('GET', cardUrl('bob', uid), BOB)).status).toBe(404);
    expectSuccess(await bob.khard(['remove', '--force', `uid:${uid}`]));
    await sync(bob);
  });

  test('alice disqualifies a lead', async () => {
    leadUid = uidFromKhardOutput(
      expectSuccess(await alice.khard(['new', '-a', BOOK, '-i', await yamlFile(alice, 'lead.yaml', leadYaml('Lena', 'Lead', 'open', 'inbound'))])).stdout,
    );
    await sync(alice);
    const disqualify = await yamlFile(alice, 'lead-dq.yaml', leadYaml('Lena', 'Lead', 'disqualified', 'inbound'));
    expectSuccess(await alice.khard(['edit', '-i', disqualify, `uid:${leadUid}`], 'y\n'));
    await sync(alice);
    const stored = await request('GET', cardUrl('alice', leadUid), ALICE);
    expect(stored.body).toContain('X-CRM-LEAD-STATE:disqualified');
    expect(stored.body).toMatch(/X-CRM-LEAD-DISQUALIFIED-AT:\d{8}T\d{6}Z/);
  });

  test('bob edit of it is refused', async () => {
    await sync(bob);
    const before = await request('GET', cardUrl('alice', leadUid), ALICE);
    const edit = await yamlFile(bob, 'lead-edit.yaml', leadYaml('Lena', 'Lead', 'disqualified', 'inbound', '+1 555 0100'));
    expectSuccess(await bob.khard(['edit', '-i', edit, `uid:${leadUid}`], 'y\n'));

    const result = await bob.vdirsyncer(['sync']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("403, message='Forbidden'");
    expect(result.stderr).toContain(`/dav/addressbooks/bob/${BOOK}/${leadUid}.vcf`);

    const after = await request('GET', cardUrl('alice', leadUid), ALICE);
    expect(after.body).toBe(before.body);
    expect(after.etag).toBe(before.etag);
    expect(after.body).not.toContain('555 0100');
  });

  test('undoing the edit clears the error', async () => {
    const before = await request('GET', cardUrl('alice', leadUid), ALICE);
    const undo = await yamlFile(bob, 'lead-undo.yaml', leadYaml('Lena', 'Lead', 'disqualified', 'inbound'));
    expectSuccess(await bob.khard(['edit', '-i', undo, `uid:${leadUid}`], 'y\n'));
    await sync(bob);
    await sync(bob);

    const after = await request('GET', cardUrl('alice', leadUid), ALICE);
    expect(after.body).toBe(before.body);
    expect(after.etag).toBe(before.etag);
  });

  test('reactivation goes through', async () => {
    const reactivate = await yamlFile(bob, 'lead-open.yaml', leadYaml('Lena', 'Lead', 'open', 'inbound', '+1 555 0100'));
    expectSuccess(await bob.khard(['edit', '-i', reactivate, `uid:${leadUid}`], 'y\n'));
    await sync(bob);
    const stored = await request('GET', cardUrl('alice', leadUid), ALICE);
    expect(stored.body).toContain('X-CRM-LEAD-STATE:open');
    expect(stored.body).toContain('555 0100');
    expect(stored.body).toMatch(/X-CRM-LEAD-REACTIVATED-AT:\d{8}T\d{6}Z/);
    expect(stored.body).toMatch(/X-CRM-LEAD-DISQUALIFIED-AT:\d{8}T\d{6}Z/);

    await sync(alice);
    const shown = expectSuccess(await alice.khard(['show', `uid:${leadUid}`]));
    expect(shown.stdout).toContain('CRM-LEAD-STATE: open');
    expect(shown.stdout).toContain('CRM-LEAD-REACTIVATED-AT:');
  });

  test('funnel matches the cards', async () => {
    const olaf = await yamlFile(alice, 'olaf.yaml', leadYaml('Olaf', 'Outreach', 'qualified', 'outbound'));
    expectSuccess(await alice.khard(['new', '-a', BOOK, '-i', olaf]));
    await sync(alice);
    await sync(bob);

    const result = await runCli(['crm', 'funnel', '--json', '--book', `alice/${BOOK}`, '--data', server.dataDir]);
    expect(result.code).toBe(0);
    const funnel = JSON.parse(result.stdout);
    const local = await countLocalLeads(bob.bookDir);
    expect(local).toEqual({ open: { inbound: 1 }, qualified: { outbound: 1 } });
    expect(funnel.total).toBe(2);
    for (const state of ['open', 'qualified', 'disqualified']) {
      for (const source of ['inbound', 'outbound']) expect([state, source, funnel.states[state][source]]).toEqual([state, source, local[state]?.[source] ?? 0]);
    }
  });
});
