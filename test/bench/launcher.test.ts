/**
 * The node options on the first line of bin/cardinal.js: the command runs with them when
 * started directly, and the benchmark reads them so that it runs Cardinal as it ships.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { shebangNodeOptions } from '../../bench/servers';
import { repoRoot } from '../helpers/server';

const CLI = path.join(repoRoot, 'bin', 'cardinal.js');

describe('bin/cardinal.js first line', () => {
  test('benchmark reads its node options', () => {
    expect(shebangNodeOptions(CLI)).toEqual(['--max-semi-space-size=4']);
  });

  test('command runs when started directly', () => {
    const result = spawnSync(CLI, ['--help'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Usage: cardinal');
  });

  test('options of other first lines', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cardinal-shebang-'));
    try {
      const file = path.join(dir, 'cli.js');
      writeFileSync(file, '#!/usr/bin/env node\n');
      expect(shebangNodeOptions(file)).toEqual([]);
      writeFileSync(file, '#!/usr/bin/env -S node --max-semi-space-size=8 --stack-size=2000\n');
      expect(shebangNodeOptions(file)).toEqual(['--max-semi-space-size=8', '--stack-size=2000']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
