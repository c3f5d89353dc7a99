import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideDrains } from '../../src/core/drains.js';
import { DEFAULT_GUARDRAILS, type NodeView, percentCap } from '../../src/core/guardrails.js';
import {
  DEFAULT_LIFECYCLE_POLICY,
  drainConfirmedAt,
  enter,
  judgeProbes,
  type LifecycleNode,
  type LifecyclePolicy,
  newLifecycleNode,
  nextStep,
  observe,
  restartIssued,
  startDrain,
} from '../../src/core/lifecycle.js';
import type { ProbeWindow, WindowEvidence } from '../../src/messages.js';

const T0 = Date.UTC(2026, 0, 5, 12);
const W = 10_000;
const POLICY: LifecyclePolicy = {
  ...DEFAULT_LIFECYCLE_POLICY,
  drainMs: 6 * W,
  restartMs: 4 * W,
  recoverMs: 8 * W,
  probationMs: 10 * W,
};

/** One window of a node as a generator draws it: any mix of known and unknown calls, liveness and probes. */
const windowArb = fc.record({
  risk: fc.double({ min: 0, max: 1, noNaN: true }),
  observed: fc.boolean(),
  calls: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
  upReported: fc.option(fc.boolean(), { nil: null }),
  probe: fc.option(
    fc.record({
      sent: fc.integer({ min: 1, max: 10 }),
      lostShare: fc.constantFrom(0, 0, 0.1, 0.35, 1),
      rttMsP50: fc.constantFrom(3, 5, 400),
    }),
    { nil: null },
  ),
  /** Whether the engine's dispatcher and restarter calls succeed this step. */
  ioOk: fc.boolean(),
});
type DrawnWindow = typeof windowArb extends fc.Arbitrary<infer T> ? T : never;

function evidenceOf(w: DrawnWindow): WindowEvidence {
  const probe: ProbeWindow | null =
    w.probe === null
      ? null
      : {
          sent: w.probe.sent,
          lost: Math.round(w.probe.sent * w.probe.lostShare),
          replies5xx: 0,
          rttMsP50: w.probe.lostShare === 1 ? null : w.probe.rttMsP50,
        };
  return { calls: w.calls === null ? null : { count: w.calls, source: 'ami' }, upReported: w.upReported, probe };
}

const PEER_PROBES: ProbeWindow[] = [{ sent: 10, lost: 0, replies5xx: 0, rttMsP50: 4 }];

