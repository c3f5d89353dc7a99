import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rollingZScores, windowedGaussianScores } from '../../src/eval/public/baselines.js';
import {
  loadPublicDataset,
  PUBLIC_SOURCES,
  type PublicDataset,
  parseSeriesCsv,
  parseTimestamp,
  probationRows,
  windowsToRows,
} from '../../src/eval/public/datasets.js';
import {
  averagePrecision,
  bestEarlyDetection,
  earlyDetection,
  NAB_STANDARD,
  positionReward,
  rowLabels,
} from '../../src/eval/public/metrics.js';
import { floorShare, renderPublicMarkdown } from '../../src/eval/public/run.js';
import { STAT, TFJS } from '../../src/eval/public/scorers.js';

describe('average precision', () => {
  it('sums recall gained x precision at each level, by the definition', () => {
    // Ranking: P N P N. Level 1 finds 1 of 2 positives at precision 1/1; level 3 finds the other at 2/3.
    const ap = averagePrecision([0.9, 0.8, 0.7, 0.6], [true, false, true, false]);
    expect(ap).toBeCloseTo((1 / 2) * (1 / 1) + (1 / 2) * (2 / 3), 12);
  });

  it('lets tied rows enter together instead of in a lucky order', () => {
    // Level 1 holds one positive and one negative: recall 1/2 at precision 1/2; level 0 adds the other at 2/3.
    expect(averagePrecision([1, 1, 0], [true, false, true])).toBeCloseTo((1 / 2) * (1 / 2) + (1 / 2) * (2 / 3), 12);
    expect(averagePrecision([1, 1, 0], [false, true, true])).toBeCloseTo((1 / 2) * (1 / 2) + (1 / 2) * (2 / 3), 12);
    // One score for every row: the share of positives, whatever the order.
    expect(averagePrecision([5, 5, 5, 5], [false, false, true, false])).toBeCloseTo(1 / 4, 12);
  });

  it('ignores rows before evalStart, ranks non-finite scores last, and is null without positives', () => {
    // Row 0 (a positive with the top score) is in probation: only rows 1..3 count.
    expect(averagePrecision([9, 0.1, 0.5, 0.2], [true, true, false, false], 1)).toBeCloseTo(1 / 3, 12);
    expect(averagePrecision([Number.NaN, 0.1], [true, false])).toBeCloseTo(1 / 2, 12);
    expect(averagePrecision([1, 2], [false, false])).toBeNull();
    expect(() => averagePrecision([1], [true, false])).toThrow(/length/);
  });

  it('is in [0, 1], 1 for a perfect ranking, and unchanged by a monotone rescaling (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -1000, max: 1000 }), fc.boolean()), { minLength: 1, maxLength: 60 }),
        (pairs) => {
          const scores = pairs.map((p) => p[0]);
          const labels = pairs.map((p) => p[1]);
          const ap = averagePrecision(scores, labels);
          if (!labels.some(Boolean)) return ap === null;
          const perfect = averagePrecision(
            labels.map((l) => (l ? 1 : 0)),
            labels,
          );
          const rescaled = averagePrecision(
            scores.map((s) => 3 * s + 7),
            labels,
          );
          return ap! >= 0 && ap! <= 1 + 1e-12 && Math.abs(perfect! - 1) < 1e-12 && Math.abs(rescaled! - ap!) < 1e-9;
        },
      ),
    );
  });
});

