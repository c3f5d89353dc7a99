import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { partitionForKey } from '../../src/bus/port.js';
import { FeatureExtractor } from '../../src/features/extractor.js';
import { silentLogger } from '../../src/log.js';
import type { FeatureVector, NodeScore, TelemetrySample } from '../../src/messages.js';
import { StatScorer } from '../../src/models/scorers/stat-scorer.js';
import { busCheckpoints, storeCheckpoints } from '../../src/pipeline/checkpoints.js';
import { type CheckpointSettings, FeatureStage, ScoreStage } from '../../src/pipeline/stages.js';

/**
 * A replica that takes nodes over mid-leak, on the in-process bus (two replicas in one group): with checkpoints, its
 * feature vectors and scores from the takeover on are those a replica that never failed would have produced.
 */
const PARTITIONS = 4;
const W = 1000;
const LATENESS = 200;
const WINDOWS = 150;
const LEAK_FROM = 50;
const FAIL_AT = 97;
const T0 = Math.floor(Date.now() / W) * W - 400 * W;
const NODES = ['ast1', 'ast2', 'ast3', 'ast4', 'ast5', 'ast6'];
const LEAKY = 'ast2';
const every = (bus: MemoryBus): CheckpointSettings => ({
  log: busCheckpoints(bus),
  everyMs: 10 * W,
  maxAgeMs: 3_600_000,
});

function jitter(n: number, w: number, k: number): number {
  return Math.sin(n * 12.9898 + w * 78.233 + k * 37.719) * 0.5;
}

function windowSamples(w: number): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  NODES.forEach((nodeId, n) => {
    const leak = nodeId === LEAKY && w >= LEAK_FROM ? w - LEAK_FROM : 0;
    for (let k = 0; k < 4; k++) {
      const ts = T0 + w * W + k * 250 + 5;
      out.push({ nodeId, ts, metric: 'taskprocessor.max_queue', value: 4 + 3 * jitter(n, w, k) + leak, source: 'sim' });
      out.push({
        nodeId,
        ts,
        metric: 'host.memory_rss_mb',
        value: 700 + 8 * jitter(n, w, k) + 4 * leak,
        source: 'sim',
      });
      out.push({ nodeId, ts, metric: 'calls.started', value: 1, source: 'sim' });
    }
  });
  return out;
}

interface Replica {
  features: FeatureStage;
  scores: ScoreStage;
}

function replica(bus: MemoryBus, withCheckpoints: boolean): Replica {
  const checkpoints = withCheckpoints ? every(bus) : undefined;
  let stage: FeatureStage | null = null;
  const make = () =>
    new FeatureExtractor({
      // A set per node: no peers, so what is compared is each node's own history (peers across replicas: peer-board).
      nodes: NODES.map((nodeId, i) => ({ nodeId, setId: i + 1 })),
      windowMs: W,
      allowedLatenessMs: LATENESS,
      baselineWindows: 40,
      minBaselineWindows: 10,
      onRejected: (sample, reason) => stage?.reject(sample, reason),
    });
  stage = new FeatureStage({
    bus,
    groupId: 'fo',
    logger: silentLogger(),
    extractor: make(),
    partitions: PARTITIONS,
    createExtractor: make,
    recoveryLookbackMs: 3_600_000,
    ...(checkpoints ? { checkpoints } : {}),
  });
  const scores = new ScoreStage({
    bus,
    groupId: 'fo',
    logger: silentLogger(),
    scorer: new StatScorer({ windowMs: W }),
    partitions: PARTITIONS,
    ...(checkpoints ? { checkpoints } : {}),
  });
  return { features: stage, scores };
}

async function start(r: Replica): Promise<void> {
  await r.features.start();
  await r.scores.start();
}

async function stop(r: Replica): Promise<void> {
  await r.features.stop();
  await r.scores.stop();
}

/** A consumer that gathers what a topic carries. */
const collect =
  <T>(into: T[]) =>
  async (batch: { value: T }[]) => {
    for (const r of batch) into.push(r.value);
  };

async function run(failover: boolean, checkpoints: boolean) {
  const bus = new MemoryBus({ partitions: PARTITIONS, retainCommitted: 1_000_000, retainUnconsumed: 1_000_000 });
  const vectors: FeatureVector[] = [];
  const scores: NodeScore[] = [];
  await bus.subscribe('features', collect(vectors), { groupId: 'check-f', fromBeginning: true });
  await bus.subscribe('scores', collect(scores), { groupId: 'check-s', fromBeginning: true });
  const a = replica(bus, checkpoints);
  const b = replica(bus, checkpoints);
  await start(a);
  if (failover) await start(b);
  await bus.idle();
  // The replica holding the leaky node goes away mid-leak; the other takes its partitions over.
  const holder = !failover || owns(a, LEAKY) ? a : b;
  const survivor = !failover ? a : holder === a ? b : a;
  for (let w = 0; w < WINDOWS; w++) {
    if (failover && w === FAIL_AT) {
      await stop(holder);
      await bus.idle();
    }
    await bus.publish(
      'telemetry',
      windowSamples(w).map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
    );
    await bus.idle();
  }
  await survivor.features.tick(T0 + WINDOWS * W + LATENESS);
  await bus.idle();
  await stop(survivor);
  await bus.close();
  return { vectors, scores, holder, survivor };
}

