/**
 * The decision core: pure functions from (node state, evidence, policy, now) to the next step of a node's lifecycle.
 * No I/O and no clock: the live action engine (src/actions/engine.ts) performs the step it is given (dispatcher,
 * restarter, store, audit) and applies `enter()` when the step took effect; replay and evaluation drive the same
 * functions with modelled evidence. So the live loop and its evaluation cannot drift apart.
 *
 *   active ──drain──► draining ──calls known 0 / timeout──► restarting ──up again──► recovering
 *      ▲                 │ (cause gone, probes healthy)                                │ probes healthy N windows
 *      │◄────────────────┘                                                            ▼
 *      ◄──────────────── probation (active) ◄──────────── return ◄──── quarantined ◄── recovery timeout
 *
 * Evidence, never its absence: active calls that nobody counted are unknown (the drain waits for its timeout); a
 * drained node carries no traffic, so its low risk proves nothing and only Foresight's own probes over the path calls
 * take can bring it back; a node is up after a restart only when it says so (AMI) or answers probes.
 */
import type { NodeLifecycleState, NodeScore, ProbeWindow, WindowEvidence } from '../messages.js';

/** Everything the decision rules can be tuned by. Defaults in DEFAULT_LIFECYCLE_POLICY. */
export interface LifecyclePolicy {
  /** Risk at or above which a window counts toward an automatic drain. */
  riskThreshold: number;
  /** K: consecutive observed windows at or above the threshold before a drain is requested. */
  consecutiveWindows: number;
  /** Risk below which an observed node counts as calm (an alert then places the cause outside the node). */
  recoverThreshold: number;
  /** N: consecutive windows of healthy probes before a drained node may return. */
  healthyProbeWindows: number;
  /** Probe loss always tolerated, percent. */
  probeMaxLossPct: number;
  /** Probe loss tolerated above the set's peers (median), percentage points. */
  probeLossMarginPct: number;
  /** Probe RTT tolerated: peers' median × factor + margin. */
  probeRttFactor: number;
  probeRttMarginMs: number;
  /** Wait for active calls to end before restarting. ms */
  drainMs: number;
  /** A drain whose node keeps its calls (up, no crash forecast) may run to this many drain timeouts. */
  drainExtensions: number;
  /** Wait for the node to report up after the restart call. ms */
  restartMs: number;
  /** Wait for healthy probes after a restart; then the restart did not cure and the node is quarantined. ms */
  recoverMs: number;
  /** Restarts of one node per rolling hour; beyond it the node is quarantined instead of restarted again. */
  maxRestartsPerHour: number;
  /** A returned node is on probation this long: a renewed high risk re-drains it at once, whatever the cooldown. ms */
  probationMs: number;
  /** Failures within probation (counted over consecutive probations) that quarantine a node for an operator. */
  probationFailuresToQuarantine: number;
  /** More than this share of a set's observed nodes (and at least 2) at high risk at once is a shared fault: alert, drain nothing. */
  sharedFaultShare: number;
  /**
   * An active node whose own probes have failed (against its peers) for this long is drained on that evidence alone:
   * a path that loses a third of Foresight's OPTIONS loses calls' signalling too, whatever the model says. 0: never.
   */
  probeFailDrainMs: number;
}

export const DEFAULT_LIFECYCLE_POLICY: LifecyclePolicy = {
  riskThreshold: 0.8,
  consecutiveWindows: 3,
  recoverThreshold: 0.4,
  healthyProbeWindows: 3,
  probeMaxLossPct: 5,
  probeLossMarginPct: 5,
  probeRttFactor: 3,
  probeRttMarginMs: 50,
  drainMs: 30 * 60_000,
  drainExtensions: 3,
  restartMs: 3 * 60_000,
  recoverMs: 10 * 60_000,
  maxRestartsPerHour: 2,
  probationMs: 15 * 60_000,
  probationFailuresToQuarantine: 2,
  sharedFaultShare: 0.5,
  probeFailDrainMs: 30_000,
};

/** `cycle` restarts the node after draining; `hold` keeps it out until an operator acts. */
export type DrainPlan = 'cycle' | 'hold';

/** How a quarantined node may come back: by itself on healthy probes, or only through an operator. */
export type QuarantineRelease = 'probes' | 'operator';