describe('early detection (NAB-style)', () => {
  const windows = [{ start: 10, end: 20 }];
  const spike = (at: number[], n = 40) => Array.from({ length: n }, (_, i) => (at.includes(i) ? 1 : 0));
  const top = positionReward(-1);

  it('gives 100 to an alarm on the first row of every window and none elsewhere', () => {
    const r = earlyDetection(spike([10]), windows, 1);
    expect(r.raw).toBeCloseTo(top, 12);
    expect(r.normalised).toBeCloseTo(100, 9);
    expect(r.delays).toEqual([0]);
  });

  it('rewards earlier alarms more: the reward falls along the window to 0 at its last row', () => {
    const mid = earlyDetection(spike([15]), windows, 1);
    // Row 15 of 10..20: y = 5/10 - 1 = -0.5.
    expect(mid.raw).toBeCloseTo(2 / (1 + Math.exp(-2.5)) - 1, 12);
    const last = earlyDetection(spike([20]), windows, 1);
    expect(last.raw).toBeCloseTo(0, 12);
    // Normalised: (0 - (-1)) / (top - (-1)).
    expect(last.normalised).toBeCloseTo(100 / (top + 1), 9);
    expect(mid.normalised).toBeGreaterThan(last.normalised);
  });

  it('charges A_FP per false alarm and A_FN per missed window; never alarming scores 0', () => {
    const r = earlyDetection(spike([3, 10, 30]), windows, 1);
    expect(r.falseAlarms).toBe(2);
    expect(r.raw).toBeCloseTo(top - 2 * NAB_STANDARD.fp, 12);
    const never = earlyDetection(spike([]), windows, 1);
    expect(never.raw).toBe(-NAB_STANDARD.fn);
    expect(never.normalised).toBe(0);
  });

  it('counts an alarm once while the score stays above the threshold', () => {
    // Above from row 5 to 30: one alarm, raised before the window: a false alarm and a missed window.
    const scores = Array.from({ length: 40 }, (_, i) => (i >= 5 && i <= 30 ? 2 : 0));
    const r = earlyDetection(scores, windows, 1);
    expect(r.alarms).toBe(1);
    expect(r.raw).toBeCloseTo(-NAB_STANDARD.fn - NAB_STANDARD.fp, 12);
  });

  it('ignores alarms in probation and counts a straddling window from evalStart', () => {
    const r = earlyDetection(spike([2, 12]), windows, 1, 12);
    expect(r.falseAlarms).toBe(0);
    expect(r.delays).toEqual([0]);
    expect(r.normalised).toBeCloseTo(100, 9);
  });

  it('finds the best threshold, never below never alarming (property)', () => {
    const scores = Array.from({ length: 40 }, (_, i) => (i === 12 ? 0.9 : i === 30 ? 0.5 : 0.1));
    const best = bestEarlyDetection(scores, windows);
    expect(best.threshold).toBe(0.9);
    expect(best.falseAlarms).toBe(0);
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 25, maxLength: 60 }), (s) => {
        const b = bestEarlyDetection(s, windows);
        return b.normalised >= 0 && b.normalised <= 100 + 1e-9;
      }),
    );
  });
});

describe('baselines', () => {
  /** A deterministic noisy level: 10 ± 1. */
  const noise = (n: number) => Array.from({ length: n }, (_, i) => [10 + Math.sin(i * 1.7) * Math.cos(i * 0.3)]);

  it('rolling z scores a spike far above ordinary rows, 0 before its history, and the largest column', () => {
    const rows = noise(200);
    rows[150] = [30];
    const z = rollingZScores(rows);
    expect(z[5]).toBe(0);
    expect(z[150]).toBeGreaterThan(10);
    expect(Math.max(...Array.from(z.slice(20, 150)))).toBeLessThan(4);
    const two = rollingZScores(rows.map((r, i) => [i === 80 ? 50 : 10 + Math.sin(i * 1.7) * Math.cos(i * 0.3), r[0]!]));
    expect(two[80]).toBeGreaterThan(10);
    expect(two[150]).toBeCloseTo(z[150]!, 9);
  });

  it('windowed Gaussian keeps its fit between refreshes (unlike the rolling window)', () => {
    const rows = [1, 2, 3, 4, 5, 100, 3].map((x) => [x]);
    const g = windowedGaussianScores(rows, { window: 5, step: 5, minHistory: 5 });
    // Row 5 is scored against 1..5: mean 3, variance 11 - 9 = 2.
    expect(g[5]).toBeCloseTo(97 / Math.sqrt(2), 9);
    // Row 6 still uses that fit: 3 is its mean.
    expect(g[6]).toBeCloseTo(0, 9);
    const r = rollingZScores(rows, { window: 5, minHistory: 5 });
    expect(r[6]).toBeGreaterThan(0.4);
  });

  it('are causal: later rows never change earlier scores (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 30, maxLength: 80 }),
        fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (head, tail) => {
          const a = head.map((x) => [x]);
          const b = [...head, ...tail].map((x) => [x]);
          for (const f of [
            (r: number[][]) => rollingZScores(r, { window: 10 }),
            (r: number[][]) => windowedGaussianScores(r, { window: 20, step: 7 }),
          ]) {
            const sa = f(a);
            const sb = f(b);
            for (let i = 0; i < a.length; i++) if (sa[i] !== sb[i]) return false;
          }
          return true;
        },
      ),
    );
  });
});

