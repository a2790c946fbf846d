/**
 * The first line of bin/cardinal.js: the command runs with its environment and node options
 * when started directly, and the benchmark reads them so that it runs Cardinal as it ships.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { readShebang } from '../../bench/servers';
import { repoRoot } from '../helpers/server';

const CLI = path.join(repoRoot, 'bin', 'cardinal.js');

/** Reads a /proc file of NUL-separated strings, or undefined once the process is gone. */
function readProcList(pid: number, file: string): string[] | undefined {
  const name = `/proc/${pid}/${file}`;
  if (!existsSync(name)) return undefined;
  return readFileSync(name, 'latin1').split('\0').filter((entry) => entry !== '');
}

describe('bin/cardinal.js first line', () => {
  test('benchmark reads what it sets', () => {
    expect(readShebang(CLI)).toEqual({
      env: { MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_TRIM_THRESHOLD_: '16777216' },
      nodeOptions: ['--max-semi-space-size=4', '--initial-old-space-size=32', '--no-allocation-site-pretenuring'],
    });
  });

  test('command runs when started directly', () => {
    const result = spawnSync(CLI, ['--help'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Usage: cardinal');
  });

  test('server gets the environment and options', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cardinal-launcher-'));
    const server = spawn(CLI, ['serve', '--data', path.join(dir, 'data'), '--host', '127.0.0.1', '--port', '0'], { cwd: repoRoot, stdio: 'ignore' });
    try {
      const pid = server.pid as number;
      // env replaces itself with node under the same process id, so wait for node's command line.
      let commandLine: string[] | undefined;
      for (let attempt = 0; attempt < 200; attempt++) {
        commandLine = readProcList(pid, 'cmdline');
        // While env replaces itself, the command line can read as empty.
        if (commandLine !== undefined && commandLine.length > 0 && path.basename(commandLine[0]) === 'node') break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(commandLine?.[0]).toMatch(/node$/);
      expect(commandLine).toContain(CLI);
      expect(commandLine).toContain('--max-semi-space-size=4');
      expect(commandLine).toContain('--initial-old-space-size=32');
      expect(commandLine).toContain('--no-allocation-site-pretenuring');
      const environ = readProcList(pid, 'environ');
      expect(environ).toContain('MALLOC_ARENA_MAX=1');
      expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=4194304');
      expect(environ).toContain('MALLOC_TRIM_THRESHOLD_=16777216');
    } finally {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('first lines of other forms', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cardinal-shebang-'));
    try {
      const file = path.join(dir, 'cli.js');
      writeFileSync(file, '#!/usr/bin/env node\n');
      expect(readShebang(file)).toEqual({ env: {}, nodeOptions: [] });
      writeFileSync(file, '#!/usr/bin/env -S node --max-semi-space-size=8 --stack-size=2000\n');
      expect(readShebang(file)).toEqual({ env: {}, nodeOptions: ['--max-semi-space-size=8', '--stack-size=2000'] });
      writeFileSync(file, '#!/usr/bin/env -S A=1 B_2=x=y node\n');
      expect(readShebang(file)).toEqual({ env: { A: '1', B_2: 'x=y' }, nodeOptions: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
