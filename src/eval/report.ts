/**
 * The replay report (schema `foresight.replay-report/v1`, documented in docs/evaluation.md): the model at the chosen
 * threshold, the reactive and fixed-threshold baselines, a threshold sweep, and per-incident results. Built from one
 * or more scored recordings; contains no wall-clock time, so the same input gives the same report.
 */
import type { GuardrailConfig } from '../core/guardrails.js';
import { meanCallSeconds, type ScoredSeries } from './collect.js';
import type { EvalLabel } from './labels.js';
import {
  type ClassifiedDrain,
  type DetectorOutcome,
  type DetectorSummary,
  type IncidentResult,
  mergeOutcomes,
  rowsByNode,
  scoreDetector,
  summarize,
} from './metrics.js';
import { type PolicySettings, runPolicy } from './policy.js';

export const REPORT_SCHEMA = 'foresight.replay-report/v1';

export const DEFAULT_SWEEP: readonly number[] = [
  0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99,
];

export interface EvaluationSettings extends Omit<PolicySettings, 'meanCallS'> {
  /** Mean call duration; estimated from the recording (Little's law) when absent. s */
  meanCallS?: number;
  sweep: readonly number[];
}

/** Index of the model and of the fixed-threshold baseline in the series' risk columns. */
export interface ScorerColumns {
  model: number;
  fixed: number | null;
}

/** Outcomes of one recording for every detector; recordings merge by concatenation. */
export interface RunEvaluation {
  model: DetectorOutcome;
  fixed: DetectorOutcome | null;
  reactive: DetectorOutcome;
  sweep: { threshold: number; outcome: DetectorOutcome }[];
  meanCallS: number;
  startTs: number | null;
  endTs: number | null;
  nodes: string[];
}

export function evaluateSeries(
  series: ScoredSeries,
  labels: readonly EvalLabel[],
  settings: EvaluationSettings,
  columns: ScorerColumns = { model: 0, fixed: series.scorers.length > 1 ? 1 : null },
): RunEvaluation {
  const meanCallS = settings.meanCallS ?? meanCallSeconds(series);
  const policy: PolicySettings = { ...settings, meanCallS };
  const byNode = rowsByNode(series);
  const detector = (risk: readonly number[], threshold: number): DetectorOutcome => {
    const p = runPolicy(series, risk, labels, { ...policy, threshold });
    return scoreDetector(series, labels, p.drains, p.refusals, policy, byNode);
  };
  const modelRisk = series.risk[columns.model]!;
  let startTs: number | null = null;
  let endTs: number | null = null;
  for (const t of series.ts) {
    if (startTs === null || t < startTs) startTs = t;
    if (endTs === null || t > endTs) endTs = t;
  }
  return {
    model: detector(modelRisk, settings.threshold),
    // Its risk is 0 or 1, so any threshold in (0, 1] gives the same drains.
    fixed: columns.fixed === null ? null : detector(series.risk[columns.fixed]!, 0.5),
    reactive: scoreDetector(series, labels, [], {}, policy, byNode),
    sweep: settings.sweep.map((threshold) => ({ threshold, outcome: detector(modelRisk, threshold) })),
    meanCallS,
    startTs,
    endTs,
    nodes: [...series.nodes],
  };
}

export function mergeEvaluations(runs: readonly RunEvaluation[]): RunEvaluation {
  const first = runs[0];
  if (!first) throw new Error('mergeEvaluations: no runs');
  const fixed = runs.every((r) => r.fixed !== null) ? mergeOutcomes(runs.map((r) => r.fixed!)) : null;
  const weights = runs.map((r) => r.model.nodeDays);
  const totalWeight = weights.reduce((a, b) => a + b, 0) || 1;
  return {
    model: mergeOutcomes(runs.map((r) => r.model)),
    fixed,
    reactive: mergeOutcomes(runs.map((r) => r.reactive)),
    sweep: first.sweep.map((row, i) => ({
      threshold: row.threshold,
      outcome: mergeOutcomes(runs.map((r) => r.sweep[i]!.outcome)),
    })),
    meanCallS: runs.reduce((sum, r, i) => sum + r.meanCallS * weights[i]!, 0) / totalWeight,
    startTs: Math.min(...runs.map((r) => r.startTs ?? Number.POSITIVE_INFINITY)),
    endTs: Math.max(...runs.map((r) => r.endTs ?? Number.NEGATIVE_INFINITY)),
    nodes: [...new Set(runs.flatMap((r) => r.nodes))],
  };
}

export interface SweepRow {
  threshold: number;
  recall: number | null;
  precision: number | null;
  falseDrainsPer100NodeDays: number;
  medianLeadS: number | null;
  medianLeadSlowS: number | null;
  medianLeadFastS: number | null;
  drains: number;
  callsSaved: number;
}

