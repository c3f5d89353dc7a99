import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NO_EVIDENCE } from '../../src/features/evidence.js';
import { FeatureExtractor } from '../../src/features/extractor.js';
import { Z_SIGNALS } from '../../src/features/names.js';
import { PeerBoard } from '../../src/features/peer-board.js';
import { robustZ } from '../../src/features/stats.js';
import type { FeatureVector, TelemetrySample } from '../../src/messages.js';

const W = 1000;
const LATENESS = 200;
const T0 = Date.UTC(2026, 0, 1, 12);
const DB = Z_SIGNALS.find((s) => s.name === 'db_query_p95')!;
const POOL = Array.from({ length: 8 }, (_, i) => `n${i}`);

/** One DB query per node in window 0 (its p95 is that value) and one call. */
function samples(levels: ReadonlyMap<string, number>): TelemetrySample[] {
  return [...levels].flatMap(([nodeId, value]) => [
    { nodeId, ts: T0 + 100, metric: 'calls.started', value: 1, source: 'sim' },
    { nodeId, ts: T0 + 200, metric: 'db.query_ms', value, source: 'sim' },
  ]);
}

/** A vector another replica published for `nodeId`, `offset` windows from window 0. */
function remote(nodeId: string, setId: number, offset: number, observed: boolean, level: number): FeatureVector {
  const windowEnd = T0 + W + offset * W;
  return {
    nodeId,
    setId,
    windowStart: windowEnd - W,
    windowEnd,
    sampleCount: observed ? 2 : 0,
    observed,
    features: Object.fromEntries(Z_SIGNALS.map((s) => [s.source, level])),
    evidence: NO_EVIDENCE,
  };
}

/** Window 0's vectors of an extractor holding `local` (set 1) that reads `board`. */
function closeWindow(local: ReadonlyMap<string, number>, board?: PeerBoard): FeatureVector[] {
  const x = new FeatureExtractor({ windowMs: W, allowedLatenessMs: LATENESS, remotePeers: board });
  x.ingest(samples(local));
  return x.advance(T0 + W + LATENESS).filter((v) => v.windowStart === T0);
}

const remoteEntry = fc.record({
  setId: fc.constantFrom(1, 2),
  offset: fc.integer({ min: -5, max: 5 }),
  observed: fc.boolean(),
  level: fc.integer({ min: 0, max: 400 }),
});

describe('peers from other replicas (FeatureExtractor.remotePeers)', () => {
  it('a node is compared with the local members of its set plus the fresh remote ones: never itself, never twice', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...POOL), fc.integer({ min: 0, max: 400 }), { minKeys: 1 }),
        // Remote entries may name nodes this replica holds (a takeover not yet seen by the board) or the node itself.
        fc.dictionary(fc.constantFrom(...POOL), remoteEntry),
        (localLevels, remoteEntries) => {
          const local = new Map(Object.entries(localLevels));
          const board = new PeerBoard({ windowMs: W });
          for (const [id, e] of Object.entries(remoteEntries))
            board.record(remote(id, e.setId, e.offset, e.observed, e.level));
          const freshRemote = new Map(
            Object.entries(remoteEntries)
              .filter(([id, e]) => e.setId === 1 && e.observed && Math.abs(e.offset) <= 3 && !local.has(id))
              .map(([id, e]) => [id, e.level]),
          );
          const setSize = new Set([...local.keys(), ...freshRemote.keys()]).size;
          const vectors = closeWindow(local, board);
          expect(vectors.map((v) => v.nodeId).sort()).toEqual([...local.keys()].sort());
          for (const v of vectors) {
            expect(v.features['peers.observed']).toBe(setSize - 1);
            // This window's own value beats a remote one: the reference is the other local values and the fresh
            // remote values of nodes not held here.
            const reference = [
              ...[...local].filter(([id]) => id !== v.nodeId).map(([, level]) => level),
              ...freshRemote.values(),
            ];
            const expected = robustZ(local.get(v.nodeId)!, reference, DB.scaleFloor, DB.relFloor, 2);
            expect(v.features['z.peer.db_query_p95']).toBeCloseTo(expected, 9);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('with an empty board (one replica) the vectors are exactly those of an extractor without one', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...POOL), fc.integer({ min: 0, max: 400 }), { minKeys: 1 }),
        (levels) => {
          const local = new Map(Object.entries(levels));
          expect(closeWindow(local, new PeerBoard({ windowMs: W }))).toEqual(closeWindow(local));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a deviating node with one local peer gets its z.peer from the remote members', () => {
    const local = new Map([
      ['slow', 100],
      ['n1', 5],
    ]);
    const alone = closeWindow(local).find((v) => v.nodeId === 'slow')!;
    expect(alone.features['peers.observed']).toBe(1);
    expect(alone.features['z.peer.db_query_p95']).toBe(0);
    const board = new PeerBoard({ windowMs: W });
    // One window behind, as replicas usually see each other.
    for (const [i, id] of ['r1', 'r2', 'r3'].entries()) board.record(remote(id, 1, -1, true, 5 + i));
    const shared = closeWindow(local, board).find((v) => v.nodeId === 'slow')!;
    expect(shared.features['peers.observed']).toBe(4);
    expect(shared.features['z.peer.db_query_p95']).toBeGreaterThan(10);
  });
});
