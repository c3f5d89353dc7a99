import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { PlatformaticBus } from '../../src/bus/kafka-platformatic.js';
import type { Bus } from '../../src/bus/port.js';
import type { StateCheckpoint } from '../../src/messages.js';
import { busCheckpoints } from '../../src/pipeline/checkpoints.js';
import { deleteTestTopics, KAFKA_BROKERS, kafkaService, uniquePrefix } from './kafka-support.js';

beforeAll(async () => {
  await kafkaService('start');
});

afterAll(async () => {
  await deleteTestTopics();
});

const common = { brokers: KAFKA_BROKERS, partitions: 4, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 };

async function topicConfig(topic: string, name: string): Promise<string | undefined> {
  const admin = new Kafka({ clientId: 'test-state', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    // A topic created a moment ago may not be known to every part of the broker yet: ask again a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        const described = await admin.describeConfigs({
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }],
          includeSynonyms: false,
        });
        return described.resources[0]?.configEntries.find((e) => e.configName === name)?.configValue;
      } catch (err) {
        if (attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  } finally {
    await admin.disconnect();
  }
}

const checkpoint = (nodeId: string, windowEnd: number, kind: StateCheckpoint['kind'] = 'features') => ({
  key: `${kind}:${nodeId}`,
  value: { kind, nodeId, windowEnd, ts: Date.now(), state: { windowEnd } },
});

describe.each([
  ['kafkajs', (topicPrefix: string): Bus => new KafkajsBus({ ...common, topicPrefix })],
  ['platformatic', (topicPrefix: string): Bus => new PlatformaticBus({ ...common, topicPrefix })],
])('the state topic over %s', (name, create) => {
  it('is created compacted, and a takeover reads back the newest checkpoint per node of the kind it asks for', async () => {
    const prefix = uniquePrefix(`state-${name}`);
    const bus = create(prefix);
    try {
      await bus.ensureTopics();
      expect(await topicConfig(`${prefix}.state`, 'cleanup.policy')).toBe('compact');
      expect(await topicConfig(`${prefix}.telemetry`, 'cleanup.policy')).toBe('delete');
      await bus.publish('state', [checkpoint('ast1', 10_000), checkpoint('ast2', 10_000), checkpoint('ast1', 20_000)]);
      await bus.publish('state', [checkpoint('ast1', 30_000, 'scorer'), checkpoint('ast3', 10_000)]);
      const found = await busCheckpoints(bus).read('features', Date.now() - 60_000, (nodeId) => nodeId !== 'ast3');
      expect([...found.values()].map((c) => [c.nodeId, c.windowEnd]).sort()).toEqual([
        ['ast1', 20_000],
        ['ast2', 10_000],
      ]);
    } finally {
      await bus.close();
    }
  }, 60_000);
});
