import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { compareSamples, telemetrySlices } from '../../src/bus/telemetry-range.js';
import type { TelemetrySample } from '../../src/messages.js';

const T0 = Date.UTC(2026, 10, 20);
const MIN = 60_000;

function sample(nodeId: string, ts: number, value: number): TelemetrySample {
  return { nodeId, ts, metric: 'channels.active', value, source: 'sim' };
}

async function busWith(records: { sample: TelemetrySample; at: number }[]): Promise<MemoryBus> {
  const bus = new MemoryBus({ partitions: 3, retainUnconsumed: 1_000_000 });
  await bus.ensureTopics();
  // One publish per record, in the order given: the order they reach the bus, with the record time `at`.
  for (const r of records) await bus.publish('telemetry', [{ key: r.sample.nodeId, value: r.sample, timestamp: r.at }]);
  return bus;
}

async function readAll(bus: MemoryBus, fromTs: number, toTs: number, sliceMs: number) {
  const slices: TelemetrySample[][] = [];
  for await (const slice of telemetrySlices(bus, { fromTs, toTs }, { sliceMs })) slices.push(slice);
  return slices;
}

describe('telemetrySlices (train and replay --kafka)', () => {
  it('reads every record of the range once, in total order, whatever the slice length', async () => {
    // Three nodes, a sample every 10 s for 3 h; several on the same instant, some exactly on slice boundaries.
    const records = Array.from({ length: 3 * 6 * 180 }, (_, i) => {
      const ts = T0 + Math.floor(i / 3) * 10_000;
      return { sample: sample(`ast${(i % 3) + 1}`, ts, i), at: ts };
    });
    const bus = await busWith(records);
    const from = T0 + 20 * MIN;
    const to = T0 + 150 * MIN;
    const expected = records
      .map((r) => r.sample)
      .filter((s) => s.ts >= from && s.ts < to)
      .sort(compareSamples);
    for (const sliceMs of [5 * MIN, 30 * MIN, 60 * MIN, 24 * 60 * MIN]) {
      const slices = await readAll(bus, from, to, sliceMs);
      expect(slices.flat(), `slices of ${sliceMs / MIN} min`).toEqual(expected);
      for (const s of slices) expect([...s].sort(compareSamples)).toEqual(s);
    }
    expect((await readAll(bus, from, to, 30 * MIN)).length).toBe(5);
  });

  it('a late arrival comes in the slice being read when it reached the bus, still inside the range', async () => {
    const onTime = Array.from({ length: 120 }, (_, i) => ({
      sample: sample('ast1', T0 + i * 60_000, i),
      at: T0 + i * 60_000,
    }));
    // Written at minute 61 with an event time of minute 59: after the first slice (minutes 0-60) ended.
    const late = { sample: sample('ast2', T0 + 59 * MIN, -1), at: T0 + 61 * MIN };
    const bus = await busWith([...onTime.slice(0, 62), late, ...onTime.slice(62)]);
    const slices = await readAll(bus, T0, T0 + 120 * MIN, 60 * MIN);
    expect(slices.map((s) => s.length)).toEqual([60, 61]);
    expect(slices[1]![0]).toEqual(late.sample);
  });

  it('property: for any publish order and slice length, the range is read exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ node: fc.integer({ min: 1, max: 4 }), minute: fc.integer({ min: 0, max: 180 }) }), {
          maxLength: 60,
        }),
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 0, max: 90 }),
        fc.integer({ min: 1, max: 120 }),
        async (points, sliceMin, fromMin, spanMin) => {
          // Record times never go back (Kafka's LogAppendTime, or producers with synced clocks).
          const records = points
            .map((p, i) => ({ sample: sample(`ast${p.node}`, T0 + p.minute * MIN, i), at: T0 + p.minute * MIN }))
            .sort((a, b) => a.at - b.at);
          const bus = await busWith(records);
          const from = T0 + fromMin * MIN;
          const to = from + spanMin * MIN;
          const got = (await readAll(bus, from, to, sliceMin * MIN)).flat();
          const want = records
            .map((r) => r.sample)
            .filter((s) => s.ts >= from && s.ts < to)
            .sort(compareSamples);
          expect(got).toEqual(want);
          await bus.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});
