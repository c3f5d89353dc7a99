/**
 * Which active nodes to drain now, set-wide, through the guardrails. Pure, like the rest of the decision core: the
 * live engine and replay both call it with their view of the cluster.
 */
import {
  evaluateDrain,
  type GuardrailConfig,
  type GuardrailName,
  type NodeView,
  type SetSummary,
  summarizeSets,
} from './guardrails.js';
import {
  inProbation,
  type LifecycleNode,
  type LifecyclePolicy,
  probeFailingForMs,
  type StepEvidence,
} from './lifecycle.js';

export interface DrainContext {
  guardrails: GuardrailConfig;
  /** Start times of recent drains (any actor), for the rate limit. */
  recentDrains: readonly number[];
  /** Name of the open maintenance window, or null. */
  maintenance: string | null;
}

export type DrainOutcome =
  | {
      nodeId: string;
      outcome: 'drain';
      /** What the drain rests on: the model's risk, or the node's own failing probes. */
      cause: 'risk' | 'probes';
      reason: string;
      evidence: StepEvidence;
      bypassed: GuardrailName[];
    }
  | {
      nodeId: string;
      outcome: 'refused';
      guardrail: GuardrailName;
      detail: string;
      details: Record<string, unknown>;
      /** The refusal is an alert in itself (a shared fault), not only a note. */
      alert: boolean;
    };

/** Why an active node is a drain candidate: high risk for K observed windows, or its probes failing long enough. */
export function drainCause(node: LifecycleNode, policy: LifecyclePolicy): 'risk' | 'probes' | null {
  if (node.state !== 'active') return null;
  if (node.riskStreak >= policy.consecutiveWindows) return 'risk';
  if (policy.probeFailDrainMs > 0 && probeFailingForMs(node) >= policy.probeFailDrainMs) return 'probes';
  return null;
}

/** Candidates for an automatic drain, highest risk first (the guardrails refuse overrides and pinned nodes). */
export function drainCandidates(nodes: readonly LifecycleNode[], policy: LifecyclePolicy): LifecycleNode[] {
  return nodes.filter((n) => drainCause(n, policy) !== null).sort((a, b) => (b.last?.risk ?? 0) - (a.last?.risk ?? 0));
}

/**
 * A fault shared by much of a set (its database slows, the upstream link degrades) shows as high risk on many nodes at
 * once. Draining one of them moves its calls to peers with the same fault, and draining several empties the set.
 */
export function sharedFault(
  setId: number,
  nodes: readonly LifecycleNode[],
  views: ReadonlyMap<string, NodeView>,
  policy: LifecyclePolicy,
): { high: string[]; observed: number } | null {
  const high: string[] = [];
  let observed = 0;
  for (const n of nodes) {
    if (n.setId !== setId || !views.get(n.nodeId)?.inService || n.last === null || !n.last.observed) continue;
    observed++;
    if (n.last.risk >= policy.riskThreshold) high.push(n.nodeId);
  }
  return high.length >= 2 && high.length > policy.sharedFaultShare * observed ? { high, observed } : null;
}

/**
 * Decides the automatic drains of this step. A node the guardrails would let go is still kept when much of its set is
 * at high risk at once (a shared fault). Highest risk first, so when slots are scarce the most endangered node
 * gets one; capacity is recounted after each drain. A node in probation is re-drained whatever the cooldown: the
 * cooldown damps false alarms, it is not there to keep a sick node at work.
 */
export function decideDrains(
  nodes: readonly LifecycleNode[],
  views: ReadonlyMap<string, NodeView>,
  policy: LifecyclePolicy,
  ctx: DrainContext,
  now: number,
): DrainOutcome[] {
  const candidates = drainCandidates(nodes, policy);
  if (candidates.length === 0) return [];
  const liveViews = new Map(views);
  const recent = [...ctx.recentDrains];
  const shared = new Map<number, ReturnType<typeof sharedFault>>();
  const out: DrainOutcome[] = [];
  let sets: Map<number, SetSummary> = summarizeSets(liveViews.values());
  for (const node of candidates) {
    const probation = inProbation(node, now);
    const config = probation ? { ...ctx.guardrails, cooldownMs: 0 } : ctx.guardrails;
    const view = liveViews.get(node.nodeId);
    const cause = drainCause(node, policy) ?? 'risk';
    const verdict = evaluateDrain({ nodeId: node.nodeId, actor: 'auto', cause }, view, sets.get(node.setId), {
      config,
      now,
      riskThreshold: policy.riskThreshold,
      recentDrains: recent,
      maintenance: ctx.maintenance,
    });
    if (!verdict.allowed) {
      out.push({
        nodeId: node.nodeId,
        outcome: 'refused',
        guardrail: verdict.guardrail,
        detail: verdict.detail,
        details: verdict.details,
        alert: false,
      });
      continue;
    }
    if (!shared.has(node.setId)) shared.set(node.setId, sharedFault(node.setId, nodes, liveViews, policy));
    const fault = shared.get(node.setId);
    if (fault) {
      out.push({
        nodeId: node.nodeId,
        outcome: 'refused',
        guardrail: 'shared_fault',
        detail: `${fault.high.length} of ${fault.observed} observed nodes of set ${node.setId} are at high risk at once: a shared cause (database, upstream link), not this node; nothing drained`,
        details: { setId: node.setId, highRisk: fault.high, observed: fault.observed, share: policy.sharedFaultShare },
        alert: true,
      });
      continue;
    }
    const risk = node.last?.risk ?? 0;
    const why =
      cause === 'probes'
        ? `probes failing for ${Math.round(probeFailingForMs(node) / 1000)} s: ${node.last?.probeNote ?? 'no answers'}`
        : `risk ${risk.toFixed(3)} >= ${policy.riskThreshold} for ${node.riskStreak} windows`;
    const reason = probation ? `${why}; on probation: re-drained at once` : why;
    out.push({
      nodeId: node.nodeId,
      outcome: 'drain',
      cause,
      reason,
      evidence: {
        cause,
        probe: node.last?.evidence.probe ?? null,
        probeVerdict: node.last?.probeNote ?? null,
        probeFailingMs: probeFailingForMs(node),
        risk,
        windows: node.riskStreak,
        windowTs: node.last?.ts ?? null,
        explanation: node.last?.topFeatures ?? [],
        probation,
        cooldownBypassed: probation && node.lastDrainAt !== null && now - node.lastDrainAt < ctx.guardrails.cooldownMs,
      },
      bypassed: verdict.bypassed,
    });
    if (view) liveViews.set(node.nodeId, { ...view, state: 'draining', inService: false, lastDrainAt: now });
    recent.push(now);
    sets = summarizeSets(liveViews.values());
  }
  return out;
}
