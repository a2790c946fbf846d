/**
 * A directory user logs in with vdirsyncer (Debian's 0.19) using the
 * directory password, and khard reads the company directory that
 * `cardinal ldap sync` mirrored. The tests run in order and share state.
 * Needs `npm run build` first.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Attribute, Change } from 'ldapts';
import { runCli, startServer, type RunningServer } from '../helpers/server';
import { generatePeople, personDN, startSlapd, type Slapd } from '../helpers/slapd';
import { writeConfig } from './fixture';

jest.setTimeout(300_000);

const PEOPLE = generatePeople(5000);
const USER = PEOPLE[9];
const CLIENT_TIMEOUT_MS = 240_000;
const VDIRSYNCER_TEMPLATE = path.join(__dirname, '..', 'e2e', 'fixtures', 'vdirsyncer.conf');

interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: CLIENT_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

function expectSuccess(result: ProcessResult, what: string): ProcessResult {
  if (result.code !== 0) throw new Error(`${what} exited with ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  return result;
}

async function vcfFiles(folder: string): Promise<string[]> {
  return (await readdir(folder)).filter((name) => name.endsWith('.vcf')).sort();
}

describe('vdirsyncer and khard with the directory', () => {
  let slapd: Slapd;
  let server: RunningServer;
  let configFile: string;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let vdirsyncerConfig: string;
  let khardConfig: string;
  let directoryDir: string;

  const ldapSync = async () => expectSuccess(await runCli(['ldap', 'sync', '--config', configFile, '--data', server.dataDir]), 'cardinal ldap sync');
  const vdirsyncer = (args: string[], input?: string) => run('vdirsyncer', ['-c', vdirsyncerConfig, ...args], env, input);
  const khard = (args: string[]) => run('khard', ['-c', khardConfig, ...args], env);

  beforeAll(async () => {
    slapd = await startSlapd(PEOPLE);
    configFile = writeConfig(slapd, { auth: { ldap: { enabled: true, loginAttribute: ['uid', 'mail'] } } });
    server = await startServer({ args: ['--config', configFile] });
    await ldapSync();

    home = await mkdtemp(path.join(os.tmpdir(), 'cardinal-ldap-e2e-'));
    const configDir = path.join(home, '.config');
    const contactsDir = path.join(home, 'contacts');
    directoryDir = path.join(contactsDir, 'directory');
    await mkdir(configDir, { recursive: true });
    vdirsyncerConfig = path.join(configDir, 'vdirsyncer.conf');
    const template = await readFile(VDIRSYNCER_TEMPLATE, 'utf8');
    const values: Record<string, string> = {
      status_path: JSON.stringify(path.join(home, 'vdirsyncer-status') + '/'),
      local_path: JSON.stringify(contactsDir + '/'),
      url: JSON.stringify(server.url),
      // The mail alias, to show that any login attribute reaches the same account.
      username: JSON.stringify(USER.mail),
      password: JSON.stringify(USER.password),
    };
    await writeFile(vdirsyncerConfig, template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => values[key]));
    khardConfig = path.join(configDir, 'khard.conf');
    await writeFile(khardConfig, `[addressbooks]\n[[directory]]\npath = ${directoryDir}/\n\n[general]\neditor = /bin/false\nmerge_editor = /bin/false\n`);
    env = {
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
  });

  afterAll(async () => {
    await server?.stop();
    await slapd?.destroy();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test('discover finds the directory book', async () => {
    const result = expectSuccess(await vdirsyncer(['discover'], 'y\n'.repeat(10)), 'vdirsyncer discover');

    expect(result.stderr).toContain('"directory" ("Company directory")');
    expect(result.stderr).toContain('"contacts" ("Contacts")');
  });

  test('sync downloads every colleague', async () => {
    expectSuccess(await vdirsyncer(['sync']), 'vdirsyncer sync');

    expect(await vcfFiles(directoryDir)).toHaveLength(PEOPLE.length);
    const listed = expectSuccess(await khard(['list', '--parsable']), 'khard list');
    expect(listed.stdout.trim().split('\n')).toHaveLength(PEOPLE.length);
    const shown = expectSuccess(await khard(['show', '--format', 'yaml', 'p00001@example.com']), 'khard show');
    expect(shown.stdout).toContain('Jürgen');
    expect(shown.stdout).toContain('Müller');
  });

  test('directory change reaches khard', async () => {
    const admin = await slapd.admin();
    // khard shows the name from N, so the family name changes with cn.
    await admin.modify(personDN('p00002'), [
      new Change({ operation: 'replace', modification: new Attribute({ type: 'cn', values: ['Zoë Changed-Name'] }) }),
      new Change({ operation: 'replace', modification: new Attribute({ type: 'sn', values: ['Changed-Name'] }) }),
    ]);
    await admin.del(personDN('p04999'));
    await admin.unbind();
    const report = await ldapSync();
    expect(report.stdout).toContain('added 0, changed 1, removed 1');

    const synced = expectSuccess(await vdirsyncer(['sync']), 'vdirsyncer sync');

    expect(synced.stderr).toMatch(/Copying \(updating\) item/);
    expect(await vcfFiles(directoryDir)).toHaveLength(PEOPLE.length - 1);
    const shown = expectSuccess(await khard(['list', '--parsable', 'Changed-Name']), 'khard list');
    expect(shown.stdout).toContain('Zoë Changed-Name');
    const gone = await khard(['list', '--parsable', 'p04999@example.com']);
    expect(gone.stdout).not.toContain('p04999');
  });

  test('unchanged directory downloads nothing', async () => {
    await ldapSync();

    const synced = expectSuccess(await vdirsyncer(['sync']), 'vdirsyncer sync');

    expect(synced.stderr).not.toContain('Copying');
    expect(synced.stderr).not.toContain('Deleting');
  });
});
