/** The results table and the check of the performance targets, as Markdown. */
import type { MetricResult } from './measurements';
import type { PairedResults } from './paired';
import type { ServerKind } from './servers';

export const METRIC_IDS = [
  'put',
  'propfind',
  'multiget',
  'syncInitial',
  'syncPercent',
  'syncTen',
  'queryEmail',
  'queryFn',
  'vdirsyncerInitial',
  'vdirsyncerShare',
  'vdirsyncerNoop',
  'peakRss',
] as const;
export type MetricId = (typeof METRIC_IDS)[number];

interface MetricInfo {
  label: string;
  unit: 'cards/s' | 's' | '%' | 'MB';
  /** Direction in which a value is better. A metric with `none` gets no ratio. */
  better: 'higher' | 'lower' | 'none';
  /** True for a request that the server handles alone, false for a client run or a memory figure. */
  serverSide: boolean;
}

export const METRICS: Record<MetricId, MetricInfo> = {
  put: { label: 'bulk PUT, 8 clients', unit: 'cards/s', better: 'higher', serverSide: true },
  propfind: { label: 'PROPFIND Depth 1, getetag', unit: 's', better: 'lower', serverSide: true },
  multiget: { label: 'addressbook-multiget, 500 hrefs', unit: 's', better: 'lower', serverSide: true },
  syncInitial: { label: 'sync-collection, initial', unit: 's', better: 'lower', serverSide: true },
  syncPercent: { label: 'sync-collection after 1% changed', unit: 's', better: 'lower', serverSide: true },
  syncTen: { label: 'sync-collection after 10 changes', unit: 's', better: 'lower', serverSide: true },
  queryEmail: { label: 'addressbook-query, EMAIL contains', unit: 's', better: 'lower', serverSide: true },
  queryFn: { label: 'addressbook-query, FN contains', unit: 's', better: 'lower', serverSide: true },
  vdirsyncerInitial: { label: 'vdirsyncer initial sync', unit: 's', better: 'lower', serverSide: false },
  vdirsyncerShare: { label: 'server CPU share of that sync', unit: '%', better: 'none', serverSide: false },
  vdirsyncerNoop: { label: 'vdirsyncer no-op re-sync', unit: 's', better: 'lower', serverSide: false },
  peakRss: { label: 'peak RSS (VmHWM)', unit: 'MB', better: 'lower', serverSide: false },
};

/** Results of one server at one N, by metric. */
export type ServerResults = Partial<Record<MetricId, MetricResult>>;
/** All results: N, then server, then metric. */
export type Results = Map<number, Map<ServerKind, ServerResults>>;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Returns the median of a result, or undefined when it has no values. */
export function medianOf(result: MetricResult | undefined): number | undefined {
  return result && !result.skipped && result.values.length > 0 ? median(result.values) : undefined;
}

