/** One behaviour suite for every Store adapter: register it with a factory that returns a fresh, empty store. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/actions/ports.js';
import type { AuditRecord, NodeRecord } from '../../src/messages.js';

export interface StoreHandle {
  store: Store;
  /** Opens a second store on the same data, as a restarted process would. */
  reopen: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

function node(over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    nodeId: 'ast1',
    setId: 1,
    uri: 'sip:127.0.0.1:5071',
    state: 'active',
    since: 1_700_000_000_000,
    pinned: false,
    manualOverride: null,
    lastDrainAt: null,
    decisionId: null,
    reason: 'configured',
    ...over,
  };
}

function audit(over: Partial<Omit<AuditRecord, 'seq'>> = {}): Omit<AuditRecord, 'seq'> {
  return {
    ts: 1_700_000_000_000,
    nodeId: 'ast1',
    kind: 'DrainStarting',
    actor: 'auto',
    reason: 'risk high',
    decisionId: 'd-1',
    dryRun: false,
    details: {},
    ...over,
  };
}

export function storeConformance(name: string, factory: () => Promise<StoreHandle>): void {
  describe(`Store conformance: ${name}`, () => {
    let handle: StoreHandle | null = null;
    const open = async () => {
      handle = await factory();
      await handle.store.init();
      return handle;
    };
    afterEach(async () => {
      await handle?.cleanup();
      handle = null;
    });

    it('init is idempotent and an empty store has no nodes or audit', async () => {
      const { store } = await open();
      await store.init();
      expect(await store.listNodes()).toEqual([]);
      expect(await store.queryAudit({})).toEqual([]);
      expect(await store.getNode('nope')).toBeNull();
    });

    it('round-trips node records, including nulls, booleans and large epoch values, and upserts', async () => {
      const { store } = await open();
      const a = node();
      const b = node({
        nodeId: 'ast2',
        setId: 7,
        state: 'restarting',
        pinned: true,
        manualOverride: 'disabled by hand (DX)',
        lastDrainAt: 1_799_999_999_999,
        decisionId: 'd-42',
        reason: 'drain timeout — ünïcode',
      });
      await store.putNode(b);
      await store.putNode(a);
      expect(await store.getNode('ast2')).toEqual(b);
      expect(await store.listNodes()).toEqual([a, b]);
      const a2 = { ...a, state: 'draining' as const, since: a.since + 5, lastDrainAt: a.since + 5, decisionId: 'x' };
      await store.putNode(a2);
      expect(await store.getNode('ast1')).toEqual(a2);
      expect((await store.listNodes()).length).toBe(2);
    });

    it('assigns increasing seq and returns audit newest first with details intact', async () => {
      const { store } = await open();
      const r1 = await store.appendAudit(audit({ details: { risk: 0.91, nested: { a: [1, 2] }, none: null } }));
      const r2 = await store.appendAudit(audit({ kind: 'DrainSucceeded', dryRun: true, decisionId: null }));
      expect(r1.seq).toBeGreaterThan(0);
      expect(r2.seq).toBeGreaterThan(r1.seq);
      const all = await store.queryAudit({});
      expect(all.map((r) => r.seq)).toEqual([r2.seq, r1.seq]);
      expect(all[1]).toEqual(r1);
      expect(all[1]?.details).toEqual({ risk: 0.91, nested: { a: [1, 2] }, none: null });
      expect(all[0]?.dryRun).toBe(true);
      expect(all[0]?.decisionId).toBeNull();
    });

    it('filters by node, kind, since and pages backwards with beforeSeq and limit', async () => {
      const { store } = await open();
      const seqs: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await store.appendAudit(
          audit({
            ts: 1000 + i,
            nodeId: i % 2 === 0 ? 'ast1' : 'ast2',
            kind: i % 3 === 0 ? 'DrainRefused' : 'DrainStarting',
          }),
        );
        seqs.push(r.seq);
      }
      expect((await store.queryAudit({ nodeId: 'ast2' })).map((r) => r.ts)).toEqual([1009, 1007, 1005, 1003, 1001]);
      expect((await store.queryAudit({ kind: 'DrainRefused' })).map((r) => r.ts)).toEqual([1009, 1006, 1003, 1000]);
      expect((await store.queryAudit({ since: 1007 })).map((r) => r.ts)).toEqual([1009, 1008, 1007]);
      const page1 = await store.queryAudit({ limit: 3 });
      expect(page1.map((r) => r.ts)).toEqual([1009, 1008, 1007]);
      const page2 = await store.queryAudit({ limit: 3, beforeSeq: page1[2]?.seq });
      expect(page2.map((r) => r.ts)).toEqual([1006, 1005, 1004]);
      expect(
        (await store.queryAudit({ nodeId: 'ast1', kind: 'DrainStarting', beforeSeq: seqs[8] })).map((r) => r.ts),
      ).toEqual([1004, 1002]);
    });

    it('rejects a non-positive limit with a clear error', async () => {
      const { store } = await open();
      await expect(store.queryAudit({ limit: 0 })).rejects.toMatchObject({ code: 'FORESIGHT_ERR_BAD_REQUEST' });
    });

    it('keeps nodes and audit across a reopen', async () => {
      const h = await open();
      await h.store.putNode(node({ state: 'draining', decisionId: 'd-9' }));
      const r = await h.store.appendAudit(audit({ decisionId: 'd-9' }));
      await h.store.close();
      const again = await h.reopen();
      await again.init();
      expect((await again.getNode('ast1'))?.state).toBe('draining');
      expect((await again.queryAudit({}))[0]).toEqual(r);
      const next = await again.appendAudit(audit());
      expect(next.seq).toBeGreaterThan(r.seq);
      await again.close();
    });

    it('finds the records of one decision', async () => {
      const { store } = await open();
      await store.appendAudit(audit({ decisionId: 'd-1' }));
      await store.appendAudit(audit({ decisionId: 'd-2', kind: 'Verdict' }));
      await store.appendAudit(audit({ decisionId: 'd-1', kind: 'Verdict' }));
      const d1 = await store.queryAudit({ decisionId: 'd-1' });
      expect(d1.map((r) => r.kind)).toEqual(['Verdict', 'DrainStarting']);
      expect(await store.queryAudit({ decisionId: 'd-1', kind: 'Verdict' })).toHaveLength(1);
      expect(await store.queryAudit({ decisionId: 'none' })).toEqual([]);
    });

    it('keeps effective thresholds per scorer across a reopen and refuses one outside [0, 1]', async () => {
      const h = await open();
      expect(await h.store.listThresholds()).toEqual([]);
      const stat = { scorer: 'stat-v1', threshold: 0.82, falseAlarms: 1, trueAlarms: 0, updatedAt: 1_700_000_000_123 };
      await h.store.putThreshold(stat);
      await h.store.putThreshold({ ...stat, scorer: 'tfjs-ae-v1', threshold: 0.7 });
      await h.store.putThreshold({ ...stat, threshold: 0.84, falseAlarms: 2 });
      await expect(h.store.putThreshold({ ...stat, threshold: 1.5 })).rejects.toMatchObject({
        code: 'FORESIGHT_ERR_BAD_REQUEST',
      });
      await h.store.close();
      const again = await h.reopen();
      await again.init();
      expect(await again.listThresholds()).toEqual([
        { ...stat, threshold: 0.84, falseAlarms: 2 },
        { ...stat, scorer: 'tfjs-ae-v1', threshold: 0.7 },
      ]);
      await again.close();
    });

    it('keeps the newest checkpoint per key across a reopen, listed by kind, the state as it was written', async () => {
      const h = await open();
      expect(await h.store.listCheckpoints('features')).toEqual([]);
      const state = { layout: 'f1-abc', baseline: [[1.5, 2.25, -0.125]], down: false };
      const cp = (key: string, kind: 'features' | 'scorer', windowEnd: number) => ({
        key,
        checkpoint: { kind, nodeId: key.split(':').at(-1)!, windowEnd, ts: 1_700_000_000_000 + windowEnd, state },
      });
      await h.store.putCheckpoints([cp('features:ast1', 'features', 10_000), cp('features:ast2', 'features', 10_000)]);
      await h.store.putCheckpoints([
        cp('features:ast1', 'features', 20_000),
        cp('scorer:stat-v1:ast1', 'scorer', 20_000),
      ]);
      await h.store.putCheckpoints([]);
      await h.store.close();
      const again = await h.reopen();
      await again.init();
      expect(await again.listCheckpoints('features')).toEqual([
        cp('features:ast1', 'features', 20_000),
        cp('features:ast2', 'features', 10_000),
      ]);
      expect(await again.listCheckpoints('scorer')).toEqual([cp('scorer:stat-v1:ast1', 'scorer', 20_000)]);
      await again.close();
    });
  });
}