describe('decision core invariants (random evidence, any order of I/O success)', () => {
  it('never restarts while calls are known up before the drain timeout, never returns without healthy probes, never acts on an override', () => {
    fc.assert(
      fc.property(fc.array(windowArb, { minLength: 1, maxLength: 60 }), fc.boolean(), (windows, override) => {
        let node: LifecycleNode = startDrain(newLifecycleNode('ast1', 1, T0), { actor: 'auto', plan: 'cycle' }, T0);
        if (override) node = { ...node, manualOverride: 'enabled by hand (flags AP)' };
        let drainStartedAt: number | null = null;
        for (const [i, w] of windows.entries()) {
          const now = T0 + (i + 1) * W;
          const e = evidenceOf(w);
          const judged = judgeProbes('ast1', e.probe, PEER_PROBES, POLICY);
          node = observe(
            node,
            {
              ts: now,
              observed: w.observed,
              risk: w.risk,
              evidence: e,
              crashForecastMs: null,
              probeHealthy: judged.healthy,
              probeNote: judged.note,
              topFeatures: [],
            },
            POLICY,
          );
          const step = nextStep(node, POLICY, now);
          if (override) {
            expect(step.kind).toBe('none');
            continue;
          }
          if (step.kind === 'restart' && node.state === 'draining') {
            const calls = node.lastCalls;
            const knownUp = calls !== null && calls.ts > node.since && calls.count > 0;
            if (knownUp) expect(now - (drainStartedAt ?? node.since)).toBeGreaterThanOrEqual(POLICY.drainMs);
          }
          if (step.kind === 'return') {
            // Positive evidence: N healthy probe windows after the state began, and a calm risk where observed.
            expect(node.healthyProbeStreak).toBeGreaterThanOrEqual(POLICY.healthyProbeWindows);
            expect(node.last?.probeHealthy).not.toBe(false);
          }
          if (step.kind === 'restarted') {
            const reported = node.last?.evidence.upReported === true;
            const answered = (node.last?.evidence.probe?.sent ?? 0) > (node.last?.evidence.probe?.lost ?? 0);
            expect(reported || answered).toBe(true);
          }
          // The engine performs the step; it takes effect only when its I/O succeeded.
          if (step.kind === 'apply_drain') {
            if (w.ioOk) {
              node = drainConfirmedAt(node, now);
              drainStartedAt = now;
            }
          } else if (step.kind === 'restart') {
            if (w.ioOk) node = restartIssued(enter(node, step, POLICY, now), now);
          } else if (step.kind !== 'none' && step.kind !== 'stall' && (step.kind !== 'return' || w.ioOk)) {
            node = enter(node, step, POLICY, now);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('drains no more than the guardrails allow and never an overridden or pinned node, whatever the risks', () => {
    const nodeArb = fc.record({
      risk: fc.double({ min: 0, max: 1, noNaN: true }),
      streak: fc.integer({ min: 0, max: 6 }),
      inService: fc.boolean(),
      override: fc.boolean(),
      pinned: fc.boolean(),
      probation: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(nodeArb, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 100 }),
        (drawn, maxOut, pct) => {
          const now = T0 + 100 * W;
          const guardrails = { ...DEFAULT_GUARDRAILS, maxOutOfServicePerSet: maxOut, maxOutOfServicePercent: pct };
          const nodes: LifecycleNode[] = drawn.map((d, i) => ({
            ...newLifecycleNode(`ast${i + 1}`, 1, T0),
            riskStreak: d.streak,
            manualOverride: d.override ? 'disabled by hand' : null,
            pinned: d.pinned,
            probationUntil: d.probation ? now + W : null,
            lastDrainAt: d.probation ? now - W : null,
            last: {
              ts: now,
              observed: true,
              risk: d.risk,
              evidence: { calls: null, upReported: true, probe: null },
              crashForecastMs: null,
              probeHealthy: null,
              probeNote: null,
              topFeatures: [],
            },
          }));
          const views = new Map<string, NodeView>(
            nodes.map((n, i) => [
              n.nodeId,
              {
                nodeId: n.nodeId,
                setId: 1,
                state: 'active',
                inService: drawn[i]!.inService,
                observed: true,
                up: true,
                risk: drawn[i]!.risk,
                pinned: n.pinned,
                manualOverride: n.manualOverride,
                lastDrainAt: n.lastDrainAt,
              },
            ]),
          );
          const out = decideDrains(nodes, views, POLICY, { guardrails, recentDrains: [], maintenance: null }, now);
          const drained = out.filter((o) => o.outcome === 'drain').map((o) => o.nodeId);
          const outBefore = drawn.filter((d) => !d.inService).length;
          const cap = Math.min(maxOut, percentCap(drawn.length, pct));
          if (drained.length > 0) expect(outBefore + drained.length).toBeLessThanOrEqual(cap);
          for (const id of drained) {
            const n = nodes.find((x) => x.nodeId === id)!;
            expect(n.manualOverride).toBeNull();
            expect(n.pinned).toBe(false);
            expect(n.last!.risk).toBeGreaterThanOrEqual(POLICY.riskThreshold);
          }
          // A shared fault (more than half of the observed in-service nodes high, at least 2) drains nothing.
          const high = drawn.filter((d) => d.inService && d.risk >= POLICY.riskThreshold).length;
          const observedInService = drawn.filter((d) => d.inService).length;
          if (high >= 2 && high > POLICY.sharedFaultShare * observedInService) expect(drained).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('drains on the evidence of failing probes', () => {
  /** Three nodes of one set observed for `windows` windows; `lossy` lose `share` of their probes, the rest none. */
  function run(lossy: string[], share: number, windows: number): LifecycleNode[] {
    let nodes = ['ast1', 'ast2', 'ast3'].map((id) => newLifecycleNode(id, 1, T0));
    for (let w = 1; w <= windows; w++) {
      const ts = T0 + w * W;
      const probes = new Map(
        nodes.map((n) => [
          n.nodeId,
          { sent: 10, lost: lossy.includes(n.nodeId) ? Math.round(10 * share) : 0, replies5xx: 0, rttMsP50: 4 },
        ]),
      );
      nodes = nodes.map((n) => {
        const own = probes.get(n.nodeId)!;
        const peers = [...probes].filter(([id]) => id !== n.nodeId).map(([, p]) => p);
        const judged = judgeProbes(n.nodeId, own, peers, POLICY);
        return observe(
          n,
          {
            ts,
            observed: true,
            risk: 0.05,
            evidence: { calls: null, upReported: true, probe: own },
            crashForecastMs: null,
            probeHealthy: judged.healthy,
            probeNote: judged.note,
            topFeatures: [],
          },
          POLICY,
        );
      });
    }
    return nodes;
  }
  const views = (nodes: LifecycleNode[]) =>
    new Map<string, NodeView>(
      nodes.map((n) => [
        n.nodeId,
        {
          nodeId: n.nodeId,
          setId: 1,
          state: 'active',
          inService: true,
          observed: true,
          up: true,
          risk: 0.05,
          pinned: false,
          manualOverride: null,
          lastDrainAt: null,
        },
      ]),
    );
  const ctx = {
    guardrails: { ...DEFAULT_GUARDRAILS, maxOutOfServicePercent: 50, minActivePerSet: 1 },
    recentDrains: [],
    maintenance: null,
  };

  it('drains a node whose path loses a third of its probes for probeFailDrainMs, with low model risk, and names the probes', () => {
    const early = run(['ast2'], 0.35, POLICY.probeFailDrainMs / W - 1);
    expect(decideDrains(early, views(early), POLICY, ctx, T0 + 100 * W)).toEqual([]);
    const nodes = run(['ast2'], 0.35, POLICY.probeFailDrainMs / W + 2);
    const [out] = decideDrains(nodes, views(nodes), POLICY, ctx, T0 + 100 * W);
    expect(out).toMatchObject({ nodeId: 'ast2', outcome: 'drain', cause: 'probes' });
    expect(out?.outcome === 'drain' && out.reason).toMatch(
      /probes failing for \d+ s: path to ast2 loses 40 % of OPTIONS/,
    );
  });

  it('drains nothing when every node loses the same share: the path is shared', () => {
    const nodes = run(['ast1', 'ast2', 'ast3'], 0.35, POLICY.probeFailDrainMs / W + 5);
    expect(decideDrains(nodes, views(nodes), POLICY, ctx, T0 + 100 * W)).toEqual([]);
  });
});

describe('probe judgement', () => {
  it('tells a lossy path from a healthy one, relative to the set', () => {
    const healthy = { sent: 10, lost: 0, replies5xx: 0, rttMsP50: 4 };
    const lossy = { sent: 20, lost: 7, replies5xx: 0, rttMsP50: 5 };
    const lossyVerdict = judgeProbes('ast2', lossy, [healthy, healthy], POLICY);
    expect(lossyVerdict.healthy).toBe(false);
    expect(lossyVerdict.note).toMatch(/path to ast2 loses 35 % of OPTIONS/);
    // The same loss on every peer is the shared path's, not this node's.
    expect(judgeProbes('ast2', lossy, [lossy, lossy], POLICY).healthy).toBe(true);
    expect(judgeProbes('ast2', { ...healthy, rttMsP50: 900 }, [healthy], POLICY).healthy).toBe(false);
    expect(judgeProbes('ast2', { ...healthy, replies5xx: 8 }, [healthy], POLICY).healthy).toBe(false);
    expect(judgeProbes('ast2', null, [healthy], POLICY).healthy).toBeNull();
  });
});

describe('the reason a restart did not cure', () => {
  it('names the fault that kept breaking the healthy streak, even when the last window happened to pass', () => {
    const healthy: ProbeWindow = { sent: 5, lost: 0, replies5xx: 0, rttMsP50: 4 };
    const lossy: ProbeWindow = { sent: 5, lost: 2, replies5xx: 0, rttMsP50: 4 };
    let node: LifecycleNode = { ...newLifecycleNode('ast2', 1, T0), state: 'recovering', since: T0 };
    // A path losing packets at random: failing windows with a lucky healthy one at the end.
    const sequence = [lossy, healthy, lossy, lossy, healthy];
    for (const [i, probe] of sequence.entries()) {
      const judged = judgeProbes('ast2', probe, PEER_PROBES, POLICY);
      node = observe(
        node,
        {
          ts: T0 + (i + 1) * W,
          observed: false,
          risk: 0,
          evidence: { calls: null, upReported: null, probe },
          crashForecastMs: null,
          probeHealthy: judged.healthy,
          probeNote: judged.note,
          topFeatures: [],
        },
        POLICY,
      );
    }
    expect(node.last?.probeHealthy).toBe(true);
    const step = nextStep(node, POLICY, T0 + POLICY.recoverMs + W);
    expect(step.kind).toBe('quarantine');
    const reason = (step as { reason: string }).reason;
    expect(reason).toMatch(/only 1 of \d+ healthy probe windows/);
    expect(reason).toMatch(/the last failing one 10 s ago: path to ast2 loses 40 % of OPTIONS/);
    // A state entered anew forgets the faults of the one before.
    expect(enter(node, step, POLICY, T0 + POLICY.recoverMs + W).lastProbeFault).toBeNull();
  });
});

describe('a drain the dispatcher never took', () => {
  it('leaves a node in probation on that probation when it is cancelled, so the next drain is still a probation failure', () => {
    const returned = enter(
      { ...newLifecycleNode('ast2', 1, T0), state: 'recovering', since: T0 },
      { kind: 'return', reason: 'healthy probes', evidence: {}, restarted: false },
      POLICY,
      T0,
    );
    expect(returned.probationUntil).toBe(T0 + POLICY.probationMs);
    // Failing probes start an automatic drain; before the dispatcher confirms it, a lucky probe window passes.
    const draining = observe(
      startDrain(returned, { actor: 'auto', plan: 'cycle', cause: 'probes' }, T0 + W),
      {
        ts: T0 + 2 * W,
        observed: true,
        risk: 0,
        evidence: { calls: null, upReported: null, probe: PEER_PROBES[0]! },
        crashForecastMs: null,
        probeHealthy: true,
        probeNote: 'healthy',
        topFeatures: [],
      },
      POLICY,
    );
    expect(draining.probationFailures).toBe(1);
    const step = nextStep(draining, POLICY, T0 + 2 * W);
    expect(step.kind).toBe('cancel_drain');
    const back = enter(draining, step, POLICY, T0 + 2 * W);
    expect(back.state).toBe('active');
    expect(back.probationUntil).toBe(T0 + POLICY.probationMs);
    expect(back.probationFailures).toBe(0);
    // The fault is back: the next drain happens in probation and counts once.
    expect(startDrain(back, { actor: 'auto', plan: 'cycle', cause: 'probes' }, T0 + 3 * W).probationFailures).toBe(1);
  });
});
