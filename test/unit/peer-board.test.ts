import { describe, expect, it } from 'vitest';
import { NO_EVIDENCE } from '../../src/features/evidence.js';
import { Z_SIGNALS } from '../../src/features/names.js';
import { PeerBoard } from '../../src/features/peer-board.js';
import type { FeatureVector } from '../../src/messages.js';

const W = 1000;
const DB_QUERY = Z_SIGNALS.findIndex((s) => s.source === 'db.query_ms.p95');

/** An observed vector whose Z signal sources all read `level` (db.query_ms.p95 included). */
function vector(nodeId: string, windowEnd: number, options: Partial<FeatureVector> & { level?: number } = {}) {
  const { level = 5, ...rest } = options;
  const features = Object.fromEntries(Z_SIGNALS.map((s) => [s.source, level]));
  const v: FeatureVector = {
    nodeId,
    setId: 1,
    windowStart: windowEnd - W,
    windowEnd,
    sampleCount: 3,
    observed: true,
    features,
    evidence: NO_EVIDENCE,
    ...rest,
  };
  return v;
}

const ids = (board: PeerBoard, setId: number, windowEnd: number) =>
  board
    .peersOf(setId, windowEnd)
    .map((p) => p.nodeId)
    .sort();

describe('PeerBoard', () => {
  it("keeps each node's Z signal sources in Z_SIGNALS order, from its newest window", () => {
    const board = new PeerBoard({ windowMs: W });
    board.record(vector('a', 10_000, { level: 7 }));
    board.record(vector('a', 11_000, { level: 9 }));
    // A redelivered older window does not replace the newer one.
    board.record(vector('a', 10_000, { level: 7 }));
    const [peer] = board.peersOf(1, 11_000);
    expect(peer?.windowEnd).toBe(11_000);
    expect(peer?.values.length).toBe(Z_SIGNALS.length);
    expect(peer?.values[DB_QUERY]).toBe(9);
  });

  it('counts a node as a peer only within 3 windows of the window being closed', () => {
    const board = new PeerBoard({ windowMs: W });
    board.record(vector('a', 10_000));
    expect(ids(board, 1, 10_000)).toEqual(['a']);
    expect(ids(board, 1, 13_000)).toEqual(['a']);
    // Its replica went quiet: no longer a peer.
    expect(ids(board, 1, 14_000)).toEqual([]);
    // A window far behind (a rebuild replaying the past) does not borrow values from the future either.
    expect(ids(board, 1, 6_000)).toEqual([]);
    const strict = new PeerBoard({ windowMs: W, maxAgeWindows: 1 });
    strict.record(vector('a', 10_000));
    expect(ids(strict, 1, 12_000)).toEqual([]);
  });

  it('answers per dispatcher set, and follows a node that moved to another set', () => {
    const board = new PeerBoard({ windowMs: W });
    board.record(vector('a', 10_000));
    board.record(vector('b', 10_000, { setId: 2 }));
    expect(ids(board, 1, 10_000)).toEqual(['a']);
    expect(ids(board, 2, 10_000)).toEqual(['b']);
    expect(ids(board, 3, 10_000)).toEqual([]);
    board.record(vector('a', 11_000, { setId: 2 }));
    expect(ids(board, 1, 11_000)).toEqual([]);
    expect(ids(board, 2, 11_000)).toEqual(['a', 'b']);
  });

  it('drops a node whose newest vector is unobserved, and one that is forgotten', () => {
    const board = new PeerBoard({ windowMs: W });
    board.record(vector('a', 10_000));
    board.record(vector('b', 10_000));
    board.record(vector('a', 11_000, { observed: false, sampleCount: 0 }));
    board.forget('b');
    expect(ids(board, 1, 11_000)).toEqual([]);
    expect(board.size).toBe(0);
  });

  it('holds at most maxNodes, making room by the least recently updated node', () => {
    const board = new PeerBoard({ windowMs: W, maxNodes: 3 });
    for (const id of ['a', 'b', 'c']) board.record(vector(id, 10_000));
    board.record(vector('a', 11_000));
    board.record(vector('d', 11_000));
    expect(board.size).toBe(3);
    expect(ids(board, 1, 11_000)).toEqual(['a', 'c', 'd']);
  });

  it('ignores vectors with a missing or non-finite Z source, or without a usable node, set or window', () => {
    const board = new PeerBoard({ windowMs: W });
    board.record(vector('ok', 10_000, { level: 6 }));
    board.record(vector('nan', 10_000, { level: Number.NaN }));
    board.record(vector('inf', 10_000, { level: Number.POSITIVE_INFINITY }));
    const missing = vector('missing', 10_000);
    delete missing.features['db.query_ms.p95'];
    board.record(missing);
    board.record(vector('text', 10_000, { features: { 'db.query_ms.p95': 'slow' as unknown as number } }));
    board.record(vector('no-set', 10_000, { setId: Number.NaN }));
    board.record(vector('no-end', Number.NaN));
    board.record(vector(42 as unknown as string, 10_000));
    // A garbage vector of a known node leaves its last good value in place.
    board.record(vector('ok', 11_000, { level: Number.NaN }));
    expect(board.size).toBe(1);
    const [peer] = board.peersOf(1, 10_000);
    expect(peer?.nodeId).toBe('ok');
    expect(peer?.values[DB_QUERY]).toBe(6);
  });
});
