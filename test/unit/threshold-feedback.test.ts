/**
 * Operators' verdicts move the drain threshold of the scorer that raised the drain: a false alarm raises it, a true
 * alarm lowers it, never outside the bound, with an audit entry per move, and the moved value survives a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { EffectiveThresholds, isCounted, moveOf } from '../../src/actions/thresholds.js';
import { parseConfig } from '../../src/config/load.js';
import { moveThreshold, type ThresholdFeedback } from '../../src/core/thresholds.js';
import type { AuditRecord, NodeScore } from '../../src/messages.js';
import { harness, healthyExcept, makeNodes, STEP, score, T0 } from '../helpers/action-harness.js';

const FEEDBACK: ThresholdFeedback = { enabled: true, min: 0.7, max: 0.9, falseAlarmStep: 0.02, trueAlarmStep: 0.01 };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmpStorePath(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-thresholds-'));
  dirs.push(dir);
  return path.join(dir, 'store.db');
}

/** Two sets of four, so a drain in set 1 does not use up set 2's capacity. */
async function started(storePath = ':memory:') {
  const nodes = makeNodes([4, 4]);
  const h = await harness({ nodes, feedback: FEEDBACK, store: new SqliteStore({ path: storePath }) });
  await h.start();
  return h;
}

type H = Awaited<ReturnType<typeof started>>;

/** Feeds K windows of `risk` for one node (others healthy) and returns the automatic drain's decision id, if any. */
async function highRisk(h: H, nodeId: string, risk: number, from: number, over: Partial<NodeScore> = {}) {
  const setId = h.nodes.find((n) => n.nodeId === nodeId)!.setId;
  let t = from;
  for (let i = 0; i < 3; i++) {
    t += STEP;
    await h.step(t, healthyExcept(h.nodes, t, [{ ...score(nodeId, t, risk, { setId }), ...over }]));
  }
  const drain = h.audits.find((a) => a.nodeId === nodeId && a.kind === 'DrainStarting' && a.ts > from);
  return { t, decisionId: drain?.decisionId ?? null, drain };
}

const moves = (h: H): AuditRecord[] => h.audits.filter((a) => a.kind === 'ThresholdMoved');

describe('verdicts move the drain threshold of the scorer that raised the drain', () => {
  it('a false alarm raises the threshold, and the raised threshold decides the next drains', async () => {
    const h = await started();
    const { t, decisionId, drain } = await highRisk(h, 'ast1', 0.85, T0);
    expect(decisionId).not.toBeNull();
    expect(drain?.details).toMatchObject({ scorer: 'test-v1', threshold: 0.8 });

    const v = await h.engine.verdict(decisionId!, { actor: 'olga', confirmed: false, note: 'node was fine' });
    expect(v.details.threshold).toMatchObject({ moved: true, scorer: 'test-v1', from: 0.8, to: 0.82 });
    expect(h.engine.riskThreshold()).toBe(0.82);
    expect(moves(h)).toHaveLength(1);
    expect(moves(h)[0]).toMatchObject({ nodeId: 'ast1', actor: 'olga', decisionId, details: { from: 0.8, to: 0.82 } });

    // ast5 (set 2) at 0.81 for three windows: above the configured 0.8, below the moved 0.82, so no drain.
    const below = await highRisk(h, 'ast5', 0.81, t);
    expect(below.decisionId).toBeNull();
    expect(h.engine.explain('ast5').lastAutoDecision).toMatchObject({ outcome: 'below_threshold' });
    const above = await highRisk(h, 'ast5', 0.83, below.t);
    expect(above.decisionId).not.toBeNull();
  });

  it('a true alarm lowers it; one decision counts once; a changed verdict takes the earlier move back', async () => {
    const h = await started();
    const { decisionId } = await highRisk(h, 'ast1', 0.85, T0);
    await h.engine.verdict(decisionId!, { actor: 'olga', confirmed: false, note: '' });
    const again = await h.engine.verdict(decisionId!, { actor: 'olga', confirmed: false, note: 'clicked twice' });
    expect(again.details.threshold).toMatchObject({ moved: false, why: expect.stringMatching(/already counted/) });
    expect(h.engine.riskThreshold()).toBe(0.82);
    // The operator changes their mind: +0.02 is taken back, then -0.01 for a true alarm.
    await h.engine.verdict(decisionId!, { actor: 'olga', confirmed: true, note: 'it was leaking after all' });
    expect(h.engine.riskThreshold()).toBe(0.79);
    expect(moves(h).map((m) => [m.details.from, m.details.to])).toEqual([
      [0.8, 0.82],
      [0.82, 0.79],
    ]);
    expect(h.engine.thresholdsView().scorers).toEqual([
      expect.objectContaining({ scorer: 'test-v1', threshold: 0.79, falseAlarms: 0, trueAlarms: 1, inCharge: true }),
    ]);
  });

  it('stops at the bound and leaves operator drains and other scorers alone', async () => {
    const h = await started();
    let t = T0;
    // Eight false drains, a quarter of an hour apart (the drains-per-hour guardrail): 0.8 + 8 x 0.02 would be
    // 0.96; the bound holds it at 0.9.
    for (let i = 0; i < 8; i++) {
      const r = await highRisk(h, 'ast1', 0.95, t);
      await h.engine.verdict(r.decisionId!, { actor: 'olga', confirmed: false, note: '' });
      await h.engine.undrain('ast1', { actor: 'olga', reason: 'back' });
      t = r.t + 15 * 60_000;
    }
    expect(h.engine.riskThreshold()).toBe(0.9);
    expect(moves(h)).toHaveLength(5);
    const held = h.audits.filter((a) => a.kind === 'Verdict').at(-1)!;
    expect(moveOf(held)).toMatchObject({ moved: false, from: 0.9, to: 0.9 });

    const op = await h.engine.drain('ast6', { actor: 'olga', reason: 'maintenance' });
    const opVerdict = await h.engine.verdict(op.decision!.id, { actor: 'olga', confirmed: false, note: '' });
    expect(opVerdict.details.threshold).toMatchObject({ moved: false, why: expect.stringMatching(/operator drain/) });

    // Another scorer takes over (a promoted model): it decides at its own threshold, the configured one.
    t += STEP;
    await h.step(
      t,
      healthyExcept(h.nodes, t, []).map((s) => ({ ...s, scorer: 'other-v2' })),
    );
    expect(h.engine.riskThreshold()).toBe(0.8);
    expect(h.engine.thresholdsView()).toMatchObject({ inCharge: 'other-v2', effective: 0.8 });
  });

  it('the moved threshold survives a restart (stored, reloaded by the next engine)', async () => {
    const file = tmpStorePath();
    const h = await started(file);
    const { decisionId } = await highRisk(h, 'ast1', 0.85, T0);
    await h.engine.verdict(decisionId!, { actor: 'olga', confirmed: false, note: '' });
    await h.engine.idle();
    await h.store.close();

    const h2 = await started(file);
    expect(h2.engine.riskThreshold()).toBe(0.82);
    expect(h2.engine.thresholdsView().scorers[0]).toMatchObject({ scorer: 'test-v1', threshold: 0.82, falseAlarms: 1 });
    await h2.store.close();
  });

  it('feedback off: verdicts are recorded as labels and the threshold stays', async () => {
    const h = await harness({ nodes: makeNodes([4]), feedback: { ...FEEDBACK, enabled: false } });
    await h.start();
    const { decisionId } = await highRisk(h, 'ast1', 0.9, T0);
    const v = await h.engine.verdict(decisionId!, { actor: 'olga', confirmed: false, note: '' });
    expect(v.details).toMatchObject({ confirmed: false, threshold: { moved: false } });
    expect(h.engine.riskThreshold()).toBe(0.8);
  });
});

