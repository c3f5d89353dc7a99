import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import type { Bus } from '../../src/bus/port.js';
import { silentLogger } from '../../src/log.js';
import type { TelemetrySample } from '../../src/messages.js';
import { TelemetryOutbox } from '../../src/pipeline/outbox.js';

/** The in-process bus behind a switch that makes publish fail, as a stopped broker does. */
function switchableBus(inner: MemoryBus): Bus & { down: boolean } {
  const bus = Object.create(inner) as Bus & { down: boolean };
  bus.down = false;
  bus.publish = async (topic, records) => {
    if (bus.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:19092'), { code: 'ECONNREFUSED' });
    return inner.publish(topic, records);
  };
  return bus;
}

const sample = (i: number): TelemetrySample => ({
  nodeId: `ast${(i % 3) + 1}`,
  ts: 1_700_000_000_000 + i,
  metric: 'calls.started',
  value: 1,
  source: 'ami',
});

describe('telemetry outbox', () => {
  it('keeps samples while the bus is down and sends them in order when it is back', async () => {
    const inner = new MemoryBus();
    const got: TelemetrySample[] = [];
    await inner.subscribe('telemetry', async (b) => void got.push(...b.map((r) => r.value)), { groupId: 't' });
    const bus = switchableBus(inner);
    const outbox = new TelemetryOutbox(bus, silentLogger());
    bus.down = true;
    outbox.offer([sample(0), sample(1), sample(2)]);
    await outbox.flush();
    expect(outbox.stats()).toMatchObject({ queued: 3, published: 0, dropped: 0 });
    bus.down = false;
    outbox.offer([sample(3)]);
    await outbox.flush();
    await inner.idle();
    expect(outbox.stats()).toMatchObject({ queued: 0, published: 4, dropped: 0 });
    expect(got.map((s) => s.ts - 1_700_000_000_000).sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    // Per node, order is kept.
    const ast1 = got.filter((s) => s.nodeId === 'ast1').map((s) => s.ts);
    expect(ast1).toEqual([...ast1].sort((a, b) => a - b));
    await inner.close();
  });

  it('bounds the queue in a long outage and counts what it drops', async () => {
    const bus = switchableBus(new MemoryBus());
    const outbox = new TelemetryOutbox(bus, silentLogger(), 100);
    bus.down = true;
    for (let i = 0; i < 250; i++) outbox.offer([sample(i)]);
    await outbox.flush();
    const stats = outbox.stats();
    expect(stats.queued).toBe(100);
    expect(stats.dropped).toBe(150);
    expect(stats.queued + stats.dropped + stats.published).toBe(250);
  });
});
