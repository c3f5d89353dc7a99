/**
 * Scores modelled drains against incident labels.
 *
 * - A drain catches an incident when it falls on the incident's node in [onsetAt − slack, crashAt). The first one is a
 *   true drain, later ones repeats. A drain of a node that is failing calls right now — a failure that keeps the node
 *   up (db_degradation, retransmission_storm) lasts from crashAt to the label's endedAt — is a late drain of that
 *   incident: no lead, no recall, but not false. A drain within `postCrashGrace` after any crash of that node (sudden
 *   ones included) is post-crash noise, counted apart. Every other automatic drain, of a healthy node, is false.
 * - Recall counts predictable incidents whose crash falls inside the recording; sudden crashes are reported apart as
 *   unpredictable (never dropped from the record) and incidents still running at the end as censored.
 * - Lead time: crashAt − first true drain.
 * - Calls saved (an estimate): without Foresight every call active at the crash is dropped (read from the recorded
 *   channels.active in the last window before crashAt). With a drain at lead L, new calls go elsewhere and the A calls
 *   active at the drain end with exponential durations of mean μ (Little's law on the recording), so
 *   A·exp(−min(L, drainTimeout)/μ) remain to be dropped, by the crash or by the restart at the drain timeout.
 *   saved = max(0, dropped without − dropped with).
 */
import type { FailureMode } from '../messages.js';
import type { ScoredSeries } from './collect.js';
import { type EvalLabel, failingUntil } from './labels.js';
import type { ModelledDrain, PolicySettings } from './policy.js';

export type ModeClass = 'slow' | 'fast' | 'sudden';

export function modeClass(mode: FailureMode): ModeClass {
  if (mode === 'memory_leak' || mode === 'taskprocessor_backlog') return 'slow';
  if (mode === 'db_degradation' || mode === 'retransmission_storm') return 'fast';
  return 'sudden';
}

export interface IncidentResult {
  nodeId: string;
  mode: FailureMode;
  class: ModeClass;
  predictable: boolean;
  onsetAt: number;
  crashAt: number;
  /** Crash after the end of the recording: not scored. */
  censored: boolean;
  drainedAt: number | null;
  /** crashAt − drainedAt. s */
  leadS: number | null;
  activeAtCrash: number;
  activeAtDrain: number | null;
  callsDroppedEstimate: number;
  callsSaved: number;
}

export type DrainKind = 'true' | 'repeat' | 'late' | 'post_crash' | 'false';

export interface ClassifiedDrain extends ModelledDrain {
  kind: DrainKind;
}

/** What one run gives one detector; runs of several clusters merge by concatenation. */
export interface DetectorOutcome {
  incidents: IncidentResult[];
  drains: ClassifiedDrain[];
  refusals: Record<string, number>;
  nodeDays: number;
}

/** Per node, the rows of the series in time order, to read the recorded active calls at a time. */
export function rowsByNode(series: ScoredSeries): number[][] {
  const out: number[][] = series.nodes.map(() => []);
  for (let r = 0; r < series.ts.length; r++) out[series.node[r]!]!.push(r);
  return out;
}

/** Active calls in the last window of `nodeId` ending at or before `ts` (0 when none). */
export function activeAt(series: ScoredSeries, byNode: number[][], nodeId: string, ts: number): number {
  const k = series.nodes.indexOf(nodeId);
  const rows = k >= 0 ? byNode[k]! : [];
  let lo = 0;
  let hi = rows.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (series.ts[rows[mid]!]! <= ts) {
      found = rows[mid]!;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found >= 0 ? series.activeCalls[found]! : 0;
}

export function nodeDaysOf(series: ScoredSeries): number {
  if (series.ts.length === 0) return 0;
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const t of series.ts) {
    if (t < first) first = t;
    if (t > last) last = t;
  }
  return (series.nodes.length * (last - first + series.windowMs)) / 86_400_000;
}