describe('threshold bound', () => {
  const feedback = fc
    .record({
      lo: fc.double({ min: 0.3, max: 0.8, noNaN: true }),
      hi: fc.double({ min: 0.8, max: 1, noNaN: true }),
      up: fc.double({ min: 0, max: 0.5, noNaN: true }),
      down: fc.double({ min: 0, max: 0.5, noNaN: true }),
    })
    .map(({ lo, hi, up, down }) => ({ enabled: true, min: lo, max: hi, falseAlarmStep: up, trueAlarmStep: down }));
  const verdicts = fc.array(fc.record({ decision: fc.integer({ min: 0, max: 5 }), falseAlarm: fc.boolean() }), {
    maxLength: 60,
  });

  it('whatever the verdicts (repeated, changed, any steps), the threshold stays inside [min, max]', async () => {
    await fc.assert(
      fc.asyncProperty(feedback, verdicts, async (f, seq) => {
        const store = new SqliteStore({ path: ':memory:' });
        await store.init();
        const t = new EffectiveThresholds(0.8, f, 0.3, 'stat-v1');
        const last = new Map<number, ReturnType<EffectiveThresholds['judge']>>();
        const drain = {
          kind: 'DrainStarting',
          actor: 'auto',
          details: { scorer: 'stat-v1' },
        } as unknown as AuditRecord;
        for (const [i, v] of seq.entries()) {
          const previous = last.get(v.decision) ?? null;
          const move = t.judge(drain, previous, v.falseAlarm ? 'false_alarm' : 'true_alarm');
          await t.commit(store, move, previous, i);
          if (isCounted(move)) last.set(v.decision, move);
          const now = t.current();
          if (!(now >= f.min && now <= f.max)) return false;
        }
        const stored = await store.listThresholds();
        await store.close();
        return stored.every((r) => r.threshold >= f.min && r.threshold <= f.max);
      }),
      { numRuns: 150 },
    );
  });

  it('moveThreshold alone never leaves the bound, whatever it is given', () => {
    fc.assert(
      fc.property(
        feedback,
        fc.double({ noNaN: false }),
        fc.boolean(),
        fc.double({ min: -2, max: 2 }),
        (f, current, falseAlarm, undo) => {
          const next = moveThreshold(current, falseAlarm ? 'false_alarm' : 'true_alarm', f, undo);
          return next >= f.min && next <= f.max;
        },
      ),
    );
  });
});

describe('threshold feedback config', () => {
  it('defaults to a bound around riskThreshold and refuses a bound that excludes it or goes below recover', () => {
    const c = parseConfig({});
    expect(c.actions.thresholdFeedback).toMatchObject({ enabled: true, falseAlarmStep: 0.02, trueAlarmStep: 0.01 });
    expect(() => parseConfig({ actions: { thresholdFeedback: { min: 0.85 } } })).toThrow(
      /thresholdFeedback: min 0.85 and max 0.95 must hold the configured riskThreshold 0.8/,
    );
    expect(() =>
      parseConfig({ actions: { guardrails: { recoverThreshold: 0.5 }, thresholdFeedback: { min: 0.45 } } }),
    ).toThrow(/min 0.45 must not be below recoverThreshold 0.5/);
  });
});
