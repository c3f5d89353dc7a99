import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DryRunDispatcher, DryRunRestarter } from '../../src/actions/dry-run.js';
import { DRAIN_EXTENSION } from '../../src/actions/engine.js';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { VirtualClock } from '../../src/clock.js';
import { type Harness, harness, healthyExcept, makeNodes, STEP, score, T0 } from '../helpers/action-harness.js';
import { RecordingDispatcher } from '../helpers/recording-dispatcher.js';

const op = { actor: 'alice', reason: 'testing' };

/** Runs ast1 through a full automatic cycle starting at step `from`; returns the next free step. */
async function fullCycle(h: Harness, from: number): Promise<number> {
  let i = from;
  const at = () => T0 + i * STEP;
  const feed = async (s: Parameters<typeof score>[3] & { risk: number }) => {
    await h.step(at(), healthyExcept(h.nodes, at(), [score('ast1', at(), s.risk, s)]));
    i++;
  };
  for (let k = 0; k < 3; k++) await feed({ risk: 0.95, activeCalls: 5 });
  await feed({ risk: 0.95, activeCalls: 2 });
  await feed({ risk: 0.9, activeCalls: 0 });
  await feed({ risk: 0, activeCalls: 0, up: false });
  await feed({ risk: 0.1, activeCalls: 0, up: true });
  await feed({ risk: 0.1, activeCalls: 1 });
  await feed({ risk: 0.1, activeCalls: 2 });
  return i;
}

/** Score fields of a node with `activeCalls` up whose `kind` trend reaches its limit within one step. */
function forecasting(kind: string, activeCalls: number) {
  return {
    activeCalls,
    timeToFailureS: STEP / 1000,
    explanation: [{ feature: `forecast.${kind}_s`, weight: 3, value: STEP / 1000 }],
  };
}

