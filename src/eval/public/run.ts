import { ROLLING_Z, WINDOWED_GAUSSIAN } from './baselines.js';
import { loadPublicDataset, PUBLIC_SOURCES, type PublicDataset, type PublicSource } from './datasets.js';
import type { PublicDetector } from './detector.js';
import { averagePrecision, bestEarlyDetection, type EarlyDetection, earlyDetection, rowLabels } from './metrics.js';
import { STAT, TFJS } from './scorers.js';

/** The detectors of the public evaluation, in table order: the product's scorers, then the baselines. */
export const PUBLIC_DETECTORS: readonly PublicDetector[] = [STAT, TFJS, ROLLING_Z, WINDOWED_GAUSSIAN];

export interface DetectorResult {
  detector: string;
  /** Null when the detector failed on this data set (error says why). */
  ap: number | null;
  /** AP of a detector that ranks at random: the share of evaluated rows inside windows. */
  best: EarlyDetection | null;
  /** At the scorer's own drain threshold, on its calibrated risk; null for baselines. */
  operating: EarlyDetection | null;
  /**
   * Share of the scored rows at the detector's lowest score: rows it cannot order among themselves (a scorer whose
   * risk sits at its floor below a threshold gives AP nothing to rank there).
   */
  atFloor: number | null;
  seconds: number;
  error: string | null;
}

/** Share of rows evalStart.. whose score equals the lowest of them. */
export function floorShare(scores: ArrayLike<number>, evalStart: number): number | null {
  let min = Number.POSITIVE_INFINITY;
  for (let i = evalStart; i < scores.length; i++) min = Math.min(min, scores[i]!);
  let n = 0;
  for (let i = evalStart; i < scores.length; i++) if (scores[i] === min) n++;
  return scores.length > evalStart ? n / (scores.length - evalStart) : null;
}

export interface DatasetResult {
  source: PublicSource;
  rows: number;
  columns: number;
  evalStart: number;
  windows: number;
  positiveRate: number;
  cadenceS: number;
  results: DetectorResult[];
}

export async function evaluateDataset(ds: PublicDataset, detectors = PUBLIC_DETECTORS): Promise<DatasetResult> {
  const labels = rowLabels(ds.rows.length, ds.windows);
  let positives = 0;
  for (let i = ds.evalStart; i < labels.length; i++) if (labels[i]) positives++;
  const results: DetectorResult[] = [];
  for (const d of detectors) {
    const started = performance.now();
    try {
      const s = await d.score(ds);
      results.push({
        detector: d.name,
        ap: averagePrecision(s.raw, labels, ds.evalStart),
        best: bestEarlyDetection(s.raw, ds.windows, ds.evalStart),
        operating:
          s.risk !== null && s.operatingThreshold !== null
            ? earlyDetection(s.risk, ds.windows, s.operatingThreshold, ds.evalStart)
            : null,
        atFloor: floorShare(s.raw, ds.evalStart),
        seconds: (performance.now() - started) / 1000,
        error: null,
      });
    } catch (err) {
      results.push({
        detector: d.name,
        ap: null,
        best: null,
        operating: null,
        atFloor: null,
        seconds: (performance.now() - started) / 1000,
        error: (err as Error).message,
      });
    }
  }
  return {
    source: ds.source,
    rows: ds.rows.length,
    columns: ds.columns.length,
    evalStart: ds.evalStart,
    windows: ds.windows.length,
    positiveRate: positives / Math.max(1, ds.rows.length - ds.evalStart),
    cadenceS: ds.cadenceMs / 1000,
    results,
  };
}

export async function evaluatePublic(
  sources: readonly PublicSource[] = PUBLIC_SOURCES,
  detectors = PUBLIC_DETECTORS,
): Promise<DatasetResult[]> {
  const out: DatasetResult[] = [];
  for (const source of sources) out.push(await evaluateDataset(loadPublicDataset(source), detectors));
  return out;
}

function f3(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(3);
}

function ed(e: EarlyDetection | null): string {
  if (e === null) return 'n/a';
  return `${e.normalised.toFixed(1)} (${e.detected}/${e.windows} found, ${e.falseAlarms} false)`;
}

