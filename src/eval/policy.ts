/**
 * The simulated action layer of a replay. It takes the same automatic decisions as the live ActionEngine — K
 * consecutive observed windows at or above the threshold, then the same pure guardrail check (`evaluateDrain` from
 * src/actions/guardrails.ts: cooldown, drains per hour, max out of service, min active) — but models what follows a
 * drain instead of driving it.
 *
 * Why not the ActionEngine itself: after a drain the engine waits for the node's active calls to reach 0, for the node
 * to come back after the restart and for its risk to settle. A recording cannot answer: it was made without Foresight,
 * so calls keep arriving on the drained node and an incident's precursor keeps growing after the "restart". The engine
 * would time out and stall the node for the rest of the replay. So the lifecycle is modelled:
 * - the node is out of rotation for min(drainTimeout, meanCall × ln(1 + active calls)) (its calls end, exponential
 *   durations) + the restart + `recoverWindows` windows; `state` reads `draining` for the guardrails meanwhile;
 * - a drain that catches an incident prevents its crash (the restart clears the precursor), so that node's recorded
 *   windows are masked as healthy until the end of the incident + postCrashGrace: what the recording shows there (the
 *   rest of the precursor, the crash and the reboot, or for a failure that keeps the node up its 10–30 min of failing
 *   calls and the recovery) would not have happened. A late drain, while such a node is failing calls, ends the
 *   failure the same way (the restart clears it). This is the only use of the labels in the policy.
 * Maintenance windows and pins are not modelled (a recording has none).
 */
import { evaluateDrain, type GuardrailConfig, type NodeView, summarizeSets } from '../actions/guardrails.js';
import type { ScoredSeries } from './collect.js';
import { type EvalLabel, failingUntil } from './labels.js';

export interface PolicySettings {
  threshold: number;
  /** K consecutive observed windows at or above the threshold. */
  hysteresisWindows: number;
  guardrails: GuardrailConfig;
  /** The engine restarts with calls left after this long. ms */
  drainTimeoutMs: number;
  /** Node down for the restart. ms */
  restartDownMs: number;
  /** Healthy windows before the node returns to rotation. */
  recoverWindows: number;
  /** Mean call duration (exponential durations). s */
  meanCallS: number;
  /** A drain this long before onset still counts as catching the incident. ms */
  matchSlackMs: number;
  /** After a crash, drains within this long are post-crash noise (reported, not false). ms */
  postCrashGraceMs: number;
}

export interface ModelledDrain {
  nodeId: string;
  ts: number;
  risk: number;
  activeCalls: number;
  /** When the modelled lifecycle puts the node back in rotation. epoch ms */
  backAt: number;
}

export interface PolicyResult {
  drains: ModelledDrain[];
  /** Drain requests refused, by guardrail (one per risk episode and guardrail). */
  refusals: Record<string, number>;
}

/** The incident a drain at `ts` on `nodeId` catches, if any: onset − slack <= ts < crashAt. */
export function incidentCaught(
  labels: readonly EvalLabel[],
  nodeId: string,
  ts: number,
  slackMs: number,
): EvalLabel | undefined {
  return labels.find((l) => l.nodeId === nodeId && ts >= l.onsetAt - slackMs && ts < l.crashAt);
}

/** The incident a drain at `ts` on `nodeId` ends, if any: caught before crashAt, or late while the node still fails. */
export function incidentEnded(
  labels: readonly EvalLabel[],
  nodeId: string,
  ts: number,
  slackMs: number,
): EvalLabel | undefined {
  return (
    incidentCaught(labels, nodeId, ts, slackMs) ??
    labels.find((l) => l.nodeId === nodeId && ts >= l.crashAt && ts < failingUntil(l))
  );
}

