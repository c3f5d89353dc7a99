import { ForesightError } from '../errors.js';
import { Z_SIGNALS } from '../features/names.js';
import type { FeatureVector, NodeScore, ScoreContribution } from '../messages.js';
import { activeCallsOf, isUp, type Scorer, unobservedScore } from './scorer.js';
import { DEFAULT_TREND_LIMITS, forecastExhaustion, type TrendLimits } from './trend.js';

/**
 * How much one z unit above the threshold of each signal adds to the logit. Signals that precede the failure modes
 * directly (latency, retransmissions, errors, queues) weigh most; CPU and jitter move with load and weigh least.
 */
export const DEFAULT_SIGNAL_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({
  invite_setup_p95: 1,
  options_rtt_p95: 0.5,
  db_query_p95: 1,
  jitter_p95: 0.4,
  retrans_rate: 1,
  error_rate: 1,
  fail_ratio: 1,
  loss_pct: 0.7,
  max_queue: 1,
  cpu_pct: 0.3,
  memory_slope: 0.3,
  queue_slope: 0.8,
  db_query_slope: 0.6,
  invite_setup_slope: 0.6,
  retrans_slope: 0.5,
});

export interface StatScorerOptions {
  /** Resource limits for the time-to-exhaustion forecasts. */
  limits?: Partial<TrendLimits>;
  /** Forecast time to failure at which a trend alone gives risk 0.5. Default 900 s. */
  horizonS?: number;
  /** Forecasts further out than this are not reported. Default 14400 s. */
  maxTimeToFailureS?: number;
  /** z-scores up to this are normal variation. Default 3. */
  zThreshold?: number;
  /** Logit of a node with no evidence at all (sigmoid(-4) ≈ 0.018). Default -4. */
  bias?: number;
  /** Per-signal weights, overriding DEFAULT_SIGNAL_WEIGHTS. */
  weights?: Partial<Record<string, number>>;
  /** How many contributions the explanation lists. Default 5. */
  explainTop?: number;
}

/** Logit units a trend gains per e-fold shortening of its time to failure. */
const TREND_GAIN = 3;
/** One signal's excess z is capped, and so is the sum, so that correlated signals do not compound without bound. */
const EXCESS_CAP = 10;
const ANOMALY_CAP = 12;
const TREND_CAP = 12;

function finite(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : 0;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/**
 * The first scorer: robust z-scores and trend forecasts combined in a logistic.
 *
 * Evidence per signal is its z against the node's own baseline, but only as far as the node also stands out from its
 * peers (min of both, when at least two peers were observed): a cluster-wide disturbance or a busy hour raises own-z
 * on every node and peer-z on none. A growing resource (memory, queue, latency) adds evidence as its forecast time to
 * the limit shrinks, again only when its slope stands out from the peers'. Explanation weights are logit units;
 * anomaly contributions name the feature that stands out (value: its level), trend contributions are named
 * `forecast.<kind>_s` (value: forecast seconds to the limit).
 */
export class StatScorer implements Scorer {
  readonly name = 'stat-v1';
  private readonly limits: TrendLimits;
  private readonly horizonS: number;
  private readonly maxTtfS: number;
  private readonly zThreshold: number;
  private readonly bias: number;
  private readonly explainTop: number;
  private readonly signals: Array<{ name: string; source: string; weight: number }>;
  /** Forecast time at which a trend starts to count, chosen so that at horizonS the trend cancels the bias. */
  private readonly trendStartS: number;

  constructor(options: StatScorerOptions = {}) {
    this.limits = { ...DEFAULT_TREND_LIMITS, ...options.limits };
    this.horizonS = options.horizonS ?? 900;
    this.maxTtfS = options.maxTimeToFailureS ?? 14_400;
    this.zThreshold = options.zThreshold ?? 3;
    this.bias = options.bias ?? -4;
    this.explainTop = options.explainTop ?? 5;
    for (const [key, v] of Object.entries({
      ...this.limits,
      horizonS: this.horizonS,
      maxTimeToFailureS: this.maxTtfS,
    })) {
      if (!(Number.isFinite(v) && v > 0)) {
        throw new ForesightError(
          'FORESIGHT_ERR_CONFIG',
          `stat scorer option ${key} must be a positive number, got ${v}`,
        );
      }
    }
    if (!Number.isFinite(this.bias) || !Number.isFinite(this.zThreshold)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'stat scorer bias and zThreshold must be finite');
    }
    const weights = { ...DEFAULT_SIGNAL_WEIGHTS, ...options.weights };
    this.signals = Z_SIGNALS.map((s) => ({ name: s.name, source: s.source, weight: finite(weights[s.name]) }));
    this.trendStartS = this.horizonS * Math.exp(Math.max(0, -this.bias) / TREND_GAIN);
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    return vectors.map((v) => this.scoreOne(v));
  }

  private scoreOne(v: FeatureVector): NodeScore {
    if (!v.observed) return unobservedScore(v, this.name);
    const f = v.features ?? {};
    const peersOk = finite(f['peers.observed']) >= 2;
    const contributions: ScoreContribution[] = [];

    let anomaly = 0;
    for (const sig of this.signals) {
      if (sig.weight <= 0) continue;
      const own = finite(f[`z.self.${sig.name}`]);
      const evidence = peersOk ? Math.min(own, finite(f[`z.peer.${sig.name}`])) : own;
      const excess = clamp(evidence - this.zThreshold, 0, EXCESS_CAP);
      if (excess <= 0) continue;
      const weight = sig.weight * excess;
      anomaly += weight;
      contributions.push({ feature: sig.source, weight, value: finite(f[sig.source]) });
    }
    anomaly = Math.min(anomaly, ANOMALY_CAP);

    let trend = 0;
    let timeToFailureS: number | null = null;
    for (const fc of forecastExhaustion(f, this.limits)) {
      if (fc.timeToLimitS > this.maxTtfS) continue;
      // A slope the peers share (a load ramp) is not this node's precursor.
      const gate = peersOk ? clamp((finite(f[`z.peer.${fc.peerSignal}`]) - 2) / 2, 0, 1) : 1;
      if (gate <= 0) continue;
      timeToFailureS = timeToFailureS === null ? fc.timeToLimitS : Math.min(timeToFailureS, fc.timeToLimitS);
      const weight =
        gate * TREND_GAIN * clamp(Math.log(this.trendStartS / Math.max(fc.timeToLimitS, 1)), 0, TREND_CAP / TREND_GAIN);
      if (weight <= 0) continue;
      trend = Math.max(trend, weight);
      contributions.push({ feature: `forecast.${fc.kind}_s`, weight, value: fc.timeToLimitS });
    }

    const logit = this.bias + anomaly + trend;
    const risk = 1 / (1 + Math.exp(-logit));
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
