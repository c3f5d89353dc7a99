import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileMaintenanceWindows,
  drainsInLastHour,
  evaluateDrain,
  type GuardrailConfig,
  type NodeView,
  percentCap,
  summarizeSets,
  validateGuardrails,
} from '../../src/core/guardrails.js';
import { LIFECYCLE_STATES } from '../../src/messages.js';
import { harness, makeNodes, STEP, score, T0 } from '../helpers/action-harness.js';

const NOW = T0;
const THRESHOLD = 0.8;

const configArb: fc.Arbitrary<GuardrailConfig> = fc.record({
  maxOutOfServicePerSet: fc.integer({ min: 0, max: 4 }),
  maxOutOfServicePercent: fc.integer({ min: 0, max: 100 }),
  minActivePerSet: fc.integer({ min: 0, max: 4 }),
  cooldownMs: fc.integer({ min: 0, max: 3_600_000 }),
  maxDrainsPerHour: fc.integer({ min: 0, max: 6 }),
  maintenanceWindows: fc.constant<GuardrailConfig['maintenanceWindows']>([]),
});

const rarely = () => fc.constantFrom(false, false, false, true);

const nodeArb = fc.record({
  setId: fc.integer({ min: 1, max: 3 }),
  // Weighted towards drainable nodes, so that every rule is the deciding one often enough.
  state: fc.constantFrom(...LIFECYCLE_STATES, 'active', 'active', 'active', 'active'),
  dispatcherOut: rarely(),
  observed: fc.constantFrom(true, true, true, false),
  risk: fc.oneof(
    fc.double({ min: 0.75, max: 1, noNaN: true }),
    fc.double({ min: 0, max: 1, noNaN: true }),
    fc.constant(null),
  ),
  pinned: rarely(),
  override: rarely(),
  lastDrainAgo: fc.option(fc.integer({ min: 0, max: 7_200_000 }), { nil: null }),
});

const worldArb = fc.record({
  nodes: fc.array(nodeArb, { minLength: 1, maxLength: 12 }),
  config: configArb,
  target: fc.nat(),
  actor: fc.constantFrom('auto', 'alice'),
  force: fc.boolean(),
  recentAgo: fc.array(fc.integer({ min: 0, max: 7_200_000 }), { maxLength: 8 }),
  maintenance: fc.constantFrom(null, null, null, 'window'),
});

