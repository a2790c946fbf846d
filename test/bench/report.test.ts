/**
 * The target lines of the benchmark report for the two scaling targets. Where the paired
 * measurement ran at 1,000 and 100,000 cards, a target holds only if the separate runs and the
 * paired measurement both find it.
 */
import type { PairedResults } from '../../bench/paired';
import { renderPaired, renderTargets, Results, ServerResults } from '../../bench/report';

function results(small: ServerResults, large: ServerResults): Results {
  return new Map([
    [1_000, new Map([['cardinal', small]])],
    [100_000, new Map([['cardinal', large]])],
  ]) as Results;
}

const separate = results(
  { syncTen: { values: [0.001, 0.001, 0.001] }, multiget: { values: [0.004] } },
  { syncPercent: { values: [0.0025, 0.0026, 0.0024] }, multiget: { values: [0.009] } },
);

function paired(small: number, large: number, syncSmall: number[], syncLarge: number[]): PairedResults {
  return {
    small,
    large,
    syncSmall: { values: syncSmall },
    syncLarge: { values: syncLarge },
    multigetSmall: { values: [0.005, 0.006, 0.007] },
    multigetLarge: { values: [0.008, 0.009, 0.010] },
  };
}

function targetLines(text: string): string[] {
  return text.split('\n').filter((line) => line.includes('at N = 100,000 against'));
}

describe('scaling targets', () => {
  test('separate runs decide without pairing', () => {
    expect(targetLines(renderTargets(separate))).toEqual([
      '- FAIL sync-collection: 1% delta at N = 100,000 against the 10-change delta at N = 1,000: 2.50 ms against 1.00 ms, 2.50× in separate runs (target at most 2×)',
      '- FAIL multiget of 500 at N = 100,000 against the same at N = 1,000: 9.00 ms against 4.00 ms, 2.25× in separate runs (target at most 2×)',
    ]);
  });

  test('paired alone decides without separate runs', () => {
    const text = renderTargets(new Map() as Results, paired(1_000, 100_000, [0.0016, 0.0015, 0.0017], [0.0024, 0.0041, 0.0023]));
    expect(targetLines(text)).toEqual([
      '- PASS sync-collection: 1% delta at N = 100,000 against the 10-change delta at N = 1,000: 2.40 ms against 1.60 ms, 1.50× paired (target at most 2×)',
      '- PASS multiget of 500 at N = 100,000 against the same at N = 1,000: 9.00 ms against 6.00 ms, 1.50× paired (target at most 2×)',
    ]);
  });

  test('both methods must pass', () => {
    const text = renderTargets(separate, paired(1_000, 100_000, [0.0016, 0.0015, 0.0017], [0.0024, 0.0041, 0.0023]));
    expect(targetLines(text)).toEqual([
      '- FAIL sync-collection: 1% delta at N = 100,000 against the 10-change delta at N = 1,000: 2.50 ms against 1.00 ms, 2.50× in separate runs; 2.40 ms against 1.60 ms, 1.50× paired (target at most 2× in both)',
      '- FAIL multiget of 500 at N = 100,000 against the same at N = 1,000: 9.00 ms against 4.00 ms, 2.25× in separate runs; 9.00 ms against 6.00 ms, 1.50× paired (target at most 2× in both)',
    ]);
  });

  test('passes when both hold', () => {
    const close = results({ syncTen: { values: [0.002] }, multiget: { values: [0.006] } }, { syncPercent: { values: [0.0039] }, multiget: { values: [0.011] } });
    const text = renderTargets(close, paired(1_000, 100_000, [0.0016], [0.0024]));
    expect(targetLines(text).map((line) => line.slice(0, 6))).toEqual(['- PASS', '- PASS']);
  });

  test('paired ratio above 2 fails', () => {
    const close = results({ syncTen: { values: [0.002] } }, { syncPercent: { values: [0.0039] } });
    const text = renderTargets(close, paired(1_000, 100_000, [0.001], [0.0021]));
    expect(targetLines(text)[0]).toBe(
      '- FAIL sync-collection: 1% delta at N = 100,000 against the 10-change delta at N = 1,000: 3.90 ms against 2.00 ms, 1.95× in separate runs; 2.10 ms against 1.00 ms, 2.10× paired (target at most 2× in both)',
    );
  });

  test('paired measurement at other sizes ignored', () => {
    const text = renderTargets(separate, paired(20, 200, [0.001], [0.001]));
    expect(targetLines(text).map((line) => line.slice(0, 6))).toEqual(['- FAIL', '- FAIL']);
    expect(text).not.toContain('paired');
  });
});

describe('paired table', () => {
  test('shows both medians and their ratio', () => {
    const text = renderPaired(paired(1_000, 100_000, [0.0016, 0.0015, 0.0017], [0.0024, 0.0041, 0.0023]));
    expect(text.split('\n')).toEqual([
      '### Paired, N = 1,000 and N = 100,000 at the same time',
      '',
      '| measurement (median) | N = 1,000 | N = 100,000 | ratio |',
      '| --- | --- | --- | --- |',
      '| sync-collection after 1% changed (s) | 1.60 ms | 2.40 ms | 1.50× |',
      '| addressbook-multiget, up to 500 hrefs (s) | 6.00 ms | 9.00 ms | 1.50× |',
      '',
    ]);
  });

  test('notes an early stop', () => {
    expect(renderPaired(undefined)).toContain('stopped early');
  });
});
