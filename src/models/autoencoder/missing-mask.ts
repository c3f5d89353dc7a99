import { EWMA_SIGNALS, SLOPE_SIGNALS, slopeFeature, Z_SIGNALS } from '../../features/names.js';
import { isMetricName, METRICS } from '../../messages.js';
import type { NormalisationStats } from './normalisation.js';

/**
 * Latency features of a window without a single measurement are carried forward by the extractor (so plots and the
 * stat scorer's levels stay continuous), but they are not observations: a drained node gets no INVITEs and no OPTIONS,
 * and its last values, from the failure that got it drained, would otherwise keep the autoencoder's error high long
 * after the cause is gone. So for each latency metric whose `.count` is 0 in a window, every feature derived from it
 * (percentiles, EWMA, slope, and their z-scores) is replaced by its normalisation centre and left out of the error.
 */
export interface MissingGroup {
  /** Column of the metric's `.count`. */
  countCol: number;
  /** Columns that mean nothing when the count is 0. */
  cols: number[];
}

/** The groups of `features` (a model's column order); metrics whose `.count` is not a column are not masked. */
export function missingGroups(features: readonly string[]): MissingGroup[] {
  const index = new Map(features.map((f, i) => [f, i]));
  const groups: MissingGroup[] = [];
  for (const f of features) {
    if (!f.endsWith('.count')) continue;
    const metric = f.slice(0, -'.count'.length);
    if (!isMetricName(metric) || METRICS[metric].kind !== 'latency') continue;
    const of = (source: string) => source.startsWith(`${metric}.`);
    const slopes = SLOPE_SIGNALS.filter((s) => of(s.source)).map((s) => slopeFeature(s.name));
    const derived = new Set<string>([
      `${metric}.p50`,
      `${metric}.p95`,
      `${metric}.max`,
      ...EWMA_SIGNALS.filter((s) => of(s.source)).map((s) => `ewma.${s.name}`),
      ...slopes,
      ...Z_SIGNALS.filter((s) => of(s.source) || slopes.includes(s.source)).flatMap((s) => [
        `z.self.${s.name}`,
        `z.peer.${s.name}`,
      ]),
    ]);
    const cols = [...derived].map((name) => index.get(name)).filter((c): c is number => c !== undefined);
    if (cols.length > 0) groups.push({ countCol: index.get(f)!, cols: cols.sort((a, b) => a - b) });
  }
  return groups;
}

/** The raw value of each column that normalises to 0 (inverse of the signed log1p at the centre). */
export function centreValues(stats: NormalisationStats): Float64Array {
  return Float64Array.from(stats.center, (c) => (c >= 0 ? Math.expm1(c) : -Math.expm1(-c)));
}

/**
 * Masks rows in place: in every row whose group count is 0 (or not finite), the group's columns get `centre` and, when
 * `keep` is given (n × cols, initialised by this call), weight 0 in the error. Returns how many cells were masked.
 */
export function maskMissing(
  raw: Float64Array | Float32Array,
  n: number,
  cols: number,
  groups: readonly MissingGroup[],
  centre: ArrayLike<number>,
  keep?: Float32Array,
): number {
  if (keep) keep.fill(1, 0, n * cols);
  let masked = 0;
  for (let r = 0; r < n; r++) {
    const at = r * cols;
    for (const g of groups) {
      const count = raw[at + g.countCol]!;
      if (Number.isFinite(count) && count > 0) continue;
      for (const c of g.cols) {
        raw[at + c] = centre[c]!;
        if (keep) keep[at + c] = 0;
        masked++;
      }
    }
  }
  return masked;
}

/** Mean squared error of each row over its kept cells (all cells when `keep` is absent). */
export function keptRowMeans(cells: Float32Array, cols: number, keep?: Float32Array): Float64Array {
  const n = cells.length / cols;
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    let k = 0;
    for (let c = 0; c < cols; c++) {
      const w = keep ? keep[r * cols + c]! : 1;
      s += cells[r * cols + c]! * w;
      k += w;
    }
    out[r] = k > 0 ? s / k : 0;
  }
  return out;
}