describe('public data sets and labels', () => {
  it('reads NAB timestamps as UTC and maps windows to the rows they hold', () => {
    expect(parseTimestamp('2014-03-07 03:41:00')).toBe(Date.UTC(2014, 2, 7, 3, 41));
    expect(parseTimestamp('2014-03-14 03:31:00.000000')).toBe(Date.UTC(2014, 2, 14, 3, 31));
    expect(parseTimestamp('1394163660')).toBe(1394163660_000);
    const ts = [0, 10, 20, 30, 40].map((m) => m * 60_000);
    expect(windowsToRows(ts, [[5 * 60_000, 30 * 60_000]], 'x')).toEqual([{ start: 1, end: 3 }]);
    expect(() => windowsToRows(ts, [[11 * 60_000, 19 * 60_000]], 'x')).toThrow(/holds no row/);
    expect(() => windowsToRows(ts, [['soon', 'later']], 'x')).toThrow(/window 0/);
  });

  it('rejects bad CSV rows naming the line, and keeps empty cells as NaN', () => {
    expect(() => parseSeriesCsv('timestamp,value\n2014-01-01 00:00:00,1\nnope,2\n', 'f.csv')).toThrow(/f.csv:3/);
    expect(() => parseSeriesCsv('timestamp,value\n2014-01-01 00:05:00,1\n2014-01-01 00:00:00,2\n', 'f.csv')).toThrow(
      /back in time/,
    );
    const { rows, columns } = parseSeriesCsv('t,a,b\n2014-01-01 00:00:00,1,\n', 'f.csv');
    expect(columns).toEqual(['a', 'b']);
    expect(rows[0]![0]).toBe(1);
    expect(Number.isNaN(rows[0]![1])).toBe(true);
  });

  it('loads every shipped set with its labelled windows, probation and cadence', () => {
    for (const source of PUBLIC_SOURCES) {
      const ds = loadPublicDataset(source);
      expect(ds.evalStart).toBe(probationRows(ds.rows.length));
      expect(ds.windows.length).toBeGreaterThan(0);
      for (const w of ds.windows) expect(w.start).toBeLessThanOrEqual(w.end);
      expect(source.origin).toMatch(/commit [0-9a-f]{40}/);
      expect(source.licence.length).toBeGreaterThan(3);
    }
    const lat = loadPublicDataset(PUBLIC_SOURCES.find((s) => s.name.includes('ec2_request_latency'))!);
    expect(lat.rows.length).toBe(4032);
    expect(lat.cadenceMs).toBe(300_000);
    // The documented failure: latency 99.248 at 2014-03-18 22:41, inside the second labelled window.
    const i = lat.ts.indexOf(Date.UTC(2014, 2, 18, 22, 41));
    expect(lat.rows[i]![0]).toBe(99.248);
    expect(rowLabels(lat.rows.length, lat.windows)[i]).toBe(true);
    expect(lat.ts[lat.windows[0]!.start]).toBe(Date.UTC(2014, 2, 14, 3, 31));
  });
});

