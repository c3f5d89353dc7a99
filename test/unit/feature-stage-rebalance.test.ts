import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { partitionForKey } from '../../src/bus/port.js';
import type { FeatureVector, TelemetrySample } from '../../src/messages.js';
import type { FeatureStage } from '../../src/pipeline/stages.js';
import { collectFeatures, featureReplica } from '../helpers/feature-replica.js';

const PARTITIONS = 4;
const WINDOW = 1000;
const LATENESS = 200;
/**
 * Recent event time (a multiple of WINDOW): a replica that has seen nothing yet looks for its predecessor's vectors
 * within the lookback before the wall clock. Window w is [T0 + w*WINDOW, T0 + (w+1)*WINDOW).
 */
const T0 = Math.floor(Date.now() / WINDOW) * WINDOW - 30 * WINDOW;
const NODES = Array.from({ length: 8 }, (_, i) => `ast${i}`);
const WINDOWS = 10;

/** Samples per node and window: distinct, so a lost or doubled sample shows in sampleCount. */
function countFor(node: number, window: number): number {
  return 2 + ((node * 3 + window * 7) % 6);
}

/** Every sample of one window, in time order; `part` picks the first or second half of each node's samples. */
function windowSamples(window: number, part: 'first' | 'second' | 'all'): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  NODES.forEach((nodeId, n) => {
    const count = countFor(n, window);
    const half = Math.floor(count / 2);
    for (let i = 0; i < count; i++) {
      if (part === 'first' && i >= half) continue;
      if (part === 'second' && i < half) continue;
      const ts = T0 + window * WINDOW + Math.floor(((i + 0.5) * WINDOW) / count);
      out.push({ nodeId, ts, metric: 'calls.started', value: 1, source: 'sim' });
    }
  });
  return out.sort((a, b) => a.ts - b.ts);
}

async function publish(bus: MemoryBus, samples: TelemetrySample[]): Promise<void> {
  await bus.publish(
    'telemetry',
    samples.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
  );
  await bus.idle();
}

function replica(bus: MemoryBus, recover: boolean): FeatureStage {
  return featureReplica(bus, {
    groupId: 'fs',
    partitions: PARTITIONS,
    windowMs: WINDOW,
    allowedLatenessMs: LATENESS,
    recover,
  });
}

/** Runs: A alone; B joins mid-window 3; B leaves mid-window 6; A alone to the end. Returns every emitted vector. */
async function scenario(recover: boolean): Promise<{ vectors: FeatureVector[]; a: FeatureStage; b: FeatureStage }> {
  const bus = new MemoryBus({ partitions: PARTITIONS, retainCommitted: 100_000 });
  const vectors = await collectFeatures(bus);
  const a = replica(bus, recover);
  const b = replica(bus, recover);
  await a.start();
  for (let w = 0; w < 3; w++) await publish(bus, windowSamples(w, 'all'));
  await publish(bus, windowSamples(3, 'first'));
  await b.start();
  await bus.idle();
  await publish(bus, windowSamples(3, 'second'));
  for (let w = 4; w < 6; w++) await publish(bus, windowSamples(w, 'all'));
  await publish(bus, windowSamples(6, 'first'));
  expect(b.counters.in).toBeGreaterThan(0);
  await b.stop();
  await bus.idle();
  await publish(bus, windowSamples(6, 'second'));
  for (let w = 7; w < WINDOWS; w++) await publish(bus, windowSamples(w, 'all'));
  await a.tick(T0 + WINDOWS * WINDOW + LATENESS);
  await bus.idle();
  await a.stop();
  await bus.close();
  return { vectors, a, b };
}