describe('guardrails (pure)', () => {
  it('allows a drain exactly when a naive reading of every rule allows it', () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const nodes: NodeView[] = w.nodes.map((n, i) => ({
          nodeId: `n${i}`,
          setId: n.setId,
          state: n.state,
          inService: n.state === 'active' && !n.dispatcherOut,
          observed: n.observed,
          risk: n.risk,
          pinned: n.pinned,
          manualOverride: n.override ? 'by hand' : null,
          lastDrainAt: n.lastDrainAgo === null ? null : NOW - n.lastDrainAgo,
        }));
        const node = nodes[w.target % nodes.length] as NodeView;
        const recent = w.recentAgo.map((a) => NOW - a);
        const verdict = evaluateDrain(
          { nodeId: node.nodeId, actor: w.actor, force: w.force },
          node,
          summarizeSets(nodes).get(node.setId),
          { config: w.config, now: NOW, riskThreshold: THRESHOLD, recentDrains: recent, maintenance: w.maintenance },
        );
        // Naive reference, written independently of the implementation.
        const peers = nodes.filter((n) => n.setId === node.setId);
        const outAfter = peers.filter((n) => !n.inService).length + 1;
        const healthyAfter = peers.filter((n) => n !== node && n.inService && n.observed).length;
        const auto = w.actor === 'auto';
        const force = !auto && w.force;
        const autoOk =
          !node.pinned &&
          w.maintenance === null &&
          node.observed &&
          node.risk !== null &&
          node.risk >= THRESHOLD &&
          (node.lastDrainAt === null || NOW - node.lastDrainAt >= w.config.cooldownMs) &&
          recent.filter((t) => t > NOW - 3_600_000).length < w.config.maxDrainsPerHour;
        const capacityOk =
          outAfter <= w.config.maxOutOfServicePerSet &&
          outAfter <= Math.max(1, Math.floor((peers.length * w.config.maxOutOfServicePercent) / 100)) &&
          healthyAfter >= w.config.minActivePerSet;
        const expected =
          node.state === 'active' &&
          (node.manualOverride === null || force) &&
          (!auto || autoOk) &&
          (force || capacityOk);
        expect(verdict.allowed).toBe(expected);
        if (!verdict.allowed) expect(verdict.detail.length).toBeGreaterThan(0);
      }),
      { numRuns: 5000 },
    );
  });

  it('the percent cap lets at least one node out and never more than the share', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 0, max: 100 }), (total, pct) => {
        const cap = percentCap(total, pct);
        expect(cap).toBeGreaterThanOrEqual(1);
        if (cap > 1) expect((cap * 100) / total).toBeLessThanOrEqual(pct);
      }),
    );
  });

  it('a node that reports itself down is no healthy capacity, so it cannot let a peer be drained', () => {
    const node = (nodeId: string, up: boolean): NodeView => ({
      nodeId,
      setId: 1,
      state: 'active',
      inService: true,
      observed: true,
      up,
      risk: 0.95,
      pinned: false,
      manualOverride: null,
      lastDrainAt: null,
    });
    const world = (upOfAst3: boolean) => [node('ast1', true), node('ast2', true), node('ast3', upOfAst3)];
    expect(summarizeSets(world(true)).get(1)?.healthy).toBe(3);
    expect(summarizeSets(world(false)).get(1)?.healthy).toBe(2);
    const config: GuardrailConfig = {
      maxOutOfServicePerSet: 2,
      maxOutOfServicePercent: 100,
      minActivePerSet: 2,
      cooldownMs: 0,
      maxDrainsPerHour: 100,
      maintenanceWindows: [],
    };
    const decide = (upOfAst3: boolean) => {
      const nodes = world(upOfAst3);
      return evaluateDrain({ nodeId: 'ast1', actor: 'auto', force: false }, nodes[0]!, summarizeSets(nodes).get(1), {
        config,
        now: NOW,
        riskThreshold: THRESHOLD,
        recentDrains: [],
        maintenance: null,
      });
    };
    expect(decide(true).allowed).toBe(true);
    expect(decide(false)).toMatchObject({ allowed: false, guardrail: 'min_active' });
  });

  it('counts only drains of the last rolling hour', () => {
    expect(drainsInLastHour([NOW - 3_600_000, NOW - 3_599_999, NOW, NOW + 1], NOW)).toBe(2);
  });

  it('opens cron maintenance windows for their duration only (croner, UTC)', () => {
    const open = compileMaintenanceWindows([
      { name: 'nightly', cron: '0 2 * * *', durationMs: 3_600_000, timezone: 'UTC' },
    ]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 365 * 24 * 60 }), (minute) => {
        const t = Date.UTC(2026, 0, 1) + minute * 60_000;
        expect(open(t)).toBe(new Date(t).getUTCHours() === 2 ? 'nightly' : null);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects bad configuration with a config error', () => {
    expect(() => compileMaintenanceWindows([{ cron: 'not a cron', durationMs: 1 }])).toThrow(/bad cron/);
    expect(() => compileMaintenanceWindows([{ start: 5, end: 5 }])).toThrow(/end must be after start/);
    expect(() =>
      validateGuardrails({
        maxOutOfServicePerSet: -1,
        maxOutOfServicePercent: 120,
        minActivePerSet: 1,
        cooldownMs: 0,
        maxDrainsPerHour: 1,
        maintenanceWindows: [],
      }),
    ).toThrow(/maxOutOfServicePerSet.*maxOutOfServicePercent/);
  });
});