/** The decision-relevant state of one node. Plain data: stored, restored and replayed as it is. */
export interface LifecycleNode {
  nodeId: string;
  setId: number;
  state: NodeLifecycleState;
  since: number;
  plan: DrainPlan;
  /** Who started the current decision (`auto` or an operator). */
  actor: string;
  /** What an automatic drain rested on: the model's risk, or the node's failing probes. */
  drainCause: 'risk' | 'probes' | 'operator';
  /** The dispatcher has confirmed the drain (every reachable proxy). */
  drainConfirmed: boolean;
  /** When the restart call returned; null before. */
  restartIssuedAt: number | null;
  /** Restart times within the last hour. */
  restarts: number[];
  /** End of probation, or null when the node is not on probation. */
  probationUntil: number | null;
  /** Failures in consecutive probations. */
  probationFailures: number;
  quarantineRelease: QuarantineRelease | null;
  drainExtended: boolean;
  /** The "calls unknown" wait has been noted in the audit for this drain. */
  callsUnknownNoted: boolean;
  manualOverride: string | null;
  pinned: boolean;
  lastDrainAt: number | null;
  /** Streaks over windows, counted by observe(). */
  riskStreak: number;
  crashForecastStreak: number;
  healthyProbeStreak: number;
  /** Start of the current run of windows whose probes failed against the peers (windows without probes don't end it). */
  probeFailingSince: number | null;
  /**
   * The newest window in the current state whose probes failed, with why: a streak that a lossy path keeps breaking
   * may end on a lucky healthy window, and the reason given for keeping the node out must still name the fault.
   */
  lastProbeFault: { ts: number; note: string } | null;
  /** The latest window's evidence, as observed. */
  last: NodeEvidence | null;
  /** The latest counted calls, kept across windows that counted nothing (with their time, so age is visible). */
  lastCalls: { count: number; source: 'ami' | 'sip'; ts: number } | null;
}

/** One window of a node as the core reads it. */
export interface NodeEvidence {
  ts: number;
  observed: boolean;
  risk: number;
  evidence: WindowEvidence;
  /** Soonest crash the score's trends forecast (memory or queue exhaustion), ms, or null. */
  crashForecastMs: number | null;
  /** Probe verdict of this window against the set's peers, null without probes. */
  probeHealthy: boolean | null;
  /** Why the probes were judged so, in operator's words; null without probes. */
  probeNote: string | null;
  /** Top features of the score, for alerts that say what is still wrong. */
  topFeatures: string[];
}

export function newLifecycleNode(nodeId: string, setId: number, now: number): LifecycleNode {
  return {
    nodeId,
    setId,
    state: 'active',
    since: now,
    plan: 'cycle',
    actor: 'auto',
    drainCause: 'risk',
    drainConfirmed: false,
    restartIssuedAt: null,
    restarts: [],
    probationUntil: null,
    probationFailures: 0,
    quarantineRelease: null,
    drainExtended: false,
    callsUnknownNoted: false,
    manualOverride: null,
    pinned: false,
    lastDrainAt: null,
    riskStreak: 0,
    crashForecastStreak: 0,
    healthyProbeStreak: 0,
    probeFailingSince: null,
    lastProbeFault: null,
    last: null,
    lastCalls: null,
  };
}

/** How long the node's probes have been failing against its peers, ms (0 when they are not). */
export function probeFailingForMs(node: LifecycleNode): number {
  return node.probeFailingSince === null || node.last === null ? 0 : node.last.ts - node.probeFailingSince;
}

// ------------------------------------------------------------------ probes