/** Replays one risk series (index `scorer` in the series, or an explicit array) through the decision rule. */
export function runPolicy(
  series: ScoredSeries,
  risk: readonly number[],
  labels: readonly EvalLabel[],
  s: PolicySettings,
): PolicyResult {
  const n = series.nodes.length;
  const streak = new Array<number>(n).fill(0);
  const backAt = new Array<number>(n).fill(Number.NEGATIVE_INFINITY);
  const maskUntil = new Array<number>(n).fill(Number.NEGATIVE_INFINITY);
  const lastDrainAt = new Array<number | null>(n).fill(null);
  const refusedIn = new Array<string | null>(n).fill(null);
  const up = new Array<boolean>(n).fill(false);
  const observed = new Array<boolean>(n).fill(false);
  const lastRisk = new Array<number | null>(n).fill(null);
  const active = new Array<number>(n).fill(0);
  const seen = new Array<boolean>(n).fill(false);
  const recentDrains: number[] = [];
  const drains: ModelledDrain[] = [];
  const refusals: Record<string, number> = {};
  const K = s.hysteresisWindows;
  const rows = series.ts.length;

  let i = 0;
  while (i < rows) {
    const now = series.ts[i]!;
    // One step = every node's window ending at `now`.
    let j = i;
    for (; j < rows && series.ts[j] === now; j++) {
      const k = series.node[j]!;
      seen[k] = true;
      const masked = now < maskUntil[k]!;
      observed[k] = masked || series.observed[j] === 1;
      up[k] = masked || series.up[j] === 1;
      lastRisk[k] = masked ? 0 : risk[j]!;
      active[k] = series.activeCalls[j]!;
      const inRotation = now >= backAt[k]!;
      if (inRotation && observed[k] && lastRisk[k]! >= s.threshold) streak[k]!++;
      else {
        streak[k] = 0;
        refusedIn[k] = null;
      }
    }
    const candidates: number[] = [];
    for (let k = 0; k < n; k++) if (seen[k] && streak[k]! >= K && up[k] && now >= backAt[k]!) candidates.push(k);
    if (candidates.length > 0) {
      candidates.sort((a, b) => (lastRisk[b] ?? 0) - (lastRisk[a] ?? 0));
      const view = (k: number): NodeView => {
        const inRotation = now >= backAt[k]!;
        return {
          nodeId: series.nodes[k]!,
          setId: 1,
          state: inRotation ? 'active' : 'draining',
          // Kamailio's probing has a node that does not answer out of rotation already.
          inService: inRotation && up[k]!,
          observed: observed[k]!,
          risk: lastRisk[k]!,
          pinned: false,
          manualOverride: null,
          lastDrainAt: lastDrainAt[k]!,
        };
      };
      for (const k of candidates) {
        const views: NodeView[] = [];
        for (let m = 0; m < n; m++) if (seen[m]) views.push(view(m));
        const sets = summarizeSets(views);
        const verdict = evaluateDrain({ nodeId: series.nodes[k]!, actor: 'auto' }, view(k), sets.get(1), {
          config: s.guardrails,
          now,
          riskThreshold: s.threshold,
          recentDrains,
          maintenance: null,
        });
        if (!verdict.allowed) {
          if (refusedIn[k] !== verdict.guardrail) {
            refusedIn[k] = verdict.guardrail;
            refusals[verdict.guardrail] = (refusals[verdict.guardrail] ?? 0) + 1;
          }
          continue;
        }
        const calls = active[k]!;
        const drainPhaseMs = Math.min(s.drainTimeoutMs, s.meanCallS * 1000 * Math.log1p(calls));
        const back = now + drainPhaseMs + s.restartDownMs + s.recoverWindows * series.windowMs;
        drains.push({ nodeId: series.nodes[k]!, ts: now, risk: lastRisk[k]!, activeCalls: calls, backAt: back });
        backAt[k] = back;
        lastDrainAt[k] = now;
        recentDrains.push(now);
        streak[k] = 0;
        const ended = incidentEnded(labels, series.nodes[k]!, now, s.matchSlackMs);
        if (ended) maskUntil[k] = Math.max(maskUntil[k]!, failingUntil(ended) + s.postCrashGraceMs);
      }
      while (recentDrains.length > 0 && recentDrains[0]! <= now - 3_600_000) recentDrains.shift();
    }
    i = j;
  }
  return { drains, refusals };
}
