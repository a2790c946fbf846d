/** The benchmark's options: untimed runs, and the paired measurement's defaults, `none` and invalid sizes. */
import { parseOptions } from '../../bench/run';

function pairedOf(argv: string[]): [number, number] | undefined {
  return parseOptions(argv)?.paired;
}

describe('paired options', () => {
  test('default pairs 1,000 and 100,000', () => {
    expect(pairedOf([])).toEqual([1_000, 100_000]);
    expect(pairedOf(['--n', '1000,100000', '--servers', 'cardinal'])).toEqual([1_000, 100_000]);
  });

  test('no default without both sizes', () => {
    expect(pairedOf(['--n', '1000,10000'])).toBeUndefined();
  });

  test('no default without Cardinal', () => {
    expect(pairedOf(['--servers', 'radicale,xandikos'])).toBeUndefined();
  });

  test('quick mode pairs 20 and 200', () => {
    const options = parseOptions(['--quick']);
    expect(options?.paired).toEqual([20, 200]);
    expect(options?.pairedRuns).toBe(1);
  });

  test('none leaves it out', () => {
    expect(pairedOf(['--paired', 'none'])).toBeUndefined();
    expect(pairedOf(['--quick', '--paired', 'none'])).toBeUndefined();
  });

  test('explicit sizes and rounds', () => {
    const options = parseOptions(['--n', 'none', '--paired', '1000,1000', '--paired-runs', '2']);
    expect(options?.sizes).toEqual([]);
    expect(options?.paired).toEqual([1_000, 1_000]);
    expect(options?.pairedRuns).toBe(2);
  });

  test.each([
    ['5', /^invalid --paired: 5; use two sizes SMALL,LARGE/],
    ['200,20', /^invalid --paired: 200,20; use two sizes SMALL,LARGE/],
    ['1,2,3', /^invalid --paired: 1,2,3; use two sizes SMALL,LARGE/],
    ['x,y', /^invalid --paired: x; use a positive number/],
  ])('rejects --paired %s', (value, message) => {
    expect(() => parseOptions(['--paired', value])).toThrow(message);
  });
});

describe('untimed runs', () => {
  test('default is 60 within 10 s', () => {
    const plan = parseOptions([])?.plan;
    expect(plan?.warmups).toBe(60);
    expect(plan?.warmupSeconds).toBe(10);
  });

  test('quick mode runs one', () => {
    expect(parseOptions(['--quick'])?.plan.warmups).toBe(1);
  });

  test('--warmup 0 runs none', () => {
    expect(parseOptions(['--warmup', '0'])?.plan.warmups).toBe(0);
  });
});