describe('ActionEngine lifecycle', () => {
  it('drains after K windows, waits for calls, restarts, recovers and returns the node, auditing each step in order', async () => {
    const h = await harness();
    await h.engine.init();
    // Two high windows are not enough (hysteresis).
    await h.step(T0, healthyExcept(h.nodes, T0, [score('ast1', T0, 0.95, { activeCalls: 5 })]));
    await h.step(T0 + STEP, healthyExcept(h.nodes, T0 + STEP, [score('ast1', T0 + STEP, 0.95, { activeCalls: 5 })]));
    expect(h.dispatcher.countOf('drain')).toBe(0);
    expect(h.engine.explain('ast1').lastAutoDecision?.outcome).toBe('waiting_hysteresis');

    await fullCycle(h, 2);
    expect(h.kinds('ast1')).toEqual([
      'DrainStarting',
      'DrainSucceeded',
      'RestartStarting',
      'RestartSucceeded',
      'RecoveryStarted',
      'NodeReturned',
    ]);
    const ids = new Set(h.audits.filter((a) => a.nodeId === 'ast1').map((a) => a.decisionId));
    expect(ids.size).toBe(1);
    expect(h.dispatcher.countOf('drain', h.uri('ast1'))).toBe(1);
    expect(h.dispatcher.countOf('activate', h.uri('ast1'))).toBe(1);
    expect(h.restarter.restarts).toEqual(['ast1']);
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('active');
    expect(h.engine.nodeRecords().find((r) => r.nodeId === 'ast1')?.state).toBe('active');
    // The store holds the same trail as the listener saw.
    const stored = await h.store.queryAudit({ nodeId: 'ast1' });
    expect(stored.map((r) => r.kind).reverse()).toEqual(h.kinds('ast1'));
    expect(h.audits.every((a) => a.dryRun === false)).toBe(true);
  });

  it('restarts anyway after the drain timeout when a failure is forecast, and a failed restart keeps the node out with an alert', async () => {
    const h = await harness({ timeouts: { drainMs: 3 * STEP } });
    await h.engine.init();
    h.restarter.failuresLeft = 10;
    for (let i = 0; i < 8; i++) {
      const t = T0 + i * STEP;
      // Memory runs out within the next drain period: the calls are lost either way, the restart at least is ours.
      await h.step(t, healthyExcept(h.nodes, t, [score('ast1', t, 0.95, forecasting('memory', 4))]));
    }
    expect(h.kinds('ast1')).toEqual(['DrainStarting', 'DrainSucceeded', 'RestartStarting', 'RestartFailed']);
    const failed = h.audits.find((a) => a.kind === 'RestartFailed');
    expect(failed?.details).toMatchObject({ alert: true, stalled: true, phase: 'call' });
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');
    expect(h.engine.explain('ast1').stalled).toMatch(/restart failed/);
    // The operator decides: undrain puts it back.
    const r = await h.engine.undrain('ast1', op);
    expect(r.record.state).toBe('active');
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('active');
    expect(h.kinds('ast1').at(-1)).toBe('UndrainSucceeded');
  });

  it('extends the drain of a node that keeps its calls (no crash forecast), then restarts it at the hard limit', async () => {
    const h = await harness({ timeouts: { drainMs: 3 * STEP } });
    await h.engine.init();
    let drainStep = -1;
    for (let i = 0; i < 20; i++) {
      const t = T0 + i * STEP;
      // A slow database forecast (setups fail, established calls go on) is no reason to cut the calls short.
      await h.step(t, healthyExcept(h.nodes, t, [score('ast1', t, 0.95, forecasting('db_latency', 2))]));
      if (drainStep < 0 && h.kinds('ast1').includes('DrainSucceeded')) drainStep = i;
      if (drainStep >= 0 && i - drainStep < 3 * DRAIN_EXTENSION - 1) {
        expect(h.restarter.restarts).toHaveLength(0);
      }
    }
    const kinds = h.kinds('ast1');
    expect(kinds.filter((k) => k === 'DrainExtended')).toHaveLength(1);
    expect(kinds.indexOf('DrainExtended')).toBeLessThan(kinds.indexOf('RestartStarting'));
    expect(h.restarter.restarts).toEqual(['ast1']);
    const restart = h.audits.find((a) => a.kind === 'RestartStarting');
    expect(restart?.details).toMatchObject({ extended: true, activeCalls: 2 });
  });

  it('at the drain timeout, returns a node whose risk came back to normal without restarting it', async () => {
    const h = await harness({ timeouts: { drainMs: 3 * STEP } });
    await h.engine.init();
    for (let i = 0; i < 10; i++) {
      const t = T0 + i * STEP;
      // High risk until the drain, then the cause clears while 4 long calls are still up.
      const risk = i < 4 ? 0.95 : 0.1;
      await h.step(t, healthyExcept(h.nodes, t, [score('ast1', t, risk, { activeCalls: 4 })]));
    }
    expect(h.kinds('ast1')).toEqual(['DrainStarting', 'DrainSucceeded', 'NodeReturned']);
    expect(h.audits.find((a) => a.kind === 'NodeReturned')?.details).toMatchObject({
      restarted: false,
      activeCalls: 4,
    });
    expect(h.restarter.restarts).toHaveLength(0);
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('active');
    expect(h.engine.nodeRecords().find((r) => r.nodeId === 'ast1')?.state).toBe('active');
  });

  it('reports a node that never comes back up (restart timeout) and keeps it out of rotation', async () => {
    const h = await harness({ timeouts: { restartMs: 2 * STEP } });
    await h.engine.init();
    for (let i = 0; i < 9; i++) {
      const t = T0 + i * STEP;
      await h.step(t, healthyExcept(h.nodes, t, [score('ast1', t, 0.95, { up: i < 3, observed: i < 3 })]));
    }
    expect(h.kinds('ast1')).toContain('RestartFailed');
    expect(h.audits.find((a) => a.kind === 'RestartFailed')?.details.phase).toBe('wait');
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');
  });
});

