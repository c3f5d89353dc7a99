import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClusterView, type HistoryPoint } from '../../src/api/cluster-view.js';
import { nodeRecord, score, T0 } from '../e2e/fixtures.js';

describe('ClusterView', () => {
  it('keeps the newest score as latest even when an older one arrives later', () => {
    const view = new ClusterView();
    view.applyScores([score('ast1', T0 + 20_000, 0.9)]);
    view.applyScores([score('ast1', T0 + 10_000, 0.1)]);
    expect(view.get('ast1')?.risk).toBe(0.9);
    expect(view.historyPage('ast1', undefined, 10)?.items.map((p) => p.ts)).toEqual([T0 + 10_000, T0 + 20_000]);
  });

  it('emits node events only when a record changes', () => {
    const view = new ClusterView();
    const events: string[] = [];
    view.subscribe((e) => events.push(e.type));
    view.setNodeRecords([nodeRecord('ast1'), nodeRecord('ast2')]);
    view.setNodeRecords([nodeRecord('ast1'), nodeRecord('ast2')]);
    view.applyNodeRecord(nodeRecord('ast1', { state: 'draining' }));
    expect(events).toEqual(['node', 'node', 'node']);
    expect(view.get('ast1')?.state).toBe('draining');
  });

  it('survives a listener that throws', () => {
    const view = new ClusterView();
    const seen: number[] = [];
    view.subscribe(() => {
      throw new Error('closed socket');
    });
    view.subscribe((e) => e.type === 'scores' && seen.push(e.data.length));
    view.applyScores([score('ast1', T0, 0.2)]);
    expect(seen).toEqual([1]);
  });

  // Paging through the whole history must give back exactly the points a naive model keeps: one per timestamp (last
  // write wins), the newest `limit` of them, in time order.
  it('pages history exactly like a naive reference', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ t: fc.integer({ min: 0, max: 200 }), risk: fc.double({ min: 0, max: 1, noNaN: true }) }), {
          maxLength: 300,
          size: 'max',
        }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 17 }),
        (writes, historyLimit, pageSize) => {
          const view = new ClusterView({ historyLimit });
          const naive = new Map<number, number>();
          for (const w of writes) {
            view.applyScores([score('n', w.t * 1000, w.risk)]);
            naive.set(w.t * 1000, w.risk);
          }
          const all = [...naive.entries()].sort((a, b) => a[0] - b[0]);
          const pages: HistoryPoint[] = [];
          let before: number | undefined;
          for (let guard = 0; guard < 1000; guard++) {
            const page = view.historyPage('n', before, pageSize);
            if (!page) break;
            pages.unshift(...page.items);
            expect(page.items.length).toBeLessThanOrEqual(pageSize);
            if (page.nextBefore === null) break;
            before = page.nextBefore;
          }
          // Kept points are a suffix of the naive history, at least `historyLimit` long when there were that many.
          const kept = all.slice(all.length - pages.length);
          expect(pages.map((p) => [p.ts, p.risk])).toEqual(kept);
          expect(pages.length).toBeGreaterThanOrEqual(Math.min(all.length, historyLimit));
          expect(pages.length).toBeLessThanOrEqual(historyLimit + Math.max(1, historyLimit >> 3));
        },
      ),
    );
  });
});
