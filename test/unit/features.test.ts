import fc from 'fast-check';
import { quantile } from 'simple-statistics';
import { describe, expect, it } from 'vitest';
import {
  FEATURE_DOCS,
  FEATURE_NAMES,
  FeatureExtractor,
  featureArray,
  type RejectReason,
} from '../../src/features/index.js';
import { syntheticTicks } from '../../src/features/synthetic.js';
import {
  type FeatureVector,
  METRICS,
  type MetricName,
  MODEL_METRIC_NAMES,
  type TelemetrySample,
  type WindowEvidence,
} from '../../src/messages.js';

const W = 10_000;
const LATENESS = 2000;
const T0 = Date.UTC(2024, 0, 1, 12);

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

/** The obvious, slow aggregation: group by node and window, then compute each aggregate from the raw list. */
function reference(arrivals: TelemetrySample[], nodeId: string, windowStart: number, carry: Map<string, number>) {
  const out = new Map<string, number>();
  const all = arrivals.filter((s) => s.nodeId === nodeId && s.ts >= windowStart && s.ts < windowStart + W);
  const evidence = referenceEvidence(all);
  // Evidence-only samples (Foresight's probes, its dialog count) do not make a window observed.
  const inWindow = all.filter((s) => MODEL_METRIC_NAMES.includes(s.metric));
  if (inWindow.length === 0) return { features: out, count: 0, evidence };
  // node.up going from below 0.5 to at least 0.5 between observed windows is a restart: carried values are forgotten.
  const ups = inWindow.filter((s) => s.metric === 'node.up');
  let up = carry.get('node.up') ?? 1;
  if (ups.length > 0) up = ups.reduce((last, s) => (s.ts >= last.ts ? s : last)).value;
  if (up >= 0.5 && carry.get('down') === 1) carry.clear();
  carry.set('down', up >= 0.5 ? 0 : 1);
  for (const metric of MODEL_METRIC_NAMES) {
    const values = inWindow.filter((s) => s.metric === metric);
    const kind = METRICS[metric].kind;
    if (kind === 'counter') {
      out.set(`${metric}.rate`, values.reduce((a, s) => a + s.value, 0) / (W / 1000));
    } else if (kind === 'gauge') {
      if (values.length === 0) {
        const c = carry.get(metric) ?? (metric === 'node.up' ? 1 : 0);
        for (const agg of ['last', 'mean', 'max']) out.set(`${metric}.${agg}`, c);
        continue;
      }
      let last = values[0]!;
      for (const s of values) if (s.ts >= last.ts) last = s;
      out.set(`${metric}.last`, last.value);
      out.set(`${metric}.mean`, values.reduce((a, s) => a + s.value, 0) / values.length);
      out.set(`${metric}.max`, Math.max(...values.map((s) => s.value)));
      carry.set(metric, last.value);
    } else {
      out.set(`${metric}.count`, values.length);
      if (values.length > 0) {
        const raw = values.map((s) => s.value);
        carry.set(`${metric}.p50`, quantile(raw, 0.5));
        carry.set(`${metric}.p95`, quantile(raw, 0.95));
        carry.set(`${metric}.max`, Math.max(...raw));
      }
      for (const agg of ['p50', 'p95', 'max']) out.set(`${metric}.${agg}`, carry.get(`${metric}.${agg}`) ?? 0);
    }
  }
  return { features: out, count: inWindow.length, evidence };
}

