import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ForesightError } from '../../src/errors.js';
import { FEATURE_NAMES, FeatureExtractor } from '../../src/features/index.js';
import { type SyntheticOptions, syntheticTicks } from '../../src/features/synthetic.js';
import type { FeatureVector, NodeScore } from '../../src/messages.js';
import { NullScorer, RandomScorer } from '../../src/models/scorers/baselines.js';
import { enforceScoreContract, type Scorer } from '../../src/models/scorers/scorer.js';
import { queueGrowsSteadily, StatScorer } from '../../src/models/scorers/stat-scorer.js';
import { forecastExhaustion, timeToLimitS } from '../../src/models/scorers/trend.js';

const T0 = Date.UTC(2024, 0, 1, 8);
const NODES = ['s1', 's2', 's3', 's4', 's5', 's6'];

function vector(features: Record<string, number>, observed = true): FeatureVector {
  return {
    nodeId: 'n1',
    setId: 1,
    windowStart: T0,
    windowEnd: T0 + 10_000,
    sampleCount: observed ? 1 : 0,
    observed,
    features,
    evidence: { calls: null, upReported: null, probe: null },
  };
}

/** Window `i` (10 s each from T0) of node n1 with `features`. */
function windowAt(i: number, features: Record<string, number>): FeatureVector {
  return { ...vector(features), windowStart: T0 + i * 10_000, windowEnd: T0 + (i + 1) * 10_000 };
}

/** A scorer that returns whatever it is told, to exercise the contract wrapper. */
function fixed(patch: Partial<NodeScore>): Scorer {
  return {
    name: 'fixed',
    score: (vectors) =>
      vectors.map((v) => ({
        nodeId: v.nodeId,
        setId: v.setId,
        ts: v.windowEnd,
        risk: 0.5,
        timeToFailureS: null,
        explanation: [],
        scorer: 'fixed',
        observed: v.observed,
        activeCalls: 0,
        activeCallsSource: 'ami',
        evidence: { calls: { count: 0, source: 'ami' }, upReported: true, probe: null },
        up: true,
        ...patch,
      })),
  };
}

/** Runs synthetic telemetry through the extractor and the stat scorer; returns every score after warm-up. */
function simulate(options: Omit<SyntheticOptions, 'nodes' | 'startMs'>, scorer = new StatScorer()): NodeScore[] {
  const fx = new FeatureExtractor({ nodes: NODES.map((nodeId) => ({ nodeId })) });
  const scores: NodeScore[] = [];
  for (const tick of syntheticTicks({ nodes: NODES, startMs: T0, ...options })) {
    for (const s of enforceScoreContract(scorer).score(fx.ingest(tick))) if (s.ts - T0 > 700_000) scores.push(s);
  }
  return scores;
}

const tS = (s: NodeScore) => (s.ts - T0) / 1000;

