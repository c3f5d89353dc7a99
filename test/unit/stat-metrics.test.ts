import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FeatureVector, NodeScore } from '../../src/messages.js';
import { invertSpd, looksLikeCounter, seasonBin } from '../../src/models/scorers/metric-model.js';
import { StatScorer } from '../../src/models/scorers/stat-scorer.js';

const MIN = 60_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2024, 0, 1); // a Monday

/** Seeded normal noise (mulberry32 + Box-Muller), so every run sees the same series. */
function noise(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

function vec(ts: number, features: Record<string, number>, cadenceMs: number): FeatureVector {
  return {
    nodeId: 'n1',
    setId: 0,
    windowStart: ts - cadenceMs,
    windowEnd: ts,
    sampleCount: 1,
    observed: true,
    features,
    evidence: { calls: null, upReported: null, probe: null },
  };
}

function run(metrics: string[], cadenceMs: number, rows: Array<Record<string, number>>, start = T0): NodeScore[] {
  const scorer = new StatScorer({ windowMs: cadenceMs, metrics });
  return scorer.score(rows.map((f, i) => vec(start + i * cadenceMs, f, cadenceMs)));
}

const DRAIN = 0.8;

describe('stat scorer on named metrics', () => {
  it('tells warm-up apart: no score at all until a metric has history, then raw and risk', () => {
    const n = noise(1);
    const scores = run(
      ['a'],
      MIN,
      Array.from({ length: 60 }, () => ({ a: 10 + n() })),
    );
    expect(scores[0]!.warmup).toBe(true);
    expect(scores[0]!.rawScore).toBeUndefined();
    expect(scores[0]!.risk).toBe(0);
    expect(scores[59]!.warmup).toBeUndefined();
    expect(scores[59]!.rawScore).toBeGreaterThan(0);
  });

  it('a daily sine with noise does not sit at drain risk through its peaks; a real anomaly ranks above them', () => {
    const cadence = 5 * MIN;
    const n = noise(2);
    const perDay = DAY / cadence;
    const rows: Array<Record<string, number>> = [];
    for (let i = 0; i < 14 * perDay; i++) {
      const phase = (2 * Math.PI * i) / perDay;
      rows.push({ calls: 200 + 150 * Math.sin(phase) + 8 * n() });
    }
    // Day 12, at the daily peak: a burst 10 sigma above the usual peak, for three rows.
    const peak = 12 * perDay + Math.round(perDay / 4);
    for (let k = 0; k < 3; k++) rows[peak + k]!.calls! += 80;
    const scores = run(['calls'], cadence, rows);
    // From day 3 (the profile has a day behind it), away from the injected burst.
    const judgedAt = scores.map((_, i) => i).filter((i) => i >= 2 * perDay && Math.abs(i - peak) > 3);
    const atRisk = judgedAt.filter((i) => scores[i]!.risk >= DRAIN).length / judgedAt.length;
    expect(atRisk).toBeLessThan(0.005);
    // Peak rows of the other days: the top of each day's sine.
    const peakRaw = judgedAt
      .filter((i) => Math.sin((2 * Math.PI * i) / perDay) > 0.95)
      .map((i) => scores[i]!.rawScore!);
    expect(peakRaw.length).toBeGreaterThan(100);
    const anomalyRaw = Math.min(...scores.slice(peak, peak + 3).map((s) => s.rawScore!));
    expect(anomalyRaw).toBeGreaterThan(Math.max(...peakRaw));
    expect(Math.max(...scores.slice(peak, peak + 3).map((s) => s.risk))).toBeGreaterThanOrEqual(DRAIN);
    expect(scores[peak]!.explanation[0]!.feature).toBe('calls');
  });

  it('weekends that run lower than weekdays are learnt once, not alarmed on every week', () => {
    const cadence = 5 * MIN;
    const perDay = DAY / cadence;
    const n = noise(7);
    const rows: Array<Record<string, number>> = [];
    for (let i = 0; i < 42 * perDay; i++) {
      const dow = new Date(T0 + i * cadence).getUTCDay();
      const weekend = dow === 0 || dow === 6;
      rows.push({ calls: (weekend ? 100 : 300) + 100 * Math.sin((2 * Math.PI * i) / perDay) + 5 * n() });
    }
    const scores = run(['calls'], cadence, rows);
    const week = 7 * perDay;
    // The first weekend is news (judged by the weekday profile until the drop has lasted an hour); later ones are not.
    expect(scores.slice(0, week).filter((s) => s.risk >= DRAIN).length).toBeGreaterThan(0);
    expect(scores.slice(week).filter((s) => s.risk >= DRAIN).length).toBe(0);
  });

  it('a level shift alarms, then stops alarming once it has persisted', () => {
    const n = noise(3);
    const rows = Array.from({ length: 2000 }, (_, i) => ({ q: (i >= 1000 ? 60 : 50) + n() }));
    const scores = run(['q'], MIN, rows);
    expect(Math.max(...scores.slice(1001, 1010).map((s) => s.risk))).toBeGreaterThanOrEqual(DRAIN);
    // Adapts within the shift delay (1 h = 60 rows at 1 min) plus margin.
    const after = scores.slice(1100);
    expect(after.filter((s) => s.risk >= DRAIN).length).toBe(0);
    expect(Math.max(...after.map((s) => s.rawScore!))).toBeLessThan(
      Math.min(...scores.slice(1001, 1010).map((s) => s.rawScore!)),
    );
  });

  it('judges a cumulative counter as a rate: steady growth is normal, a burst of its rate is not', () => {
    const n = noise(4);
    let total = 1e6;
    const rows: Array<Record<string, number>> = [];
    for (let i = 0; i < 1500; i++) {
      let rate = Math.max(0, 100 + 10 * n());
      if (i >= 1200 && i < 1205) rate *= 5;
      if (i === 700) total = 0; // a restart resets the counter
      total += rate * 60;
      rows.push({ packets: total });
    }
    const scorer = new StatScorer({ windowMs: MIN, metrics: ['packets'] });
    const scores = scorer.score(rows.map((f, i) => vec(T0 + i * MIN, f, MIN)));
    expect(scorer.counters('n1')).toEqual(['packets']);
    const quiet = [...scores.slice(100, 1200), ...scores.slice(1210)];
    expect(quiet.filter((s) => s.risk >= DRAIN).length).toBe(0);
    expect(Math.max(...scores.slice(1200, 1205).map((s) => s.risk))).toBeGreaterThanOrEqual(DRAIN);
    // The explanation's value is the rate per second, not the running total.
    expect(scores[1202]!.explanation[0]!.value).toBeGreaterThan(300);
    expect(scores[1202]!.explanation[0]!.value).toBeLessThan(1000);
  });

  it('a mostly-zero series: its usual blips are normal, a burst is not', () => {
    const n = noise(5);
    const rows = Array.from({ length: 3000 }, (_, i) => ({ errors: Math.abs(n()) > 2.1 ? 1 : 0, i }));
    rows[2500]!.errors = 12;
    rows[2501]!.errors = 15;
    const scores = run(
      ['errors'],
      MIN,
      rows.map(({ errors }) => ({ errors })),
    );
    // Its first blips are news (nothing like them was seen yet); once a few hundred rows have shown them, never again.
    const all = scores.filter((_, i) => i < 2500 || i > 2502);
    expect(all.filter((s) => s.risk >= DRAIN).length / all.length).toBeLessThan(0.001);
    expect(all.slice(500).filter((s) => s.risk >= DRAIN).length).toBe(0);
    expect(scores[2501]!.risk).toBeGreaterThanOrEqual(DRAIN);
  });

  it('two normally correlated metrics parting ways, each inside its own range, score above normal rows', () => {
    const n = noise(6);
    const rows: Array<Record<string, number>> = [];
    for (let i = 0; i < 2000; i++) {
      const load = n();
      rows.push({ cpu: 50 + 10 * load + n(), calls: 300 + 60 * load + 6 * n(), mem: 1000 + 5 * n() });
    }
    // cpu 1.5 sd up while calls are 1.5 sd down: neither is unusual alone.
    rows[1800] = { cpu: 65, calls: 210, mem: 1000 };
    rows[1801] = { cpu: 66, calls: 208, mem: 1001 };
    const scores = run(['cpu', 'calls', 'mem'], MIN, rows);
    const normal = scores.slice(500, 1800).map((s) => s.rawScore!);
    expect(scores[1800]!.rawScore).toBeGreaterThan(Math.max(...normal));
    expect(scores[1801]!.risk).toBeGreaterThanOrEqual(DRAIN);
    const top = scores[1800]!.explanation[0]!.feature;
    expect(top).toMatch(/^joint\(/);
    expect(top).toContain('cpu');
    expect(top).toContain('calls');
  });

  it('raw score is monotone in a metric departure and risk stays in [0, 1] (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        (seed, d1, d2) => {
          const n = noise(seed);
          // One metric: its evidence is its |z| alone (with several, the joint term is evidence of its own).
          const base = Array.from({ length: 80 }, () => ({ a: 100 + 5 * n() }));
          const probe = (d: number) => {
            const scorer = new StatScorer({ windowMs: MIN, metrics: ['a'] });
            scorer.score(base.map((f, i) => vec(T0 + i * MIN, f, MIN)));
            return scorer.score([vec(T0 + 80 * MIN, { a: 140 + d * 5 }, MIN)])[0]!; // above every value seen
          };
          const [lo, hi] = d1 <= d2 ? [d1, d2] : [d2, d1];
          const sLo = probe(lo);
          const sHi = probe(hi);
          for (const s of [sLo, sHi]) {
            expect(s.risk).toBeGreaterThanOrEqual(0);
            expect(s.risk).toBeLessThanOrEqual(1);
            expect(Number.isFinite(s.rawScore)).toBe(true);
          }
          expect(sHi.rawScore!).toBeGreaterThanOrEqual(sLo.rawScore!);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('metric model parts', () => {
  it('seasonBin: hour of day, weekends apart', () => {
    expect(seasonBin(Date.UTC(2024, 0, 1, 13))).toBe(13); // Monday
    expect(seasonBin(Date.UTC(2024, 0, 6, 13))).toBe(37); // Saturday
    expect(seasonBin(Number.NaN)).toBe(-1);
  });
  it('looksLikeCounter: monotone with resets yes, noisy gauges no', () => {
    expect(looksLikeCounter([1, 5, 9, 9, 14, 2, 6, 11])).toBe(true);
    expect(looksLikeCounter([10, 11, 10.5, 12, 11.8, 12.5])).toBe(false);
    expect(looksLikeCounter([5, 5, 5, 5])).toBe(false);
  });
  it('invertSpd inverts symmetric positive definite matrices', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 9, maxLength: 9 }), (m) => {
        // A = M M' + I is SPD.
        const a = new Float64Array(9);
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 3; j++) {
            let s = i === j ? 1 : 0;
            for (let k = 0; k < 3; k++) s += m[i * 3 + k]! * m[j * 3 + k]!;
            a[i * 3 + j] = s;
          }
        const inv = invertSpd(a, 3)!;
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 3; j++) {
            let s = 0;
            for (let k = 0; k < 3; k++) s += a[i * 3 + k]! * inv[k * 3 + j]!;
            expect(s).toBeCloseTo(i === j ? 1 : 0, 6);
          }
      }),
    );
  });
});

describe('model.metrics in the config (the sidecar)', () => {
  it('gives the configured features to stat as named metrics, and refuses names the extractor does not produce', async () => {
    const { parseConfig } = await import('../../src/config/load.js');
    const { createScorer } = await import('../../src/models/scorers/factory.js');
    const { silentLogger } = await import('../../src/log.js');
    const { ForesightError } = await import('../../src/errors.js');
    const scorer = await createScorer(parseConfig({ model: { metrics: ['host.cpu_pct.mean'] } }), silentLogger());
    const n = noise(9);
    const window = 10_000;
    const scores = scorer.score(
      Array.from({ length: 100 }, (_, i) => vec(T0 + i * window, { 'host.cpu_pct.mean': 40 + n() }, window)),
    );
    expect(scores[0]!.warmup).toBe(true);
    expect(scores[99]!.explanation.some((c) => c.feature === 'host.cpu_pct.mean')).toBe(true);
    const err = await createScorer(parseConfig({ model: { metrics: ['no.such.feature'] } }), silentLogger()).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as Error).message).toMatch(/no\.such\.feature/);
  });
});