/** The evidence a window reported: latest counts and liveness, summed probes; null for what nobody said. */
function referenceEvidence(inWindow: TelemetrySample[]): WindowEvidence {
  const latest = (metric: MetricName) =>
    inWindow
      .filter((s) => s.metric === metric)
      .reduce<TelemetrySample | null>((l, s) => (l === null || s.ts >= l.ts ? s : l), null);
  const ami = latest('channels.active');
  const sip = latest('sip.dialogs_active');
  const seen = latest('sip.dialogs_seen');
  const up = latest('node.up');
  const sum = (metric: MetricName) => inWindow.filter((s) => s.metric === metric).reduce((a, s) => a + s.value, 0);
  const rtts = inWindow
    .filter((s) => s.metric === 'probe.options_rtt_ms')
    .map((s) => s.value)
    .sort((a, b) => a - b);
  const sent = sum('probe.options_sent');
  const lost = sum('probe.options_lost');
  return {
    calls: ami
      ? { count: Math.max(0, ami.value), source: 'ami' }
      : sip
        ? { count: Math.max(0, sip.value), source: 'sip' }
        : seen && seen.value > 0
          ? { count: seen.value, source: 'sip' }
          : null,
    upReported: up ? up.value >= 0.5 : null,
    probe:
      sent > 0 || lost > 0
        ? {
            sent,
            lost,
            replies5xx: sum('probe.options_5xx'),
            rttMsP50: rtts.length ? rtts[(rtts.length - 1) >> 1]! : null,
          }
        : null,
  };
}

const NODES = ['n1', 'n2', 'n3'];
const METRIC_POOL: MetricName[] = [
  'calls.started',
  'sip.retransmissions',
  'channels.active',
  'host.memory_rss_mb',
  'node.up',
  'sip.invite_setup_ms',
  'db.query_ms',
  'sip.dialogs_active',
  'sip.dialogs_seen',
  'probe.options_sent',
  'probe.options_lost',
  'probe.options_rtt_ms',
];

const sampleArb = fc.record({
  nodeId: fc.constantFrom(...NODES),
  // Coarse timestamps so that equal event times (tie-breaks of "last") are common.
  offset: fc.integer({ min: 0, max: 600 }).map((x) => x * 100),
  delay: fc.integer({ min: 0, max: LATENESS - 1 }),
  metric: fc.constantFrom(...METRIC_POOL),
  value: fc.double({ min: -1e6, max: 1e6, noNaN: true }),
});

