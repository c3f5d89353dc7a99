import type { FeatureVector, NodeScore, ScoreContribution } from '../messages.js';
import type { ModelArtefact, ModelManifest } from './artefact.js';
import { normaliseRow } from './autoencoder-norm.js';
import { errorPercentile, riskFromError } from './calibration.js';
import { activeCallsOf, isUp, type Scorer, unobservedScore } from './scorer.js';
import type { Tf } from './tf-backend.js';
import { forecastExhaustion } from './trend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface TfjsScorerOptions {
  /** How many contributions the explanation lists. Default 5. */
  explainTop?: number;
}

/** Logit units a trend gains per e-fold shortening of its forecast, and the cap (same shape as the stat scorer's). */
const TREND_GAIN = 3;
const TREND_CAP = 12;
const TREND_BIAS = -4;
/** Healthy-error percentile a fast trend needs from the autoencoder to count. */
export const CORROBORATE_PERCENTILE = 0.995;

function finite(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : 0;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}

/**
 * Scores windows with the trained autoencoder and the trend forecasts.
 *
 * - Anomaly risk: the mean squared reconstruction error of the normalised window, mapped through the artefact's
 *   calibration (0.5 at the threshold chosen on held-out healthy data).
 * - Trend risk: each growing resource's forecast time to its limit (src/models/trend.ts), counted only when the slope
 *   stands out from the node's peers, 0.5 at `trend.horizonS`; its forecast is the predicted time to failure. Fast
 *   resources (queue, latencies) also swing in short stalls that clear by themselves, so their trend counts only
 *   when the autoencoder corroborates it (error above `CORROBORATE_PERCENTILE` of held-out healthy windows); memory
 *   grows smoothly and counts alone.
 * - risk = 1 - (1 - anomaly)(1 - trend): either kind of evidence alone can raise it.
 *
 * Explanation: reconstruction contributions are named after the feature, weight = the feature's share of the
 * window's squared error times the anomaly risk (so weights are in risk units and sum to at most the anomaly risk),
 * value = the raw feature; trend contributions are `forecast.<kind>_s` with weight = the trend risk and value = the
 * forecast seconds. All observed vectors of a call go through the network as one batch.
 */
export class TfjsScorer implements Scorer {
  readonly name: string;
  readonly manifest: ModelManifest;
  private readonly tf: Tf;
  private readonly model: LayersModel;
  private readonly features: readonly string[];
  private readonly explainTop: number;
  private readonly trendStartS: number;
  private raw = new Float64Array(0);

  constructor(artefact: Pick<ModelArtefact, 'manifest' | 'model' | 'tf'>, options: TfjsScorerOptions = {}) {
    this.manifest = artefact.manifest;
    this.name = artefact.manifest.scorer;
    this.tf = artefact.tf;
    this.model = artefact.model;
    this.features = artefact.manifest.features;
    this.explainTop = options.explainTop ?? 5;
    this.trendStartS = this.manifest.trend.horizonS * Math.exp(-TREND_BIAS / TREND_GAIN);
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    const cols = this.features.length;
    const observed: number[] = [];
    for (let i = 0; i < vectors.length; i++) if (vectors[i]!.observed) observed.push(i);
    const input = new Float32Array(observed.length * cols);
    if (this.raw.length < input.length) this.raw = new Float64Array(input.length);
    const raw = this.raw;
    for (let k = 0; k < observed.length; k++) {
      const f = vectors[observed[k]!]!.features ?? {};
      for (let c = 0; c < cols; c++) raw[k * cols + c] = finite(f[this.features[c]!]);
      normaliseRow(this.manifest.normalisation, raw.subarray(k * cols, (k + 1) * cols), input, k * cols);
    }
    const cells = this.errors(input, observed.length, cols);
    const out: NodeScore[] = new Array(vectors.length);
    let k = 0;
    for (let i = 0; i < vectors.length; i++) {
      const v = vectors[i]!;
      if (!v.observed) {
        out[i] = unobservedScore(v, this.name);
        continue;
      }
      out[i] = this.combine(v, cells, k, cols, raw);
      k++;
    }
    return out;
  }

