/**
 * The action layer of a replay: the decision core itself (src/core/: the same drain decisions, guardrails and
 * lifecycle steps as the live engine), driven by a model of what follows each decision, because a recording made
 * without Foresight cannot answer: calls keep arriving on a "drained" node and an incident's precursor keeps growing
 * after the "restart". The model supplies the evidence the core waits for:
 * - a drained node's calls end with exponential durations (mean `meanCallS`) from the count recorded at the drain,
 *   counted as AMI would count them;
 * - a restart takes the node down for `restartDownMs` (it reports down, its probes are lost), then it reports up and
 *   answers probes;
 * - a drain that catches an incident prevents its crash (the restart clears the precursor), so that node's recorded
 *   windows are masked as healthy until the end of the incident + postCrashGrace: what the recording shows there would
 *   not have happened. A late drain, while such a node is failing calls, ends the failure the same way. This is the only
 *   use of the labels in the policy.
 * Nodes in rotation are read from the recording as they are (risk, observed, up, calls); every node that is up answers
 * Foresight's probes (the simulator has no path faults). Maintenance windows and pins are not modelled.
 */
import { decideDrains } from '../core/drains.js';
import type { GuardrailConfig, NodeView } from '../core/guardrails.js';
import {
  DEFAULT_LIFECYCLE_POLICY,
  drainConfirmedAt,
  enter,
  evidenceOf,
  type LifecycleNode,
  type LifecyclePolicy,
  newLifecycleNode,
  nextStep,
  observe,
  restartIssued,
  startDrain,
} from '../core/lifecycle.js';
import type { NodeScore, ProbeWindow } from '../messages.js';
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

const ANSWERED: ProbeWindow = { sent: 1, lost: 0, replies5xx: 0, rttMsP50: 5 };
const UNANSWERED: ProbeWindow = { sent: 1, lost: 1, replies5xx: 0, rttMsP50: null };

/** The core's policy for a replay with these settings. */
export function replayPolicy(s: PolicySettings): LifecyclePolicy {
  return {
    ...DEFAULT_LIFECYCLE_POLICY,
    riskThreshold: s.threshold,
    consecutiveWindows: s.hysteresisWindows,
    healthyProbeWindows: s.recoverWindows,
    drainMs: s.drainTimeoutMs,
    // The modelled restart always comes back; the timeouts only have to outlast it.
    restartMs: Math.max(DEFAULT_LIFECYCLE_POLICY.restartMs, 2 * s.restartDownMs),
    recoverMs: Math.max(DEFAULT_LIFECYCLE_POLICY.recoverMs, (s.recoverWindows + 2) * 60_000),
    recoverThreshold: Math.min(DEFAULT_LIFECYCLE_POLICY.recoverThreshold, s.threshold),
  };
}

interface Modelled {
  /** Calls up when the drain was confirmed, and when. */
  callsAtDrain: number;
  drainAt: number;
  /** End of the restart's downtime, or null before a restart. */
  downUntil: number | null;
  drain: ModelledDrain;
}