describe('FeatureStage across a rebalance (in-process bus, two replicas in one group)', () => {
  it('emits every node and window exactly once with every sample counted, when replicas join and leave mid-window', async () => {
    const { vectors, a, b } = await scenario(true);
    const seen = new Map<string, FeatureVector[]>();
    for (const v of vectors) {
      const key = `${v.nodeId}@${v.windowStart}`;
      seen.set(key, [...(seen.get(key) ?? []), v]);
    }
    for (const [key, list] of seen) expect(list.length, `${key} emitted ${list.length} times`).toBe(1);
    NODES.forEach((nodeId, n) => {
      for (let w = 0; w < WINDOWS; w++) {
        const list = seen.get(`${nodeId}@${T0 + w * WINDOW}`) ?? [];
        expect(list.length, `${nodeId} window ${w}`).toBe(1);
        expect(list[0]?.sampleCount, `${nodeId} window ${w}`).toBe(countFor(n, w));
        expect(list[0]?.observed).toBe(true);
      }
    });
    // Both replicas emitted something, and each rebuilt state when it gained partitions.
    expect(a.counters.out).toBeGreaterThan(0);
    expect(b.counters.out).toBeGreaterThan(0);
    expect(a.recovery.rebuilds).toBeGreaterThanOrEqual(2);
    expect(b.recovery.rebuilds).toBeGreaterThanOrEqual(1);
    // Each rebuild re-read the half window its nodes had on the previous owner.
    expect(a.recovery.last?.samples).toBeGreaterThan(0);
    expect(b.recovery.last?.samples).toBeGreaterThan(0);
    // B's nodes really were B's: its partitions hold some of the nodes.
    const bNodes = NODES.filter((id) => partitionForKey(id, PARTITIONS) % 2 === 1);
    expect(bNodes.length).toBeGreaterThan(0);
  });

  it('without a rebuild the window open at the move loses samples (the failure the rebuild prevents)', async () => {
    const { vectors } = await scenario(false);
    const wrong = vectors.filter((v) => {
      const w = (v.windowStart - T0) / WINDOW;
      const n = NODES.indexOf(v.nodeId);
      return w >= 0 && w < WINDOWS && n >= 0 && v.sampleCount !== countFor(n, w);
    });
    expect(wrong.length).toBeGreaterThan(0);
  });
});

describe('FeatureStage: the nodes a replica keeps through a rebalance keep their history', () => {
  it('a node last heard saying it is down is still down after its partitions come back (never "up" by default)', async () => {
    const bus = new MemoryBus({ partitions: PARTITIONS, retainCommitted: 100_000 });
    const vectors = await collectFeatures(bus);
    const a = replica(bus, true);
    const b = replica(bus, true);
    await a.start();
    // A node of a partition A keeps when B joins (B takes the odd ones).
    const down = NODES.find((id) => partitionForKey(id, PARTITIONS) % 2 === 0)!;
    const sample = (w: number, metric: TelemetrySample['metric'], value: number): TelemetrySample => ({
      nodeId: down,
      ts: T0 + w * WINDOW + 100,
      metric,
      value,
      source: 'ami',
    });
    await publish(bus, [sample(0, 'node.up', 1), sample(0, 'calls.started', 1)]);
    // Its AMI went away at window 1: one node.up 0, then only other telemetry (its database probe, say).
    await publish(bus, [sample(1, 'node.up', 0), sample(1, 'calls.started', 1)]);
    for (let w = 2; w < 5; w++) await publish(bus, [sample(w, 'calls.started', 1)]);
    await b.start();
    await bus.idle();
    for (let w = 5; w < 7; w++) await publish(bus, [sample(w, 'calls.started', 1)]);
    await b.stop();
    await bus.idle();
    // B left: A gains its partitions and rebuilds, its own nodes included; the node.up 0 is far behind the re-read.
    for (let w = 7; w < 10; w++) await publish(bus, [sample(w, 'calls.started', 1)]);
    await a.tick(T0 + 10 * WINDOW + LATENESS);
    await bus.idle();
    expect(a.recovery.rebuilds).toBeGreaterThanOrEqual(2);
    expect(a.recovery.last?.kept).toBeGreaterThanOrEqual(1);
    const mine = vectors.filter((v) => v.nodeId === down && v.observed).sort((x, y) => x.windowEnd - y.windowEnd);
    expect(mine.length).toBeGreaterThanOrEqual(9);
    for (const v of mine.slice(1)) expect(v.features['node.up.last'], `window ending ${v.windowEnd}`).toBe(0);
    await a.stop();
    await bus.close();
  });
});
