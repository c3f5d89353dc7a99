import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

  it('reports a backlog only for what the bus did not take, memory queue and spool alike', async () => {
    for (const spoolDir of [undefined, mkdtempSync(path.join(tmpdir(), 'outbox-backlog-'))]) {
      const bus = switchableBus(new MemoryBus());
      const outbox = new TelemetryOutbox(bus, silentLogger(), { spoolDir });
      outbox.offer([sample(5)]);
      await outbox.flush();
      expect(outbox.backlogOldestTs()).toBeNull();
      bus.down = true;
      outbox.offer([sample(7), sample(8)]);
      await outbox.flush();
      expect(outbox.backlogOldestTs()).toBe(sample(7).ts);
      outbox.offer([sample(9)]);
      expect(outbox.backlogOldestTs()).toBe(sample(7).ts);
      await outbox.flush(); // the failing flush the last offer started
      bus.down = false;
      await outbox.flush();
      expect(outbox.stats().queued).toBe(0);
      expect(outbox.backlogOldestTs()).toBeNull();
      outbox.close();
    }
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

describe('telemetry outbox with a disk spool', () => {
  const dirOf = () => mkdtempSync(path.join(tmpdir(), 'outbox-'));

  it('spools during an outage and sends everything after it, each node in order, the spool first', async () => {
    const inner = new MemoryBus();
    const got: TelemetrySample[] = [];
    await inner.subscribe('telemetry', async (b) => void got.push(...b.map((r) => r.value)), { groupId: 't' });
    const bus = switchableBus(inner);
    const dir = dirOf();
    const outbox = new TelemetryOutbox(bus, silentLogger(), { spoolDir: dir, now: () => 1_700_000_000_000 });
    outbox.offer([sample(0), sample(1)]);
    await outbox.flush();
    bus.down = true;
    for (let i = 2; i < 2000; i++) outbox.offer([sample(i)]);
    await outbox.flush();
    expect(outbox.stats()).toMatchObject({ published: 2, dropped: 0 });
    expect(outbox.stats().spooled).toBe(1998);
    expect(statSync(path.join(dir, 'telemetry.spool')).size).toBeGreaterThan(1998 * 50);
    bus.down = false;
    outbox.offer([sample(2000)]);
    await outbox.flush();
    await outbox.flush();
    await inner.idle();
    expect(outbox.stats()).toMatchObject({ queued: 0, spooled: 0, published: 2001, dropped: 0 });
    const offsets = got.map((s) => s.ts - 1_700_000_000_000);
    expect([...offsets].sort((a, b) => a - b)).toEqual(Array.from({ length: 2001 }, (_, i) => i));
    for (const node of ['ast1', 'ast2', 'ast3']) {
      const mine = got.filter((s) => s.nodeId === node).map((s) => s.ts);
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
    // Drained: the file starts again from nothing.
    expect(statSync(path.join(dir, 'telemetry.spool')).size).toBe(0);
    outbox.close();
    await inner.close();
  });

  it('keeps what is spooled across a restart', async () => {
    const dir = dirOf();
    const bus = switchableBus(new MemoryBus());
    bus.down = true;
    const first = new TelemetryOutbox(bus, silentLogger(), { spoolDir: dir });
    first.offer([sample(0), sample(1), sample(2)]);
    await first.flush();
    first.offer([sample(3)]);
    first.close();
    const inner = new MemoryBus();
    const got: TelemetrySample[] = [];
    await inner.subscribe('telemetry', async (b) => void got.push(...b.map((r) => r.value)), { groupId: 't' });
    const second = new TelemetryOutbox(inner, silentLogger(), { spoolDir: dir });
    expect(second.stats().spooled).toBe(4);
    await second.flush();
    await inner.idle();
    expect(got.map((s) => s.ts - 1_700_000_000_000).sort()).toEqual([0, 1, 2, 3]);
    second.close();
    await inner.close();
  });

  it('bounds the spool in records and bytes, and counts what it drops (oldest first) and what is too old', async () => {
    const bus = switchableBus(new MemoryBus());
    bus.down = true;
    const outbox = new TelemetryOutbox(bus, silentLogger(), {
      spoolDir: dirOf(),
      spoolLimits: { maxBytes: 1_000_000, maxRecords: 100 },
    });
    outbox.offer([sample(0)]);
    await outbox.flush();
    for (let i = 1; i < 250; i++) outbox.offer([sample(i)]);
    await outbox.flush();
    expect(outbox.stats()).toMatchObject({ spooled: 100, dropped: 150 });
    expect(outbox.stats().oldestQueuedTs).toBe(1_700_000_000_000 + 150);
    outbox.close();
    const small = new TelemetryOutbox(bus, silentLogger(), {
      spoolDir: dirOf(),
      spoolLimits: { maxBytes: 2000, maxRecords: 1e6 },
    });
    for (let i = 0; i < 300; i++) small.offer([sample(i)]);
    await small.flush();
    const st = small.stats();
    expect(st.spooledBytes).toBeLessThanOrEqual(2000);
    expect(st.spooled + st.dropped).toBe(300);
    small.close();
    // Too old when the bus is back: dropped and counted as expired.
    let now = 1_700_000_000_000;
    const aging = new TelemetryOutbox(bus, silentLogger(), { spoolDir: dirOf(), maxOutageMs: 60_000, now: () => now });
    for (let i = 0; i < 10; i++) aging.offer([sample(i)]);
    await aging.flush();
    now += 3_600_000;
    bus.down = false;
    await aging.flush();
    expect(aging.stats()).toMatchObject({ published: 0, spooled: 0, expired: 10, dropped: 10 });
    aging.close();
  });
});
