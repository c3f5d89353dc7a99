/**
 * Verdict feedback with the production store: the local PostgreSQL (127.0.0.1:5432, database `test`, a throwaway
 * schema). A false-alarm verdict raises the scorer's drain threshold, a true alarm lowers it, and a new leader (a
 * fresh engine on the same schema) decides with the moved threshold.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/actions/store/postgres.js';
import { harness, healthyExcept, makeNodes, STEP, score, T0 } from '../helpers/action-harness.js';

const url = process.env.FORESIGHT_TEST_PG ?? `postgres://${process.env.PGUSER ?? 'postgres'}@127.0.0.1:5432/test`;
const schema = `fs_thr_${randomBytes(6).toString('hex')}`;
const FEEDBACK = { enabled: true, min: 0.7, max: 0.9, falseAlarmStep: 0.02, trueAlarmStep: 0.01 };
const opened: PostgresStore[] = [];

function pg(): PostgresStore {
  const s = new PostgresStore({ connectionString: url, schema });
  opened.push(s);
  return s;
}

afterAll(async () => {
  const dropper = new PostgresStore({ connectionString: url, schema });
  await dropper.init();
  await dropper.dropSchema();
  await dropper.close();
  for (const s of opened) await s.close().catch(() => undefined);
});

async function leader() {
  const nodes = makeNodes([4, 4]);
  const h = await harness({ nodes, feedback: FEEDBACK, store: pg() });
  await h.start();
  return h;
}

describe('threshold feedback on PostgreSQL', () => {
  it('false alarms raise, true alarms lower, and the next leader decides with the stored threshold', async () => {
    const h = await leader();
    const drainOf = async (nodeId: string, setId: number, from: number) => {
      let t = from;
      for (let i = 0; i < 3; i++) {
        t += STEP;
        await h.step(t, healthyExcept(h.nodes, t, [score(nodeId, t, 0.86, { setId })]));
      }
      const d = h.audits.find((a) => a.nodeId === nodeId && a.kind === 'DrainStarting' && a.ts > from);
      return { t, id: d?.decisionId ?? null };
    };
    const a = await drainOf('ast1', 1, T0);
    const b = await drainOf('ast5', 2, a.t);
    expect(a.id && b.id).toBeTruthy();
    await h.engine.verdict(a.id!, { actor: 'olga', confirmed: false, note: 'fine' });
    await h.engine.verdict(b.id!, { actor: 'olga', confirmed: false, note: 'fine' });
    expect(h.engine.riskThreshold()).toBe(0.84);
    const stored = await h.store.listThresholds();
    expect(stored).toEqual([expect.objectContaining({ scorer: 'test-v1', threshold: 0.84, falseAlarms: 2 })]);
    expect(await h.store.queryAudit({ kind: 'ThresholdMoved' })).toHaveLength(2);
    await h.engine.idle();

    // A new leadership term: a fresh engine on the same schema.
    const next = await leader();
    expect(next.engine.riskThreshold()).toBe(0.84);
    // A true alarm on the earlier decision b: it was counted as false, so its +0.02 is taken back, then -0.01.
    await next.engine.verdict(b.id!, { actor: 'olga', confirmed: true, note: 'was leaking' });
    expect(next.engine.riskThreshold()).toBe(0.81);
    const [moved] = await next.store.queryAudit({ kind: 'ThresholdMoved', limit: 1 });
    expect(moved).toMatchObject({ decisionId: b.id, details: { from: 0.84, to: 0.81, verdict: 'true_alarm' } });
    expect(await next.store.listThresholds()).toEqual([
      expect.objectContaining({ threshold: 0.81, falseAlarms: 1, trueAlarms: 1 }),
    ]);
  });
});
