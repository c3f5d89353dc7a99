/**
 * The one adapter between the public data sets and the product's scorers: each data set's rows go through
 * `scoreRows` (src/models/csv/score.ts), the same mapping and scorers as `foresight score` on a CSV.
 *
 * `stat`: StatScorer with the data set's columns as named metrics (docs/scorer.md, "Named metrics"), default options,
 * online: it learns as it goes (probation rows included), as `foresight score` without --train. Raw score: the
 * scorer's `rawScore`; risk: its calibrated risk. Rows still warming up (the first 30, inside the probation) read 0.
 *
 * `tfjs`: `foresight score --scorer tfjs --train`, the training file being the probation rows (the autoencoder fits 4
 * blocks of 5 and calibrates on the held-out fifth). Input per row: the row's columns, and for a single column the last
 * 12 values (one hour at 5 min) as 12 columns, so the network sees shape, not one number. Raw score: the
 * reconstruction error; risk: the calibrated risk. Weights seeded: the same data gives the same scores.
 */

import type { NodeScore } from '../../messages.js';
import { type MetricRow, scoreRows } from '../../models/csv/score.js';
import type { PublicDataset } from './datasets.js';
import type { DetectorScores, PublicDetector } from './detector.js';

/** The product's drain threshold (config default actions.guardrails.riskThreshold). */
const DRAIN_THRESHOLD = 0.8;

function metricRows(rows: readonly ArrayLike<number>[], ts: readonly number[]): MetricRow[] {
  return rows.map((r, i) => ({
    values: Array.from(r, (x) => (Number.isFinite(x) ? x : null)),
    ts: ts[i] ?? null,
  }));
}

function scoresOf(scores: readonly NodeScore[]): DetectorScores {
  const raw = new Float64Array(scores.length);
  const risk = new Float64Array(scores.length);
  scores.forEach((s, i) => {
    raw[i] = s.warmup || !s.observed ? 0 : (s.rawScore ?? 0);
    risk[i] = s.risk;
  });
  return { raw, risk, operatingThreshold: DRAIN_THRESHOLD };
}

export const STAT: PublicDetector = {
  name: 'stat',
  description:
    'the product scorer as `foresight score` runs it: StatScorer over the columns as named metrics, online, default options',
  async score(ds: PublicDataset): Promise<DetectorScores> {
    return scoresOf(await scoreRows(ds.columns, metricRows(ds.rows, ds.ts), { scorer: 'stat' }));
  },
};

/** Lagged input rows: row i = the last `lags` rows' columns (earlier rows repeat the first row). */
export function laggedInputs(rows: readonly ArrayLike<number>[], lags: number): { data: Float64Array; cols: number } {
  const width = rows[0]?.length ?? 0;
  const cols = width * lags;
  const data = new Float64Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) {
    for (let l = 0; l < lags; l++) {
      const src = rows[Math.max(0, i - (lags - 1 - l))]!;
      for (let c = 0; c < width; c++) data[i * cols + l * width + c] = src[c]!;
    }
  }
  return { data, cols };
}

const UNIVARIATE_LAGS = 12;

export const TFJS: PublicDetector = {
  name: 'tfjs',
  description:
    "the product's autoencoder as `foresight score --scorer tfjs --train` runs it, the probation rows as training file " +
    '(4/5 fit, 1/5 held out for calibration); univariate input = last 12 values',
  async score(ds: PublicDataset): Promise<DetectorScores> {
    const lags = ds.columns.length === 1 ? UNIVARIATE_LAGS : 1;
    const { data, cols } = laggedInputs(ds.rows, lags);
    const names = lags === 1 ? ds.columns : Array.from({ length: cols }, (_, k) => `${ds.columns[0]}@-${lags - 1 - k}`);
    const rows = Array.from({ length: ds.rows.length }, (_, i) => data.subarray(i * cols, (i + 1) * cols));
    const all = metricRows(rows, ds.ts);
    const train = all.slice(0, Math.max(1, ds.evalStart));
    return scoresOf(await scoreRows(names, all, { scorer: 'tfjs' }, train));
  },
};
