import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import type { Bus, DeliveredRecord, TopicName } from '../../src/bus/port.js';
import { FeatureExtractor } from '../../src/features/extractor.js';
import { silentLogger } from '../../src/log.js';
import type { FeatureVector, TelemetrySample } from '../../src/messages.js';
import { FeatureStage } from '../../src/pipeline/stages.js';

const WINDOW = 1000;

/**
 * A feature stage with per-partition watermarks on the in-process bus; `lagFails` makes lag() fail (broker down),
 * `unreadLag` adds records the broker holds that the stage has not been given yet, `pendingFrom` is the event time of
 * the oldest sample the process's own outbox holds back (null: none).
 */
async function setup(options: { outageHoldMs?: number } = {}) {
  const inner = new MemoryBus({ partitions: 4 });
  const state = { lagFails: false, pendingFrom: null as number | null, unreadLag: 0 };
  const bus = Object.create(inner) as Bus;
  bus.lag = async (topic, group) => {
    if (state.lagFails) throw new Error('connect ECONNREFUSED');
    return (await inner.lag(topic, group)) + state.unreadLag;
  };
  let telemetryHandler: ((batch: DeliveredRecord<TelemetrySample>[]) => Promise<void>) | null = null;
  // The stage's telemetry handler, so a test can deliver records again as Kafka does after a lost commit.
  bus.subscribe = ((topic: TopicName, handler: unknown, opts: unknown) => {
    if (topic === 'telemetry') telemetryHandler = handler as typeof telemetryHandler;
    return (inner.subscribe as (...args: unknown[]) => ReturnType<Bus['subscribe']>)(topic, handler, opts);
  }) as Bus['subscribe'];
  const vectors: FeatureVector[] = [];
  await inner.subscribe('features', async (b) => void vectors.push(...b.map((r) => r.value)), { groupId: 'v' });
  let now = Math.floor(Date.now() / WINDOW) * WINDOW;
  const extractor = new FeatureExtractor({ windowMs: WINDOW, allowedLatenessMs: 200, idleSourceMs: 60_000 });
  const stage = new FeatureStage({
    bus,
    groupId: 'wm',
    logger: silentLogger(),
    extractor,
    partitions: 4,
    arrivalClock: () => now,
    upstreamBacklogTs: () => state.pendingFrom,
    ...options,
  });
  await stage.start();
  const nodes = ['ast1', 'ast2', 'ast3', 'ast4'];
  const publishNow = async () => {
    await inner.publish(
      'telemetry',
      nodes.map((nodeId) => ({
        key: nodeId,
        value: { ts: now, nodeId, metric: 'channels.active', value: 1, source: 'ami' },
      })),
    );
    await inner.idle();
  };
  await publishNow();
  /** Ticks every second for `ms`, letting lag answers land between ticks. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      now += 1000;
      await stage.tick(now);
      await new Promise((r) => setTimeout(r, 5));
      await inner.idle();
    }
  };
  const unobserved = () => vectors.filter((v) => !v.observed).length;
  return {
    inner,
    state,
    stage,
    extractor,
    run,
    publishNow,
    unobserved,
    deliver: (batch: DeliveredRecord<TelemetrySample>[]) => telemetryHandler!(batch),
    now: () => now,
    close: () => Promise.all([stage.stop(), inner.close()]),
  };
}

describe('feature stage: silence and per-partition watermarks', () => {
  it('a silent cluster shows as unobserved within seconds once the consumer is seen caught up', async () => {
    const s = await setup();
    await s.run(6000);
    expect(s.unobserved()).toBeGreaterThan(0);
    await s.close();
  });

  it('while the bus cannot say whether records wait (a broker outage), windows wait for the partitions', async () => {
    const s = await setup();
    s.state.lagFails = true;
    await s.run(30_000);
    expect(s.unobserved()).toBe(0);
    // Past features.idlePartitionMs too: silence while the bus is unreachable is the bus's, not the partitions'.
    await s.run(40_000);
    expect(s.unobserved()).toBe(0);
    await s.close();
  });

  it('an outage longer than outageHoldMs lets the partitions turn idle, and the clock closes windows', async () => {
    const s = await setup({ outageHoldMs: 20_000 });
    s.state.lagFails = true;
    await s.run(30_000);
    expect(s.unobserved()).toBe(0);
    await s.run(60_000);
    expect(s.unobserved()).toBeGreaterThan(0);
    await s.close();
  });

  it('after an outage, a lag of 0 is evidence only once records flow again (producers may still hold a spool)', async () => {
    const s = await setup();
    s.state.lagFails = true;
    await s.run(5000);
    s.state.lagFails = false;
    // The broker is back and the group has read everything the topic holds, but nothing new has been delivered.
    await s.run(10_000);
    expect(s.unobserved()).toBe(0);
    await s.publishNow();
    await s.run(6000);
    expect(s.unobserved()).toBeGreaterThan(0);
    await s.close();
  });

  it("while this process's outbox still holds telemetry, the group's lag of 0 does not close windows", async () => {
    const s = await setup();
    s.state.pendingFrom = s.now();
    await s.run(8000);
    expect(s.unobserved()).toBe(0);
    s.state.pendingFrom = null;
    // Sent is not yet read: the windows wait for a lag of 0 asked after the backlog went out.
    await s.run(4000);
    expect(s.unobserved()).toBeGreaterThan(0);
    await s.close();
  });

  it("another producer moving a partition on does not close the windows this process's outbox still holds samples for", async () => {
    const s = await setup();
    const t = s.now();
    // This process's HEP collector spooled ast1's SIP samples through an outage; another producer (the AMI collector
    // of another replica) drained first and keeps every partition moving, ast1's included.
    s.state.pendingFrom = t;
    for (let i = 0; i < 6; i++) {
      await s.run(1000);
      await s.publishNow();
    }
    // The outbox has sent them, but the group has not read them yet: sent is not read, the windows still wait.
    s.state.pendingFrom = null;
    s.state.unreadLag = 5;
    await s.run(5000);
    expect(s.extractor.stats().accepted).toBe(4 * 7);
    await s.inner.publish(
      'telemetry',
      [0, 1, 2, 3, 4].map((i) => ({
        key: 'ast1',
        value: { ts: t + i * 1000, nodeId: 'ast1', metric: 'sip.retransmissions', value: i, source: 'sip' },
      })),
    );
    await s.inner.idle();
    s.state.unreadLag = 0;
    await s.run(3000);
    const stats = s.extractor.stats();
    expect(stats.rejected.late).toBe(0);
    expect(stats.accepted).toBe(4 * 7 + 5);
    await s.close();
  });

  it('a backlog holds windows no further back than the outbox keeps samples (outageHoldMs)', async () => {
    const s = await setup({ outageHoldMs: 20_000 });
    // The outbox reports the same oldest sample for minutes (it expires what is older than its maxOutageMs).
    s.state.pendingFrom = s.now();
    await s.run(90_000);
    expect(s.unobserved()).toBeGreaterThan(0);
    await s.close();
  });

  it('records delivered again after a lost commit are counted as redelivered, not dead-lettered as late', async () => {
    const s = await setup();
    const t = s.now();
    const batch = (offsets: number[]): DeliveredRecord<TelemetrySample>[] =>
      offsets.map((o) => ({
        topic: 'telemetry',
        partition: 3,
        offset: String(1000 + o),
        key: 'ast9',
        timestamp: t + o * 100,
        value: { ts: t + o * 100, nodeId: 'ast9', metric: 'channels.active', value: o, source: 'ami' },
      }));
    await s.deliver(batch([0, 1, 2, 3]));
    await s.run(3000);
    // The windows of those records are closed; the consumer resumes from an older commit and delivers them again.
    await s.deliver(batch([2, 3, 4]));
    const stats = s.extractor.stats();
    expect(stats.rejected.late).toBe(0);
    expect(s.stage.recovery.redelivered).toBe(2);
    // ...but a record that is new and late is still late.
    await s.deliver(batch([5]).map((r) => ({ ...r, value: { ...r.value, ts: t - 5000 } })));
    expect(s.extractor.stats().rejected.late).toBe(1);
    await s.close();
  });
});
