/**
 * `cardinal ldap sync` and the periodic sync of `cardinal serve`, run as
 * child processes from dist/ (run `npm run build` first) against a real slapd.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Attribute, Change } from 'ldapts';
import { runCli, startServer } from '../helpers/server';
import { generatePeople, personDN, startSlapd, type Slapd } from '../helpers/slapd';
import { writeConfig } from './fixture';

jest.setTimeout(120_000);

const PEOPLE = generatePeople(5000);

describe('ldap sync command', () => {
  let slapd: Slapd;
  let dataDir: string;
  let configFile: string;

  const sync = (...args: string[]) => runCli(['ldap', 'sync', '--config', configFile, '--data', dataDir, ...args]);

  beforeAll(async () => {
    slapd = await startSlapd(PEOPLE);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cardinal-ldap-cli-'));
    configFile = writeConfig(slapd);
  });

  afterAll(async () => {
    await slapd?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('dry run changes nothing', async () => {
    const first = await sync('--dry-run');
    const second = await sync('--dry-run');

    expect(first.code).toBe(0);
    expect(first.stdout).toContain('directory sync (dry run, nothing written): 5000 entries; added 5000, changed 0, removed 0');
    expect(second.stdout).toContain('added 5000');
  });

  test('sync prints counts and progress', async () => {
    const result = await sync();

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('directory sync: 5000 entries; added 5000, changed 0, removed 0, unchanged 0, skipped 0');
    expect(result.stdout).toMatch(/^ {2}\+ \S.* \([0-9a-f-]+\.vcf\)$/m);
    expect(result.stdout).toContain('  + ... and 4990 more');
    // stderr is no terminal here, so progress comes as plain lines.
    expect(result.stderr).toContain('reading the directory: 200\n');
    expect(result.stderr).toContain('reading the directory: 5000\n');
    expect(result.stderr).toContain('building cards: 5000/5000\n');
  });

  test('second sync finds no changes', async () => {
    const admin = await slapd.admin();
    await admin.modify(personDN('p00007'), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: ['Director'] }) }));
    await admin.unbind();

    const result = await sync();

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('added 0, changed 1, removed 0, unchanged 4999');
    expect(result.stdout).toContain(`  ~ ${PEOPLE[6].cn} (`);
  });

  test('failed bind exits non-zero', async () => {
    const badConfig = writeConfig(slapd, { ldap: { bindPassword: 'wrong' } });

    const result = await runCli(['ldap', 'sync', '--config', badConfig, '--data', dataDir]);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ldap sync failed, nothing was changed');
    expect(result.stderr).toContain('[LDAP result 49 invalidCredentials]');
    expect(result.stderr).not.toContain('wrong');
  });

  test('delete guard exits with 2', async () => {
    const narrowConfig = writeConfig(slapd, { ldap: { filter: '(&(objectClass=inetOrgPerson)(uid=p00*))' } });

    const stopped = await runCli(['ldap', 'sync', '--config', narrowConfig, '--data', dataDir, '--dry-run']);
    expect(stopped.code).toBe(2);
    expect(stopped.stderr).toContain('would remove 4001 of 5000 directory cards');

    const forced = await runCli(['ldap', 'sync', '--config', narrowConfig, '--data', dataDir, '--dry-run', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('removed 4001');
  });

  test('user list labels system user', async () => {
    const result = await runCli(['user', 'list', '--data', dataDir]);

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('_directory\t1 address book\tsystem user, owns the company directory');
  });

  test('system user password refused', async () => {
    const result = await runCli(['user', 'passwd', '_directory', '--password-stdin', '--data', dataDir], 'secret\n');

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('_directory is a system user and cannot log in');
  });
});

describe('serve periodic sync', () => {
  test('logs runs and failures', async () => {
    const slapd = await startSlapd(PEOPLE.slice(0, 600));
    const configFile = writeConfig(slapd, { ldap: { syncIntervalSeconds: 1, connectTimeoutSeconds: 1 } });
    const server = await startServer({ args: ['--config', configFile] });
    const lines = () =>
      server
        .output()
        .split('\n')
        .filter((line) => line.includes('directory sync'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    const waitFor = async (predicate: () => boolean) => {
      const deadline = Date.now() + 20_000;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for sync log lines:\n${server.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    try {
      await waitFor(() => lines().filter((line) => line.msg === 'directory sync finished').length >= 2);
      const [first, second] = lines().filter((line) => line.msg === 'directory sync finished');
      expect(first.added).toBe(600);
      expect(typeof first.ms).toBe('number');
      expect(second.added).toBe(0);
      expect(second.unchanged).toBe(600);

      await slapd.stop();
      await waitFor(() => lines().some((line) => line.msg === 'directory sync failed; retrying at the next interval'));
      const failure = lines().find((line) => line.msg === 'directory sync failed; retrying at the next interval') as Record<string, unknown>;
      expect(failure.networkCode).toBe('ECONNREFUSED');
      expect(failure.nextRunSeconds).toBe(1);
      expect(server.output()).not.toContain('sync-secret');

      await slapd.start();
      const finishedBefore = lines().filter((line) => line.msg === 'directory sync finished').length;
      await waitFor(() => lines().filter((line) => line.msg === 'directory sync finished').length > finishedBefore);
      const recovered = lines().filter((line) => line.msg === 'directory sync finished').pop() as Record<string, unknown>;
      expect(recovered.removed).toBe(0);
      expect(recovered.added).toBe(0);
    } finally {
      await server.stop();
      await slapd.destroy();
    }
  });
});