/** Loss share of a probe window, percent (losses may be counted in the window after their probe was sent). */
export function probeLossPct(p: ProbeWindow): number {
  const base = Math.max(p.sent, p.lost);
  return base === 0 ? 0 : (100 * p.lost) / base;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = xs.slice().sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Judges one node's probe window against its set's peers: loss within the absolute allowance or near the peers'
 * (a path shared by the whole set is no reason to keep one node out), round trip within a multiple of the peers',
 * and the node not refusing work (5xx to most probes).
 */
export function judgeProbes(
  nodeId: string,
  own: ProbeWindow | null,
  peers: readonly ProbeWindow[],
  policy: LifecyclePolicy,
): { healthy: boolean | null; note: string | null } {
  if (own === null || Math.max(own.sent, own.lost) === 0) return { healthy: null, note: null };
  const loss = probeLossPct(own);
  const peerLoss = median(peers.map(probeLossPct));
  const allowedLoss = Math.max(policy.probeMaxLossPct, (peerLoss ?? 0) + policy.probeLossMarginPct);
  const peerLossText = peerLoss === null ? 'no peers probed' : `peers ${peerLoss.toFixed(0)} %`;
  if (loss > allowedLoss) {
    return {
      healthy: false,
      note: `path to ${nodeId} loses ${loss.toFixed(0)} % of OPTIONS (${peerLossText}, allowed ${allowedLoss.toFixed(0)} %)`,
    };
  }
  const answered = own.sent - own.lost;
  if (answered > 0 && own.replies5xx * 2 > answered) {
    return { healthy: false, note: `${nodeId} answers ${own.replies5xx} of ${answered} OPTIONS with 5xx` };
  }
  const peerRtt = median(peers.flatMap((p) => (p.rttMsP50 === null ? [] : [p.rttMsP50])));
  if (own.rttMsP50 !== null && peerRtt !== null) {
    const allowedRtt = peerRtt * policy.probeRttFactor + policy.probeRttMarginMs;
    if (own.rttMsP50 > allowedRtt) {
      return {
        healthy: false,
        note: `OPTIONS to ${nodeId} take ${own.rttMsP50.toFixed(0)} ms (peers ${peerRtt.toFixed(0)} ms, allowed ${allowedRtt.toFixed(0)} ms)`,
      };
    }
  }
  if (answered === 0) return { healthy: false, note: `${nodeId} answered none of ${own.sent} OPTIONS` };
  return {
    healthy: true,
    note: `OPTIONS to ${nodeId}: ${loss.toFixed(0)} % lost (${peerLossText}), rtt ${own.rttMsP50?.toFixed(0) ?? '?'} ms`,
  };
}

// ------------------------------------------------------------------ observing windows

/** Trend forecasts whose limit ends the process, and every call on it: memory (OOM kill) and the queue (deadlock). */
const CRASH_FORECASTS: ReadonlySet<string> = new Set(['forecast.memory_s', 'forecast.queue_s']);

export function crashForecastMs(s: Pick<NodeScore, 'explanation'>): number | null {
  let soonest: number | null = null;
  for (const c of s.explanation) {
    if (!CRASH_FORECASTS.has(c.feature) || !Number.isFinite(c.value)) continue;
    soonest = soonest === null ? c.value * 1000 : Math.min(soonest, c.value * 1000);
  }
  return soonest;
}

/** What the core keeps of a score; `peerProbes` are the latest probe windows of the node's set peers. */
export function evidenceOf(s: NodeScore, peerProbes: readonly ProbeWindow[], policy: LifecyclePolicy): NodeEvidence {
  const probe = judgeProbes(s.nodeId, s.evidence.probe, peerProbes, policy);
  return {
    ts: s.ts,
    observed: s.observed,
    risk: s.risk,
    evidence: s.evidence,
    crashForecastMs: crashForecastMs(s),
    probeHealthy: probe.healthy,
    probeNote: probe.note,
    topFeatures: s.explanation.slice(0, 3).map((c) => c.feature),
  };
}

/**
 * Folds one window into the node: streaks and the latest evidence. Windows at or before the last one are ignored
 * (redelivered or late windows must not count twice). Returns the node unchanged when the window is stale.
 */
export function observe(node: LifecycleNode, e: NodeEvidence, policy: LifecyclePolicy): LifecycleNode {
  if (node.last !== null && e.ts <= node.last.ts) return node;
  const high = e.observed && e.risk >= policy.riskThreshold;
  const crashSoon = e.crashForecastMs !== null && e.crashForecastMs <= policy.drainMs;
  // Only windows that end after the current state began count toward a return: probes of the node before its
  // restart say nothing of the node after it.
  const healthyCounts = e.ts > node.since && e.probeHealthy === true;
  const calls = e.evidence.calls;
  return {
    ...node,
    last: e,
    lastCalls: calls === null ? node.lastCalls : { ...calls, ts: e.ts },
    riskStreak: high ? node.riskStreak + 1 : 0,
    crashForecastStreak: crashSoon ? node.crashForecastStreak + 1 : 0,
    probeFailingSince:
      e.probeHealthy === false
        ? // The run starts where the last window before it ended (the first failing window's start).
          (node.probeFailingSince ?? node.last?.ts ?? e.ts)
        : e.probeHealthy === true
          ? null
          : node.probeFailingSince,
    lastProbeFault:
      e.ts > node.since && e.probeHealthy === false && e.probeNote !== null
        ? { ts: e.ts, note: e.probeNote }
        : node.lastProbeFault,
    // A window without probes neither proves nor disproves health: the streak waits, it is not broken.
    healthyProbeStreak: healthyCounts
      ? node.healthyProbeStreak + 1
      : e.probeHealthy === false
        ? 0
        : node.healthyProbeStreak,
  };
}

/**
 * A node's state after windows were folded in only to warm it (a new leader replaying the recent scores another
 * leader may already have acted on): no automatic drain may rest on replayed windows alone, so the risk streak stops
 * one window short of K and a run of failing probes short of `probeFailDrainMs`. The first live window then decides
 * as it would have on the previous leader. A streak the previous leader had not yet completed is kept whole.
 */
export function holdReplayed(node: LifecycleNode, policy: LifecyclePolicy): LifecycleNode {
  const riskStreak = Math.min(node.riskStreak, policy.consecutiveWindows - 1);
  let probeFailingSince = node.probeFailingSince;
  if (probeFailingSince !== null && policy.probeFailDrainMs > 0 && probeFailingForMs(node) >= policy.probeFailDrainMs) {
    probeFailingSince = node.last!.ts - policy.probeFailDrainMs + 1;
  }
  if (riskStreak === node.riskStreak && probeFailingSince === node.probeFailingSince) return node;
  return { ...node, riskStreak, probeFailingSince };
}

// ------------------------------------------------------------------ one node's next step

/** Evidence named in a step: what the decision rests on, written into its audit entry as it is. */
export type StepEvidence = Record<string, unknown>;

export type Step =
  | { kind: 'none' }
  /** Nothing to do yet; `note` asks the engine to audit the wait once (it rests on unknown evidence). */
  | { kind: 'wait'; reason: string; evidence: StepEvidence; note: boolean }
  /** Apply the drain the store already records (not yet confirmed by the dispatcher). */
  | { kind: 'apply_drain' }
  /** The risk fell before the dispatcher accepted an automatic drain: cancel it. */
  | { kind: 'cancel_drain'; reason: string; evidence: StepEvidence }
  | { kind: 'extend_drain'; reason: string; evidence: StepEvidence }
  | { kind: 'restart'; reason: string; evidence: StepEvidence }
  /** The node reported up after its restart: start watching for healthy probes. */
  | { kind: 'restarted'; reason: string; evidence: StepEvidence }
  | { kind: 'return'; reason: string; evidence: StepEvidence; restarted: boolean }
  | { kind: 'quarantine'; reason: string; evidence: StepEvidence; release: QuarantineRelease }
  /** The lifecycle stops with the node out of rotation; an operator decides. */
  | { kind: 'stall'; reason: string; evidence: StepEvidence; audit: 'RestartFailed' | 'UndrainFailed' };

function restartsInLastHour(node: LifecycleNode, now: number): number {
  return node.restarts.filter((t) => t > now - 3_600_000).length;
}

function callsEvidence(node: LifecycleNode): StepEvidence {
  const c = node.lastCalls;
  return c === null
    ? { activeCalls: null, callsSource: null }
    : { activeCalls: c.count, callsSource: c.source, callsTs: c.ts };
}

function probeEvidence(node: LifecycleNode, policy: LifecyclePolicy): StepEvidence {
  return {
    healthyProbeWindows: node.healthyProbeStreak,
    neededProbeWindows: policy.healthyProbeWindows,
    probe: node.last?.evidence.probe ?? null,
    probeVerdict: node.last?.probeNote ?? null,
  };
}

/**
 * True when Foresight has positive evidence that the node serves calls again: N healthy probe windows, and the model
 * no longer calling it failing. Only a risk at the drain threshold holds a return: a drained node carries no traffic,
 * so an elevated risk there is mostly history (slopes fitted before the drain), as a low one would prove nothing; the
 * probation after the return is what catches a failure that comes back.
 */
function provenHealthy(node: LifecycleNode, policy: LifecyclePolicy): boolean {
  if (node.healthyProbeStreak < policy.healthyProbeWindows) return false;
  const e = node.last;
  return e === null || !e.observed || e.risk < policy.riskThreshold;
}

/** What is still wrong with a node that is kept out, in an operator's words. */
export function whatIsWrong(node: LifecycleNode, policy: LifecyclePolicy): string {
  const e = node.last;
  if (e === null) return `no evidence from ${node.nodeId} since it left rotation`;
  if (e.probeHealthy === false && e.probeNote !== null) {
    const outside = e.evidence.upReported === true || (e.observed && e.risk < policy.recoverThreshold);
    return outside ? `${e.probeNote}: the cause is likely outside the node` : e.probeNote;
  }
  if (e.probeHealthy === null) return `no probe answers to judge ${node.nodeId} by (is the OPTIONS prober on?)`;
  if (e.observed && e.risk >= policy.riskThreshold) {
    return `risk ${e.risk.toFixed(2)} still at the drain threshold ${policy.riskThreshold} (${e.topFeatures.join(', ') || 'no explanation'})`;
  }
  const streak = `only ${node.healthyProbeStreak} of ${policy.healthyProbeWindows} healthy probe windows`;
  const fault = node.lastProbeFault;
  return fault === null
    ? streak
    : `${streak}; the last failing one ${Math.round((e.ts - fault.ts) / 1000)} s ago: ${fault.note}`;
}

/**
 * The next step of a node that is out of rotation (or on its way out). Pure: the same node, policy and time give the
 * same step. Nodes under a manual override, and active nodes, have no step here (drains are decided set-wide by
 * decideDrains).
 */
export function nextStep(node: LifecycleNode, policy: LifecyclePolicy, now: number): Step {
  if (node.manualOverride !== null || node.state === 'active') return { kind: 'none' };
  const elapsed = now - node.since;
  const e = node.last;
  switch (node.state) {
    case 'draining': {
      if (!node.drainConfirmed) {
        // The evidence is checked again before a delayed automatic drain acts.
        if (node.actor === 'auto' && e !== null) {
          if (node.drainCause === 'risk' && e.observed && e.risk < policy.riskThreshold) {
            return {
              kind: 'cancel_drain',
              reason: 'drain cancelled: risk recovered before the dispatcher accepted it',
              evidence: { risk: e.risk, windowTs: e.ts },
            };
          }
          if (node.drainCause === 'probes' && e.probeHealthy === true) {
            return {
              kind: 'cancel_drain',
              reason: 'drain cancelled: probes healthy again before the dispatcher accepted it',
              evidence: { probe: e.evidence.probe, windowTs: e.ts },
            };
          }
        }
        return { kind: 'apply_drain' };
      }
      if (node.plan === 'hold') return { kind: 'none' };
      if (node.probationFailures >= policy.probationFailuresToQuarantine) {
        return {
          kind: 'quarantine',
          reason: `failed ${node.probationFailures} times in probation: held out for an operator; ${whatIsWrong(node, policy)}`,
          evidence: {
            probationFailures: node.probationFailures,
            risk: e?.risk ?? null,
            explanation: e?.topFeatures ?? [],
          },
          release: 'operator',
        };
      }
      const calls = node.lastCalls !== null && node.lastCalls.ts > node.since ? node.lastCalls : null;
      if (calls !== null && calls.count === 0) {
        return restartOrQuarantine(node, policy, now, `active calls reached 0 (${calls.source})`, callsEvidence(node));
      }
      if (elapsed < policy.drainMs) {
        if (calls === null) {
          // Unknown only once a window after the drain has come without a count; before that it is merely early.
          const windowSinceDrain = e !== null && e.ts > node.since;
          return {
            kind: 'wait',
            reason: windowSinceDrain
              ? 'active calls unknown (no AMI count and no SIP dialog count): waiting for the drain timeout'
              : 'waiting for the first window after the drain',
            evidence: { ...callsEvidence(node), drainMs: policy.drainMs },
            note: windowSinceDrain && !node.callsUnknownNoted,
          };
        }
        return { kind: 'wait', reason: `${calls.count} calls up`, evidence: callsEvidence(node), note: false };
      }
      // Drain timeout.
      if (provenHealthy(node, policy)) {
        // The cause cleared while the calls were finishing (a slow database, a lossy path that recovered): a restart
        // would only drop the calls still up, and the probes prove the node serves again.
        return {
          kind: 'return',
          reason: 'drain timeout with the node proven healthy by its probes: returned without a restart',
          evidence: { ...callsEvidence(node), ...probeEvidence(node, policy), drainMs: policy.drainMs },
          restarted: false,
        };
      }
      const crashSoon = node.crashForecastStreak >= policy.consecutiveWindows;
      const keepsCalls = calls !== null && calls.count > 0 && e?.evidence.upReported !== false && !crashSoon;
      if (keepsCalls && elapsed < policy.drainMs * policy.drainExtensions) {
        if (node.drainExtended)
          return { kind: 'wait', reason: `${calls.count} calls up`, evidence: callsEvidence(node), note: false };
        return {
          kind: 'extend_drain',
          reason: `drain timeout with ${calls.count} calls up and no crash forecast: waiting for them`,
          evidence: {
            ...callsEvidence(node),
            drainMs: policy.drainMs,
            untilMs: policy.drainMs * policy.drainExtensions,
          },
        };
      }
      const why =
        calls === null
          ? 'drain timeout with the active calls unknown: restarting'
          : `drain timeout: restarting with ${calls.count} calls left`;
      return restartOrQuarantine(node, policy, now, why, {
        ...callsEvidence(node),
        drainMs: policy.drainMs,
        extended: node.drainExtended,
        crashForecast: crashSoon,
      });
    }
    case 'restarting': {
      if (node.restartIssuedAt === null) return { kind: 'none' };
      const issued = node.restartIssuedAt;
      if (e !== null && e.ts > issued) {
        if (e.evidence.upReported === true) {
          return {
            kind: 'restarted',
            reason: 'node reports up again (AMI)',
            evidence: { upReported: true, windowTs: e.ts },
          };
        }
        // Without AMI: answers to Foresight's probes after the restart are the node's SIP stack speaking.
        if (e.evidence.upReported === null && e.probeHealthy !== null) {
          const p = e.evidence.probe;
          if (p !== null && p.sent - p.lost > 0) {
            return {
              kind: 'restarted',
              reason: 'node answers OPTIONS again',
              evidence: { upReported: null, probe: p, windowTs: e.ts },
            };
          }
        }
      }
      if (elapsed >= policy.restartMs) {
        return {
          kind: 'stall',
          reason: 'node did not report up in time after the restart; kept out of rotation',
          evidence: {
            restartMs: policy.restartMs,
            upReported: e?.evidence.upReported ?? null,
            probe: e?.evidence.probe ?? null,
          },
          audit: 'RestartFailed',
        };
      }
      return { kind: 'none' };
    }
    case 'recovering': {
      if (provenHealthy(node, policy)) {
        return {
          kind: 'return',
          reason: `healthy probes for ${node.healthyProbeStreak} windows after the restart: back in rotation`,
          evidence: probeEvidence(node, policy),
          restarted: true,
        };
      }
      if (elapsed >= policy.recoverMs) {
        return {
          kind: 'quarantine',
          reason: `the restart did not cure: ${whatIsWrong(node, policy)}`,
          evidence: { ...probeEvidence(node, policy), recoverMs: policy.recoverMs, risk: e?.risk ?? null },
          release: 'probes',
        };
      }
      return { kind: 'none' };
    }
    case 'quarantined': {
      if (node.quarantineRelease === 'probes' && provenHealthy(node, policy)) {
        return {
          kind: 'return',
          reason: `quarantine lifted: healthy probes for ${node.healthyProbeStreak} windows`,
          evidence: probeEvidence(node, policy),
          restarted: false,
        };
      }
      return { kind: 'none' };
    }
  }
}

function restartOrQuarantine(
  node: LifecycleNode,
  policy: LifecyclePolicy,
  now: number,
  reason: string,
  evidence: StepEvidence,
): Step {
  const recent = restartsInLastHour(node, now);
  if (recent >= policy.maxRestartsPerHour) {
    return {
      kind: 'quarantine',
      reason: `${recent} restarts in the last hour (cap ${policy.maxRestartsPerHour}): not restarting again; ${whatIsWrong(node, policy)}`,
      evidence: { ...evidence, restartsLastHour: recent, maxRestartsPerHour: policy.maxRestartsPerHour },
      release: 'operator',
    };
  }
  return { kind: 'restart', reason, evidence };
}

// ------------------------------------------------------------------ state changes

/** Entering a state resets what belongs to the previous one; `since` is when the step took effect. */
function entering(node: LifecycleNode, state: NodeLifecycleState, now: number): LifecycleNode {
  return {
    ...node,
    state,
    since: now,
    healthyProbeStreak: 0,
    lastProbeFault: null,
    drainExtended: state === 'draining' ? node.drainExtended : false,
    callsUnknownNoted: state === 'draining' ? node.callsUnknownNoted : false,
  };
}

/** An automatic drain started at `at` within the node's probation: a probation failure (undone if cancelled). */
function failsProbation(node: LifecycleNode, actor: string, at: number): boolean {
  return actor === 'auto' && node.probationUntil !== null && at < node.probationUntil;
}

/** A drain starts (confirmed later by drainConfirmedAt). Counts a failure in probation. */
export function startDrain(
  node: LifecycleNode,
  d: { actor: string; plan: DrainPlan; cause?: LifecycleNode['drainCause'] },
  now: number,
): LifecycleNode {
  return {
    ...entering(node, 'draining', now),
    plan: d.plan,
    actor: d.actor,
    drainCause: d.cause ?? (d.actor === 'auto' ? 'risk' : 'operator'),
    drainConfirmed: false,
    drainExtended: false,
    callsUnknownNoted: false,
    restartIssuedAt: null,
    lastDrainAt: now,
    riskStreak: 0,
    // Kept, not cleared: probation counts only while active (inProbation), a return sets a new one, and a drain the
    // dispatcher never took (cancel_drain) must leave the node on the probation it had.
    probationUntil: node.probationUntil,
    probationFailures: failsProbation(node, d.actor, now) ? node.probationFailures + 1 : 0,
    quarantineRelease: null,
    restarts: node.restarts.filter((t) => t > now - 3_600_000),
    lastCalls: node.lastCalls,
  };
}

/** The dispatcher confirmed the drain; the drain's clock starts now. */
export function drainConfirmedAt(node: LifecycleNode, now: number): LifecycleNode {
  return { ...node, drainConfirmed: true, since: now };
}

/** Applies a step that took effect (the engine calls this only after its I/O succeeded). */
export function enter(node: LifecycleNode, step: Step, policy: LifecyclePolicy, now: number): LifecycleNode {
  switch (step.kind) {
    case 'none':
    case 'apply_drain':
      return node;
    case 'wait':
      return step.note ? { ...node, callsUnknownNoted: true } : node;
    case 'extend_drain':
      return { ...node, drainExtended: true };
    case 'cancel_drain': {
      // A cancelled drain did not fail the probation: the failure startDrain counted goes again.
      const counted = node.lastDrainAt !== null && failsProbation(node, node.actor, node.lastDrainAt);
      return {
        ...entering(node, 'active', now),
        drainConfirmed: false,
        riskStreak: 0,
        probationFailures: counted ? Math.max(0, node.probationFailures - 1) : node.probationFailures,
      };
    }
    case 'restart':
      return {
        ...entering(node, 'restarting', now),
        restartIssuedAt: null,
        restarts: [...node.restarts.filter((t) => t > now - 3_600_000), now],
      };
    case 'restarted':
      return entering(node, 'recovering', now);
    case 'return':
      return {
        ...entering(node, 'active', now),
        drainConfirmed: false,
        restartIssuedAt: null,
        riskStreak: 0,
        crashForecastStreak: 0,
        quarantineRelease: null,
        probationUntil: now + policy.probationMs,
      };
    case 'quarantine':
      return { ...entering(node, 'quarantined', now), quarantineRelease: step.release, restartIssuedAt: null };
    case 'stall':
      return node;
  }
}

/** The restart call returned: from now on the node must report up. */
export function restartIssued(node: LifecycleNode, now: number): LifecycleNode {
  return { ...node, restartIssuedAt: now };
}

/** Probation ends quietly: its failure count goes with it. */
export function endProbationIfDue(node: LifecycleNode, now: number): LifecycleNode {
  if (node.probationUntil === null || now < node.probationUntil || node.state !== 'active') return node;
  return { ...node, probationUntil: null, probationFailures: 0 };
}

export function inProbation(node: LifecycleNode, now: number): boolean {
  return node.state === 'active' && node.probationUntil !== null && now < node.probationUntil;
}
