import type { FailureMode, IncidentLabel, NodeScore } from '../../messages.js';

/**
 * Window-level evaluation of a scorer against incident labels, as recorded in the model manifest. It is a quick,
 * action-free view (an alarm is a single window at or above the threshold while the node is up); `foresight replay`
 * gives the full picture with the action layer and baselines.
 */
export interface EvaluationOptions {
  /** Thresholds of the sweep; the first is the headline. Default [0.5, 0.3, 0.7, 0.8, 0.9]. */
  thresholds?: number[];
  /** After a crash, windows within this are neither incidents nor false alarms (restart, baseline settling). ms */
  recoveryMs?: number;
  /** A false alarm this soon after another on the same node is the same episode (a drain would still hold). ms */
  episodeGapMs?: number;
  /** Observed node-time, for the rate of false alarms. node-days */
  nodeDays: number;
}

export interface ThresholdFigures {
  threshold: number;
  /** Predictable incidents with an alarm between onset and crash / all predictable incidents. */
  recall: number;
  detected: number;
  /** Median lead time (crash minus first alarm) of detected slow incidents (memory leak, backlog). s */
  medianLeadSlowS: number | null;
  /** Same for fast incidents (db degradation, retransmission storm). s */
  medianLeadFastS: number | null;
  falseAlarmEpisodes: number;
  falseAlarmsPer100NodeDays: number;
}

export interface EvaluationFigures {
  predictableIncidents: number;
  /** Sudden crashes: no precursor, reported as unpredictable and not counted in recall. */
  suddenCrashes: number;
  nodeDays: number;
  byMode: Partial<Record<FailureMode, { incidents: number; detectedAtHeadline: number }>>;
  sweep: ThresholdFigures[];
}

const SLOW: readonly FailureMode[] = ['memory_leak', 'taskprocessor_backlog'];
const FAST: readonly FailureMode[] = ['db_degradation', 'retransmission_storm'];

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `scores` may be in any order; only observed, up windows can alarm. */
export function evaluateScores(
  scores: readonly NodeScore[],
  labels: readonly IncidentLabel[],
  options: EvaluationOptions,
): EvaluationFigures {
  const thresholds = options.thresholds ?? [0.5, 0.3, 0.7, 0.8, 0.9];
  const recoveryMs = options.recoveryMs ?? 15 * 60_000;
  const gapMs = options.episodeGapMs ?? 30 * 60_000;
  const byNode = new Map<string, NodeScore[]>();
  for (const s of scores) {
    if (!s.observed || !s.up) continue;
    let list = byNode.get(s.nodeId);
    if (!list) {
      list = [];
      byNode.set(s.nodeId, list);
    }
    list.push(s);
  }
  for (const list of byNode.values()) list.sort((a, b) => a.ts - b.ts);
  const predictable = labels.filter((l) => l.predictable);
  const byMode: EvaluationFigures['byMode'] = {};
  for (const l of predictable) {
    const m = byMode[l.mode] ?? { incidents: 0, detectedAtHeadline: 0 };
    m.incidents++;
    byMode[l.mode] = m;
  }

  const sweep = thresholds.map((threshold, ti) => {
    const leadsSlow: number[] = [];
    const leadsFast: number[] = [];
    let detected = 0;
    for (const l of predictable) {
      const first = (byNode.get(l.nodeId) ?? []).find(
        (s) => s.ts > l.onsetAt && s.ts <= l.crashAt && s.risk >= threshold,
      );
      if (!first) continue;
      detected++;
      if (ti === 0) byMode[l.mode]!.detectedAtHeadline++;
      const lead = (l.crashAt - first.ts) / 1000;
      if (SLOW.includes(l.mode)) leadsSlow.push(lead);
      if (FAST.includes(l.mode)) leadsFast.push(lead);
    }
    let episodes = 0;
    for (const [nodeId, list] of byNode) {
      const own = labels.filter((l) => l.nodeId === nodeId);
      let lastAlarm = Number.NEGATIVE_INFINITY;
      for (const s of list) {
        if (s.risk < threshold) continue;
        if (own.some((l) => s.ts > l.onsetAt && s.ts <= l.crashAt + recoveryMs)) continue;
        if (s.ts - lastAlarm > gapMs) episodes++;
        lastAlarm = s.ts;
      }
    }
    return {
      threshold,
      recall: predictable.length > 0 ? detected / predictable.length : 1,
      detected,
      medianLeadSlowS: median(leadsSlow),
      medianLeadFastS: median(leadsFast),
      falseAlarmEpisodes: episodes,
      falseAlarmsPer100NodeDays: options.nodeDays > 0 ? (100 * episodes) / options.nodeDays : 0,
    };
  });
  return {
    predictableIncidents: predictable.length,
    suddenCrashes: labels.length - predictable.length,
    nodeDays: options.nodeDays,
    byMode,
    sweep,
  };
}