export function classifyDrains(
  drains: readonly ModelledDrain[],
  labels: readonly EvalLabel[],
  s: Pick<PolicySettings, 'matchSlackMs' | 'postCrashGraceMs'>,
): ClassifiedDrain[] {
  const caught = new Set<EvalLabel>();
  return drains.map((d) => {
    const label = labels.find((l) => l.nodeId === d.nodeId && d.ts >= l.onsetAt - s.matchSlackMs && d.ts < l.crashAt);
    if (label) {
      const kind: DrainKind = caught.has(label) ? 'repeat' : 'true';
      caught.add(label);
      return { ...d, kind };
    }
    const failing = labels.some((l) => l.nodeId === d.nodeId && d.ts >= l.crashAt && d.ts < failingUntil(l));
    if (failing) return { ...d, kind: 'late' };
    const after = labels.some(
      (l) => l.nodeId === d.nodeId && d.ts >= l.crashAt && d.ts < l.crashAt + s.postCrashGraceMs,
    );
    return { ...d, kind: after ? 'post_crash' : 'false' };
  });
}

/** Scores one detector's drains on one recording. `drains` empty and `reactive` true gives the OPTIONS baseline. */
export function scoreDetector(
  series: ScoredSeries,
  labels: readonly EvalLabel[],
  drains: readonly ModelledDrain[],
  refusals: Record<string, number>,
  s: Pick<PolicySettings, 'matchSlackMs' | 'postCrashGraceMs' | 'drainTimeoutMs' | 'meanCallS'>,
  byNode: number[][] = rowsByNode(series),
): DetectorOutcome {
  const classified = classifyDrains(drains, labels, s);
  let endTs = Number.NEGATIVE_INFINITY;
  for (const t of series.ts) if (t > endTs) endTs = t;
  const meanMs = s.meanCallS * 1000;
  const incidents = labels.map((l): IncidentResult => {
    const first = classified.find(
      (d) => d.kind === 'true' && d.nodeId === l.nodeId && d.ts >= l.onsetAt - s.matchSlackMs && d.ts < l.crashAt,
    );
    const activeAtCrash = activeAt(series, byNode, l.nodeId, l.crashAt);
    let dropped = activeAtCrash;
    if (first) {
      const leadMs = l.crashAt - first.ts;
      const remaining = first.activeCalls * Math.exp(-Math.min(leadMs, s.drainTimeoutMs) / meanMs);
      dropped = Math.min(activeAtCrash, remaining);
    }
    const censored = l.crashAt > endTs;
    return {
      nodeId: l.nodeId,
      mode: l.mode,
      class: modeClass(l.mode),
      predictable: l.predictable,
      onsetAt: l.onsetAt,
      crashAt: l.crashAt,
      censored,
      drainedAt: first ? first.ts : null,
      leadS: first ? (l.crashAt - first.ts) / 1000 : null,
      activeAtCrash,
      activeAtDrain: first ? first.activeCalls : null,
      callsDroppedEstimate: censored ? 0 : round2(dropped),
      callsSaved: censored ? 0 : round2(Math.max(0, activeAtCrash - dropped)),
    };
  });
  return { incidents, drains: classified, refusals: { ...refusals }, nodeDays: nodeDaysOf(series) };
}

