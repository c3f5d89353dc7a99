import type { FeatureVector, NodeScore } from '../../messages.js';
import { looksLikeCounter } from '../scorers/metric-model.js';
import type { Scorer } from '../scorers/scorer.js';
import { splitHeldOut, trainModel } from '../training/fit.js';

/**
 * The TF.js autoencoder on a CSV's own columns: trained on the rows of `--train` (a period the user says was normal),
 * calibrated on a held-out part of them, then run as the sidecar runs it (TfjsScorer). The network reads whole rows,
 * so what this adapter adds is only what rows need to be comparable: a column that is a cumulative counter in the
 * training rows is fed as its rate per second, and a missing value as the column's training median (not 0).
 */
export async function fitCsvAutoencoder(
  names: readonly string[],
  train: readonly FeatureVector[],
  cadenceMs: number,
): Promise<Scorer> {
  const rows = train.filter((v) => v.observed);
  const counters = new Set(
    names.filter((n) => {
      const xs = rows.map((v) => v.features[n]).filter((x): x is number => x !== undefined);
      return looksLikeCounter(xs);
    }),
  );
  const rates = new RateReader(names, counters);
  const trainRows = rows.map((v) => rates.read(v)).slice(counters.size > 0 ? 1 : 0);
  const medians = names.map((_, c) => {
    const xs = trainRows
      .map((r) => r[c]!)
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b);
    return xs.length > 0 ? xs[xs.length >> 1]! : 0;
  });
  const cols = names.length;
  const raw = new Float64Array(trainRows.length * cols);
  trainRows.forEach((r, i) => {
    for (let c = 0; c < cols; c++) raw[i * cols + c] = Number.isFinite(r[c]!) ? r[c]! : medians[c]!;
  });
  const { train: fitRows, held } = splitHeldOut(raw, cols);
  const model = await trainModel({
    train: fitRows,
    calibration: held,
    features: names,
    name: 'csv',
    source: 'csv',
    dataDigest: '',
    windowMs: cadenceMs,
    initSeed: 1,
    shuffleSeed: 2,
  });
  const inner = model.scorer;
  const live = new RateReader(names, counters);
  return {
    name: inner.name,
    score(vectors: readonly FeatureVector[]): NodeScore[] {
      const mapped = vectors.map((v) => {
        if (!v.observed) return v;
        const r = live.read(v);
        const features: Record<string, number> = {};
        for (let c = 0; c < cols; c++) features[names[c]!] = Number.isFinite(r[c]!) ? r[c]! : medians[c]!;
        return { ...v, features };
      });
      return inner.score(mapped);
    },
  };
}

/** Reads rows of named metrics, counters as their rate per second since the previous row (NaN for the first). */
class RateReader {
  private readonly prev: Float64Array;
  private prevTs = Number.NaN;

  constructor(
    private readonly names: readonly string[],
    private readonly counters: ReadonlySet<string>,
  ) {
    this.prev = new Float64Array(names.length).fill(Number.NaN);
  }

  read(v: FeatureVector): number[] {
    const dtS = v.windowEnd > this.prevTs ? (v.windowEnd - this.prevTs) / 1000 : 1;
    this.prevTs = v.windowEnd;
    return this.names.map((n, c) => {
      const x = v.features[n];
      if (x === undefined || !Number.isFinite(x)) return Number.NaN;
      if (!this.counters.has(n)) return x;
      const p = this.prev[c]!;
      this.prev[c] = x;
      if (!Number.isFinite(p)) return Number.NaN;
      return (x >= p ? x - p : x) / (Number.isFinite(dtS) ? dtS : 1);
    });
  }
}
