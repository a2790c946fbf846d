/**
 * Runs the benchmark's quick mode against Cardinal alone, so that the benchmark keeps working
 * as the server changes. It checks that the command finishes and prints a complete table. It
 * asserts no timings, because test machines differ.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { METRICS } from '../../bench/report';
import { repoRoot } from '../helpers/server';

jest.setTimeout(300_000);

const SCRIPT = path.join(repoRoot, 'dist', 'bench', 'run.js');
const RUN_TIMEOUT_MS = 240_000;

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runBenchmark(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: RUN_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Returns the cells of the table row whose first cell starts with `label`. */
function rowCells(table: string, label: string): string[] | undefined {
  const line = table.split('\n').find((row) => row.startsWith(`| ${label} (`));
  return line?.split('|').slice(1, -1).map((cell) => cell.trim());
}

describe('benchmark quick mode', () => {
  let result: RunResult;

  beforeAll(async () => {
    if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing; run npm run build first`);
    result = await runBenchmark(['--quick', '--servers', 'cardinal']);
  });

  test('exits with status 0', () => {
    expect({ code: result.code, signal: result.signal, stderr: result.code === 0 ? '' : result.stderr }).toEqual({
      code: 0,
      signal: null,
      stderr: '',
    });
  });

  test('prints progress lines', () => {
    expect(result.stderr).toContain('N=200 cardinal: starting');
    expect(result.stderr).toContain('N=200 cardinal: bulk PUT, run 1/1');
  });

  test('untimed run before timed ones', () => {
    const lines = result.stderr.split('\n');
    const untimed = lines.findIndex((line) => line.includes('N=200 cardinal: multiget of 200, untimed run 1/1'));
    const timed = lines.findIndex((line) => line.includes('N=200 cardinal: multiget of 200, run 1/1'));
    expect(untimed).toBeGreaterThan(-1);
    expect(timed).toBeGreaterThan(untimed);
    expect(lines.some((line) => line.includes('sync-collection after 10 changes, untimed run 1/1'))).toBe(true);
  });

  test('prints record header', () => {
    expect(result.stdout).toMatch(/^- Command: node dist\/bench\/run\.js --quick --servers cardinal$/m);
    expect(result.stdout).toMatch(/^- Commit: \S+/m);
    expect(result.stdout).toMatch(/^- Machine: .+ cores/m);
    expect(result.stdout).toMatch(/^- Runs: 1 per request measurement after up to 1 untimed ones/m);
  });

  test('prints table for N = 200', () => {
    expect(result.stdout).toContain('### N = 200');
    expect(result.stdout).toContain('| measurement (median) | cardinal |');
  });

  test('every measurement has a value', () => {
    for (const [id, info] of Object.entries(METRICS)) {
      const label = id === 'multiget' ? 'addressbook-multiget, all hrefs' : info.label;
      const cells = rowCells(result.stdout, label);
      expect({ label, cells }).toEqual({ label, cells: [expect.stringContaining(label), expect.any(String)] });
      const value = cells?.[1] ?? '';
      expect({ label, value }).toEqual({ label, value: expect.not.stringMatching(/skipped|not run|no value|failed/) });
    }
  });

  test('prints paired table', () => {
    expect(result.stdout).toMatch(/^- Paired: 20 and 200 cards, 1 round after up to 1 untimed ones/m);
    const table = result.stdout.slice(result.stdout.indexOf('### Paired, N = 20 and N = 200 at the same time'));
    for (const label of ['sync-collection after 1% changed', 'addressbook-multiget, up to 500 hrefs']) {
      const cells = rowCells(table, label);
      expect({ label, cells }).toEqual({ label, cells: [expect.any(String), expect.stringMatching(/ ms$/), expect.stringMatching(/ ms$/), expect.stringMatching(/^\d+\.\d\d×$/)] });
    }
    expect(result.stderr).toMatch(/paired: round 1\/1: N=20 syncs .+ ms; multigets .+ ms; N=200 syncs .+ ms; multigets .+ ms/);
  });

  test('prints targets section', () => {
    expect(result.stdout).toContain('#### Targets');
  });
});
