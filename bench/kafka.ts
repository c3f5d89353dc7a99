/**
 * Kafka throughput through the real single-node broker (scripts/services/kafka.sh), for each client:
 *   kafka.<client>.produce.events_per_s  telemetry samples validated, encoded and acknowledged by the broker (acks=all)
 *   kafka.<client>.consume.events_per_s  samples fetched, decoded, validated, handed to a handler and committed
 *   kafka.<client>.e2e.events_per_s      samples published and consumed at the same time, first publish to last handled
 * Each phase is bounded in count and in time; the whole run stays under a minute on 2 cores.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaBusOptions } from '../src/bus/kafka-common.js';
import { KafkajsBus } from '../src/bus/kafka-kafkajs.js';
import { PlatformaticBus } from '../src/bus/kafka-platformatic.js';
import type { Bus, OutgoingRecord } from '../src/bus/port.js';
import { TOPIC_NAMES } from '../src/bus/port.js';
import { METRIC_NAMES, type TelemetrySample } from '../src/messages.js';

interface Figure {
  name: string;
  value: number;
  unit: string;
}

const BROKERS = [`127.0.0.1:${process.env.FORESIGHT_KAFKA_PORT ?? '19092'}`];
const CLIENTS = {
  kafkajs: (o: KafkaBusOptions): Bus => new KafkajsBus(o),
  platformatic: (o: KafkaBusOptions): Bus => new PlatformaticBus(o),
} as const;
type ClientName = keyof typeof CLIENTS;

const MAX_EVENTS = Number(process.env.FORESIGHT_BENCH_KAFKA_EVENTS ?? 300_000);
const PHASE_LIMIT_MS = Number(process.env.FORESIGHT_BENCH_KAFKA_PHASE_MS ?? 6_000);
const PUBLISH_BATCH = 5_000;
/** Publishes in flight at once, as a collector fleet would produce them. */
const PUBLISHERS = 4;
const NODES = 200;

function samples(from: number, count: number): OutgoingRecord<TelemetrySample>[] {
  const out: OutgoingRecord<TelemetrySample>[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = from + i;
    const nodeId = `ast${n % NODES}`;
    out[i] = {
      key: nodeId,
      value: {
        nodeId,
        ts: 1_700_000_000_000 + n,
        metric: METRIC_NAMES[n % METRIC_NAMES.length] ?? 'node.up',
        value: n % 97,
        source: 'sim',
      },
    };
  }
  return out;
}

/** Publishes up to `max` samples within `limitMs`; returns how many were acknowledged. */
async function produce(bus: Bus, max: number, limitMs: number): Promise<number> {
  const deadline = Date.now() + limitMs;
  let next = 0;
  let acked = 0;
  const worker = async () => {
    while (next < max && Date.now() < deadline) {
      const from = next;
      const count = Math.min(PUBLISH_BATCH, max - from);
      next += count;
      await bus.publish('telemetry', samples(from, count));
      acked += count;
    }
  };
  await Promise.all(Array.from({ length: PUBLISHERS }, worker));
  return acked;
}

async function waitUntil(condition: () => boolean, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

async function benchClient(client: ClientName): Promise<Figure[]> {
  const prefix = `bench-${client}-${randomUUID().slice(0, 8)}`;
  const options: KafkaBusOptions = {
    brokers: BROKERS,
    topicPrefix: prefix,
    partitions: 6,
    sessionTimeoutMs: 10_000,
    compression: process.env.FORESIGHT_BENCH_KAFKA_COMPRESSION === 'none' ? 'none' : 'gzip',
  };
  const figures: Figure[] = [];
  const bus = CLIENTS[client](options);
  try {
    await bus.ensureTopics();
    // Warm-up: connections, metadata, JIT.
    await bus.publish('telemetry', samples(0, 2_000));

    let t0 = performance.now();
    const produced = await produce(bus, MAX_EVENTS, PHASE_LIMIT_MS);
    let seconds = (performance.now() - t0) / 1000;
    figures.push({
      name: `kafka.${client}.produce.events_per_s`,
      value: Math.round(produced / seconds),
      unit: 'events/s',
    });

    // Consume everything produced so far (warm-up included) with a fresh group.
    const total = produced + 2_000;
    let consumed = 0;
    let firstAt = 0;
    t0 = performance.now();
    const sub = await bus.subscribe(
      'telemetry',
      async (batch) => {
        if (firstAt === 0) firstAt = performance.now();
        consumed += batch.length;
      },
      { groupId: `${prefix}-consume`, fromBeginning: true },
    );
    await waitUntil(() => consumed >= total, PHASE_LIMIT_MS + 10_000);
    // From the first delivered batch, so the group join (seconds, fixed) does not count as throughput.
    seconds = (performance.now() - (firstAt || t0)) / 1000;
    figures.push({
      name: `kafka.${client}.consume.events_per_s`,
      value: Math.round(consumed / seconds),
      unit: 'events/s',
    });
    await sub.stop();

    // End to end: a joined consumer, then a burst of telemetry published while it consumes.
    let e2e = 0;
    let assigned = false;
    const live = await bus.subscribe(
      'telemetry',
      async (batch) => {
        e2e += batch.length;
      },
      {
        groupId: `${prefix}-e2e`,
        fromBeginning: false,
        onAssigned: () => {
          assigned = true;
        },
      },
    );
    await waitUntil(() => assigned, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    t0 = performance.now();
    const sent = await produce(bus, MAX_EVENTS, PHASE_LIMIT_MS);
    await waitUntil(() => e2e >= sent, PHASE_LIMIT_MS + 10_000);
    seconds = (performance.now() - t0) / 1000;
    figures.push({
      name: `kafka.${client}.e2e.events_per_s`,
      value: Math.round(Math.min(e2e, sent) / seconds),
      unit: 'events/s',
    });
    await live.stop();
  } finally {
    await bus.close();
    await deleteTopics(prefix);
  }
  return figures;
}

async function deleteTopics(prefix: string): Promise<void> {
  const admin = new Kafka({ clientId: 'bench-cleanup', brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: TOPIC_NAMES.map((t) => `${prefix}.${t}`) });
  } catch {
    // Leftover bench topics only cost disk on a throwaway broker.
  } finally {
    await admin.disconnect();
  }
}

export async function run(): Promise<Figure[]> {
  const script = fileURLToPath(new URL('../scripts/services/kafka.sh', import.meta.url));
  await promisify(execFile)('bash', [script, 'start'], { timeout: 170_000 });
  const figures: Figure[] = [];
  for (const client of Object.keys(CLIENTS) as ClientName[]) figures.push(...(await benchClient(client)));
  return figures;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const f of await run()) console.log(`${f.name} ${f.value} ${f.unit}`);
  process.exit(0);
}
