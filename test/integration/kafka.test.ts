import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaBusOptions } from '../../src/bus/kafka-common.js';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { PlatformaticBus } from '../../src/bus/kafka-platformatic.js';
import type { Bus, Subscription } from '../../src/bus/port.js';
import { partitionForKey } from '../../src/bus/port.js';
import type { DeadLetter, NodeScore, TelemetrySample } from '../../src/messages.js';
import { sample, waitFor } from '../helpers/bus-conformance.js';
import {
  type Child,
  deleteTestTopics,
  KAFKA_BROKERS,
  kafkaService,
  spawnTsChild,
  uniquePrefix,
} from './kafka-support.js';

beforeAll(async () => {
  await kafkaService('start');
});

afterAll(async () => {
  await deleteTestTopics();
});

const CLIENTS = {
  kafkajs: (o: KafkaBusOptions): Bus => new KafkajsBus(o),
  platformatic: (o: KafkaBusOptions): Bus => new PlatformaticBus(o),
} as const;

const SESSION_TIMEOUT_MS = 6_000;

describe.each(Object.keys(CLIENTS) as (keyof typeof CLIENTS)[])('kafka bus over a real broker (%s)', (client) => {
  const buses: Bus[] = [];
  const subscriptions: Subscription[] = [];
  const children: Child[] = [];

  function open(prefix: string, extra: Partial<KafkaBusOptions> = {}): Bus {
    const bus = CLIENTS[client]({
      brokers: KAFKA_BROKERS,
      topicPrefix: prefix,
      partitions: 4,
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
      heartbeatIntervalMs: 500,
      ...extra,
    });
    buses.push(bus);
    return bus;
  }

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill();
    for (const s of subscriptions.splice(0)) await s.stop();
    for (const b of buses.splice(0)) await b.close();
  });

  it('carries telemetry through a stage to scores', async () => {
    const prefix = uniquePrefix(`rt-${client}`);
    const bus = open(prefix);
    await bus.ensureTopics();
    const nodes = ['ast1', 'ast2', 'ast3'];
    const sent: TelemetrySample[] = nodes.flatMap((nodeId) =>
      [1, 2, 3, 4].map((i) => ({
        nodeId,
        ts: 1_000 * i,
        metric: 'host.memory_rss_mb' as const,
        value: 100 * i,
        source: 'host' as const,
      })),
    );
    // A stand-in for the feature and scoring stages: one score per node once its four samples arrived.
    const byNode = new Map<string, TelemetrySample[]>();
    subscriptions.push(
      await bus.subscribe(
        'telemetry',
        async (batch) => {
          const scores: { key: string; value: NodeScore }[] = [];
          for (const r of batch) {
            const list = byNode.get(r.key) ?? [];
            list.push(r.value);
            byNode.set(r.key, list);
            if (list.length === 4) {
              scores.push({
                key: r.key,
                value: {
                  nodeId: r.key,
                  setId: 1,
                  ts: r.value.ts,
                  risk: Math.min(1, list.reduce((s, x) => s + x.value, 0) / 10_000),
                  timeToFailureS: null,
                  explanation: [{ feature: 'memory', weight: 1, value: r.value.value }],
                  scorer: 'test-v1',
                  observed: true,
                  activeCalls: 0,
                  activeCallsSource: 'ami',
                  evidence: { calls: { count: 0, source: 'ami' }, upReported: true, probe: null },
                  up: true,
                },
              });
            }
          }
          await bus.publish('scores', scores);
        },
        { groupId: `${prefix}-features`, fromBeginning: true },
      ),
    );
    const scores: NodeScore[] = [];
    subscriptions.push(
      await bus.subscribe(
        'scores',
        async (batch) => {
          for (const r of batch) scores.push(r.value);
        },
        { groupId: `${prefix}-actions`, fromBeginning: true },
      ),
    );
    await bus.publish(
      'telemetry',
      sent.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
    );
    await waitFor('three scores', () => scores.length >= 3, 30_000);
    expect(scores.map((s) => s.nodeId).sort()).toEqual(nodes);
    for (const s of scores) expect(s.risk).toBeCloseTo(0.1);
    for (const nodeId of nodes) expect(byNode.get(nodeId)).toEqual(sent.filter((s) => s.nodeId === nodeId));
  });

  it('loses no telemetry when the broker stops and restarts mid-stream', async () => {
    const prefix = uniquePrefix(`restart-${client}`);
    const bus = open(prefix);
    await bus.ensureTopics();
    const seen = new Set<string>();
    let deliveries = 0;
    subscriptions.push(
      await bus.subscribe(
        'telemetry',
        async (batch) => {
          for (const r of batch) {
            seen.add(`${r.key}:${r.value.ts}`);
            deliveries++;
          }
        },
        { groupId: `${prefix}-g`, fromBeginning: true },
      ),
    );
    const letters: DeadLetter[] = [];
    subscriptions.push(
      await bus.subscribe('deadletter', async (b) => void letters.push(...b.map((r) => r.value)), {
        groupId: `${prefix}-dlq`,
        fromBeginning: true,
      }),
    );
    const rounds = 30;
    const perRound = 200;
    let restarted: Promise<void> | null = null;
    for (let round = 0; round < rounds; round++) {
      if (round === 10) restarted = kafkaService('restart');
      const records = Array.from({ length: perRound }, (_, i) => {
        const key = `node-${i % 16}`;
        return { key, value: sample(key, round * perRound + i) };
      });
      // The producer's own retries may run out during the outage; the caller retries (duplicates are harmless).
      for (let attempt = 0; ; attempt++) {
        try {
          await bus.publish('telemetry', records);
          break;
        } catch (err) {
          if (attempt > 60) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await restarted;
    const sent = rounds * perRound;
    await waitFor('every sample accounted for', () => seen.size === sent, 90_000);
    expect(seen.size).toBe(sent);
    expect(deliveries).toBeGreaterThanOrEqual(sent);
    expect(letters).toEqual([]);
    await waitFor('the commits', async () => (await bus.lag('telemetry', `${prefix}-g`)) === 0, 30_000);
  });

  it('splits partitions between two members and moves a killed member’s partitions within a session timeout', async () => {
    const prefix = uniquePrefix(`split-${client}`);
    const group = `${prefix}-g`;
    const bus = open(prefix);
    await bus.ensureTopics();
    const child = spawnTsChild('./kafka-consumer-child.ts', [
      client,
      KAFKA_BROKERS.join(','),
      prefix,
      group,
      String(SESSION_TIMEOUT_MS),
    ]);
    children.push(child);
    await waitFor('the child to join', () => child.lines.some((l) => l.event === 'ready'), 30_000);
    let mine: number[] = [];
    let assignedAllAt = 0;
    const received = new Set<string>();
    subscriptions.push(
      await bus.subscribe(
        'telemetry',
        async (batch) => {
          for (const r of batch) received.add(`${r.key}:${r.value.ts}`);
        },
        {
          groupId: group,
          fromBeginning: true,
          onAssigned: (partitions) => {
            mine = [...partitions];
            if (mine.length === 4 && assignedAllAt === 0) assignedAllAt = Date.now();
          },
        },
      ),
    );
    const childPartitions = (): number[] =>
      (child.lines.filter((l) => l.event === 'assigned').at(-1)?.partitions as number[] | undefined) ?? [];
    await waitFor(
      'a split assignment',
      () => mine.length > 0 && childPartitions().length > 0 && mine.length + childPartitions().length === 4,
      30_000,
    );
    expect(new Set([...mine, ...childPartitions()]).size).toBe(4);
    assignedAllAt = 0;

    const keys = Array.from({ length: 24 }, (_, i) => `node-${i}`);
    await bus.publish(
      'telemetry',
      keys.map((key) => ({ key, value: sample(key, 1) })),
    );
    const childGot = (): Set<string> =>
      new Set(child.lines.filter((l) => l.event === 'got').flatMap((l) => l.keys as string[]));
    await waitFor('both members to consume', () => received.size + childGot().size >= keys.length, 30_000);
    // Each member got exactly the keys of its partitions.
    for (const key of keys) {
      const owner = partitionForKey(key, 4);
      expect(received.has(`${key}:1`)).toBe(mine.includes(owner));
      expect(childGot().has(`${key}:1`)).toBe(childPartitions().includes(owner));
    }

    const killedAt = Date.now();
    child.kill();
    await child.exited;
    await bus.publish(
      'telemetry',
      keys.map((key) => ({ key, value: sample(key, 2) })),
    );
    await waitFor('the survivor to take every partition', () => assignedAllAt > 0, 30_000);
    await waitFor('every key of round two', () => keys.every((k) => received.has(`${k}:2`)), 30_000);
    // One session timeout for the coordinator to notice, plus the rejoin.
    expect(assignedAllAt - killedAt).toBeLessThan(SESSION_TIMEOUT_MS + 4_000);
  });

  it('dead-letters poison messages with code, reason and source offset, and keeps consuming', async () => {
    const prefix = uniquePrefix(`poison-${client}`);
    const bus = open(prefix, { maxMessageBytes: 4096 });
    await bus.ensureTopics();
    const topic = `${prefix}.telemetry`;
    const partition = partitionForKey('ast9', 4);
    const good = (ts: number) => Buffer.from(JSON.stringify(sample('ast9', ts)));
    const poison: [string, Buffer][] = [
      ['not JSON', Buffer.from('{"nodeId": "ast9", ')],
      ['unknown metric', Buffer.from(JSON.stringify({ ...sample('ast9', 2), metric: 'cpu.bogus' }))],
      ['value must be a finite number', Buffer.from(JSON.stringify({ ...sample('ast9', 3), value: null }))],
      ['exceeds 4096', Buffer.from(JSON.stringify({ ...sample('ast9', 4), pad: 'x'.repeat(8000) }))],
    ];
    // A pack of three samples with a bad one in the middle: only that one is dead-lettered.
    const pack = Buffer.from(
      JSON.stringify([sample('ast9', 6), { ...sample('ast9', 0), source: 'snmp' }, sample('ast9', 7)]),
    );
    // Raw bytes, straight to the topic: the bus's own producer would refuse to encode these.
    const raw = new Kafka({ clientId: 'poison-writer', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).producer();
    await raw.connect();
    await raw.send({
      topic,
      messages: [good(1), ...poison.map(([, b]) => b), good(5), pack].map((value) => ({
        key: 'ast9',
        value,
        partition,
      })),
    });
    await raw.disconnect();

    const handled: number[] = [];
    const letters: DeadLetter[] = [];
    subscriptions.push(
      await bus.subscribe('deadletter', async (b) => void letters.push(...b.map((r) => r.value)), {
        groupId: `${prefix}-dlq`,
        fromBeginning: true,
      }),
    );
    subscriptions.push(
      await bus.subscribe('telemetry', async (b) => void handled.push(...b.map((r) => r.value.ts)), {
        groupId: `${prefix}-g`,
        fromBeginning: true,
      }),
    );
    await waitFor('the dead letters', () => letters.length >= poison.length + 1 && handled.length >= 4, 30_000);
    expect(handled).toEqual([1, 5, 6, 7]);
    expect(letters.map((l) => l.offset)).toEqual(['1', '2', '3', '4', '6']);
    expect(letters[4]?.reason).toContain('pack element 1: unknown source');
    expect(JSON.parse(letters[4]?.payload ?? 'null')).toMatchObject({ source: 'snmp' });
    for (const [i, [reason]] of poison.entries()) {
      const letter = letters[i];
      expect(letter?.code).toBe('FORESIGHT_ERR_BAD_MESSAGE');
      expect(letter?.reason).toContain(reason);
      expect(letter?.topic).toBe('telemetry');
      expect(letter?.partition).toBe(partition);
      expect(letter?.payload.length).toBeLessThanOrEqual(4096);
    }
    expect(letters[0]?.payload).toBe('{"nodeId": "ast9", ');
    await waitFor('the commits', async () => (await bus.lag('telemetry', `${prefix}-g`)) === 0, 30_000);
  });
});