export interface RiskSeries {
  /** Points are the largest risk in each step, so short peaks stay visible. ms */
  stepMs: number;
  nodes: { nodeId: string; ts: number[]; risk: number[] }[];
}

export interface ReplayReport {
  schema: typeof REPORT_SCHEMA;
  scorer: string;
  input: {
    telemetry: string | null;
    labels: string | null;
    samples: number;
    badLines: number;
    firstBadLines: { line: number; reason: string }[];
    truncated: string | null;
    /** Samples the feature pipeline refused, by reason (late, future, ...). */
    rejected: Record<string, number>;
  } | null;
  span: { startTs: number | null; endTs: number | null; nodes: string[]; nodeDays: number };
  settings: {
    threshold: number;
    hysteresisWindows: number;
    windowMs: number;
    guardrails: GuardrailConfig;
    drainTimeoutMs: number;
    restartDownMs: number;
    recoverWindows: number;
    meanCallS: number;
    matchSlackMs: number;
    postCrashGraceMs: number;
  };
  model: DetectorSummary;
  baselines: { reactive: DetectorSummary; fixedThreshold: DetectorSummary | null };
  sweep: SweepRow[];
  /** Every labelled incident with the model's result. */
  incidents: IncidentResult[];
  unpredictable: { incidents: number; callsDropped: number };
  /** Incidents whose crash lies after the end of the recording (not scored). */
  censored: number;
  /** The model's false drains (at most 500). */
  falseDrains: ClassifiedDrain[];
  series: RiskSeries | null;
}

/** Largest risk per node per step, for plots. */
export function downsampleRisk(series: ScoredSeries, column: number, stepMs = 60_000): RiskSeries {
  const nodes = series.nodes.map((nodeId) => ({ nodeId, ts: [] as number[], risk: [] as number[] }));
  const risk = series.risk[column]!;
  for (let r = 0; r < series.ts.length; r++) {
    const n = nodes[series.node[r]!]!;
    const bucket = Math.floor(series.ts[r]! / stepMs) * stepMs;
    const last = n.ts.length - 1;
    if (last >= 0 && n.ts[last] === bucket) {
      if (risk[r]! > n.risk[last]!) n.risk[last] = risk[r]!;
    } else {
      n.ts.push(bucket);
      n.risk.push(risk[r]!);
    }
  }
  for (const n of nodes) n.risk = n.risk.map((x) => Math.round(x * 1000) / 1000);
  return { stepMs, nodes };
}

export function buildReport(args: {
  scorer: string;
  evaluation: RunEvaluation;
  settings: EvaluationSettings;
  windowMs: number;
  input: ReplayReport['input'];
  series: RiskSeries | null;
}): ReplayReport {
  const { evaluation: e, settings } = args;
  const model = summarize(args.scorer, settings.threshold, e.model);
  const sweep: SweepRow[] = e.sweep.map(({ threshold, outcome }) => {
    const s = summarize(args.scorer, threshold, outcome);
    return {
      threshold,
      recall: s.recall,
      precision: s.precision,
      falseDrainsPer100NodeDays: s.falseDrainsPer100NodeDays,
      medianLeadS: s.lead.medianS,
      medianLeadSlowS: s.leadSlow.medianS,
      medianLeadFastS: s.leadFast.medianS,
      drains: s.drains,
      callsSaved: s.callsSaved,
    };
  });
  const sudden = e.model.incidents.filter((i) => !i.predictable && !i.censored);
  return {
    schema: REPORT_SCHEMA,
    scorer: args.scorer,
    input: args.input,
    span: { startTs: e.startTs, endTs: e.endTs, nodes: e.nodes, nodeDays: model.nodeDays },
    settings: {
      threshold: settings.threshold,
      hysteresisWindows: settings.hysteresisWindows,
      windowMs: args.windowMs,
      guardrails: settings.guardrails,
      drainTimeoutMs: settings.drainTimeoutMs,
      restartDownMs: settings.restartDownMs,
      recoverWindows: settings.recoverWindows,
      meanCallS: Math.round(e.meanCallS * 10) / 10,
      matchSlackMs: settings.matchSlackMs,
      postCrashGraceMs: settings.postCrashGraceMs,
    },
    model,
    baselines: {
      reactive: summarize('reactive (Kamailio OPTIONS probing)', null, e.reactive),
      fixedThreshold: e.fixed ? summarize('fixed thresholds', null, e.fixed) : null,
    },
    sweep,
    incidents: e.model.incidents,
    unpredictable: {
      incidents: sudden.length,
      callsDropped: Math.round(sudden.reduce((sum, i) => sum + i.callsDroppedEstimate, 0) * 100) / 100,
    },
    censored: e.model.incidents.filter((i) => i.censored).length,
    falseDrains: e.model.drains.filter((d) => d.kind === 'false').slice(0, 500),
    series: args.series,
  };
}
