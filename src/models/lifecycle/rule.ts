/**
 * The promotion rule: when a model trained on this cluster may take decisions over from `stat`. Pure, so the rule
 * that docs/model.md states is the rule that runs (test/unit/model-lifecycle-rule.test.ts).
 */

/** How one scorer did on the held-back part of a recording, at the drain threshold. */
export interface ScorerValidation {
  /** `stat-v1`, `tfjs-ae-v1`... */
  scorer: string;
  /** Held-back windows of nodes that were observed, up and outside every incident span. */
  windows: number;
  /** Of those, windows scored at or above the drain threshold. */
  falseAlarms: number;
  /** falseAlarms / windows; null when there were no windows. */
  falseAlarmRate: number | null;
  /** 99th percentile of the risk on those windows: how close healthy nodes came to the threshold. */
  p99Risk: number | null;
  /** Incident spans (confirmed drains) of the recording that hold at least one scored window of their node. */
  incidents: number;
  /** Incidents whose peak risk reached the threshold. */
  incidentsDetected: number;
  /** Mean over incidents of the peak risk given inside the span; null without incidents. */
  meanIncidentPeakRisk: number | null;
}

export interface PromotionRule {
  /** Fewest held-back healthy windows before any verdict: less is not evidence either way. */
  minWindows: number;
}

export const DEFAULT_PROMOTION_RULE: PromotionRule = { minWindows: 360 };

export interface PromotionVerdict {
  promote: boolean;
  /** One line per check, in the order of the rule, each saying what was compared. */
  reasons: string[];
}

const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(2)} %`);
const num = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));

/**
 * Promote only when every check holds:
 * 1. enough data: both scorers were judged on at least `minWindows` held-back healthy windows;
 * 2. no more false alarms: the candidate's false-alarm rate at the threshold is at most `stat`'s;
 * 3. no worse on incidents: it detects at least as many of the recording's incidents as `stat`;
 * 4. better somewhere: a lower false-alarm rate, or more incidents detected. A tie stays with `stat`: nothing shows
 *    the model is better. (The healthy p99 risk is reported, not judged: on a short recording `stat` is still warming
 *    up in the held-back part, and its p99 says more about that than about either scorer.)
 */
export function judgePromotion(
  candidate: ScorerValidation,
  incumbent: ScorerValidation,
  rule: PromotionRule = DEFAULT_PROMOTION_RULE,
): PromotionVerdict {
  const reasons: string[] = [];
  const enough = candidate.windows >= rule.minWindows && incumbent.windows >= rule.minWindows;
  reasons.push(
    `${enough ? 'ok' : 'FAIL'} data: ${candidate.windows} held-back healthy windows (need ${rule.minWindows})`,
  );
  if (!enough || candidate.falseAlarmRate === null || incumbent.falseAlarmRate === null) {
    return { promote: false, reasons };
  }
  const farOk = candidate.falseAlarmRate <= incumbent.falseAlarmRate;
  reasons.push(
    `${farOk ? 'ok' : 'FAIL'} false alarms at the threshold: ${candidate.scorer} ${pct(candidate.falseAlarmRate)} ` +
      `(${candidate.falseAlarms}) vs ${incumbent.scorer} ${pct(incumbent.falseAlarmRate)} (${incumbent.falseAlarms})`,
  );
  const incOk = candidate.incidentsDetected >= incumbent.incidentsDetected;
  reasons.push(
    `${incOk ? 'ok' : 'FAIL'} incidents detected: ${candidate.incidentsDetected}/${candidate.incidents} vs ` +
      `${incumbent.incidentsDetected}/${incumbent.incidents} (mean peak risk ${num(candidate.meanIncidentPeakRisk)} ` +
      `vs ${num(incumbent.meanIncidentPeakRisk)})`,
  );
  if (!farOk || !incOk) return { promote: false, reasons };
  const fewerAlarms = candidate.falseAlarmRate < incumbent.falseAlarmRate;
  const moreDetected = candidate.incidentsDetected > incumbent.incidentsDetected;
  const better = fewerAlarms || moreDetected;
  reasons.push(
    `${better ? 'ok' : 'FAIL'} better somewhere: ` +
      (fewerAlarms
        ? 'fewer false alarms'
        : moreDetected
          ? 'more incidents detected'
          : `a tie stays with ${incumbent.scorer} (healthy p99 risk ${num(candidate.p99Risk)} vs ${num(incumbent.p99Risk)})`),
  );
  return { promote: better, reasons };
}

/** Live comparison while the candidate runs in shadow: it may not raise more alarms than the scorer in charge. */
export interface ShadowTally {
  /** Observed, up windows both scored. */
  windows: number;
  /** Windows at or above the threshold, per scorer. */
  candidateAlarms: number;
  incumbentAlarms: number;
}

export function judgeShadow(t: ShadowTally, minWindows: number): PromotionVerdict {
  const enough = t.windows >= minWindows;
  const ok = t.candidateAlarms <= t.incumbentAlarms;
  return {
    promote: enough && ok,
    reasons: [
      `${enough ? 'ok' : 'FAIL'} shadow: ${t.windows} live windows scored side by side (need ${minWindows})`,
      `${ok ? 'ok' : 'FAIL'} shadow alarms at the threshold: candidate ${t.candidateAlarms} vs in charge ${t.incumbentAlarms}`,
    ],
  };
}