describe('score contract', () => {
  it('rejects NaN, out-of-range risk, bad time to failure and a wrong count with FORESIGHT_ERR_MODEL', () => {
    const vs = [vector({})];
    for (const patch of [
      { risk: Number.NaN },
      { risk: -0.01 },
      { risk: 1.0001 },
      { risk: Number.POSITIVE_INFINITY },
      { timeToFailureS: -5 },
      { timeToFailureS: Number.NaN },
    ]) {
      const err = (() => {
        try {
          enforceScoreContract(fixed(patch)).score(vs);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err, JSON.stringify(patch)).toBeInstanceOf(ForesightError);
      expect((err as ForesightError).code).toBe('FORESIGHT_ERR_MODEL');
    }
    const short: Scorer = { name: 'short', score: () => [] };
    expect(() => enforceScoreContract(short).score(vs)).toThrow(ForesightError);
    const throwing: Scorer = {
      name: 'boom',
      score: () => {
        throw new TypeError('x is undefined');
      },
    };
    expect(() => enforceScoreContract(throwing).score(vs)).toThrow(/boom failed/);
    expect(enforceScoreContract(fixed({ risk: 1, timeToFailureS: 0 })).score(vs)[0]!.risk).toBe(1);
  });

  it('baselines: null is always 0, random is seeded and in [0, 1], unobserved is 0', () => {
    const vs = Array.from({ length: 50 }, (_, i) => ({
      ...vector({ 'channels.active.last': 7, 'node.up.last': 1 }),
      evidence: { calls: { count: 7, source: 'ami' as const }, upReported: true, probe: null },
      nodeId: `n${i}`,
    }));
    const nul = enforceScoreContract(new NullScorer()).score(vs);
    expect(nul.every((s) => s.risk === 0 && s.activeCalls === 7 && s.up)).toBe(true);
    const a = new RandomScorer(3).score(vs).map((s) => s.risk);
    const b = new RandomScorer(3).score(vs).map((s) => s.risk);
    const c = new RandomScorer(4).score(vs).map((s) => s.risk);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a.every((r) => r >= 0 && r < 1)).toBe(true);
    expect(new Set(a).size).toBeGreaterThan(40);
    expect(new RandomScorer(3).score([vector({}, false)])[0]).toMatchObject({ risk: 0, observed: false });
  });
});

describe('trend forecasts', () => {
  it('computes linear time to a limit and declines without growth', () => {
    expect(timeToLimitS(1000, 50, 4000)).toBeCloseTo(3600, 9);
    expect(timeToLimitS(5000, 50, 4000)).toBe(0);
    expect(timeToLimitS(1000, 0, 4000)).toBeNull();
    expect(timeToLimitS(1000, -3, 4000)).toBeNull();
    expect(timeToLimitS(1000, 0.2, 4000, 0.5)).toBeNull();
    expect(timeToLimitS(Number.NaN, 1, 4000)).toBeNull();
    const fcs = forecastExhaustion(
      {
        'host.memory_rss_mb.last': 3000,
        'slope.memory_rss_mb_per_min': 100,
        'db.query_ms.p95': 100,
        'slope.db_query_p95_per_min': 300,
      },
      { memoryLimitMb: 4000, queueLimit: 500, dbQueryLimitMs: 1000, inviteSetupLimitMs: 3000 },
    );
    expect(fcs.map((f) => [f.kind, f.timeToLimitS])).toEqual([
      ['db_latency', 180],
      ['memory', 600],
    ]);
  });
});

describe('StatScorer', () => {
  it('keeps risk in [0, 1] and time to failure valid for arbitrary finite features', () => {
    const names = [...FEATURE_NAMES];
    fc.assert(
      fc.property(
        // One optional value per feature name; huge magnitudes included.
        fc.array(fc.option(fc.double({ noNaN: true, noDefaultInfinity: true })), {
          minLength: names.length,
          maxLength: names.length,
        }),
        fc.boolean(),
        (values, observed) => {
          const features: Record<string, number> = {};
          values.forEach((v, i) => {
            if (v !== null) features[names[i]!] = v;
          });
          const [s] = enforceScoreContract(new StatScorer()).score([vector(features, observed)]);
          expect(s!.risk).toBeGreaterThanOrEqual(0);
          expect(s!.risk).toBeLessThanOrEqual(1);
          if (!observed) expect(s!.risk).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('gives unobserved vectors risk 0 and observed=false', () => {
    const [s] = new StatScorer().score([vector({ 'z.self.retrans_rate': 40, 'peers.observed': 0 }, false)]);
    expect(s).toMatchObject({ risk: 0, observed: false, timeToFailureS: null, up: false });
  });

  it('flags a memory leak ramp with a time to failure near the truth', () => {
    const crashS = 4800;
    const scores = simulate({
      durationS: 5000,
      incidents: [{ nodeId: 's3', kind: 'memory_leak', onsetS: 1200, crashS }],
    });
    const leaking = scores.filter((s) => s.nodeId === 's3' && s.observed);
    const firstHigh = leaking.find((s) => s.risk > 0.8);
    expect(firstHigh).toBeDefined();
    // Several windows (here: minutes) of warning before the OOM.
    expect(crashS - tS(firstHigh!)).toBeGreaterThan(300);
    for (const s of leaking.filter((x) => tS(x) > 2400)) {
      const truth = crashS - tS(s);
      expect(s.timeToFailureS).not.toBeNull();
      expect(Math.abs(s.timeToFailureS! - truth)).toBeLessThan(0.1 * truth + 30);
    }
    expect(firstHigh!.explanation[0]!.feature).toBe('forecast.memory_s');
    const healthyMax = Math.max(...scores.filter((s) => s.nodeId !== 's3').map((s) => s.risk));
    expect(healthyMax).toBeLessThan(0.3);
  });

  it.each([
    ['db_degradation', 'db.query_ms.p95'],
    ['retransmission_storm', 'sip.retransmissions.rate'],
    ['taskprocessor_backlog', 'sip.invite_setup_ms.p95'],
  ] as const)('flags a %s precursor before the failure', (kind, feature) => {
    const onsetS = 1800;
    const crashS = 2100;
    const scores = simulate({ durationS: 2400, incidents: [{ nodeId: 's2', kind, onsetS, crashS }] });
    const before = scores.filter((s) => s.nodeId === 's2' && s.observed && tS(s) <= crashS);
    const high = before.filter((s) => s.risk > 0.8);
    expect(high.length).toBeGreaterThan(3);
    expect(tS(high[0]!)).toBeLessThan(crashS - 60);
    expect(high[0]!.explanation.map((e) => e.feature)).toContain(feature);
    expect(Math.max(...before.filter((s) => tS(s) <= onsetS).map((s) => s.risk))).toBeLessThan(0.3);
    expect(Math.max(...scores.filter((s) => s.nodeId !== 's2').map((s) => s.risk))).toBeLessThan(0.3);
  });

  it('keeps healthy nodes low through cluster-wide disturbances and busy hours', () => {
    const scores = simulate({
      durationS: 4000,
      load: (t) => 1 + 3 * Math.sin((Math.PI * t) / 4000) ** 2,
      disturbances: [
        { startS: 1500, endS: 1560, latencyFactor: 5, retransPerS: 15 },
        { startS: 2500, endS: 2700, latencyFactor: 10, retransPerS: 40 },
      ],
    });
    expect(scores.length).toBeGreaterThan(1000);
    expect(Math.max(...scores.map((s) => s.risk))).toBeLessThan(0.3);
  });

  it('needs evidence to persist: a burst shorter than persistWindows never goes above 0.5, a lasting one does', () => {
    const burst = (windows: number, signal = 'db_query_p95', total = 30) => {
      const scorer = new StatScorer();
      const risks: number[] = [];
      for (let i = 0; i < total; i++) {
        const hot = i >= 5 && i < 5 + windows;
        const features = {
          'peers.observed': 3,
          'db.query_ms.count': 20,
          [`z.self.${signal}`]: hot ? 40 : 0,
          [`z.peer.${signal}`]: hot ? 40 : 0,
        };
        const v = windowAt(i, features);
        risks.push(scorer.score([v])[0]!.risk);
      }
      return risks;
    };
    expect(Math.max(...burst(6))).toBeLessThanOrEqual(0.5);
    const lasting = burst(12);
    expect(lasting.slice(0, 11).every((r) => r <= 0.5)).toBe(true);
    expect(lasting.slice(12, 17).every((r) => r > 0.99)).toBe(true);
    // A redelivered window does not count twice toward persistence.
    const scorer = new StatScorer();
    const hot = vector({
      'peers.observed': 3,
      'db.query_ms.count': 20,
      'z.self.db_query_p95': 40,
      'z.peer.db_query_p95': 40,
    });
    for (let i = 0; i < 20; i++) expect(scorer.score([hot])[0]!.risk).toBeLessThanOrEqual(0.5);
  });

  it('persistence is a time: with 1 s windows evidence must last a minute, not six windows', () => {
    const run = (windowMs: number | undefined, hotWindows: number, total: number) => {
      const scorer = new StatScorer(windowMs === undefined ? {} : { windowMs });
      return Array.from({ length: total }, (_, i) => {
        const hot = i >= 5 && i < 5 + hotWindows;
        const v = windowAt(i, {
          'peers.observed': 3,
          'db.query_ms.count': 20,
          'z.self.db_query_p95': hot ? 40 : 0,
          'z.peer.db_query_p95': hot ? 40 : 0,
        });
        return scorer.score([v])[0]!.risk;
      });
    };
    // Thirty 1 s windows: half a minute, never acted on; at 10 s windows the same count is five minutes and acts.
    expect(Math.max(...run(1000, 30, 40))).toBeLessThanOrEqual(0.5);
    expect(Math.max(...run(undefined, 30, 40))).toBeGreaterThan(0.99);
    const lasting = run(1000, 70, 80);
    expect(lasting.slice(0, 5 + 60).every((r) => r <= 0.5)).toBe(true);
    expect(lasting.slice(5 + 61, 75).every((r) => r > 0.99)).toBe(true);
    expect(() => new StatScorer({ windowMs: 0 })).toThrow(/windowMs/);
  });

  it('unobserved windows hold the persistence streak (absence of evidence is no recovery), up to a minute', () => {
    const hotFeatures = {
      'peers.observed': 3,
      'db.query_ms.count': 20,
      'z.self.db_query_p95': 40,
      'z.peer.db_query_p95': 40,
    };
    /** 4 hot windows, `gap` unobserved ones (a takeover, a collector outage), then hot windows again. */
    const run = (gap: number) => {
      const scorer = new StatScorer();
      const risks: number[] = [];
      for (let i = 0; i < 4 + gap + 8; i++) {
        const v = windowAt(i, hotFeatures);
        const unobserved = i >= 4 && i < 4 + gap;
        risks.push(scorer.score([unobserved ? { ...v, observed: false } : v])[0]!.risk);
      }
      return risks.slice(4 + gap);
    };
    // 6 windows of 10 s must persist: 4 before a 30 s gap count, so the 3rd hot window after it acts.
    const held = run(3);
    expect(held.slice(0, 2).every((r) => r <= 0.5)).toBe(true);
    expect(held[2]).toBeGreaterThan(0.99);
    // After a gap longer than a minute the earlier evidence is too old: persistence starts over (7 windows).
    const over = run(8);
    expect(over.slice(0, 6).every((r) => r <= 0.5)).toBe(true);
    expect(over[6]).toBeGreaterThan(0.99);
  });

  it('stall evidence alone (queue) must persist longer: two hiccups back to back are not a backlog', () => {
    const run = (hotWindows: (i: number) => boolean, total = 40) => {
      const scorer = new StatScorer();
      const risks: number[] = [];
      for (let i = 0; i < total; i++) {
        const hot = hotWindows(i);
        const features = {
          'peers.observed': 3,
          'taskprocessor.max_queue.max': hot ? 300 : 12,
          'z.self.max_queue': hot ? 40 : 0,
          'z.peer.max_queue': hot ? 40 : 0,
          'z.self.cpu_pct': hot ? 8 : 0,
          'z.peer.cpu_pct': hot ? 8 : 0,
        };
        const v = windowAt(i, features);
        risks.push(scorer.score([v])[0]!.risk);
      }
      return risks;
    };
    // One 12-window stall, and two stalls with a two-window gap (~2.3 min in all): never above 0.5.
    expect(Math.max(...run((i) => i >= 5 && i < 17))).toBeLessThanOrEqual(0.5);
    expect(Math.max(...run((i) => (i >= 5 && i < 12) || (i >= 14 && i < 22)))).toBeLessThanOrEqual(0.5);
    // A queue that stays long is acted on once it has lasted more than stallPersistWindows (12).
    const lasting = run((i) => i >= 5);
    expect(lasting.slice(0, 17).every((r) => r <= 0.5)).toBe(true);
    expect(lasting.slice(18).every((r) => r > 0.99)).toBe(true);
  });

  it('acts after 3 windows on corroborated packet-path evidence, after 7 on a single packet signal', () => {
    /** Index of the first window above 0.5 with `signals` standing out (own and peer z 40). */
    const firstAction = (signals: string[], jitterCount = 30) => {
      const scorer = new StatScorer();
      for (let i = 0; i < 12; i++) {
        const features: Record<string, number> = { 'peers.observed': 3, 'rtcp.jitter_ms.count': jitterCount };
        for (const name of signals) {
          features[`z.self.${name}`] = 40;
          features[`z.peer.${name}`] = 40;
        }
        if (scorer.score([windowAt(i, features)])[0]!.risk > 0.5) return i;
      }
      return -1;
    };
    expect(firstAction(['loss_pct', 'retrans_rate'])).toBe(2);
    expect(firstAction(['loss_pct', 'jitter_p95'])).toBe(2);
    expect(firstAction(['loss_pct'])).toBe(6);
    // A jitter percentile carried through a window without RTCP reports is no corroboration.
    expect(firstAction(['loss_pct', 'jitter_p95'], 0)).toBe(6);
  });

  it('forgets a long streak within a few quiet minutes: a hiccup after a long failure is not acted on at once', () => {
    const scorer = new StatScorer();
    const risks: number[] = [];
    const window = (i: number, features: Record<string, number>) =>
      windowAt(i, { 'peers.observed': 3, 'db.query_ms.count': 20, ...features });
    let i = 0;
    // 15 min of a failing DB, then 5 quiet minutes (the restart), then a 60 s stall of the queue alone.
    for (; i < 90; i++) scorer.score([window(i, { 'z.self.db_query_p95': 40, 'z.peer.db_query_p95': 40 })]);
    for (; i < 120; i++) scorer.score([window(i, {})]);
    for (; i < 126; i++) {
      const stall = { 'z.self.max_queue': 40, 'z.peer.max_queue': 40, 'taskprocessor.max_queue.max': 300 };
      risks.push(scorer.score([window(i, stall)])[0]!.risk);
    }
    expect(risks.every((r) => r <= 0.5)).toBe(true);
  });

  it('a steadily growing queue acts after the short persistence; two hiccups with a return to baseline do not', () => {
    /** Stall evidence only (queue and CPU); `level(i)` is the window's mean queue, null for a quiet window. */
    const run = (level: (i: number) => number | null, total = 30) => {
      const scorer = new StatScorer();
      const risks: number[] = [];
      for (let i = 0; i < total; i++) {
        const q = level(i);
        const hot = q !== null;
        const features = {
          'peers.observed': 3,
          'taskprocessor.max_queue.mean': q ?? 12,
          'taskprocessor.max_queue.max': (q ?? 12) * 1.1,
          'z.self.max_queue': hot ? 40 : 0,
          'z.peer.max_queue': hot ? 40 : 0,
          'z.self.cpu_pct': hot ? 8 : 0,
          'z.peer.cpu_pct': hot ? 8 : 0,
        };
        const v = windowAt(i, features);
        risks.push(scorer.score([v])[0]!.risk);
      }
      return risks;
    };
    const firstAbove = (risks: number[]) => risks.findIndex((r) => r > 0.5);
    // A backlog: +8 % per window from 100 tasks, one noisy dip. Acted on at its 7th window (index 5 + 6), not the 13th.
    const growth = [100, 108, 117, 115, 128, 139, 150, 162, 175, 189, 204, 220, 238, 257, 278];
    expect(firstAbove(run((i) => (i >= 5 && i - 5 < growth.length ? growth[i - 5]! : i >= 5 ? 300 : null)))).toBe(11);
    // Two hiccups: a plateau, back to baseline for one window, a higher plateau. Same length of evidence, no shortcut.
    const hiccups = (i: number) => (i >= 5 && i < 10 ? 120 : i === 10 ? 14 : i >= 11 && i < 17 ? 280 : null);
    expect(Math.max(...run(hiccups))).toBeLessThanOrEqual(0.5);
    // The gap hidden inside one window (a dip, not a quiet window) and two plateaus with noise: still no shortcut.
    const plateaus = [120, 126, 118, 124, 60, 281, 275, 290, 279, 284, 276];
    expect(Math.max(...run((i) => (i >= 5 && i - 5 < plateaus.length ? plateaus[i - 5]! : null)))).toBeLessThanOrEqual(
      0.5,
    );
    // Without the shortcut the growing queue waits for stallPersistWindows (12).
    const slow = new StatScorer({ growthShortcut: false });
    const slowRisks = growth.map((q, i) => {
      const f = {
        'peers.observed': 3,
        'taskprocessor.max_queue.mean': q,
        'z.self.max_queue': 40,
        'z.peer.max_queue': 40,
      };
      return slow.score([windowAt(i, f)])[0]!.risk;
    });
    expect(firstAbove(slowRisks)).toBe(12);
  });

  it('queueGrowsSteadily: growth with one noisy step passes; plateaus, returns to baseline and flat series fail', () => {
    expect(queueGrowsSteadily([100, 108, 117, 115, 128, 139, 150])).toBe(true);
    expect(queueGrowsSteadily([120, 126, 118, 124, 281, 275, 290])).toBe(false);
    expect(queueGrowsSteadily([120, 130, 140, 14, 150, 160, 170])).toBe(false);
    expect(queueGrowsSteadily([100, 101, 102, 103, 104, 105, 106])).toBe(false);
    expect(queueGrowsSteadily([100, 110, Number.NaN, 130, 140, 150, 160])).toBe(false);
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { minLength: 3, maxLength: 12 }), (xs) => {
        // A series that ends no higher than it starts is never growth.
        const flat = [...xs, xs[0]!];
        expect(queueGrowsSteadily(flat)).toBe(false);
      }),
    );
  });

  it('flags a leak by its slope against peers even when the own baseline has learnt the slope', () => {
    const scorer = new StatScorer({ persistWindows: 0 });
    const leak = {
      'peers.observed': 3,
      'host.memory_rss_mb.last': 1300,
      'slope.memory_rss_mb_per_min': 20,
      'z.self.memory_slope': 0.7,
      'z.peer.memory_slope': 17,
    };
    const [s] = scorer.score([vector(leak)]);
    // (2048 - 1300) / 20 min = 2244 s to the OOM: early enough to drain and let the calls finish.
    expect(s!.timeToFailureS).toBeCloseTo(2244, 0);
    expect(s!.risk).toBeGreaterThan(0.8);
    expect(s!.explanation[0]!.feature).toBe('forecast.memory_s');
    // The same slope shared by every peer (a load ramp) is not evidence.
    const [shared] = scorer.score([vector({ ...leak, 'z.peer.memory_slope': 0.5 })]);
    expect(shared!.risk).toBeLessThan(0.1);
  });

  it('ignores a latency percentile carried through a window without measurements', () => {
    const scorer = new StatScorer({ persistWindows: 0, stallPersistWindows: 0 });
    const slow = { 'peers.observed': 3, 'z.self.invite_setup_p95': 30, 'z.peer.invite_setup_p95': 30 };
    expect(scorer.score([vector({ ...slow, 'sip.invite_setup_ms.count': 4 })])[0]!.risk).toBeGreaterThan(0.8);
    expect(scorer.score([vector({ ...slow, 'sip.invite_setup_ms.count': 0 })])[0]!.risk).toBeLessThan(0.1);
  });

  it('reports activeCalls with its source from the window evidence, and null when nothing counted them', () => {
    const counted = {
      ...vector({ 'channels.active.last': 42, 'node.up.last': 0 }),
      evidence: { calls: { count: 42, source: 'sip' as const }, upReported: false, probe: null },
    };
    const [s] = new StatScorer().score([counted]);
    expect(s).toMatchObject({
      activeCalls: 42,
      activeCallsSource: 'sip',
      up: false,
      observed: true,
      scorer: 'stat-v1',
    });
    // A carried-forward feature is no count: without evidence the calls are unknown, not 42 and not 0.
    const [u] = new StatScorer().score([{ ...vector({ 'channels.active.last': 42 }), windowStart: T0 + 10_000 }]);
    expect(u).toMatchObject({ activeCalls: null, activeCallsSource: null });
  });

  it('rejects a non-positive limit', () => {
    expect(() => new StatScorer({ limits: { memoryLimitMb: 0 } })).toThrow(ForesightError);
  });
});
