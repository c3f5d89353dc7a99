import type { PublicDataset } from './datasets.js';
import type { DetectorScores, PublicDetector } from './detector.js';

/**
 * The two classic baselines of the public evaluation. Both score each column by how far the value lies from a
 * mean and standard deviation of past values only, and a row by its largest column score (the usual way to run a
 * univariate detector over several metrics). A column with fewer than `minHistory` past values, or a non-finite value,
 * scores 0 (no evidence). A standard deviation of 0 (a flat past) is floored at `stdFloor` x (|mean| + 1), so a
 * constant series that moves by a hair does not score infinity.
 */
interface Moments {
  n: number;
  sum: number;
  sumSq: number;
}

function zOf(x: number, m: Moments, stdFloor: number): number {
  const mean = m.sum / m.n;
  const variance = Math.max(0, m.sumSq / m.n - mean * mean);
  const std = Math.max(Math.sqrt(variance), stdFloor * (Math.abs(mean) + 1));
  return Math.abs(x - mean) / std;
}

export interface RollingZOptions {
  /** Past values in the rolling window. Default 100. */
  window?: number;
  minHistory?: number;
  stdFloor?: number;
}

/**
 * Scores each column with a fresh causal scorer (`column()` returns one: value in, score out, state kept inside) and a
 * row by its largest column score. Non-finite values are skipped: not scored, not learnt.
 */
function maxOverColumns(rows: readonly ArrayLike<number>[], column: () => (x: number) => number): Float64Array {
  const cols = rows[0]?.length ?? 0;
  const out = new Float64Array(rows.length);
  for (let c = 0; c < cols; c++) {
    const next = column();
    for (let i = 0; i < rows.length; i++) {
      const x = rows[i]![c]!;
      if (Number.isFinite(x)) out[i] = Math.max(out[i]!, next(x));
    }
  }
  return out;
}

/** Rolling z-score: |x - mean| / std over the previous `window` values of the column (the row itself excluded). */
export function rollingZScores(rows: readonly ArrayLike<number>[], options: RollingZOptions = {}): Float64Array {
  const window = options.window ?? 100;
  const minHistory = options.minHistory ?? 10;
  const stdFloor = options.stdFloor ?? 1e-6;
  return maxOverColumns(rows, () => {
    const past: number[] = [];
    const m: Moments = { n: 0, sum: 0, sumSq: 0 };
    return (x) => {
      const z = m.n >= minHistory ? zOf(x, m, stdFloor) : 0;
      past.push(x);
      m.n++;
      m.sum += x;
      m.sumSq += x * x;
      if (past.length > window) {
        const old = past.shift()!;
        m.n--;
        m.sum -= old;
        m.sumSq -= old * old;
      }
      return z;
    };
  });
}

export interface WindowedGaussianOptions {
  /** Values the Gaussian is fitted on. Default 6400. */
  window?: number;
  /** The fit is refreshed every `step` values (between refreshes it stays fixed). Default 100. */
  step?: number;
  minHistory?: number;
  stdFloor?: number;
}

/**
 * Windowed Gaussian (as in NAB's baseline): a Gaussian fitted to the last `window` values, refreshed every `step`
 * values; the anomaly likelihood of a value is its two-sided tail, and the raw score is |x - mean| / std, which orders
 * rows exactly as that likelihood does without its saturation at 1.0 in floating point.
 */
export function windowedGaussianScores(
  rows: readonly ArrayLike<number>[],
  options: WindowedGaussianOptions = {},
): Float64Array {
  const window = options.window ?? 6400;
  const step = options.step ?? 100;
  const minHistory = options.minHistory ?? 10;
  const stdFloor = options.stdFloor ?? 1e-6;
  return maxOverColumns(rows, () => {
    const past: number[] = [];
    let fit: Moments | null = null;
    let sinceFit = 0;
    return (x) => {
      // Refit when due, and keep refitting every value until there is enough history to fit at all.
      if (fit === null || fit.n < minHistory || sinceFit >= step) {
        fit = { n: past.length, sum: 0, sumSq: 0 };
        for (const v of past) {
          fit.sum += v;
          fit.sumSq += v * v;
        }
        sinceFit = 0;
      }
      const z = fit.n >= minHistory ? zOf(x, fit, stdFloor) : 0;
      past.push(x);
      if (past.length > window) past.shift();
      sinceFit++;
      return z;
    };
  });
}

function baseline(name: string, description: string, f: (rows: readonly ArrayLike<number>[]) => Float64Array) {
  return {
    name,
    description,
    score: async (ds: PublicDataset): Promise<DetectorScores> => ({
      raw: f(ds.rows),
      risk: null,
      operatingThreshold: null,
    }),
  } satisfies PublicDetector;
}

export const ROLLING_Z: PublicDetector = baseline(
  'rolling-z',
  'rolling z-score: |x - mean| / std of the previous 100 values per column, largest over columns',
  (rows) => rollingZScores(rows),
);

export const WINDOWED_GAUSSIAN: PublicDetector = baseline(
  'windowed-gaussian',
  'windowed Gaussian (NAB baseline): fitted to the last 6400 values, refreshed every 100; tail likelihood as z',
  (rows) => windowedGaussianScores(rows),
);
