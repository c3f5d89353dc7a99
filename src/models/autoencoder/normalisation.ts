import { quantileSorted } from 'simple-statistics';

/**
 * Feature normalisation for the autoencoder: a signed log1p tames heavy tails (latencies, rates, queue depths),
 * then a robust centre and scale (median, IQR/1.349 with a floor) put every feature on a comparable footing, and a
 * clip keeps one absurd value from dominating the error. Fitted on healthy training windows only.
 */
export interface NormalisationStats {
  transform: 'signed-log1p';
  center: number[];
  scale: number[];
  /** Normalised values are clipped to ±clip. */
  clip: number;
}

/** Scale floor in log units (~10 % relative change): a feature flat in training must move that much to count. */
export const SCALE_FLOOR = 0.1;
export const DEFAULT_CLIP = 6;

/**
 * Features that describe the deployment, not the node's health: `peers.observed` is the cluster size minus one, so a
 * model trained on 8-node clusters would find every window of a 4-node cluster odd. They are neutralised: centre 0
 * and a scale so large that they normalise to ~0 whatever their value, so the network neither sees nor reconstructs them.
 */
export const CONTEXT_FEATURES: readonly string[] = ['peers.observed'];
export const NEUTRAL_SCALE = 1e6;

export function signedLog1p(x: number): number {
  return x >= 0 ? Math.log1p(x) : -Math.log1p(-x);
}

/**
 * Fits centre and scale per column of `raw` (row-major, `cols` wide, raw feature values). Columns in `neutral` get
 * centre 0 and NEUTRAL_SCALE (see CONTEXT_FEATURES).
 */
export function fitNormalisation(
  raw: Float64Array,
  cols: number,
  clip = DEFAULT_CLIP,
  neutral: ReadonlySet<number> = new Set(),
): NormalisationStats {
  const n = raw.length / cols;
  const center: number[] = [];
  const scale: number[] = [];
  const column = new Float64Array(n);
  for (let c = 0; c < cols; c++) {
    if (neutral.has(c)) {
      center.push(0);
      scale.push(NEUTRAL_SCALE);
      continue;
    }
    for (let r = 0; r < n; r++) column[r] = signedLog1p(raw[r * cols + c]!);
    column.sort();
    const values = Array.from(column);
    const med = n > 0 ? quantileSorted(values, 0.5) : 0;
    const iqr = n > 0 ? quantileSorted(values, 0.75) - quantileSorted(values, 0.25) : 0;
    center.push(med);
    scale.push(Math.max(iqr / 1.349, SCALE_FLOOR));
  }
  return { transform: 'signed-log1p', center, scale, clip };
}

/** Normalises one raw row into `out` at `offset`. Non-finite inputs read as the centre (no evidence either way). */
export function normaliseRow(
  stats: NormalisationStats,
  raw: ArrayLike<number>,
  out: Float32Array,
  offset: number,
): void {
  const { center, scale, clip } = stats;
  for (let c = 0; c < center.length; c++) {
    const v = raw[c]!;
    let z = Number.isFinite(v) ? (signedLog1p(v) - center[c]!) / scale[c]! : 0;
    if (z > clip) z = clip;
    else if (z < -clip) z = -clip;
    out[offset + c] = z;
  }
}

/** Indices of CONTEXT_FEATURES in `features`. */
export function contextColumns(features: readonly string[]): Set<number> {
  const out = new Set<number>();
  features.forEach((f, i) => {
    if (CONTEXT_FEATURES.includes(f)) out.add(i);
  });
  return out;
}

export function normaliseRows(stats: NormalisationStats, raw: Float64Array, cols: number): Float32Array {
  const n = raw.length / cols;
  const out = new Float32Array(raw.length);
  for (let r = 0; r < n; r++) normaliseRow(stats, raw.subarray(r * cols, (r + 1) * cols), out, r * cols);
  return out;
}