/** Replays one risk series (index `scorer` in the series, or an explicit array) through the decision core. */
export function runPolicy(
  series: ScoredSeries,
  risk: readonly number[],
  labels: readonly EvalLabel[],
  s: PolicySettings,
): PolicyResult {
  const policy = replayPolicy(s);
  const n = series.nodes.length;
  const nodes: LifecycleNode[] = series.nodes.map((id) => newLifecycleNode(id, 1, series.ts[0] ?? 0));
  const modelled = new Array<Modelled | null>(n).fill(null);
  const maskUntil = new Array<number>(n).fill(Number.NEGATIVE_INFINITY);
  const seen = new Array<boolean>(n).fill(false);
  const upNow = new Array<boolean>(n).fill(false);
  const refusedIn = new Array<string | null>(n).fill(null);
  const recentDrains: number[] = [];
  const drains: ModelledDrain[] = [];
  const refusals: Record<string, number> = {};
  const rows = series.ts.length;
  const meanMs = s.meanCallS * 1000;

  let i = 0;
  while (i < rows) {
    const now = series.ts[i]!;
    // One step = every node's window ending at `now`.
    let j = i;
    for (; j < rows && series.ts[j] === now; j++) {
      const k = series.node[j]!;
      seen[k] = true;
      const masked = now < maskUntil[k]!;
      const m = modelled[k] ?? null;
      const down = m?.downUntil != null && now < m.downUntil;
      const up = !down && (masked || series.up[j] === 1);
      upNow[k] = up;
      const calls =
        m === null
          ? series.activeCalls[j]!
          : Math.max(0, Math.round((1 + m.callsAtDrain) * Math.exp(-(now - m.drainAt) / meanMs) - 1));
      const score: NodeScore = {
        nodeId: series.nodes[k]!,
        setId: 1,
        ts: now,
        risk: masked || down ? 0 : risk[j]!,
        timeToFailureS: null,
        explanation: [],
        scorer: 'replay',
        observed: masked || down || series.observed[j] === 1,
        activeCalls: calls,
        activeCallsSource: 'ami',
        up,
        evidence: {
          calls: { count: m?.downUntil != null ? 0 : calls, source: 'ami' },
          upReported: up,
          probe: up ? ANSWERED : UNANSWERED,
        },
      };
      const before = nodes[k]!.riskStreak;
      nodes[k] = observe(nodes[k]!, evidenceOf(score, [ANSWERED], policy), policy);
      if (nodes[k]!.riskStreak === 0 && before > 0) refusedIn[k] = null;
    }

    // Lifecycles of the nodes out of rotation: the core's steps, with the model's outcomes.
    for (let k = 0; k < n; k++) {
      const node = nodes[k]!;
      const m = modelled[k] ?? null;
      if (node.state === 'active' || m === null) continue;
      const step = nextStep(node, policy, now);
      if (step.kind === 'restart') {
        nodes[k] = restartIssued(enter(node, step, policy, now), now);
        m.downUntil = now + s.restartDownMs;
      } else if (step.kind === 'return') {
        nodes[k] = enter(node, step, policy, now);
        m.drain.backAt = now;
        modelled[k] = null;
      } else if (step.kind !== 'none' && step.kind !== 'stall' && step.kind !== 'apply_drain') {
        nodes[k] = enter(node, step, policy, now);
      }
    }

    const views = new Map<string, NodeView>();
    for (let k = 0; k < n; k++) {
      if (!seen[k]) continue;
      const node = nodes[k]!;
      views.set(node.nodeId, {
        nodeId: node.nodeId,
        setId: 1,
        state: node.state,
        // Kamailio's probing has a node that does not answer out of rotation already.
        inService: node.state === 'active' && upNow[k]!,
        observed: node.last?.observed ?? false,
        up: upNow[k]!,
        risk: node.last?.risk ?? null,
        pinned: false,
        manualOverride: null,
        lastDrainAt: node.lastDrainAt,
      });
    }
    const decided = decideDrains(
      nodes.filter((_, k) => seen[k] && upNow[k]),
      views,
      policy,
      { guardrails: s.guardrails, recentDrains, maintenance: null },
      now,
    );
    for (const o of decided) {
      const k = series.nodes.indexOf(o.nodeId);
      if (o.outcome === 'refused') {
        if (refusedIn[k] !== o.guardrail) {
          refusedIn[k] = o.guardrail;
          refusals[o.guardrail] = (refusals[o.guardrail] ?? 0) + 1;
        }
        continue;
      }
      const node = nodes[k]!;
      const calls = node.lastCalls?.count ?? 0;
      // The dispatcher of a replay confirms at once; the node is out until the core returns it.
      nodes[k] = drainConfirmedAt(startDrain(node, { actor: 'auto', plan: 'cycle', cause: o.cause }, now), now);
      const drain: ModelledDrain = {
        nodeId: o.nodeId,
        ts: now,
        risk: node.last?.risk ?? 0,
        activeCalls: calls,
        backAt: Number.POSITIVE_INFINITY,
      };
      drains.push(drain);
      modelled[k] = { callsAtDrain: calls, drainAt: now, downUntil: null, drain };
      recentDrains.push(now);
      const ended = incidentEnded(labels, o.nodeId, now, s.matchSlackMs);
      if (ended) maskUntil[k] = Math.max(maskUntil[k]!, failingUntil(ended) + s.postCrashGraceMs);
    }
    while (recentDrains.length > 0 && recentDrains[0]! <= now - 3_600_000) recentDrains.shift();
    i = j;
  }
  // A node still out when the recording ends is out until its end.
  const end = rows > 0 ? series.ts[rows - 1]! : 0;
  for (const d of drains) if (d.backAt === Number.POSITIVE_INFINITY) d.backAt = end;
  return { drains, refusals };
}