describe('ActionEngine guardrails in the loop', () => {
  it('drains only the riskiest node when slots are scarce, refuses the other once, and re-checks risk before a queued drain', async () => {
    const h = await harness({ nodes: makeNodes([4]) });
    await h.engine.init();
    const t = (i: number) => T0 + i * STEP;
    for (let i = 0; i < 6; i++) {
      await h.step(
        t(i),
        healthyExcept(h.nodes, t(i), [
          score('ast1', t(i), 0.99, { activeCalls: 9 }),
          score('ast2', t(i), 0.85, { activeCalls: 9 }),
        ]),
      );
    }
    expect(h.dispatcher.countOf('drain', h.uri('ast1'))).toBe(1);
    expect(h.dispatcher.countOf('drain', h.uri('ast2'))).toBe(0);
    const refused = h.audits.filter((a) => a.kind === 'DrainRefused' && a.nodeId === 'ast2');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.details.guardrail).toBe('max_out_of_service');
    expect(h.engine.explain('ast2').lastAutoDecision).toMatchObject({
      outcome: 'refused',
      guardrail: 'max_out_of_service',
    });
    // ast2 recovers while waiting for the slot; ast1 then returns: ast2 must not be drained.
    for (let i = 6; i < 14; i++) {
      await h.step(
        t(i),
        healthyExcept(h.nodes, t(i), [
          score('ast1', t(i), 0.05, { activeCalls: 0 }),
          score('ast2', t(i), 0.2, { activeCalls: 9 }),
        ]),
      );
    }
    expect(h.engine.nodeRecords().find((r) => r.nodeId === 'ast1')?.state).toBe('active');
    expect(h.dispatcher.countOf('drain', h.uri('ast2'))).toBe(0);
  });

  it('never drains pinned or unobserved nodes automatically, and unobserved peers are not healthy capacity', async () => {
    const h = await harness({ nodes: makeNodes([3]) });
    await h.engine.init();
    await h.engine.pin('ast2', op);
    for (let i = 0; i < 6; i++) {
      const t = T0 + i * STEP;
      await h.step(t, [score('ast1', t, 1, { observed: false }), score('ast2', t, 0.99), score('ast3', t, 0.99)]);
    }
    expect(h.dispatcher.countOf('drain')).toBe(0);
    const refusals = h.audits.filter((a) => a.kind === 'DrainRefused');
    expect(refusals.map((a) => [a.nodeId, a.details.guardrail])).toEqual([
      ['ast2', 'pinned'],
      // ast3: pinned ast2 counts as healthy capacity, blind ast1 does not, so 1 < min 2 would remain.
      ['ast3', 'min_active'],
    ]);
    expect(h.engine.explain('ast1').lastAutoDecision?.outcome).toBe('unobserved');
  });

  it('suspends automation during a maintenance window but honours operator drains', async () => {
    const h = await harness({
      guardrails: { maintenanceWindows: [{ name: 'tuesday-upgrade', start: T0 - 1, end: T0 + 100 * STEP }] },
    });
    await h.engine.init();
    for (let i = 0; i < 4; i++) {
      const t = T0 + i * STEP;
      await h.step(t, healthyExcept(h.nodes, t, [score('ast1', t, 0.99)]));
    }
    expect(h.dispatcher.countOf('drain')).toBe(0);
    expect(h.audits.find((a) => a.kind === 'DrainRefused')?.details.guardrail).toBe('maintenance_window');
    await h.engine.drain('ast2', op);
    expect(h.dispatcher.stateOf(h.uri('ast2'))).toBe('disabled');
  });
});

describe('ActionEngine operator actions', () => {
  it('refuses a manual drain below min active without force, allows it with force, and holds it until undrain', async () => {
    const h = await harness({
      nodes: makeNodes([3]),
      guardrails: { maxOutOfServicePerSet: 3, maxOutOfServicePercent: 100 },
    });
    await h.engine.init();
    const t = T0;
    await h.step(t, healthyExcept(h.nodes, t, []));
    const first = await h.engine.drain('ast1', op);
    expect(first.applied).toBe(true);
    await expect(h.engine.drain('ast2', op)).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_GUARDRAIL',
      details: { guardrail: 'min_active' },
    });
    expect(h.audits.at(-1)).toMatchObject({ kind: 'DrainRefused', actor: 'alice', nodeId: 'ast2' });
    const forced = await h.engine.drain('ast2', { ...op, force: true });
    expect(forced.decision?.actor).toBe('alice');
    expect(h.audits.find((a) => a.kind === 'DrainStarting' && a.nodeId === 'ast2')?.details.bypassed).toEqual([
      'min_active',
    ]);
    // Held: no restart even though calls reached 0.
    for (let i = 1; i < 5; i++)
      await h.step(
        T0 + i * STEP,
        healthyExcept(h.nodes, T0 + i * STEP, []).map((s) => ({ ...s, activeCalls: 0 })),
      );
    expect(h.restarter.restarts).toEqual([]);
    // Repeating a drain is idempotent.
    expect((await h.engine.drain('ast1', op)).decision).toBeNull();
    await h.engine.undrain('ast1', op);
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('active');
  });

  it('records verdicts against decisions, pins and unpins, and rejects bad actors and unknown nodes', async () => {
    const h = await harness();
    await h.start();
    const r = await h.engine.drain('ast1', op);
    const id = r.decision?.id ?? '';
    const v = await h.engine.verdict(id, { actor: 'bob', confirmed: true, note: 'memory leak seen in RSS' });
    expect(v).toMatchObject({ kind: 'Verdict', nodeId: 'ast1', decisionId: id, details: { confirmed: true } });
    await expect(h.engine.verdict('nope', { actor: 'bob', confirmed: false, note: '' })).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_NOT_FOUND',
    });
    await h.engine.pin('ast3', op);
    await h.engine.unpin('ast3', op);
    expect(h.kinds('ast3')).toEqual(['Pinned', 'Unpinned']);
    await expect(h.engine.drain('ast2', { actor: 'auto', reason: 'x' })).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_BAD_REQUEST',
    });
    await expect(h.engine.drain('ghost', op)).rejects.toMatchObject({ code: 'FORESIGHT_ERR_NOT_FOUND' });
  });

  it('operator restart of an active node drains first and then runs the full cycle', async () => {
    const h = await harness();
    await h.start();
    await h.engine.restart('ast1', op);
    expect(h.engine.explain('ast1')).toMatchObject({ state: 'draining', plan: 'cycle' });
    for (let i = 1; i < 7; i++) {
      const t = T0 + i * STEP;
      await h.step(t, healthyExcept(h.nodes, t, [score('ast1', t, 0.05, { activeCalls: 0 })]));
    }
    expect(h.restarter.restarts).toEqual(['ast1']);
    expect(h.kinds('ast1').at(-1)).toBe('NodeReturned');
  });
});

