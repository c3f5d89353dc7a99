import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import type { TelemetrySample } from '../../src/messages.js';
import { assemble, type Loop } from '../../src/pipeline/assemble.js';
import { sidecarParts } from '../../src/pipeline/sidecar.js';
import { collectFeatures } from '../helpers/feature-replica.js';

const WINDOW = 1000;
const PARTITIONS = 4;
/** One set over all four partitions (ast3 on 0, ast0 and ast4 on 1, ast1 on 2, ast2 and ast6 on 3). */
const NODES = ['ast0', 'ast1', 'ast2', 'ast3', 'ast4', 'ast6'];
const T0 = Math.floor(Date.now() / WINDOW) * WINDOW - 30 * WINDOW;

function config(kind: 'memory' | 'kafka') {
  return parseConfig({
    mode: 'sidecar',
    nodes: NODES.map((id, i) => ({ id, setId: 1, uri: `sip:10.0.0.${11 + i}:5060` })),
    bus: { kind, partitions: PARTITIONS },
    features: { windowMs: WINDOW, allowedLatenessMs: 200 },
    actions: {
      dryRun: true,
      dispatcher: { kind: 'simulated' },
      restarter: { kind: 'command', command: '/bin/true' },
    },
    store: { path: ':memory:' },
  });
}

/**
 * A replica as `foresight run` assembles it with Kafka, on a shared in-process bus instead (the bus is a part; the
 * config's kind is what the assembly goes by), without collectors: the test publishes the telemetry.
 */
async function replica(bus: MemoryBus): Promise<Loop> {
  const parts = await sidecarParts(config('memory'), silentLogger());
  await parts.bus.close();
  return assemble({ ...parts, config: config('kafka'), bus, sources: undefined });
}

describe('assemble wires the peer board with Kafka', () => {
  it('two replicas in one process each compare their nodes with the whole set', async () => {
    const bus = new MemoryBus({ partitions: PARTITIONS, retainCommitted: 100_000 });
    const vectors = await collectFeatures(bus);
    const a = await replica(bus);
    const b = await replica(bus);
    await a.start();
    await b.start();
    try {
      for (let w = 0; w < 6; w++) {
        const samples: TelemetrySample[] = NODES.map((nodeId) => ({
          nodeId,
          ts: T0 + w * WINDOW + 500,
          metric: 'calls.started',
          value: 1,
          source: 'sim',
        }));
        await bus.publish(
          'telemetry',
          samples.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
        );
        await bus.idle();
      }
      expect(a.stages.feature.counters.out).toBeGreaterThan(0);
      expect(b.stages.feature.counters.out).toBeGreaterThan(0);
      const observed = vectors.filter((v) => v.observed && v.windowStart >= T0 + WINDOW);
      // Windows 1 to 4 closed (window 5 waits for a later sample), each node once.
      expect(observed.length).toBe(NODES.length * 4);
      for (const v of observed) expect(v.features['peers.observed'], `${v.nodeId}@${v.windowStart}`).toBe(5);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