/** A markdown table. */
export function markdownTable(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** Whether `stat` is ahead of both baselines on a metric, for the note under each table. */
function verdict(r: DatasetResult, metric: (x: DetectorResult) => number | null, what: string): string {
  const stat = r.results.find((x) => x.detector === 'stat');
  const bases = r.results.filter((x) => x.detector === 'rolling-z' || x.detector === 'windowed-gaussian');
  const s = stat ? metric(stat) : null;
  if (s === null) return `${what}: stat not measured`;
  const behind = bases.filter((b) => (metric(b) ?? Number.NEGATIVE_INFINITY) >= s).map((b) => b.detector);
  return behind.length === 0
    ? `${what}: stat ahead of both baselines`
    : `${what}: stat NOT ahead of ${behind.join(', ')}`;
}

export function renderPublicMarkdown(results: readonly DatasetResult[], detectors = PUBLIC_DETECTORS): string {
  const sections = results.map((r) => {
    const rows = r.results.map((x) => [
      x.detector,
      x.error === null ? f3(x.ap) : `failed: ${x.error}`,
      ed(x.best),
      x.best === null || x.best.threshold === Number.POSITIVE_INFINITY ? 'never' : x.best.threshold.toPrecision(4),
      ed(x.operating),
      x.atFloor === null ? 'n/a' : `${(100 * x.atFloor).toFixed(1)} %`,
      `${x.seconds.toFixed(1)} s`,
    ]);
    return `### ${r.source.name}

${r.source.what}. ${r.rows} rows x ${r.columns} column(s), cadence ${r.cadenceS} s; ${r.windows} labelled windows;
the first ${r.evalStart} rows are the probation period (learnt from, not scored). Rows inside windows after probation:
${(100 * r.positiveRate).toFixed(1)} % (the AP of a random ranking).
Origin: ${r.source.origin}. Licence: ${r.source.licence}. Taken: ${r.source.subset}.

${markdownTable(['detector', 'AP', 'early detection, best threshold', 'best threshold', 'early detection at drain threshold 0.8', 'rows at its lowest score', 'time'], rows)}

${verdict(r, (x) => x.ap, 'AP')}; ${verdict(r, (x) => x.best?.normalised ?? null, 'early detection')}.
`;
  });
  return `## Public, real, labelled data (generated by \`npm run evaluate\`; do not edit)

${summaryTable(results, detectors)}

${sections.join('\n')}
Detectors: ${detectors.map((d) => `\`${d.name}\`: ${d.description}`).join('; ')}.
Metrics are defined in docs/evaluation.md ("Public, real, labelled data: how it is measured").
`;
}

/**
 * One row per data set, AP and early detection (best threshold) per detector side by side; the random AP (share of
 * positive rows) for scale.
 */
export function summaryTable(results: readonly DatasetResult[], detectors = PUBLIC_DETECTORS): string {
  const names = detectors.map((d) => d.name);
  const cell = (r: DatasetResult, name: string, f: (x: DetectorResult) => string) => {
    const x = r.results.find((y) => y.detector === name);
    return x === undefined || x.error !== null ? 'n/a' : f(x);
  };
  return markdownTable(
    ['data set', 'random AP', ...names.map((n) => `AP ${n}`), ...names.map((n) => `early det. ${n}`)],
    results.map((r) => [
      r.source.name,
      r.positiveRate.toFixed(3),
      ...names.map((n) => cell(r, n, (x) => f3(x.ap))),
      ...names.map((n) => cell(r, n, (x) => (x.best === null ? 'n/a' : x.best.normalised.toFixed(1)))),
    ]),
  );
}

/** Plain-text table for stdout. */
export function renderPublicText(results: readonly DatasetResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`\n== ${r.source.name} (${r.rows} rows, ${r.windows} windows, random AP ${r.positiveRate.toFixed(3)})`);
    lines.push(`${'detector'.padEnd(18)} ${'AP'.padEnd(7)} ${'early det. (best thr.)'.padEnd(34)} at drain threshold`);
    for (const x of r.results) {
      if (x.error !== null) {
        lines.push(`${x.detector.padEnd(18)} failed: ${x.error}`);
        continue;
      }
      lines.push(`${x.detector.padEnd(18)} ${f3(x.ap).padEnd(7)} ${ed(x.best).padEnd(34)} ${ed(x.operating)}`);
    }
    lines.push(`${verdict(r, (x) => x.ap, 'AP')}; ${verdict(r, (x) => x.best?.normalised ?? null, 'early detection')}`);
  }
  return lines.join('\n');
}
