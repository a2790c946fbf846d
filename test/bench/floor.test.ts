/**
 * Runs the transfer-floor script with a few requests, so that it keeps working. It checks the
 * table and the shape of the multistatus it sends, and asserts no timings.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { multistatus } from '../../bench/floor';
import { countResponses, parseSyncToken } from '../../bench/http';
import { repoRoot } from '../helpers/server';

const SCRIPT = path.join(repoRoot, 'dist', 'bench', 'floor.js');

test('multistatus has the requested responses', () => {
  const body = multistatus(10);
  expect(countResponses(body)).toBe(10);
  expect(parseSyncToken(body)).toBe('urn:x-floor:sync:1');
  expect(body.toString()).toContain('<d:href>/dav/addressbooks/bench/contacts/00000009-62fb-49a0-81b9-2bb8b39febea.vcf</d:href>');
});

test('floor script prints both sizes', () => {
  const result = spawnSync(process.execPath, [SCRIPT, '--runs', '3', '--warmup', '1'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  expect(result.status).toBe(0);
  expect(result.stdout).toMatch(/^\| 10 \| \d+ \| \d+\.\d{3} ms \|$/m);
  expect(result.stdout).toMatch(/^\| 1000 \| \d+ \| \d+\.\d{3} ms \|$/m);
  expect(result.stdout).toMatch(/The 990 further responses take -?\d+\.\d{3} ms/);
  expect(result.stderr).toContain('1 untimed and 3 timed requests of each size');
});

test('floor script rejects an invalid run count', () => {
  const result = spawnSync(process.execPath, [SCRIPT, '--runs', 'many'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  expect(result.status).toBe(1);
  expect(result.stderr).toContain('invalid --runs: many');
});
