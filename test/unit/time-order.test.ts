import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TelemetrySample } from '../../src/messages.js';
import { inTimeOrder, type TimeOrderStats } from '../../src/models/training/time-order.js';

async function* from(list: TelemetrySample[]): AsyncGenerator<TelemetrySample> {
  for (const s of list) yield s;
}

async function collect(streams: TelemetrySample[][], opts: Parameters<typeof inTimeOrder>[1], stats: TimeOrderStats) {
  const out: TelemetrySample[] = [];
  for await (const chunk of inTimeOrder(
    streams.map((s) => from(s)),
    opts,
    stats,
  ))
    out.push(...chunk);
  return out;
}

/** Streams whose samples are each at most `disorder` ms behind the newest before them in the same stream. */
const boundedStreams = (disorder: number) =>
  fc.array(
    fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: disorder })), { maxLength: 60 }),
    { minLength: 1, maxLength: 4 },
  );

describe('streaming telemetry into time order', () => {
  it('gives exactly a stable sort of the streams when their disorder is within the bound', async () => {
    await fc.assert(
      fc.asyncProperty(boundedStreams(3000), fc.integer({ min: 1, max: 7 }), async (raw, chunkSize) => {
        let id = 0;
        const streams = raw.map((steps, src) => {
          let t = 1_000_000;
          return steps.map(([step, back]) => {
            t += step;
            return {
              ts: t - back,
              nodeId: `n${src}`,
              metric: 'node.up',
              value: id++,
              source: 'sim',
            } as TelemetrySample;
          });
        });
        const stats: TimeOrderStats = { outOfOrder: 0, peakBuffered: 0 };
        const out = await collect(streams, { maxDisorderMs: 3000, chunkSize }, stats);
        const expected = streams.flat().sort((a, b) => a.ts - b.ts);
        expect(out.map((s) => s.value)).toEqual(expected.map((s) => s.value));
        expect(stats.outOfOrder).toBe(0);
      }),
    );
  });

  it('holds only the samples within the bound, not the whole stream', async () => {
    // 100 000 samples one second apart; a 10 s bound holds about ten of them.
    const long = Array.from(
      { length: 100_000 },
      (_, i) => ({ ts: i * 1000, nodeId: 'a', metric: 'node.up', value: i, source: 'sim' }) as TelemetrySample,
    );
    const stats: TimeOrderStats = { outOfOrder: 0, peakBuffered: 0 };
    const out = await collect([long], { maxDisorderMs: 10_000 }, stats);
    expect(out).toHaveLength(100_000);
    expect(stats.peakBuffered).toBeLessThanOrEqual(12);
  });

  it('passes on and counts samples beyond the bound, and never holds more than maxBuffered', async () => {
    const mk = (ts: number, value: number) =>
      ({ ts, nodeId: 'a', metric: 'node.up', value, source: 'sim' }) as TelemetrySample;
    const stream = [mk(0, 0), mk(100_000, 1), mk(200_000, 2), mk(50_000, 3), mk(300_000, 4)];
    const stats: TimeOrderStats = { outOfOrder: 0, peakBuffered: 0 };
    const out = await collect([stream], { maxDisorderMs: 10_000 }, stats);
    expect(out.map((s) => s.value).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(stats.outOfOrder).toBe(1);
    const capped: TimeOrderStats = { outOfOrder: 0, peakBuffered: 0 };
    const same = Array.from({ length: 50 }, (_, i) => mk(1000, i));
    const out2 = await collect([same], { maxDisorderMs: 1e9, maxBuffered: 5 }, capped);
    expect(out2.map((s) => s.value)).toEqual(same.map((s) => s.value));
    expect(capped.peakBuffered).toBeLessThanOrEqual(6);
  });
});