export function mergeOutcomes(outcomes: readonly DetectorOutcome[]): DetectorOutcome {
  const refusals: Record<string, number> = {};
  for (const o of outcomes) for (const [k, v] of Object.entries(o.refusals)) refusals[k] = (refusals[k] ?? 0) + v;
  return {
    incidents: outcomes.flatMap((o) => o.incidents),
    drains: outcomes.flatMap((o) => o.drains),
    refusals,
    nodeDays: outcomes.reduce((sum, o) => sum + o.nodeDays, 0),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface LeadStats {
  n: number;
  medianS: number | null;
  p10S: number | null;
  p90S: number | null;
  minS: number | null;
  maxS: number | null;
}

export function leadStats(leads: readonly number[]): LeadStats {
  const s = [...leads].sort((a, b) => a - b);
  return {
    n: s.length,
    medianS: quantile(s, 0.5),
    p10S: quantile(s, 0.1),
    p90S: quantile(s, 0.9),
    minS: s[0] ?? null,
    maxS: s[s.length - 1] ?? null,
  };
}

export interface DetectorSummary {
  name: string;
  /** Risk threshold the policy used, null for the reactive baseline. */
  threshold: number | null;
  nodeDays: number;
  /** Predictable incidents whose crash lies inside the recording. */
  predictableIncidents: number;
  detected: number;
  /** detected / predictableIncidents, null when there are none. */
  recall: number | null;
  /** Recall per failure mode (predictable modes only). */
  recallByMode: Partial<Record<FailureMode, { incidents: number; detected: number }>>;
  drains: number;
  trueDrains: number;
  repeatDrains: number;
  /** Drains of a node while it was failing calls (after crashAt, before the failure ended): late, not false. */
  lateDrains: number;
  postCrashDrains: number;
  falseDrains: number;
  /** trueDrains / (trueDrains + falseDrains), null without drains. */
  precision: number | null;
  falseDrainsPerNodeDay: number;
  falseDrainsPer100NodeDays: number;
  lead: LeadStats;
  leadSlow: LeadStats;
  leadFast: LeadStats;
  /** Calls active at the crash of every scored (uncensored) incident, sudden ones included: the reactive loss. */
  callsAtRisk: number;
  callsDroppedEstimate: number;
  callsSaved: number;
  refusals: Record<string, number>;
}

export function summarize(name: string, threshold: number | null, o: DetectorOutcome): DetectorSummary {
  const scored = o.incidents.filter((i) => !i.censored);
  const predictable = scored.filter((i) => i.predictable);
  const detected = predictable.filter((i) => i.drainedAt !== null);
  const recallByMode: DetectorSummary['recallByMode'] = {};
  for (const i of predictable) {
    const m = recallByMode[i.mode] ?? { incidents: 0, detected: 0 };
    recallByMode[i.mode] = m;
    m.incidents++;
    if (i.drainedAt !== null) m.detected++;
  }
  const count = (kind: DrainKind) => o.drains.filter((d) => d.kind === kind).length;
  const trueDrains = count('true');
  const falseDrains = count('false');
  const leads = (cls?: ModeClass) =>
    detected.filter((i) => cls === undefined || i.class === cls).map((i) => i.leadS ?? 0);
  const perNodeDay = o.nodeDays > 0 ? falseDrains / o.nodeDays : 0;
  return {
    name,
    threshold,
    nodeDays: round2(o.nodeDays),
    predictableIncidents: predictable.length,
    detected: detected.length,
    recall: predictable.length > 0 ? detected.length / predictable.length : null,
    recallByMode,
    drains: o.drains.length,
    trueDrains,
    repeatDrains: count('repeat'),
    lateDrains: count('late'),
    postCrashDrains: count('post_crash'),
    falseDrains,
    precision: trueDrains + falseDrains > 0 ? trueDrains / (trueDrains + falseDrains) : null,
    falseDrainsPerNodeDay: perNodeDay,
    falseDrainsPer100NodeDays: perNodeDay * 100,
    lead: leadStats(leads()),
    leadSlow: leadStats(leads('slow')),
    leadFast: leadStats(leads('fast')),
    callsAtRisk: round2(scored.reduce((sum, i) => sum + i.activeAtCrash, 0)),
    callsDroppedEstimate: round2(scored.reduce((sum, i) => sum + i.callsDroppedEstimate, 0)),
    callsSaved: round2(scored.reduce((sum, i) => sum + i.callsSaved, 0)),
    refusals: o.refusals,
  };
}