/** A synthetic univariate set: noise, then a lasting level shift (rows 300..339) and a one-row spike at 200. */
function synthetic(): PublicDataset {
  const n = 400;
  const rows = Array.from({ length: n }, (_, i) => {
    const base = 50 + 2 * Math.sin(i * 1.3) * Math.cos(i * 0.7);
    return Float64Array.of(i === 200 ? 200 : i >= 300 && i < 340 ? base + 60 : base);
  });
  return {
    source: { ...PUBLIC_SOURCES[0]!, name: 'synthetic' },
    ts: rows.map((_, i) => i * 300_000),
    columns: ['v'],
    rows,
    windows: [{ start: 300, end: 339 }],
    evalStart: 60,
    cadenceMs: 300_000,
  };
}

describe('the product scorers on a CSV stream (adapter)', () => {
  it('stat: scores every row causally (a prefix scores the same), raw at full precision', async () => {
    const ds = synthetic();
    const full = await STAT.score(ds);
    const cut = await STAT.score({ ...ds, rows: ds.rows.slice(0, 250), ts: ds.ts.slice(0, 250) });
    expect(Array.from(cut.raw)).toEqual(Array.from(full.raw.slice(0, 250)));
    expect(full.raw[200]!).toBeGreaterThan(Math.max(...Array.from(full.raw.slice(60, 199))));
  });

  it('stat: a lasting shift reaches the drain threshold, a one-row spike stays capped by persistence', async () => {
    const s = await STAT.score(synthetic());
    expect(s.operatingThreshold).toBe(0.8);
    expect(s.risk![200]).toBeLessThanOrEqual(0.5);
    expect(Math.max(...Array.from(s.risk!.slice(300, 340)))).toBeGreaterThanOrEqual(0.8);
    expect(Math.max(...Array.from(s.risk!.slice(60, 199)))).toBeLessThan(0.8);
  });

  it('tfjs: trained on probation rows, reconstructs the shifted rows worse than ordinary ones', async () => {
    // The product trains on at least 50 rows and calibrates on at least 20: a longer probation than the default 60.
    const ds = { ...synthetic(), evalStart: 150 };
    const s = await TFJS.score(ds);
    const mean = (a: Float64Array) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(s.raw.slice(310, 340))).toBeGreaterThan(5 * mean(s.raw.slice(100, 190)));
    for (const r of s.risk!) expect(r >= 0 && r <= 1).toBe(true);
  });
});

describe('report', () => {
  it('names origin, licence and whether stat is ahead of both baselines', () => {
    const md = renderPublicMarkdown([
      {
        source: PUBLIC_SOURCES[0]!,
        rows: 10,
        columns: 1,
        evalStart: 1,
        windows: 1,
        positiveRate: 0.2,
        cadenceS: 300,
        results: [
          { detector: 'stat', ap: 0.3, best: null, operating: null, atFloor: 0.9, seconds: 0, error: null },
          { detector: 'rolling-z', ap: 0.5, best: null, operating: null, atFloor: 0, seconds: 0, error: null },
          { detector: 'windowed-gaussian', ap: 0.2, best: null, operating: null, atFloor: 0, seconds: 0, error: null },
        ],
      },
    ]);
    expect(md).toContain(PUBLIC_SOURCES[0]!.licence);
    expect(md).toContain('AP: stat NOT ahead of rolling-z');
    expect(md).toContain('| 90.0 % |');
    // Rows 1..4 count: two of the four sit at the lowest score (0).
    expect(floorShare([-5, 0, 3, 0, 1], 1)).toBe(2 / 4);
    // The side-by-side row: data set, random AP, then AP per detector in table order (tfjs has no result: n/a).
    expect(md).toContain(`| ${PUBLIC_SOURCES[0]!.name} | 0.200 | 0.300 | n/a | 0.500 | 0.200 |`);
  });
});