function significant(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function formatValue(value: number, unit: MetricInfo['unit']): string {
  switch (unit) {
    case 'cards/s':
      return significant(value);
    case '%':
      return `${(value * 100).toFixed(1)}%`;
    case 'MB':
      return `${significant(value)} MB`;
    case 's':
      return value < 1 ? `${significant(value * 1000)} ms` : `${significant(value)} s`;
  }
}

function formatCell(result: MetricResult | undefined, unit: MetricInfo['unit']): string {
  if (!result) return 'not run';
  if (result.skipped) return `skipped: ${result.skipped}`;
  const value = medianOf(result);
  const text = value === undefined ? 'no value' : formatValue(value, unit);
  return result.note ? `${text} (${result.note})` : text;
}

/** Computes how many times better Cardinal is than the better peer. Above 1, Cardinal is ahead. */
export function ratioToBestPeer(perServer: Map<ServerKind, ServerResults>, metric: MetricId): number | undefined {
  const info = METRICS[metric];
  const cardinal = medianOf(perServer.get('cardinal')?.[metric]);
  if (cardinal === undefined || info.better === 'none') return undefined;
  const peers = (['radicale', 'xandikos'] as const)
    .map((kind) => medianOf(perServer.get(kind)?.[metric]))
    .filter((value): value is number => value !== undefined);
  if (peers.length === 0) return undefined;
  if (info.better === 'higher') return cardinal / Math.max(...peers);
  return Math.min(...peers) / cardinal;
}

function formatRatio(ratio: number | undefined): string {
  if (ratio === undefined) return '';
  return `${ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(1)}×`;
}

/** Renders one Markdown table per N: medians side by side, with Cardinal's ratio to the better peer. */
export function renderTables(results: Results, servers: readonly ServerKind[]): string {
  const out: string[] = [];
  for (const [n, perServer] of results) {
    const withPeers = servers.some((kind) => kind !== 'cardinal') && servers.includes('cardinal');
    out.push(`### N = ${n.toLocaleString('en-US')}`, '');
    const header = ['measurement (median)', ...servers, ...(withPeers ? ['Cardinal vs faster peer'] : [])];
    out.push(`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`);
    for (const metric of Object.keys(METRICS) as MetricId[]) {
      // A measurement left out with --skip has no result anywhere and gets no row.
      if (servers.every((kind) => perServer.get(kind)?.[metric] === undefined)) continue;
      const info = METRICS[metric];
      const label = metric === 'multiget' && n < 500 ? 'addressbook-multiget, all hrefs' : info.label;
      const cells = servers.map((kind) => formatCell(perServer.get(kind)?.[metric], info.unit));
      if (withPeers) cells.push(formatRatio(ratioToBestPeer(perServer, metric)));
      out.push(`| ${label} (${info.unit}) | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

function cardinalMedian(results: Results, n: number, metric: MetricId): number | undefined {
  return medianOf(results.get(n)?.get('cardinal')?.[metric]);
}

/**
 * Renders the paired measurement: the 1% sync and the multiget of 500 at each size, sampled in
 * turns, and the ratio of the large size to the small one.
 */
export function renderPaired(paired: PairedResults | undefined): string {
  if (!paired) return '### Paired\n\nThe paired measurement stopped early. The progress log gives the reason.\n';
  const sizes = [paired.small, paired.large].map((n) => `N = ${n.toLocaleString('en-US')}`);
  const rows = [
    ['sync-collection after 1% changed', paired.syncSmall, paired.syncLarge],
    ['addressbook-multiget, up to 500 hrefs', paired.multigetSmall, paired.multigetLarge],
  ] as const;
  const out = [`### Paired, ${sizes.join(' and ')} at the same time`, '', `| measurement (median) | ${sizes.join(' | ')} | ratio |`, '| --- | --- | --- | --- |'];
  for (const [label, small, large] of rows) {
    const smallValue = medianOf(small);
    const largeValue = medianOf(large);
    const ratio = smallValue !== undefined && largeValue !== undefined ? `${(largeValue / smallValue).toFixed(2)}×` : '';
    out.push(`| ${label} (s) | ${formatCell(small, 's')} | ${formatCell(large, 's')} | ${ratio} |`);
  }
  return out.join('\n') + '\n';
}

/** Checks each target that the measured N values allow, one line per target. */
export function renderTargets(results: Results, paired?: PairedResults): string {
  const lines: string[] = [];
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

  const at10k = results.get(10_000);
  if (at10k && at10k.has('cardinal') && (at10k.has('radicale') || at10k.has('xandikos'))) {
    for (const metric of Object.keys(METRICS) as MetricId[]) {
      if (!METRICS[metric].serverSide) continue;
      const ratio = ratioToBestPeer(at10k, metric);
      if (ratio === undefined) continue;
      lines.push(`- ${verdict(ratio >= 10)} N = 10,000, ${METRICS[metric].label}: Cardinal ${formatRatio(ratio)} the faster peer (target 10×)`);
    }
  }

  const put = cardinalMedian(results, 100_000, 'put');
  if (put !== undefined) lines.push(`- ${verdict(put >= 1000)} N = 100,000, bulk PUT: ${significant(put)} cards/s (target at least 1,000)`);

  const rss = cardinalMedian(results, 100_000, 'peakRss');
  if (rss !== undefined) lines.push(`- ${verdict(rss < 150)} N = 100,000, peak RSS: ${significant(rss)} MB (target under 150 MB)`);

  const share = cardinalMedian(results, 10_000, 'vdirsyncerShare');
  if (share !== undefined) {
    lines.push(`- ${verdict(share < 0.2)} N = 10,000, vdirsyncer initial sync: Cardinal's CPU ${formatValue(share, '%')} of wall time (target under 20%)`);
  }

  // With a paired measurement at 1,000 and 100,000, a scaling target passes only if both methods
  // pass it. Separate runs carry the machine's drift, and the paired small side runs slower.
  const pairedFits = paired?.small === 1_000 && paired.large === 100_000;
  const scaling = [
    { label: 'sync-collection: 1% delta', baseline: 'the 10-change delta', largeMetric: 'syncPercent', smallMetric: 'syncTen', pair: [paired?.syncSmall, paired?.syncLarge] },
    { label: 'multiget of 500', baseline: 'the same', largeMetric: 'multiget', smallMetric: 'multiget', pair: [paired?.multigetSmall, paired?.multigetLarge] },
  ] as const;
  for (const target of scaling) {
    const methods = [
      { method: 'in separate runs', large: cardinalMedian(results, 100_000, target.largeMetric), small: cardinalMedian(results, 1_000, target.smallMetric) },
      { method: 'paired', large: pairedFits ? medianOf(target.pair[1]) : undefined, small: pairedFits ? medianOf(target.pair[0]) : undefined },
    ];
    const figures = methods.filter((entry): entry is { method: string; large: number; small: number } => entry.large !== undefined && entry.small !== undefined);
    if (figures.length === 0) continue;

    const described = figures.map((entry) => `${formatValue(entry.large, 's')} against ${formatValue(entry.small, 's')}, ${(entry.large / entry.small).toFixed(2)}× ${entry.method}`);
    const passes = figures.every((entry) => entry.large / entry.small <= 2);
    const limit = figures.length > 1 ? 'target at most 2× in both' : 'target at most 2×';
    lines.push(`- ${verdict(passes)} ${target.label} at N = 100,000 against ${target.baseline} at N = 1,000: ${described.join('; ')} (${limit})`);
  }
  return lines.length > 0 ? lines.join('\n') : '- no target applies to the measured N values';
}