/** Whether the replica's feature stage holds the node's telemetry partition. */
function owns(r: Replica, nodeId: string): boolean {
  const owned = (r.features as unknown as { owned: Set<number> | null }).owned;
  return owned?.has(partitionForKey(nodeId, PARTITIONS)) ?? false;
}

const at = <T extends { nodeId: string }>(list: T[], nodeId: string, end: (x: T) => number) =>
  new Map(list.filter((x) => x.nodeId === nodeId).map((x) => [end(x), x]));

describe('state across replicas: a takeover mid-leak', () => {
  it('with checkpoints, the replica that takes over emits the vectors and risks of a replica that never failed', async () => {
    const reference = await run(false, true);
    const failed = await run(true, true);
    expect(failed.holder).not.toBe(failed.survivor);
    expect(failed.survivor.features.checkpoints.restored).toBeGreaterThan(0);
    expect(failed.survivor.scores.checkpoints.restored).toBeGreaterThan(0);
    for (const nodeId of NODES) {
      const want = at(reference.vectors, nodeId, (v) => v.windowEnd);
      const got = at(failed.vectors, nodeId, (v) => v.windowEnd);
      // Every window once, with the features the reference computed (z against the pre-leak baseline included).
      expect(failed.vectors.filter((v) => v.nodeId === nodeId)).toHaveLength(want.size);
      for (const [end, v] of want) expect(got.get(end)?.features, `${nodeId} window ending ${end}`).toEqual(v.features);
      const wantRisk = at(reference.scores, nodeId, (s) => s.ts);
      const gotRisk = at(failed.scores, nodeId, (s) => s.ts);
      for (const [end, s] of wantRisk) expect(gotRisk.get(end)?.risk, `${nodeId} risk at ${end}`).toBe(s.risk);
    }
    // The leak is in view at the end: high risk, as in the reference.
    const last = [...at(failed.scores, LEAKY, (s) => s.ts).values()].at(-1)!;
    expect(last.risk).toBeGreaterThan(0.5);
  });

  it('without checkpoints, the same takeover loses the leak: the moved node is scored against a cold baseline', async () => {
    const reference = await run(false, false);
    const failed = await run(true, false);
    const after = (scores: NodeScore[]) =>
      scores.filter((s) => s.nodeId === LEAKY && s.ts > T0 + (FAIL_AT + 1) * W && s.ts <= T0 + (FAIL_AT + 15) * W);
    const risky = (scores: NodeScore[]) => after(scores).filter((s) => s.risk >= 0.5).length;
    expect(risky(reference.scores)).toBeGreaterThan(0);
    expect(risky(failed.scores)).toBeLessThan(risky(reference.scores));
  });
});

describe('state across a restart on the in-process bus (checkpoints in the store)', () => {
  async function life(store: SqliteStore, from: number, to: number): Promise<FeatureVector[]> {
    const bus = new MemoryBus({ partitions: PARTITIONS });
    const vectors: FeatureVector[] = [];
    await bus.subscribe('features', collect(vectors), { groupId: 'check', fromBeginning: true });
    const stage = new FeatureStage({
      bus,
      groupId: 'solo',
      logger: silentLogger(),
      extractor: new FeatureExtractor({
        nodes: NODES.map((nodeId, i) => ({ nodeId, setId: i + 1 })),
        windowMs: W,
        allowedLatenessMs: LATENESS,
        baselineWindows: 40,
        minBaselineWindows: 10,
      }),
      checkpoints: { log: storeCheckpoints(store), everyMs: 10 * W, maxAgeMs: 3_600_000 },
    });
    await stage.start();
    for (let w = from; w < to; w++) {
      await bus.publish(
        'telemetry',
        windowSamples(w).map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
      );
      await bus.idle();
    }
    await stage.stop();
    await bus.close();
    return vectors;
  }

  it('a restarted Foresight takes each node’s history back from the store and keeps the leak in view', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'foresight-cp-'));
    try {
      const path = join(dir, 'store.db');
      const first = new SqliteStore({ path });
      await first.init();
      await life(first, 0, FAIL_AT);
      expect((await first.listCheckpoints('features')).length).toBe(NODES.length);
      await first.close();

      const zAfter = async (store: SqliteStore) => {
        await store.init();
        const vectors = await life(store, FAIL_AT, WINDOWS);
        await store.close();
        return vectors.filter((v) => v.nodeId === LEAKY && v.observed).at(-1)!.features['z.self.max_queue']!;
      };
      const warm = await zAfter(new SqliteStore({ path }));
      const cold = await zAfter(new SqliteStore({ path: join(dir, 'empty.db') }));
      console.log(`restart: z.self.max_queue warm ${warm.toFixed(1)} cold ${cold.toFixed(1)}`);
      // Restored: z against the pre-leak baseline. Cold: the leak's own level is the baseline.
      expect(warm).toBeGreaterThan(5);
      expect(warm).toBeGreaterThan(cold + 3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