describe('FeatureExtractor window aggregation', () => {
  it('matches a naive reference on random streams, out of order within the lateness', () => {
    fc.assert(
      fc.property(
        fc.array(sampleArb, { minLength: 1, maxLength: 300, size: 'max' }),
        fc.integer({ min: 1, max: 50 }),
        (raw, batch) => {
          // Arrival order = event time + a delay below the lateness: every sample must still find its window open.
          const arrivals: TelemetrySample[] = raw
            .map((r, i) => ({ r, i, key: r.offset + r.delay }))
            .sort((a, b) => a.key - b.key || a.i - b.i)
            .map(({ r }) => ({ nodeId: r.nodeId, ts: T0 + r.offset, metric: r.metric, value: r.value, source: 'sim' }));
          const fx = new FeatureExtractor({ nodes: [...NODES, 'silent'].map((nodeId) => ({ nodeId })) });
          const vectors: FeatureVector[] = [];
          for (let i = 0; i < arrivals.length; i += batch) vectors.push(...fx.ingest(arrivals.slice(i, i + batch)));
          vectors.push(...fx.advance(T0 + 200_000));
          expect(fx.stats().accepted).toBe(arrivals.length);

          const carries = new Map(NODES.map((n) => [n, new Map<string, number>()]));
          const seen = new Set<string>();
          for (const v of vectors) {
            expect(v.windowEnd - v.windowStart).toBe(W);
            expect(v.windowStart % W).toBe(0);
            const key = `${v.nodeId}@${v.windowStart}`;
            expect(seen.has(key)).toBe(false);
            seen.add(key);
            if (v.nodeId === 'silent') {
              expect(v.observed).toBe(false);
              continue;
            }
            const ref = reference(arrivals, v.nodeId, v.windowStart, carries.get(v.nodeId)!);
            expect(v.sampleCount).toBe(ref.count);
            expect(v.observed).toBe(ref.count > 0);
            expect({ key, evidence: v.evidence }).toEqual({ key, evidence: ref.evidence });
            if (!v.observed) continue;
            for (const [name, want] of ref.features) {
              if (!close(v.features[name]!, want))
                expect({ key, name, got: v.features[name] }).toEqual({ key, name, got: want });
            }
          }
          // Every sample landed in exactly one emitted, observed window.
          for (const s of arrivals) expect(seen.has(`${s.nodeId}@${s.ts - (s.ts % W)}`)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reports late, future, non-finite, unknown and malformed samples instead of dropping them', () => {
    const badArb = fc.oneof(
      fc.record({ kind: fc.constant('ok' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
      fc.record({ kind: fc.constant('nan' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
      fc.record({ kind: fc.constant('inf' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
      fc.record({ kind: fc.constant('old' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
      fc.record({ kind: fc.constant('jump' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
      fc.record({ kind: fc.constant('metric' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
      fc.record({ kind: fc.constant('junk' as const), offset: fc.integer({ min: 0, max: 120_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(badArb, { minLength: 1, maxLength: 200, size: 'max' }), (items) => {
        const reported: Array<{ sample: unknown; reason: RejectReason }> = [];
        const fx = new FeatureExtractor({
          maxFutureSkewMs: 60_000,
          onRejected: (sample, reason) => reported.push({ sample, reason }),
        });
        // Anchor the clock so "old" and "jump" are unambiguous.
        fx.ingest([{ nodeId: 'n1', ts: T0 + 200_000, metric: 'calls.started', value: 1, source: 'sim' }]);
        const input: unknown[] = items.map(({ kind, offset }) => {
          const ts = T0 + 200_000 + (offset % 1000);
          switch (kind) {
            case 'ok':
              return { nodeId: 'n1', ts, metric: 'calls.started', value: 1, source: 'sim' };
            case 'nan':
              return { nodeId: 'n1', ts, metric: 'host.cpu_pct', value: Number.NaN, source: 'sim' };
            case 'inf':
              return { nodeId: 'n1', ts, metric: 'db.query_ms', value: Number.POSITIVE_INFINITY, source: 'sim' };
            case 'old':
              return { nodeId: 'n1', ts: T0 + offset - 100_000, metric: 'calls.started', value: 1, source: 'sim' };
            case 'jump':
              return { nodeId: 'n1', ts: T0 + 10_000_000 + offset, metric: 'calls.started', value: 1, source: 'sim' };
            case 'metric':
              return { nodeId: 'n1', ts, metric: 'calls.bogus', value: 1, source: 'sim' };
            default:
              return offset % 2 === 0 ? null : { nodeId: 42, ts: 'yesterday' };
          }
        });
        fx.ingest(input as TelemetrySample[]);
        const stats = fx.stats();
        const rejected = Object.values(stats.rejected).reduce((a, b) => a + b, 0);
        expect(stats.accepted + rejected).toBe(input.length + 1);
        expect(reported.length).toBe(rejected);
        const expected: Record<string, RejectReason> = {
          nan: 'non_finite',
          inf: 'non_finite',
          old: 'late',
          jump: 'future',
          metric: 'unknown_metric',
          junk: 'malformed',
        };
        const wanted = items.filter((i) => i.kind !== 'ok').map((i) => expected[i.kind]);
        expect(reported.map((r) => r.reason)).toEqual(wanted);
        expect(stats.accepted).toBe(1 + items.filter((i) => i.kind === 'ok').length);
      }),
      { numRuns: 100 },
    );
  });

  it('keeps rejects for takeRejected() when no callback is set', () => {
    const fx = new FeatureExtractor();
    fx.ingest([{ nodeId: 'n1', ts: T0, metric: 'host.cpu_pct', value: Number.NaN, source: 'sim' }]);
    expect(fx.takeRejected()).toEqual([{ sample: expect.objectContaining({ nodeId: 'n1' }), reason: 'non_finite' }]);
    expect(fx.takeRejected()).toEqual([]);
  });

  it('a clock jump does not close windows early', () => {
    const fx = new FeatureExtractor({ maxFutureSkewMs: 30_000 });
    fx.ingest([{ nodeId: 'n1', ts: T0 + 1000, metric: 'calls.started', value: 3, source: 'sim' }]);
    const out = fx.ingest([{ nodeId: 'n2', ts: T0 + 3_600_000, metric: 'calls.started', value: 1, source: 'sim' }]);
    expect(out).toEqual([]);
    // The real stream goes on and is still accepted.
    fx.ingest([{ nodeId: 'n1', ts: T0 + 5000, metric: 'calls.started', value: 2, source: 'sim' }]);
    expect(fx.stats().rejected.future).toBe(1);
    const closed = fx.advance(T0 + W + LATENESS);
    expect(closed.map((v) => [v.nodeId, v.features['calls.started.rate']])).toEqual([['n1', 0.5]]);
  });
});

describe('FeatureExtractor vectors', () => {
  it('emits observed=false vectors with every feature defined and finite for silent nodes', () => {
    const fx = new FeatureExtractor({
      nodes: [
        { nodeId: 'a', setId: 1 },
        { nodeId: 'b', setId: 1 },
        { nodeId: 'c', setId: 2 },
      ],
    });
    fx.advance(T0);
    fx.ingest([{ nodeId: 'a', ts: T0 + 100, metric: 'channels.active', value: 12, source: 'sim' }]);
    const out = fx.advance(T0 + 3 * W);
    const byNode = (id: string) => out.filter((v) => v.nodeId === id);
    expect(out.length % 3).toBe(0);
    expect(byNode('b').every((v) => !v.observed && v.sampleCount === 0)).toBe(true);
    expect(byNode('c').every((v) => v.setId === 2 && !v.observed)).toBe(true);
    expect(byNode('a').filter((v) => v.observed)).toHaveLength(1);
    for (const v of out) {
      expect(Object.keys(v.features)).toEqual([...FEATURE_NAMES]);
      for (const value of Object.values(v.features)) expect(Number.isFinite(value)).toBe(true);
      if (!v.observed) expect(Object.values(v.features).every((x) => x === 0)).toBe(true);
    }
  });

  it('discovers nodes from samples into the default set', () => {
    const fx = new FeatureExtractor({ defaultSetId: 7 });
    fx.ingest([{ nodeId: 'x', ts: T0, metric: 'calls.started', value: 1, source: 'sim' }]);
    expect(fx.knownNodes()).toEqual([{ nodeId: 'x', setId: 7 }]);
  });

  it('counts its lengths in time: with 1 s windows a slope needs 30 s of points and fits 6 min, not 36 windows', () => {
    // Memory flat for 6 min, then a 20 s burst of +300 MiB (a process starting), then flat again.
    const burst = (t: number) => 1000 + 300 * Math.min(1, Math.max(0, (t - 360) / 20));
    const run = (windowMs: number, level = burst) => {
      const fx = new FeatureExtractor({ nodes: [{ nodeId: 'm' }], windowMs, allowedLatenessMs: 0 });
      const out: FeatureVector[] = [];
      for (let t = 0; t < 480; t++) {
        const sample = { nodeId: 'm', ts: T0 + t * 1000, metric: 'host.memory_rss_mb' as const, value: level(t) };
        out.push(...fx.ingest([{ ...sample, source: 'sim' }]));
      }
      return out.map((v) => ({ t: (v.windowEnd - T0) / 1000, slope: v.features['slope.memory_rss_mb_per_min']! }));
    };
    // A ramp from the start: no slope from its first seconds of data, its slope once 30 s are in.
    const ramp = run(1000, (t) => 1000 + t);
    expect(ramp.filter((p) => p.t < 30).every((p) => p.slope === 0)).toBe(true);
    expect(ramp.find((p) => p.t === 40)?.slope).toBeCloseTo(60, 6);
    const oneSecond = run(1000);
    // The burst, fitted over 6 min of 1 s windows, is a slope of well under the 900 MiB/min it is over 20 s.
    const peak = Math.max(...oneSecond.map((p) => p.slope));
    expect(peak).toBeGreaterThan(10);
    expect(peak).toBeLessThan(100);
    // At the default 10 s window the same fit spans the same 6 min: the same order of slope.
    const tenSecond = Math.max(...run(10_000).map((p) => p.slope));
    expect(tenSecond / peak).toBeGreaterThan(0.5);
    expect(tenSecond / peak).toBeLessThan(2);
  });

  it('fits the slope of a linear memory ramp', () => {
    const fx = new FeatureExtractor({ nodes: [{ nodeId: 'm' }] });
    const perMin = 37.5;
    const out: FeatureVector[] = [];
    for (let t = 0; t < 900; t++) {
      out.push(
        ...fx.ingest([
          {
            nodeId: 'm',
            ts: T0 + t * 1000,
            metric: 'host.memory_rss_mb',
            value: 1000 + (perMin * t) / 60,
            source: 'sim',
          },
        ]),
      );
    }
    const last = out.at(-1)!;
    expect(last.features['slope.memory_rss_mb_per_min']).toBeCloseTo(perMin, 6);
    expect(last.features['host.memory_rss_mb.last']).toBeCloseTo(
      1000 + (perMin * (last.windowEnd - 1000 - T0)) / 60_000,
      6,
    );
  });

  it('forgets the own history when a node comes back up after being down (restart)', () => {
    const fx = new FeatureExtractor({ nodes: [{ nodeId: 'r' }] });
    const out: FeatureVector[] = [];
    const tick = (t: number, up: boolean, rss: number, queue: number) =>
      out.push(
        ...fx.ingest([
          { nodeId: 'r', ts: T0 + t * 1000, metric: 'node.up', value: up ? 1 : 0, source: 'sim' },
          ...(up
            ? ([
                { nodeId: 'r', ts: T0 + t * 1000, metric: 'host.memory_rss_mb', value: rss, source: 'sim' },
                { nodeId: 'r', ts: T0 + t * 1000, metric: 'taskprocessor.max_queue', value: queue, source: 'sim' },
              ] as TelemetrySample[])
            : []),
        ]),
      );
    // A leaking, backlogged process: memory climbs, the queue is long (its baseline learns that).
    for (let t = 0; t < 1200; t++) tick(t, true, 500 + t, 300);
    for (let t = 1200; t < 1260; t++) tick(t, false, 0, 0);
    // Fresh process: memory back at its footprint, the queue short again.
    for (let t = 1260; t < 1400; t++) tick(t, true, 400, 10);
    const after = out.filter((v) => v.windowStart >= T0 + 1_260_000 && v.observed);
    expect(after.length).toBeGreaterThan(10);
    // No slope across the restart, and no "abnormally short queue" against the sick process's baseline.
    for (const v of after) {
      expect(v.features['slope.memory_rss_mb_per_min']).toBeCloseTo(0, 6);
      expect(Math.abs(v.features['z.self.max_queue'] ?? 0)).toBeLessThan(1);
    }
    // Before the restart the same extractor did see the trend.
    const before = out.filter((v) => v.windowEnd <= T0 + 1_200_000 && v.observed).at(-1)!;
    expect(before.features['slope.memory_rss_mb_per_min']).toBeCloseTo(60, 3);
  });

  it('does not carry latencies or gauges across a restart, and a window without measurements does not move their EWMA', () => {
    const fx = new FeatureExtractor({ nodes: [{ nodeId: 'r' }] });
    const out: FeatureVector[] = [];
    const at = (t: number, metric: MetricName, value: number): TelemetrySample => ({
      nodeId: 'r',
      ts: T0 + t * 1000,
      metric,
      value,
      source: 'sim',
    });
    // A storm: setup time 2 s. Then the node takes no calls (drained): setup time is not measured at all.
    for (let t = 0; t < 300; t++) {
      out.push(...fx.ingest([at(t, 'node.up', 1), at(t, 'sip.invite_setup_ms', 2000), at(t, 'rtcp.loss_pct', 8)]));
    }
    for (let t = 300; t < 400; t++) out.push(...fx.ingest([at(t, 'node.up', 1)]));
    const drained = out.filter((v) => v.windowStart >= T0 + 300_000 && v.observed);
    expect(drained.length).toBeGreaterThan(5);
    for (const v of drained) {
      expect(v.features['sip.invite_setup_ms.count']).toBe(0);
      expect(v.features['sip.invite_setup_ms.p95']).toBeCloseTo(2000, 6);
      expect(v.features['ewma.invite_setup_p95']).toBeCloseTo(2000, 6);
    }
    // Restart: down, then up with no calls yet. Nothing measured on the old process is carried.
    for (let t = 400; t < 460; t++) out.push(...fx.ingest([at(t, 'node.up', 0)]));
    for (let t = 460; t < 560; t++) out.push(...fx.ingest([at(t, 'node.up', 1)]));
    const fresh = out.filter((v) => v.windowStart >= T0 + 460_000 && v.observed);
    expect(fresh.length).toBeGreaterThan(5);
    for (const v of fresh) {
      expect(v.features['sip.invite_setup_ms.p95']).toBe(0);
      expect(v.features['ewma.invite_setup_p95']).toBe(0);
      expect(v.features['rtcp.loss_pct.mean']).toBe(0);
    }
  });

  it('peer z discounts a cluster-wide shift but flags a single drifting node', () => {
    const nodes = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
    const fx = new FeatureExtractor({ nodes: nodes.map((nodeId) => ({ nodeId })) });
    const vectors: FeatureVector[] = [];
    for (const tick of syntheticTicks({
      nodes,
      startMs: T0,
      durationS: 1500,
      disturbances: [{ startS: 900, endS: 1000, latencyFactor: 6, retransPerS: 20 }],
    })) {
      // From t=1200 s, p4 alone degrades the same way.
      const drifted = tick.map((s) => {
        const t = (s.ts - T0) / 1000;
        if (s.nodeId !== 'p4' || t < 1200) return s;
        if (s.metric === 'sip.invite_setup_ms') return { ...s, value: s.value * 6 };
        if (s.metric === 'sip.retransmissions') return { ...s, value: s.value + 20 };
        return s;
      });
      vectors.push(...fx.ingest(drifted));
    }
    const at = (nodeId: string, tS: number) =>
      vectors.find((v) => v.nodeId === nodeId && v.windowStart === T0 + tS * 1000)!;
    for (const n of nodes) {
      const v = at(n, 950);
      expect(v.features['z.self.invite_setup_p95']).toBeGreaterThan(5);
      expect(Math.abs(v.features['z.peer.invite_setup_p95']!)).toBeLessThan(2);
      expect(Math.abs(v.features['z.peer.retrans_rate']!)).toBeLessThan(2);
      expect(v.features['peers.observed']).toBe(5);
    }
    const drifting = at('p4', 1250);
    expect(drifting.features['z.peer.invite_setup_p95']).toBeGreaterThan(5);
    expect(drifting.features['z.peer.retrans_rate']).toBeGreaterThan(5);
    for (const n of nodes.filter((x) => x !== 'p4')) {
      expect(Math.abs(at(n, 1250).features['z.peer.invite_setup_p95']!)).toBeLessThan(3);
    }
  });

  it('keeps per-node state bounded: a long run keeps emitting the same shape', () => {
    const fx = new FeatureExtractor({ nodes: [{ nodeId: 'a' }, { nodeId: 'b' }, { nodeId: 'c' }] });
    let emitted = 0;
    for (const tick of syntheticTicks({ nodes: ['a', 'b', 'c'], startMs: T0, durationS: 3000 }))
      emitted += fx.ingest(tick).length;
    const stats = fx.stats();
    expect(stats.windowsClosed).toBe(emitted / 3);
    expect(stats.vectorsEmitted).toBe(emitted);
    expect(Object.values(stats.rejected).every((n) => n === 0)).toBe(true);
  });

  it('documents every feature and maps vectors to arrays in FEATURE_NAMES order', () => {
    expect(new Set(FEATURE_NAMES).size).toBe(FEATURE_NAMES.length);
    for (const name of FEATURE_NAMES) expect(FEATURE_DOCS[name], name).toBeTruthy();
    const arr = featureArray({ [FEATURE_NAMES[3]!]: 5, bogus: 1, [FEATURE_NAMES[0]!]: Number.NaN });
    expect(arr.length).toBe(FEATURE_NAMES.length);
    expect(arr[3]).toBe(5);
    expect(arr[0]).toBe(0);
  });

  it('rejects bad options with a config error', () => {
    expect(() => new FeatureExtractor({ windowMs: 0 })).toThrow(/windowMs/);
    expect(() => new FeatureExtractor({ ewmaAlpha: 2 })).toThrow(/ewmaAlpha/);
  });
});
