/**
 * The fixed-threshold baseline: what an operator would set up in a monitoring tool without Foresight — static limits
 * on raw per-window readings, risk 1 while any limit is crossed, 0 otherwise. It goes through the same policy
 * (hysteresis, guardrails) as the model, so the comparison isolates the scoring.
 */
import type { FeatureVector, NodeScore } from '../messages.js';
import { evidenceFieldsOf, isUp, type Scorer, unobservedScore } from '../models/scorers/scorer.js';

/** Feature name → limit. The defaults sit well above healthy levels of the reference cluster and below failure. */
export const DEFAULT_FIXED_LIMITS: Readonly<Record<string, number>> = Object.freeze({
  /** 90 % of a 2 GiB memory limit. MiB */
  'host.memory_rss_mb.last': 1850,
  /** Taskprocessor queue depth Asterisk itself warns about at 500. tasks */
  'taskprocessor.max_queue.max': 500,
  /** INVITE to first reply. ms */
  'sip.invite_setup_ms.p95': 1500,
  /** Realtime DB query. ms */
  'db.query_ms.p95': 300,
  /** OPTIONS round trip. ms */
  'sip.options_rtt_ms.p95': 500,
  /** Retransmissions toward the node. 1/s */
  'sip.retransmissions.rate': 5,
  /** RTCP loss. percent */
  'rtcp.loss_pct.mean': 5,
});

export class FixedThresholdScorer implements Scorer {
  readonly name = 'fixed-threshold-v1';
  private readonly limits: [string, number][];

  constructor(limits: Readonly<Record<string, number>> = DEFAULT_FIXED_LIMITS) {
    this.limits = Object.entries(limits);
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    return vectors.map((v) => {
      if (!v.observed) return unobservedScore(v, this.name);
      const crossed = this.limits.filter(([f, limit]) => (v.features[f] ?? 0) >= limit);
      return {
        nodeId: v.nodeId,
        setId: v.setId,
        ts: v.windowEnd,
        risk: crossed.length > 0 ? 1 : 0,
        timeToFailureS: null,
        explanation: crossed.map(([feature, limit]) => ({ feature, weight: 1, value: v.features[feature] ?? limit })),
        scorer: this.name,
        observed: true,
        ...evidenceFieldsOf(v),
        up: isUp(v),
      };
    });
  }
}
