/**
 * A real Kafka broker stopped for ~12 s and started again, with telemetry of 8 nodes on 4 partitions produced all
 * along through two collectors' outboxes (spooled to disk while the broker is down; the second's spool far too small)
 * that share the partitions and drain at their own pace after the outage. Two feature stages consume it: one with a
 * watermark per partition that knows what this process's outboxes still hold (as `foresight run` does), one with a
 * single watermark (as before). Stopping the shared broker disturbs other Kafka users: run this file under the
 * real-stack lock (`flock /tmp/foresight-realstack.lock npx vitest run --project integration
 * test/integration/kafka-outage.test.ts`).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBus } from '../../src/bus/kafka-factory.js';
import type { Bus } from '../../src/bus/port.js';
import { parseConfig } from '../../src/config/load.js';
import { FeatureExtractor } from '../../src/features/extractor.js';
import { silentLogger } from '../../src/log.js';
import type { TelemetrySample } from '../../src/messages.js';
import { TelemetryOutbox } from '../../src/pipeline/outbox.js';
import { FeatureStage } from '../../src/pipeline/stages.js';
import { sleep, waitFor } from '../chaos/env.js';
import { deleteTestTopics, KAFKA_BROKERS, kafkaService, uniquePrefix } from './kafka-support.js';

const WINDOW = 1000;
const LATENESS = 500;

const config = parseConfig({
  bus: {
    kind: 'kafka',
    partitions: 4,
    kafka: {
      client: (process.env.FORESIGHT_CHAOS_KAFKA_CLIENT as 'kafkajs' | 'platformatic' | undefined) ?? 'platformatic',
      brokers: KAFKA_BROKERS,
      topicPrefix: uniquePrefix('outage'),
      groupId: `outage-${Date.now()}`,
    },
  },
});

let bus: Bus;
const stages: { name: string; stage: FeatureStage; extractor: FeatureExtractor }[] = [];
let timer: NodeJS.Timeout | null = null;
/** Late samples the per-partition stage saw, printed when the test fails. */
const lateSeen: TelemetrySample[] = [];
const outboxes: TelemetryOutbox[] = [];
/** Event time of the oldest sample the outboxes hold back, as assemble.ts wires the outbox into the stage. */
function oldestUnsent(): number | null {
  const times = outboxes.map((o) => o.backlogOldestTs()).filter((t): t is number => t !== null);
  return times.length === 0 ? null : Math.min(...times);
}

beforeAll(async () => {
  await kafkaService('start');
  bus = await createKafkaBus(config, silentLogger());
  await bus.ensureTopics();
  for (const perPartition of [true, false]) {
    let stage: FeatureStage | null = null;
    const extractor = new FeatureExtractor({
      windowMs: WINDOW,
      allowedLatenessMs: LATENESS,
      // The shipped default (features.idlePartitionMs).
      idleSourceMs: config.features.idlePartitionMs,
      onRejected: (sample, reason) => {
        if (reason === 'late' && perPartition) lateSeen.push(sample as TelemetrySample);
        stage?.reject(sample, reason);
      },
    });
    stage = new FeatureStage({
      bus,
      groupId: `${config.bus.kafka.groupId}-${perPartition ? 'partition' : 'single'}`,
      logger: silentLogger(),
      extractor,
      partitions: 4,
      arrivalClock: perPartition ? () => Date.now() : undefined,
      upstreamBacklogTs: perPartition ? oldestUnsent : undefined,
    });
    await stage.start();
    stages.push({ name: perPartition ? 'per-partition' : 'single', stage, extractor });
  }
  // As `foresight run` does: windows also close on wall time, every second.
  timer = setInterval(() => {
    for (const s of stages) void s.stage.tick(Date.now()).catch(() => undefined);
  }, 1000);
}, 120_000);

afterAll(async () => {
  if (timer) clearInterval(timer);
  await kafkaService('start');
  for (const s of stages) await s.stage.stop().catch(() => undefined);
  await bus?.close();
  await deleteTestTopics().catch(() => undefined);
}, 120_000);

