import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { PlatformaticBus } from '../../src/bus/kafka-platformatic.js';
import type { Bus } from '../../src/bus/port.js';
import { PeerBoard } from '../../src/features/peer-board.js';
import type { FeatureVector, TelemetrySample } from '../../src/messages.js';
import type { FeatureStage } from '../../src/pipeline/stages.js';
import { waitFor } from '../helpers/bus-conformance.js';
import { featureReplica } from '../helpers/feature-replica.js';
import { deleteTestTopics, KAFKA_BROKERS, kafkaService, uniquePrefix } from './kafka-support.js';

beforeAll(async () => {
  await kafkaService('start');
});

afterAll(async () => {
  await deleteTestTopics();
});

const PARTITIONS = 4;
const WINDOW = 1000;
const LATENESS = 200;
const WINDOWS = 8;
/** The window open when replica B leaves. */
const MOVE_AT = 4;
const NODES = Array.from({ length: 10 }, (_, i) => `ast${i}`);

function countFor(node: number, window: number): number {
  return 3 + ((node * 5 + window * 3) % 7);
}

/** Each node's samples of one window (or half of them), in time order, at distinct timestamps (nothing packed). */
function windowSamples(t0: number, window: number, part: 'first' | 'second' | 'all'): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  NODES.forEach((nodeId, n) => {
    const count = countFor(n, window);
    const half = Math.floor(count / 2);
    for (let i = 0; i < count; i++) {
      if ((part === 'first' && i >= half) || (part === 'second' && i < half)) continue;
      const ts = t0 + window * WINDOW + Math.floor(((i + 0.5) * WINDOW) / count);
      out.push({ nodeId, ts, metric: 'calls.started', value: 1, source: 'sim' });
    }
  });
  return out.sort((a, b) => a.ts - b.ts);
}

type Client = 'kafkajs' | 'platformatic';

function createBus(client: Client, prefix: string): Bus {
  const options = {
    brokers: KAFKA_BROKERS,
    topicPrefix: prefix,
    partitions: PARTITIONS,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    clientId: `rebalance-${client}`,
  };
  return client === 'platformatic' ? new PlatformaticBus(options) : new KafkajsBus(options);
}

/** A replica as the sidecar builds it with Kafka: rebuilds on gaining partitions, shares peers through the bus. */
function replica(bus: Bus, groupId: string, replicaId: string): FeatureStage {
  const board = new PeerBoard({ windowMs: WINDOW });
  return featureReplica(bus, {
    groupId,
    partitions: PARTITIONS,
    windowMs: WINDOW,
    allowedLatenessMs: LATENESS,
    recover: true,
    peers: { board, replicaId },
  });
}

describe.each<Client>(['kafkajs', 'platformatic'])('FeatureStage rebalance on the real broker (%s)', (client) => {
  it('emits every node and window exactly once, with every sample counted, when a replica leaves mid-window', async () => {
    const prefix = uniquePrefix(`rebal-${client.slice(0, 3)}`);
    const groupId = `rebal-${client}-${Date.now().toString(36)}`;
    const busA = createBus(client, prefix);
    const busB = createBus(client, prefix);
    const checker = createBus(client, prefix);
    const a = replica(busA, groupId, 'a');
    const b = replica(busB, groupId, 'b');
    try {
      await busA.ensureTopics();
      await busB.ensureTopics();
      await checker.ensureTopics();
      const vectors: FeatureVector[] = [];
      await checker.subscribe(
        'features',
        async (batch) => {
          for (const r of batch) vectors.push(r.value);
        },
        { groupId: `${groupId}.check`, fromBeginning: true },
      );
      await a.start();
      await b.start();
      await waitFor('B to own partitions', () => b.recovery.rebuilds >= 1, 60_000);
      // A gave half of its partitions to B; its own rebalance hook ran too (no gain, no rebuild).
      await new Promise((resolve) => setTimeout(resolve, 1_000));

      const t0 = Math.floor(Date.now() / WINDOW) * WINDOW - 60 * WINDOW;
      const drained = () =>
        waitFor(
          'the feature group to catch up',
          async () => (await checker.lag('telemetry', `${groupId}.features`)) === 0,
          60_000,
        );
      /**
       * Window by window, as collectors send in real time: one extractor's watermark spans all its partitions, so a
       * burst of several windows fetched partition after partition would make the later partitions' samples late.
       */
      const publish = async (samples: TelemetrySample[]) => {
        await checker.publish(
          'telemetry',
          samples.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
        );
        await drained();
      };

      for (let w = 0; w < MOVE_AT; w++) await publish(windowSamples(t0, w, 'all'));
      await publish(windowSamples(t0, MOVE_AT, 'first'));
      expect(a.counters.in).toBeGreaterThan(0);
      expect(b.counters.in).toBeGreaterThan(0);
      const rebuildsBefore = a.recovery.rebuilds;

      // B leaves in the middle of window MOVE_AT, holding half of it for its nodes.
      await b.stop();
      await waitFor('A to take over and rebuild', () => a.recovery.rebuilds > rebuildsBefore, 60_000);
      expect(a.recovery.last?.samples).toBeGreaterThan(0);

      await publish(windowSamples(t0, MOVE_AT, 'second'));
      for (let w = MOVE_AT + 1; w < WINDOWS; w++) await publish(windowSamples(t0, w, 'all'));
      await a.tick(t0 + WINDOWS * WINDOW + LATENESS);
      const inRange = () => vectors.filter((v) => v.windowStart >= t0 && v.windowStart < t0 + WINDOWS * WINDOW).length;
      await waitFor('every window of every node', () => inRange() >= NODES.length * WINDOWS, 60_000);
      // Room for a duplicate to show up, if there were one.
      await new Promise((resolve) => setTimeout(resolve, 1_500));

      const seen = new Map<string, FeatureVector[]>();
      for (const v of vectors) {
        const key = `${v.nodeId}@${v.windowStart}`;
        seen.set(key, [...(seen.get(key) ?? []), v]);
      }
      for (const [key, list] of seen) expect(list.length, `${key} emitted ${list.length} times`).toBe(1);
      NODES.forEach((nodeId, n) => {
        for (let w = 0; w < WINDOWS; w++) {
          const list = seen.get(`${nodeId}@${t0 + w * WINDOW}`) ?? [];
          expect(list.length, `${nodeId} window ${w}`).toBe(1);
          expect(list[0]?.sampleCount, `${nodeId} window ${w}`).toBe(countFor(n, w));
          // Peers cover the whole set whichever replica holds the node: from the other replica's vectors while both
          // run (from window 2: window 0 closes before either has seen the other's), from its own after the takeover.
          if (w >= 2) expect(list[0]?.features['peers.observed'], `${nodeId} window ${w}`).toBe(NODES.length - 1);
        }
      });
      expect(b.counters.out).toBeGreaterThan(0);
      expect(a.counters.deadLettered + b.counters.deadLettered).toBe(0);
    } finally {
      await a.stop().catch(() => undefined);
      await b.stop().catch(() => undefined);
      await Promise.allSettled([busA.close(), busB.close(), checker.close()]);
    }
  }, 180_000);
});
