import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { partitionForKey } from '../../src/bus/port.js';
import { PeerBoard } from '../../src/features/peer-board.js';
import type { TelemetrySample } from '../../src/messages.js';
import { collectFeatures, featureReplica } from '../helpers/feature-replica.js';

const PARTITIONS = 4;
const WINDOW = 1000;
const LATENESS = 200;
const WINDOWS = 12;
/** The window during which replica B leaves the group (A takes every partition over). */
const B_LEAVES_AT = 7;
/** Recent (a rebuild looks for the previous owner's vectors within a lookback before the wall clock). */
const T0 = Math.floor(Date.now() / WINDOW) * WINDOW - 30 * WINDOW;
/**
 * One dispatcher set of six nodes. The in-process bus gives the first member partitions 0 and 2, the second 1 and 3:
 * A holds ast1 and ast3, B the other four. ast1 is the node whose database is slow (100 ms).
 */
const NODES = ['ast0', 'ast1', 'ast2', 'ast3', 'ast4', 'ast6'];
const SLOW = 'ast1';
const onA = (nodeId: string) => partitionForKey(nodeId, PARTITIONS) % 2 === 0;

/** A node's DB query time in a window: 5–7.5 ms on healthy nodes (by node index). */
type DbLevel = (nodeId: string, n: number, window: number) => number;
const slowNode: DbLevel = (nodeId, n) => (nodeId === SLOW ? 100 : 5 + n * 0.5);

/** Per node and window: two calls and three DB queries. */
function windowSamples(window: number, level: DbLevel): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  NODES.forEach((nodeId, n) => {
    const base = T0 + window * WINDOW;
    for (let i = 0; i < 2; i++)
      out.push({ nodeId, ts: base + 100 + i * 400, metric: 'calls.started', value: 1, source: 'sim' });
    for (let i = 0; i < 3; i++) {
      out.push({
        nodeId,
        ts: base + 200 + i * 300,
        metric: 'db.query_ms',
        value: level(nodeId, n, window),
        source: 'sim',
      });
    }
  });
  return out.sort((a, b) => a.ts - b.ts);
}

/** As in the sidecar: every replica knows every configured node up front (the other replica's are unobserved here). */
function replica(bus: MemoryBus, replicaId: string, sharePeers: boolean) {
  const board = sharePeers ? new PeerBoard({ windowMs: WINDOW }) : undefined;
  const stage = featureReplica(bus, {
    groupId: 'fs',
    partitions: PARTITIONS,
    windowMs: WINDOW,
    allowedLatenessMs: LATENESS,
    recover: true,
    nodes: NODES.map((nodeId) => ({ nodeId, setId: 1 })),
    peers: board ? { board, replicaId } : undefined,
  });
  return { stage, board };
}

/**
 * Two replicas in one group; B leaves before window B_LEAVES_AT's telemetry and A rebuilds its nodes. Returns every
 * vector in the features topic, by node and window.
 */
async function scenario(sharePeers: boolean, level: DbLevel = slowNode) {
  const bus = new MemoryBus({ partitions: PARTITIONS, retainCommitted: 100_000 });
  const vectors = await collectFeatures(bus);
  const a = replica(bus, 'a', sharePeers);
  const b = replica(bus, 'b', sharePeers);
  await a.stage.start();
  await b.stage.start();
  await bus.idle();
  for (let w = 0; w < WINDOWS; w++) {
    if (w === B_LEAVES_AT) {
      await b.stage.stop();
      await bus.idle();
    }
    const samples = windowSamples(w, level);
    await bus.publish(
      'telemetry',
      samples.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
    );
    await bus.idle();
  }
  await a.stage.tick(T0 + WINDOWS * WINDOW + LATENESS);
  await bus.idle();
  await a.stage.stop();
  await bus.close();
  const at = (nodeId: string, w: number) => {
    const list = vectors.filter((v) => v.nodeId === nodeId && v.windowStart === T0 + w * WINDOW);
    expect(list.length, `${nodeId} window ${w}`).toBe(1);
    return list[0]!;
  };
  return { a, b, at, vectors };
}

