import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeatureExtractor } from '../../src/features/index.js';
import type { FeatureVector, TelemetrySample } from '../../src/messages.js';

const W = 1000;
const LATENESS = 500;
const IDLE = 5000;
const T0 = Date.UTC(2024, 0, 1, 12);

const sample = (nodeId: string, ts: number): TelemetrySample => ({
  ts,
  nodeId,
  metric: 'channels.active',
  value: 1,
  source: 'sim',
});

function extractor() {
  return new FeatureExtractor({ windowMs: W, allowedLatenessMs: LATENESS, idleSourceMs: IDLE });
}

/** Samples a vector counted, per node and window. */
function counted(vectors: FeatureVector[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of vectors) if (v.sampleCount > 0) m.set(`${v.nodeId}@${v.windowStart}`, v.sampleCount);
  return m;
}

describe('per-partition watermarks', () => {
  it('a partition that lags never has its windows closed by another partition, whatever the delivery order', () => {
    fc.assert(
      fc.property(
        // Per partition: how many samples (one node per partition, 100 ms apart from T0), and delivery batches.
        fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 2, maxLength: 5 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 40 })), { minLength: 1, maxLength: 200 }),
        (lengths, schedule) => {
          const parts = lengths.map((n, p) => Array.from({ length: n }, (_, i) => sample(`node-${p}`, T0 + i * 100)));
          const heads = parts.map(() => 0);
          const x = extractor();
          const out: FeatureVector[] = [];
          // Every partition has delivered once (a partition holds from its first sample; an empty one never holds).
          parts.forEach((list, p) => {
            out.push(...x.ingest(list.slice(0, 1), { source: p, at: T0 }));
            heads[p] = 1;
          });
          // The consumer delivers partitions in any order and batch size (a catch-up fetches one partition far ahead
          // of the others); every partition delivers within the idle timeout, on a clock that stands at T0.
          let step = 0;
          const pending = () => heads.some((h, p) => h < parts[p]!.length);
          while (pending()) {
            const [pick, size] = schedule[step++ % schedule.length]!;
            let p = pick % parts.length;
            while (heads[p]! >= parts[p]!.length) p = (p + 1) % parts.length;
            const batch = parts[p]!.slice(heads[p], heads[p]! + size);
            heads[p]! += batch.length;
            out.push(...x.ingest(batch, { source: p, at: T0 }));
          }
          out.push(...x.advance(T0 + 1_000_000));
          expect(x.stats().rejected.late).toBe(0);
          // Every sample is in its window, exactly once.
          const total = [...counted(out).values()].reduce((a, b) => a + b, 0);
          expect(total).toBe(lengths.reduce((a, b) => a + b, 0));
        },
      ),
    );
  });

  it('with one watermark the same catch-up dead-letters the lagging partition as late (what this fixes)', () => {
    const x = extractor();
    const a = Array.from({ length: 50 }, (_, i) => sample('a', T0 + i * 100));
    const b = Array.from({ length: 50 }, (_, i) => sample('b', T0 + i * 100));
    x.ingest(a);
    x.ingest(b);
    expect(x.stats().rejected.late).toBeGreaterThan(30);
    const y = extractor();
    y.ingest(b.slice(0, 1), { source: 1, at: T0 });
    y.ingest(a, { source: 0, at: T0 });
    y.ingest(b.slice(1), { source: 1, at: T0 });
    expect(y.stats().rejected.late).toBe(0);
  });

  it('closes windows by the slowest active partition, on samples and on the clock', () => {
    const x = extractor();
    x.ingest([sample('a', T0 + 100)], { source: 0, at: T0 });
    x.ingest([sample('b', T0 + 100)], { source: 1, at: T0 });
    // Partition 0 runs 5 s ahead: nothing closes beyond where partition 1 is.
    const ahead = x.ingest(
      Array.from({ length: 50 }, (_, i) => sample('a', T0 + 200 + i * 100)),
      { source: 0, at: T0 + 100 },
    );
    expect(ahead).toHaveLength(0);
    // The clock cannot close them either while partition 1 is active (a broker outage shorter than the idle rule).
    expect(x.advance(T0 + IDLE)).toHaveLength(0);
    expect(x.stats()).toMatchObject({ activeSources: 2, sourceSkewMs: 5000 });
    // Partition 1 catches up: its windows fill, then close.
    const caught = x.ingest(
      Array.from({ length: 40 }, (_, i) => sample('b', T0 + 200 + i * 100)),
      { source: 1, at: T0 + IDLE },
    );
    expect(x.stats().rejected.late).toBe(0);
    // Closed as far as partition 1 reached (4.1 s, less the lateness): the window before T0, then three full ones.
    expect(caught.filter((v) => v.nodeId === 'b').map((v) => v.sampleCount)).toEqual([0, 9, 10, 10]);
  });

  it('an idle partition stops holding windows after idleSourceMs, and what it brings later is late', () => {
    const x = extractor();
    x.ingest([sample('a', T0)], { source: 0, at: T0 });
    x.ingest([sample('b', T0)], { source: 1, at: T0 });
    // Partition 1 goes quiet; partition 0 keeps delivering in real time.
    const closed: FeatureVector[] = [];
    for (let t = 1000; t <= 10_000; t += 1000) {
      closed.push(...x.ingest([sample('a', T0 + t)], { source: 0, at: T0 + t }));
      closed.push(...x.advance(T0 + t));
      const held = t <= IDLE;
      // Held while partition 1 counts as active (only the first window, which it reached, may close)...
      if (held) expect(closed.filter((v) => v.windowStart > T0)).toHaveLength(0);
    }
    // ...and released once it is idle: windows up to partition 0's watermark closed.
    const starts = [...new Set(closed.map((v) => v.windowStart))];
    expect(Math.max(...starts)).toBe(T0 + 8000);
    expect(x.stats().activeSources).toBe(1);
    // It comes back with old samples: their windows closed meanwhile, so they are late (counted, not lost)...
    x.ingest([sample('b', T0 + 3000)], { source: 1, at: T0 + 10_500 });
    expect(x.stats().rejected.late).toBe(1);
    // ...and from then on it holds windows again.
    expect(x.stats().activeSources).toBe(2);
    expect(x.ingest([sample('a', T0 + 20_000)], { source: 0, at: T0 + 10_600 })).toHaveLength(0);
  });

  it('a partition that has delivered nothing usable holds nothing (it may simply be empty)', () => {
    const x = extractor();
    x.ingest([{ ...sample('b', T0), value: Number.NaN }], { source: 1, at: T0 });
    expect(x.ingest([sample('a', T0), sample('a', T0 + 3000)], { source: 0, at: T0 }).length).toBeGreaterThan(0);
    expect(x.stats().activeSources).toBe(1);
  });

  it('a silent cluster still closes its windows on the clock once every partition is idle', () => {
    const x = extractor();
    x.ingest([sample('a', T0)], { source: 0, at: T0 });
    expect(x.advance(T0 + IDLE)).toHaveLength(0);
    const late = x.advance(T0 + IDLE + 1000);
    expect(late.length).toBeGreaterThan(0);
    expect(late.some((v) => v.nodeId === 'a' && !v.observed)).toBe(true);
  });
});