describe('Kafka broker outage', () => {
  it('spooled telemetry arrives after the outage in order per node, and no window closes before its samples', async () => {
    const nodes = Array.from({ length: 8 }, (_, i) => `outage-n${i}`);
    const small = ['outage-s0', 'outage-s1'];
    const roomy = new TelemetryOutbox(bus, silentLogger(), {
      spoolDir: mkdtempSync(path.join(tmpdir(), 'outage-spool-')),
      maxOutageMs: 600_000,
    });
    // A spool far too small for the outage: what it cannot keep must be counted.
    const tight = new TelemetryOutbox(bus, silentLogger(), {
      spoolDir: mkdtempSync(path.join(tmpdir(), 'outage-tight-')),
      spoolLimits: { maxBytes: 1_000_000, maxRecords: 100 },
    });
    outboxes.push(roomy, tight);
    const offered = { roomy: 0, tight: 0 };
    let producing = true;
    let seq = 0;
    const producer = (async () => {
      while (producing) {
        const now = Date.now();
        seq++;
        const batch = nodes.map(
          (nodeId) => ({ ts: now, nodeId, metric: 'channels.active', value: seq, source: 'ami' }) as TelemetrySample,
        );
        roomy.offer(batch);
        offered.roomy += batch.length;
        tight.offer(small.map((nodeId) => ({ ...batch[0]!, nodeId })));
        offered.tight += small.length;
        await sleep(100);
      }
    })();
    const received: TelemetrySample[] = [];
    const reader = await bus.subscribe(
      'telemetry',
      async (batch) => {
        for (const r of batch) received.push(r.value);
      },
      { groupId: `${config.bus.kafka.groupId}-reader`, fromBeginning: true },
    );
    await sleep(4000);
    const outageStart = Date.now();
    await kafkaService('stop');
    await sleep(12_000);
    await kafkaService('start');
    const outageMs = Date.now() - outageStart;
    await sleep(3000);
    producing = false;
    await producer;
    await waitFor(
      'outboxes drained',
      async () => {
        await roomy.flush();
        await tight.flush();
        return roomy.stats().queued === 0 && tight.stats().queued === 0;
      },
      90_000,
    );
    for (const s of stages) {
      await waitFor(
        `${s.name} caught up`,
        async () =>
          (await bus.lag(
            'telemetry',
            `${config.bus.kafka.groupId}-${s.name === 'single' ? 'single' : 'partition'}.features`,
          )) === 0,
        90_000,
      );
    }
    // Let the last windows close (1 s windows, 0.5 s lateness; the idle rule 60 s, the ticks run every second).
    await sleep(3000);
    const mine = (s: TelemetrySample) => nodes.includes(s.nodeId);
    const got = received.filter(mine);
    const r = roomy.stats();
    const t = tight.stats();
    const figures = stages.map((s) => {
      const st = s.extractor.stats();
      return `${s.name}: late ${st.rejected.late}, accepted ${st.accepted}, active partitions ${st.activeSources}`;
    });
    console.log(
      `outage ${outageMs} ms; roomy outbox: offered ${offered.roomy}, published ${r.published}, dropped ${r.dropped}, ` +
        `failed publishes ${r.failedPublishes}; tight outbox: offered ${offered.tight}, published ${t.published}, ` +
        `dropped ${t.dropped}; ${figures.join('; ')}`,
    );
    if (lateSeen.length > 0) console.log('late in the per-partition stage (first 10):', lateSeen.slice(0, 10));
    // B: every sample produced during the outage arrived after it, in order per node, none dropped.
    expect(r.failedPublishes).toBeGreaterThan(0);
    expect(r.dropped).toBe(0);
    expect(new Set(got.map((s) => `${s.nodeId}/${s.value}`)).size).toBe(offered.roomy);
    for (const node of nodes) {
      const values = got.filter((s) => s.nodeId === node).map((s) => s.value);
      const firsts = values.filter((v, i) => values.indexOf(v) === i);
      expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
    }
    // What the tight spool could not keep is counted: published + dropped covers everything offered.
    expect(t.dropped).toBeGreaterThan(0);
    expect(t.published + t.dropped).toBeGreaterThanOrEqual(offered.tight);
    // A: with a watermark per partition, no sample of the outage was late; the single watermark dead-letters them.
    const [perPartition, single] = stages.map((s) => s.extractor.stats());
    expect(perPartition!.rejected.late).toBe(0);
    expect(perPartition!.accepted).toBeGreaterThanOrEqual(offered.roomy + offered.tight - t.dropped);
    expect(single!.rejected.late).toBeGreaterThan(0);
    await reader.stop();
    roomy.close();
    tight.close();
  }, 300_000);
});