describe('guardrail invariants on the running engine (random risk streams, several sets)', () => {
  const streamArb = fc.record({
    perSet: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
    config: fc.record({
      maxOutOfServicePerSet: fc.integer({ min: 0, max: 3 }),
      maxOutOfServicePercent: fc.integer({ min: 0, max: 100 }),
      minActivePerSet: fc.integer({ min: 0, max: 4 }),
      cooldownMs: fc.integer({ min: 0, max: 20 }).map((n) => n * STEP),
      maxDrainsPerHour: fc.integer({ min: 0, max: 30 }),
      maintenanceWindows: fc.constant<GuardrailConfig['maintenanceWindows']>([]),
    }),
    k: fc.integer({ min: 1, max: 3 }),
    pinnedMask: fc.array(fc.boolean(), { minLength: 15, maxLength: 15 }),
    windows: fc.array(
      fc.array(
        fc.record({
          risk: fc.constantFrom(0.05, 0.05, 0.5, 0.85, 0.99),
          observed: fc.constantFrom(true, true, true, false),
          activeCalls: fc.integer({ min: 0, max: 2 }),
        }),
        { minLength: 15, maxLength: 15 },
      ),
      { minLength: 5, maxLength: 40 },
    ),
  });

  it('never below min active, never over the caps, cooldown and rate respected, pinned and unobserved never auto-drained', async () => {
    await fc.assert(
      fc.asyncProperty(streamArb, async (s) => {
        const nodes = makeNodes(s.perSet);
        const pinned = new Set(nodes.filter((_, i) => s.pinnedMask[i]).map((n) => n.nodeId));
        const violations: string[] = [];
        const autoDrains: { nodeId: string; ts: number; probation: boolean }[] = [];
        const returnedAt = new Map<string, number>();
        let h: Awaited<ReturnType<typeof harness>> | null = null;
        h = await harness({
          nodes,
          guardrails: s.config,
          lifecycle: { consecutiveWindows: s.k, recoverWindows: 1 },
          timeouts: { drainMs: 2 * STEP, restartMs: 2 * STEP, recoverMs: 10 * STEP },
          onAudit: (r) => {
            if (r.kind === 'NodeReturned') returnedAt.set(r.nodeId, r.ts);
            if (r.kind !== 'DrainStarting' || r.actor !== 'auto' || !h) return;
            const e = h.engine.explain(r.nodeId);
            if (!e.lastScore?.observed) violations.push(`unobserved ${r.nodeId} drained`);
            if ((e.lastScore?.risk ?? 0) < THRESHOLD) violations.push(`low-risk ${r.nodeId} drained`);
            if (pinned.has(r.nodeId)) violations.push(`pinned ${r.nodeId} drained`);
            // A re-drain in probation may skip the cooldown, and only then: the node came back within probationMs.
            const probation = (r.details.evidence as { probation?: boolean } | undefined)?.probation === true;
            const back = returnedAt.get(r.nodeId);
            if (probation && (back === undefined || r.ts - back >= h.engine.lifecyclePolicy().probationMs)) {
              violations.push(`${r.nodeId} drained as on probation outside probation`);
            }
            autoDrains.push({ nodeId: r.nodeId, ts: r.ts, probation });
          },
        });
        await h.engine.init();
        for (const id of pinned) await h.engine.pin(id, { actor: 'ops', reason: 'property' });
        for (const [w, window] of s.windows.entries()) {
          const t = T0 + w * STEP;
          const scores = nodes.map((n, i) => {
            const x = window[i] ?? { risk: 0.05, observed: true, activeCalls: 0 };
            return score(n.nodeId, t, x.risk, { setId: n.setId, observed: x.observed, activeCalls: x.activeCalls });
          });
          await h.step(t, scores);
          for (const [set, count] of s.perSet.entries()) {
            const members = nodes.filter((n) => n.setId === set + 1);
            const disabled = members.filter((n) => h?.dispatcher.stateOf(n.uri) === 'disabled').length;
            if (count - disabled < Math.min(count, s.config.minActivePerSet)) {
              violations.push(`set ${set + 1} below min active at window ${w}`);
            }
            if (
              disabled > Math.min(s.config.maxOutOfServicePerSet, percentCap(count, s.config.maxOutOfServicePercent))
            ) {
              violations.push(`set ${set + 1} over the cap at window ${w}: ${disabled}`);
            }
          }
        }
        for (const id of pinned)
          if (h.dispatcher.countOf('drain', h.uri(id)) > 0) violations.push(`pinned ${id} drained`);
        const byNode = new Map<string, number>();
        for (const d of autoDrains) {
          const prev = byNode.get(d.nodeId);
          if (prev !== undefined && !d.probation && d.ts - prev < s.config.cooldownMs)
            violations.push(`cooldown broken on ${d.nodeId}`);
          byNode.set(d.nodeId, d.ts);
        }
        // The whole stream lasts under an hour.
        if (autoDrains.length > s.config.maxDrainsPerHour) violations.push(`rate limit broken: ${autoDrains.length}`);
        expect(violations).toEqual([]);
      }),
      { numRuns: 80 },
    );
  });
});