  private errors(input: Float32Array, n: number, cols: number): Float32Array {
    if (n === 0) return new Float32Array(0);
    const { tf, model } = this;
    const result = tf.tidy(() => {
      const x = tf.tensor2d(input, [n, cols]);
      return tf.squaredDifference(x, model.predict(x) as import('@tensorflow/tfjs').Tensor);
    });
    try {
      return result.dataSync() as Float32Array;
    } finally {
      result.dispose();
    }
  }

  private combine(v: FeatureVector, cells: Float32Array, k: number, cols: number, raw: Float64Array): NodeScore {
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += cells[k * cols + c]!;
    const err = sum / cols;
    const anomaly = riskFromError(err, this.manifest.calibration);
    const contributions: ScoreContribution[] = [];
    if (sum > 0 && anomaly > 0) {
      // Top features by squared error, found without sorting the whole row.
      const top: number[] = [];
      for (let c = 0; c < cols; c++) {
        const e = cells[k * cols + c]!;
        if (top.length < this.explainTop || e > cells[k * cols + top[top.length - 1]!]!) {
          let at = top.length;
          while (at > 0 && e > cells[k * cols + top[at - 1]!]!) at--;
          top.splice(at, 0, c);
          if (top.length > this.explainTop) top.pop();
        }
      }
      for (const c of top) {
        const weight = (cells[k * cols + c]! / sum) * anomaly;
        if (weight > 0 && Number.isFinite(weight)) {
          contributions.push({ feature: this.features[c]!, weight, value: raw[k * cols + c]! });
        }
      }
    }

    const corroborated = errorPercentile(err, this.manifest.calibration) >= CORROBORATE_PERCENTILE;
    const f = v.features ?? {};
    const peersOk = finite(f['peers.observed']) >= 2;
    let trendLogit = Number.NEGATIVE_INFINITY;
    let timeToFailureS: number | null = null;
    for (const fc of forecastExhaustion(f, this.manifest.trend.limits)) {
      if (fc.timeToLimitS > this.manifest.trend.maxTimeToFailureS) continue;
      if (fc.kind !== 'memory' && !corroborated) continue;
      const gate = peersOk ? clamp((finite(f[`z.peer.${fc.peerSignal}`]) - 2) / 2, 0, 1) : 1;
      if (gate <= 0) continue;
      timeToFailureS = timeToFailureS === null ? fc.timeToLimitS : Math.min(timeToFailureS, fc.timeToLimitS);
      const gain =
        gate * TREND_GAIN * clamp(Math.log(this.trendStartS / Math.max(fc.timeToLimitS, 1)), 0, TREND_CAP / TREND_GAIN);
      if (gain <= 0) continue;
      const logit = TREND_BIAS + gain;
      if (logit > trendLogit) trendLogit = logit;
      contributions.push({
        feature: `forecast.${fc.kind}_s`,
        weight: 1 / (1 + Math.exp(-logit)),
        value: fc.timeToLimitS,
      });
    }
    const trend = trendLogit === Number.NEGATIVE_INFINITY ? 0 : 1 / (1 + Math.exp(-trendLogit));
    const risk = 1 - (1 - anomaly) * (1 - trend);
    contributions.sort((a, b) => b.weight - a.weight);
    return {
      nodeId: v.nodeId,
      setId: v.setId,
      ts: v.windowEnd,
      risk: Number.isFinite(risk) ? clamp(risk, 0, 1) : 0,
      timeToFailureS,
      explanation: contributions.slice(0, this.explainTop),
      scorer: this.name,
      observed: true,
      activeCalls: activeCallsOf(v),
      up: isUp(v),
    };
  }
}