describe('peer comparison across replicas (in-process bus, two FeatureStages in one group)', () => {
  it('the split under test: A holds the slow node and one peer, B the other four', () => {
    expect(NODES.filter(onA)).toEqual(['ast1', 'ast3']);
  });

  it('with the peer board every node is compared with its whole set, whichever replica holds it', async () => {
    const { a, b, at } = await scenario(true);
    expect(a.stage.counters.out).toBeGreaterThan(0);
    expect(b.stage.counters.out).toBeGreaterThan(0);
    // Window 0: nothing from the other replica yet, so the local members only.
    for (const nodeId of NODES) expect(at(nodeId, 0).features['peers.observed']).toBe(onA(nodeId) ? 1 : 3);
    for (let w = 1; w < WINDOWS; w++) {
      for (const nodeId of NODES) {
        const v = at(nodeId, w);
        expect(v.observed).toBe(true);
        // Set size − 1, never more: after B leaves, A holds all six and drops B's entries instead of counting twice.
        expect(v.features['peers.observed'], `${nodeId} window ${w}`).toBe(NODES.length - 1);
        const z = v.features['z.peer.db_query_p95']!;
        if (nodeId === SLOW) expect(z, `window ${w}`).toBeGreaterThan(10);
        else expect(Math.abs(z), `${nodeId} window ${w}`).toBeLessThan(1);
      }
    }
    // B's nodes left A's board as A's own vectors for them came back after the takeover.
    expect(a.board?.size).toBe(0);
  });

  it('without it the slow node is compared with its one local peer only, and its z.peer stays 0', async () => {
    const { at } = await scenario(false);
    // Window B_LEAVES_AT − 1 is still open when B leaves; A closes it after the takeover, with all six nodes.
    for (let w = 0; w < B_LEAVES_AT - 1; w++) {
      const slow = at(SLOW, w);
      expect(slow.features['peers.observed']).toBe(1);
      expect(slow.features['z.peer.db_query_p95']).toBe(0);
      expect(at('ast0', w).features['peers.observed']).toBe(3);
    }
    // Once one replica holds the whole set, the comparison is whole again: the difference is the split alone.
    expect(at(SLOW, WINDOWS - 1).features['peers.observed']).toBe(NODES.length - 1);
    expect(at(SLOW, WINDOWS - 1).features['z.peer.db_query_p95']).toBeGreaterThan(10);
  });
  it('remote peers are one window behind: a shift of the whole set stands out for one window, on the replica holding fewer of its nodes', async () => {
    const SHIFT_AT = 3;
    const { at } = await scenario(true, (_, n, w) => (w >= SHIFT_AT ? 100 : 5) + n * 0.5);
    const zs = (w: number) => NODES.map((nodeId) => at(nodeId, w).features['z.peer.db_query_p95']!);
    for (let w = 1; w < SHIFT_AT; w++) for (const z of zs(w)) expect(Math.abs(z)).toBeLessThan(1);
    // The shift's first window: each replica's own nodes against the other replica's last (pre-shift) window.
    // The shift's first window: A's two nodes are compared with each other and with B's four as of the window before
    // (still at 5 ms), so they stand out; B's four have three current peers each and do not. From then on nobody does.
    NODES.forEach((nodeId, i) => {
      if (onA(nodeId)) expect(zs(SHIFT_AT)[i], nodeId).toBeGreaterThan(10);
      else expect(Math.abs(zs(SHIFT_AT)[i]!), nodeId).toBeLessThan(1);
    });
    for (let w = SHIFT_AT + 1; w < WINDOWS; w++)
      for (const z of zs(w)) expect(Math.abs(z), `window ${w}`).toBeLessThan(1);
  });
});