describe('ActionEngine durability and reconciliation', () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });
  const fileStore = () => {
    dir ??= mkdtempSync(join(tmpdir(), 'foresight-engine-'));
    return new SqliteStore({ path: join(dir, 'state.db') });
  };

  it('resumes a drain interrupted before the dispatcher answered, and drains exactly once', async () => {
    const nodes = makeNodes([4]);
    const kamailio = new RecordingDispatcher(nodes);
    const clock = new VirtualClock(T0);
    const h1 = await harness({ nodes, recording: kamailio, clock, store: fileStore() });
    await h1.engine.init();
    kamailio.hangOn('drain');
    for (let i = 0; i < 2; i++)
      await h1.step(
        T0 + i * STEP,
        healthyExcept(nodes, T0 + i * STEP, [score('ast1', T0 + i * STEP, 0.95, { activeCalls: 3 })]),
      );
    clock.advanceTo(T0 + 2 * STEP);
    // The third window triggers the drain, whose RPC never returns: the process "dies" here.
    void h1.engine.onScores(
      healthyExcept(nodes, T0 + 2 * STEP, [score('ast1', T0 + 2 * STEP, 0.95, { activeCalls: 3 })]),
    );
    for (let k = 0; k < 50 && !h1.audits.some((a) => a.kind === 'DrainStarting'); k++) await new Promise(setImmediate);
    expect(h1.kinds('ast1')).toEqual(['DrainStarting']);
    kamailio.abandonHang();

    const h2 = await harness({ nodes, recording: kamailio, clock, store: fileStore() });
    await h2.engine.init();
    expect(h2.kinds('ast1')).toEqual(['Resumed']);
    expect(h2.engine.explain('ast1')).toMatchObject({ state: 'draining', drainUnconfirmed: true });
    let i = 3;
    const t = () => T0 + i * STEP;
    await h2.step(t(), healthyExcept(nodes, t(), [score('ast1', t(), 0.95, { activeCalls: 2 })]));
    i++;
    expect(kamailio.countOf('drain')).toBe(1);
    for (const calls of [0, 0]) {
      await h2.step(t(), healthyExcept(nodes, t(), [score('ast1', t(), 0.1, { activeCalls: calls })]));
      i++;
    }
    for (let k = 0; k < 3; k++) {
      await h2.step(t(), healthyExcept(nodes, t(), [score('ast1', t(), 0.1)]));
      i++;
    }
    expect(kamailio.countOf('drain')).toBe(1);
    const trail = (await h2.store.queryAudit({ nodeId: 'ast1' })).map((r) => r.kind).reverse();
    expect(trail).toEqual([
      'DrainStarting',
      'Resumed',
      'DrainSucceeded',
      'RestartStarting',
      'RestartSucceeded',
      'RecoveryStarted',
      'NodeReturned',
    ]);
  });

  it('resumes a node that was waiting for calls without draining or restarting twice', async () => {
    const nodes = makeNodes([4]);
    const kamailio = new RecordingDispatcher(nodes);
    const clock = new VirtualClock(T0);
    const h1 = await harness({ nodes, recording: kamailio, clock, store: fileStore() });
    await h1.engine.init();
    for (let i = 0; i < 4; i++)
      await h1.step(
        T0 + i * STEP,
        healthyExcept(nodes, T0 + i * STEP, [score('ast1', T0 + i * STEP, 0.95, { activeCalls: 3 })]),
      );
    expect(h1.engine.explain('ast1').state).toBe('draining');
    // Dropped without close(), like a killed process.
    const h2 = await harness({ nodes, recording: kamailio, clock, store: fileStore() });
    await h2.engine.init();
    expect(h2.engine.explain('ast1')).toMatchObject({ state: 'draining', plan: 'cycle', drainUnconfirmed: false });
    for (let i = 4; i < 10; i++) {
      const t = T0 + i * STEP;
      await h2.step(t, healthyExcept(nodes, t, [score('ast1', t, 0.1, { activeCalls: 0 })]));
    }
    expect(kamailio.countOf('drain')).toBe(1);
    expect(h2.restarter.restarts).toEqual(['ast1']);
    expect(h1.restarter.restarts).toEqual([]);
    expect(h2.kinds('ast1')[0]).toBe('Resumed');
    expect(h2.kinds('ast1').at(-1)).toBe('NodeReturned');
    // A verdict on a decision taken by the previous process is found in the store.
    const decisionId = h1.audits.find((a) => a.kind === 'DrainStarting')?.decisionId ?? '';
    const v = await h2.engine.verdict(decisionId, { actor: 'carol', confirmed: false, note: 'false alarm' });
    expect(v).toMatchObject({ nodeId: 'ast1', kind: 'Verdict', details: { confirmed: false } });
  });

  it('resumes a node that was restarting without restarting it again', async () => {
    const nodes = makeNodes([4]);
    const kamailio = new RecordingDispatcher(nodes);
    const clock = new VirtualClock(T0);
    const h1 = await harness({ nodes, recording: kamailio, clock, store: fileStore() });
    await h1.engine.init();
    for (let i = 0; i < 4; i++) {
      const t = T0 + i * STEP;
      await h1.step(t, healthyExcept(nodes, t, [score('ast1', t, 0.95, { activeCalls: 0, up: true })]));
    }
    expect(h1.engine.explain('ast1').state).toBe('restarting');
    expect(h1.restarter.restarts).toEqual(['ast1']);
    const h2 = await harness({ nodes, recording: kamailio, clock, store: fileStore() });
    await h2.engine.init();
    for (let i = 4; i < 9; i++) {
      const t = T0 + i * STEP;
      await h2.step(t, healthyExcept(nodes, t, [score('ast1', t, 0.1, { up: i > 5 })]));
    }
    expect(h2.restarter.restarts).toEqual([]);
    expect(h2.kinds('ast1')).toEqual(['Resumed', 'RestartSucceeded', 'RecoveryStarted', 'NodeReturned']);
    expect(kamailio.stateOf(h2.uri('ast1'))).toBe('active');
  });

  it('re-applies drains after a wholesale reset (reload) and audits StateReapplied', async () => {
    const h = await harness({
      nodes: makeNodes([5]),
      guardrails: { maxOutOfServicePerSet: 2, maxOutOfServicePercent: 50 },
    });
    await h.start();
    await h.engine.drain('ast1', op);
    await h.engine.drain('ast2', op);
    h.dispatcher.reload();
    await h.engine.tick(T0 + STEP);
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');
    expect(h.dispatcher.stateOf(h.uri('ast2'))).toBe('disabled');
    expect(
      h.audits
        .filter((a) => a.kind === 'StateReapplied')
        .map((a) => a.nodeId)
        .sort(),
    ).toEqual(['ast1', 'ast2']);
    expect(h.audits.some((a) => a.kind === 'ManualOverrideDetected')).toBe(false);
  });

  it("re-applies a drain that Kamailio's own failure handling turned into trying or inactive, recording no override", async () => {
    const h = await harness();
    await h.start();
    await h.engine.drain('ast1', op);
    // ds_mark_dst("tp") in a failure_route, for a call sent before the drain that failed after it: TP takes calls.
    h.dispatcher.setByHand(h.uri('ast1'), 'trying', true);
    await h.engine.tick(T0 + STEP);
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');
    const reapplied = h.audits.filter((a) => a.kind === 'StateReapplied' && a.nodeId === 'ast1');
    expect(reapplied).toHaveLength(1);
    expect(reapplied[0]!.reason).toMatch(/failure handling marked the drained node TP/);
    expect(reapplied[0]!.details.evidence).toMatchObject({ by: 'proxy_failure_marking', flags: 'TP' });
    h.dispatcher.setByHand(h.uri('ast1'), 'inactive', true);
    await h.engine.tick(T0 + 2 * STEP);
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');
    expect(h.audits.some((a) => a.kind === 'ManualOverrideDetected')).toBe(false);
    expect(h.engine.nodeRecords().find((r) => r.nodeId === 'ast1')).toMatchObject({ state: 'draining' });
  });

  it('treats a single drained node back to file defaults as a reset, but a kamcmd `set_state a` as a manual override', async () => {
    const h = await harness();
    await h.start();
    await h.engine.drain('ast1', op);
    h.dispatcher.reload();
    await h.engine.tick(T0 + STEP);
    expect(h.kinds('ast1').at(-1)).toBe('StateReapplied');
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');

    h.dispatcher.setByHand(h.uri('ast1'), 'active', false);
    const drainsBefore = h.dispatcher.countOf('drain');
    await h.engine.tick(T0 + 2 * STEP);
    await h.engine.tick(T0 + 3 * STEP);
    expect(h.kinds('ast1').at(-1)).toBe('ManualOverrideDetected');
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('active');
    expect(h.dispatcher.countOf('drain')).toBe(drainsBefore);
    const rec = h.engine.nodeRecords().find((r) => r.nodeId === 'ast1');
    expect(rec).toMatchObject({ state: 'active' });
    expect(rec?.manualOverride).toMatch(/enabled by hand/);
    // Automation leaves it alone until the override is cleared.
    for (let i = 4; i < 8; i++)
      await h.step(T0 + i * STEP, healthyExcept(h.nodes, T0 + i * STEP, [score('ast1', T0 + i * STEP, 0.99)]));
    expect(h.dispatcher.countOf('drain')).toBe(drainsBefore);
    expect(h.engine.explain('ast1').lastAutoDecision?.guardrail).toBe('manual_override');
    await h.engine.clearOverride('ast1', op);
    for (let i = 8; i < 12; i++)
      await h.step(T0 + i * STEP, healthyExcept(h.nodes, T0 + i * STEP, [score('ast1', T0 + i * STEP, 0.99)]));
    expect(h.dispatcher.countOf('drain')).toBe(drainsBefore + 1);
  });

  it('records a node disabled by hand as an override, never re-enables it, and counts it as out of service', async () => {
    const h = await harness();
    await h.engine.init();
    h.dispatcher.setByHand(h.uri('ast3'), 'disabled');
    await h.engine.tick(T0 + STEP);
    expect(h.kinds('ast3')).toEqual(['ManualOverrideDetected']);
    // With ast3 out and max one out per set, an automatic drain of ast1 is refused.
    for (let i = 2; i < 6; i++)
      await h.step(T0 + i * STEP, healthyExcept(h.nodes, T0 + i * STEP, [score('ast1', T0 + i * STEP, 0.99)]));
    expect(h.dispatcher.countOf('drain')).toBe(0);
    expect(h.dispatcher.countOf('activate')).toBe(0);
    expect(h.audits.find((a) => a.kind === 'DrainRefused')?.details.guardrail).toBe('max_out_of_service');
    // Clearing the override adopts the hand-disabled node as a held drain instead of re-enabling it.
    const r = await h.engine.clearOverride('ast3', op);
    expect(r.record).toMatchObject({ state: 'draining', manualOverride: null });
    expect(h.dispatcher.stateOf(h.uri('ast3'))).toBe('disabled');
  });

  it('survives a failing dispatcher: one DrainFailed alert, the store says unconfirmed, and the drain lands on recovery', async () => {
    const h = await harness({ timeouts: { lifecycleRetryMs: STEP } });
    await h.engine.init();
    h.dispatcher.failNext(1000, 'drain');
    let i = 0;
    const t = () => T0 + i * STEP;
    for (; i < 6; i++) await h.step(t(), healthyExcept(h.nodes, t(), [score('ast1', t(), 0.95, { activeCalls: 3 })]));
    expect(h.audits.filter((a) => a.kind === 'DrainFailed')).toHaveLength(1);
    expect(h.audits.find((a) => a.kind === 'DrainFailed')?.details).toMatchObject({ alert: true, willRetry: true });
    expect((await h.store.getNode('ast1'))?.state).toBe('draining');
    expect(h.engine.explain('ast1').drainUnconfirmed).toBe(true);
    h.dispatcher.clearFailures();
    for (; i < 14; i++) await h.step(t(), healthyExcept(h.nodes, t(), [score('ast1', t(), 0.95, { activeCalls: 3 })]));
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('disabled');
    expect(h.kinds('ast1').filter((k) => k === 'DrainSucceeded')).toHaveLength(1);
    expect(h.engine.explain('ast1').drainUnconfirmed).toBe(false);
  });

  it('cancels an unconfirmed automatic drain when the risk recovers before the dispatcher accepts it', async () => {
    const h = await harness({ timeouts: { lifecycleRetryMs: STEP } });
    await h.engine.init();
    h.dispatcher.failNext(3, 'drain');
    let i = 0;
    const t = () => T0 + i * STEP;
    for (; i < 3; i++) await h.step(t(), healthyExcept(h.nodes, t(), [score('ast1', t(), 0.95)]));
    expect(h.engine.explain('ast1').drainUnconfirmed).toBe(true);
    for (; i < 6; i++) await h.step(t(), healthyExcept(h.nodes, t(), [score('ast1', t(), 0.1)]));
    expect(h.engine.explain('ast1').state).toBe('active');
    expect(h.dispatcher.stateOf(h.uri('ast1'))).toBe('active');
    expect(h.audits.at(-1)).toMatchObject({ kind: 'DrainRefused', details: { guardrail: 'risk_recovered' } });
  });

  it('keeps working when the dispatcher list fails during reconcile', async () => {
    const h = await harness();
    await h.engine.init();
    h.dispatcher.failNext(1, 'list');
    await expect(h.engine.tick(T0 + STEP)).resolves.toBeUndefined();
  });
});

