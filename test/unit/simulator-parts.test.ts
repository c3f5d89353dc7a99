import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EpisodeStream } from '../../src/sim/episodes.js';
import { dailyLoad } from '../../src/sim/load-curve.js';
import { Rng } from '../../src/sim/rng.js';

function meanOf(n: number, draw: () => number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += draw();
  return s / n;
}

describe('Rng', () => {
  it('reproduces a stream from its seed, and forks streams that differ from each other and from the parent', () => {
    const a = Rng.fromSeed(1);
    const b = Rng.fromSeed(1);
    const xs = Array.from({ length: 20 }, () => a.uniform());
    expect(Array.from({ length: 20 }, () => b.uniform())).toEqual(xs);
    const parent = Rng.fromSeed(2);
    const f1 = parent.fork();
    const f2 = parent.fork();
    const g1 = f1.fork(); // a fork of a fork must not coincide with its sibling's line
    const seqs = [parent, f1, f2, g1].map((r) => Array.from({ length: 8 }, () => r.uniform()).join(','));
    expect(new Set(seqs).size).toBe(4);
    expect(Rng.fromSeed(3).uniform()).not.toBe(Rng.fromSeed(4).uniform());
  });

  it('draws the documented distributions (means within a few standard errors, fixed seed)', () => {
    const r = Rng.fromSeed(12345);
    const n = 200_000;
    expect(meanOf(n, () => r.uniform())).toBeCloseTo(0.5, 2);
    expect(meanOf(n, () => r.normal())).toBeCloseTo(0, 2);
    expect(meanOf(n, () => r.exponential(180))).toBeGreaterThan(178);
    expect(meanOf(n, () => r.exponential(180))).toBeLessThan(182);
    expect(meanOf(n, () => r.poisson(2.5))).toBeCloseTo(2.5, 1);
    expect(meanOf(n, () => r.poisson(80))).toBeCloseTo(80, 0);
    expect(meanOf(n, () => r.binomial(120, 0.0055))).toBeCloseTo(0.66, 1);
    expect(meanOf(n, () => r.binomial(300, 0.3))).toBeCloseTo(90, 0);
  });

  it('keeps counts in range and never picks a zero-weight index (any seed)', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 0, max: 500 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.constantFrom(0, 0.5, 1, 3), { minLength: 1, maxLength: 6 }).filter((w) => w.some((x) => x > 0)),
        (seed, n, p, weights) => {
          const r = Rng.fromSeed(seed);
          for (let i = 0; i < 20; i++) {
            const k = r.binomial(n, p);
            if (!Number.isInteger(k) || k < 0 || k > n) return false;
            const q = r.poisson(n * p);
            if (!Number.isInteger(q) || q < 0) return false;
            if ((weights[r.weighted(weights)] ?? 0) <= 0) return false;
          }
          return true;
        },
      ),
    );
  });
});

describe('dailyLoad', () => {
  const monday = Date.UTC(2024, 0, 1);
  const at = (day: number, hour: number) => monday + day * 86_400_000 + hour * 3_600_000;

  it('peaks at the weekday busy hours, falls to the night floor, and is lighter at weekends', () => {
    expect(dailyLoad(at(0, 10.5), 0.08, 0.45, 0)).toBeCloseTo(1, 2);
    expect(dailyLoad(at(0, 3), 0.08, 0.45, 0)).toBeCloseTo(0.08, 2);
    expect(dailyLoad(at(5, 10.5), 0.08, 0.45, 0)).toBeCloseTo(0.45, 2); // Saturday
    expect(dailyLoad(at(6, 10.5), 0.08, 0.45, 0)).toBeCloseTo(0.45, 2); // Sunday
    expect(dailyLoad(at(0, 8.5), 0.08, 0.45, 2)).toBeCloseTo(1, 2); // 08:30 UTC is 10:30 at UTC+2
  });

  it('stays in (0, 1] at any time, before 1970 included', () => {
    fc.assert(
      fc.property(fc.integer({ min: -4e12, max: 4e12 }), fc.double({ min: 0.01, max: 1, noNaN: true }), (ts, night) => {
        const v = dailyLoad(ts, night, 0.5, 0);
        return v > 0 && v <= 1;
      }),
    );
  });
});

describe('EpisodeStream', () => {
  it('produces non-overlapping episodes at about the configured rate', () => {
    const s = new EpisodeStream(Rng.fromSeed(8), 24, [10_000, 20_000], [1, 2], 0);
    let episodes = 0;
    let wasActive = false;
    for (let t = 0; t < 10 * 86_400_000; t += 1000) {
      const active = s.activeAt(t);
      if (active && !wasActive) episodes++;
      if (active) expect(s.magnitude).toBeGreaterThanOrEqual(1);
      wasActive = active;
    }
    expect(episodes).toBeGreaterThan(24 * 10 * 0.7);
    expect(episodes).toBeLessThan(24 * 10 * 1.3);
    expect(new EpisodeStream(Rng.fromSeed(8), 0, [1, 2], [1, 2], 0).activeAt(1e12)).toBe(false);
  });
});