describe('ActionEngine dry-run', () => {
  it('never touches the dispatcher or restarter, runs the whole lifecycle, and labels every audit dryRun', async () => {
    let dry: DryRunDispatcher | null = null;
    let dryR: DryRunRestarter | null = null;
    const h = await harness({
      dryRun: true,
      dispatcherWrapper: (d) => {
        dry = new DryRunDispatcher({ inner: d });
        return dry;
      },
      restarterWrapper: () => {
        dryR = new DryRunRestarter();
        return dryR;
      },
    });
    await h.engine.init();
    await fullCycle(h, 0);
    expect(h.dispatcher.countOf('drain')).toBe(0);
    expect(h.dispatcher.countOf('activate')).toBe(0);
    expect(h.restarter.restarts).toEqual([]);
    expect(h.kinds('ast1')).toEqual([
      'DrainStarting',
      'DrainSucceeded',
      'RestartStarting',
      'RestartSucceeded',
      'RecoveryStarted',
      'NodeReturned',
    ]);
    expect(h.audits.every((a) => a.dryRun)).toBe(true);
    expect((dry as DryRunDispatcher | null)?.actions.map((a) => a.op)).toEqual(['drain', 'activate']);
    expect((dryR as DryRunRestarter | null)?.actions.map((a) => a.target)).toEqual(['ast1']);
    expect(h.audits.some((a) => a.kind === 'StateReapplied' || a.kind === 'ManualOverrideDetected')).toBe(false);
  });
});

describe('ActionEngine store failures', () => {
  it('does not touch the dispatcher when the write-ahead record cannot be stored', async () => {
    const h = await harness();
    await h.start();
    const put = h.store.putNode.bind(h.store);
    h.store.putNode = async () => {
      throw new Error('disk full');
    };
    await expect(h.engine.drain('ast1', op)).rejects.toThrow(/disk full/);
    expect(h.dispatcher.countOf('drain')).toBe(0);
    expect(h.engine.explain('ast1').state).toBe('active');
    h.store.putNode = put;
    await h.engine.tick(T0 + STEP);
    expect(h.dispatcher.countOf('drain')).toBe(0);
  });
});
