import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ForesightError } from '../../src/errors.js';
import { isMetricName, type MetricName, type TelemetrySample } from '../../src/messages.js';
import { SimulatedCluster } from '../../src/sim/index.js';
import type { SimulatedClusterInput } from '../../src/sim/options.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** 2024-01-01 was a Monday; 10:00 UTC is inside the default morning busy hour. */
const BUSY = Date.UTC(2024, 0, 1, 10, 0, 0);
const QUIET: SimulatedClusterInput = {
  randomIncidents: { perNodeDay: 0 },
  disturbances: { dbBlipsPerDay: 0, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 },
};

function values(samples: TelemetrySample[], nodeId: string, metric: MetricName, from = -Infinity, to = Infinity) {
  return samples
    .filter((s) => s.nodeId === nodeId && s.metric === metric && s.ts > from && s.ts <= to)
    .map((s) => s.value);
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : sum(xs) / xs.length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.floor(s.length / 2)] ?? 0);
}

/** Least-squares slope of value over sample index. */
function slope(ys: number[]): number {
  const n = ys.length;
  const mx = (n - 1) / 2;
  const my = mean(ys);
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (i - mx) * ((ys[i] ?? 0) - my);
    den += (i - mx) * (i - mx);
  }
  return den === 0 ? 0 : num / den;
}

describe('SimulatedCluster determinism', () => {
  const opts = (seed: number): SimulatedClusterInput => ({
    seed,
    startAt: BUSY,
    randomIncidents: { perNodeDay: 24, warmupMs: 0 },
  });

  it('gives identical samples and labels for the same seed, and different ones for another seed', () => {
    const a = new SimulatedCluster(opts(42));
    const b = new SimulatedCluster(opts(42));
    const c = new SimulatedCluster(opts(43));
    const sa = a.step(BUSY + 3 * HOUR);
    const sb = b.step(BUSY + 3 * HOUR);
    const sc = c.step(BUSY + 3 * HOUR);
    expect(a.labels().length).toBeGreaterThan(0);
    expect(sb).toEqual(sa);
    expect(b.labels()).toEqual(a.labels());
    expect(b.stats()).toEqual(a.stats());
    expect(sc).not.toEqual(sa);
    expect(c.labels()).not.toEqual(a.labels());
  });

  it('does not depend on how time is chunked into step() calls', () => {
    const whole = new SimulatedCluster(opts(5));
    const chunked = new SimulatedCluster(opts(5));
    const one = whole.step(BUSY + HOUR);
    const parts: TelemetrySample[] = [];
    for (let t = BUSY; t < BUSY + HOUR; t += 7_777) chunked.step(t, parts);
    chunked.step(BUSY + HOUR, parts);
    expect(parts).toEqual(one);
    expect(chunked.labels()).toEqual(whole.labels());
  });

  it('keeps the incident schedule and the callers the same whatever the dispatcher does (time-driven modes)', () => {
    // A load-driven backlog slowed by a drain can still be running when the next onset comes, which then is discarded
    // (one failure at a time): that dependence is intended, so this checks the modes that ignore load.
    const timeDriven = {
      randomIncidents: { modeWeights: { memory_leak: 1, db_degradation: 1, retransmission_storm: 1, sudden_crash: 1 } },
    };
    const passive = new SimulatedCluster({ ...opts(9), ...timeDriven });
    const active = new SimulatedCluster({ ...opts(9), ...timeDriven });
    for (let t = BUSY + 10 * MIN; t <= BUSY + 4 * HOUR; t += 10 * MIN) {
      passive.step(t);
      active.step(t);
      const id = active.nodeIds[(t / (10 * MIN)) % 4]!;
      active.setAccepting(id, !active.nodeView(id).accepting);
    }
    expect(passive.labels().length).toBeGreaterThan(0);
    expect(active.labels()).toEqual(passive.labels());
    expect(active.stats().callsOffered).toBe(passive.stats().callsOffered);
  });
});

describe('SimulatedCluster telemetry', () => {
  it('emits only known metric names with finite values, source sim (probe for its probes), on tick boundaries (any seed)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(250, 1000, 5000),
        fc.integer({ min: 0, max: 23 }),
        fc.double({ min: 0, max: 48, noNaN: true }),
        (seed, nodes, tickMs, hour, perNodeDay) => {
          const startAt = Date.UTC(2024, 0, 6, hour); // a Saturday, to cover the weekend curve too
          const sim = new SimulatedCluster({
            seed,
            nodes,
            tickMs,
            startAt,
            randomIncidents: { perNodeDay, warmupMs: 0 },
            disturbances: { dbBlipsPerDay: 48, networkBlipsPerDay: 48, hiccupsPerNodeDay: 48 },
          });
          const ids = new Set(sim.nodeIds);
          const samples = sim.step(startAt + 40 * MIN);
          expect(samples.length).toBeGreaterThan(0);
          for (const s of samples) {
            if (
              !isMetricName(s.metric) ||
              !Number.isFinite(s.value) ||
              s.source !== (s.metric.startsWith('probe.') ? 'probe' : 'sim') ||
              !ids.has(s.nodeId)
            ) {
              throw new Error(`bad sample ${JSON.stringify(s)}`);
            }
            if ((s.ts - startAt) % tickMs !== 0 || s.ts <= startAt || s.ts > startAt + 40 * MIN) {
              throw new Error(`sample off the tick grid ${JSON.stringify(s)}`);
            }
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('reports every node every tick with node.up and the call counters', () => {
    const sim = new SimulatedCluster({ seed: 3, startAt: BUSY, ...QUIET });
    const samples = sim.step(BUSY + 5 * MIN);
    for (const id of sim.nodeIds) {
      expect(values(samples, id, 'node.up')).toHaveLength(300);
      expect(values(samples, id, 'calls.started')).toHaveLength(300);
    }
    // OPTIONS pings every 5 s, not every tick.
    expect(values(samples, 'ast1', 'sip.options_rtt_ms')).toHaveLength(60);
  });

  it('follows the daily load curve: busy hour carries far more calls than the night', () => {
    const night = new SimulatedCluster({ seed: 4, startAt: Date.UTC(2024, 0, 2, 2), ...QUIET });
    const day = new SimulatedCluster({ seed: 4, startAt: Date.UTC(2024, 0, 2, 10), ...QUIET });
    const ns = night.step(night.now() + HOUR);
    const ds = day.step(day.now() + HOUR);
    expect(sum(values(ds, 'ast1', 'calls.started'))).toBeGreaterThan(4 * sum(values(ns, 'ast1', 'calls.started')));
  });

  it('shows a DB blip on every node at once, so peers explain it', () => {
    const sim = new SimulatedCluster({
      seed: 11,
      startAt: BUSY,
      randomIncidents: { perNodeDay: 0 },
      disturbances: { dbBlipsPerDay: 150, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 },
    });
    const samples = sim.step(BUSY + 2 * HOUR);
    const byTick = new Map<number, Map<string, number>>();
    for (const s of samples) {
      if (s.metric !== 'db.query_ms') continue;
      const m = byTick.get(s.ts) ?? new Map<string, number>();
      m.set(s.nodeId, Math.max(m.get(s.nodeId) ?? 0, s.value));
      byTick.set(s.ts, m);
    }
    let slowTicks = 0;
    for (const perNode of byTick.values()) {
      if ((perNode.get('ast1') ?? 0) < 40) continue;
      slowTicks++;
      for (const id of sim.nodeIds) expect(perNode.get(id) ?? 0).toBeGreaterThan(8);
    }
    expect(slowTicks).toBeGreaterThan(10);
    expect(sim.stats().crashes).toBe(0);
  });
});

describe('SimulatedCluster drain and restart', () => {
  it('sends no new calls to a drained node, lets its calls finish, and a restart after that drops nothing', () => {
    const sim = new SimulatedCluster({ seed: 21, startAt: BUSY, ...QUIET });
    sim.step(BUSY + 20 * MIN);
    const before = sim.activeCalls('ast2');
    expect(before).toBeGreaterThan(10);
    sim.setAccepting('ast2', false);
    const samples: TelemetrySample[] = [];
    const deadline = sim.now() + 3 * HOUR;
    while (sim.activeCalls('ast2') > 0 && sim.now() < deadline) sim.step(sim.now() + 60_000, samples);
    expect(sim.activeCalls('ast2')).toBe(0);
    expect(sum(values(samples, 'ast2', 'calls.started'))).toBe(0);
    expect(sum(values(samples, 'ast2', 'calls.completed'))).toBe(before);
    const channels = values(samples, 'ast2', 'channels.active');
    for (let i = 1; i < channels.length; i++) expect(channels[i]).toBeLessThanOrEqual(channels[i - 1] ?? 0);
    // The others kept taking calls meanwhile.
    expect(sum(values(samples, 'ast1', 'calls.started'))).toBeGreaterThan(0);

    sim.restart('ast2');
    const after = sim.step(sim.now() + 2 * MIN);
    expect(sum(values(after, 'ast2', 'calls.dropped'))).toBe(0);
    expect(sim.stats().droppedByRestart).toBe(0);
    expect(sim.stats().callsDropped).toBe(0);
    expect(values(after, 'ast2', 'node.up').slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(sim.isUp('ast2')).toBe(true);
    expect(sum(values(after, 'ast2', 'calls.started'))).toBe(0); // still drained
  });

  it('drops the established calls when a node is restarted with calls on it', () => {
    const sim = new SimulatedCluster({ seed: 22, startAt: BUSY, ...QUIET });
    sim.step(BUSY + 15 * MIN);
    const active = sim.activeCalls('ast1');
    expect(active).toBeGreaterThan(0);
    sim.restart('ast1');
    expect(sim.activeCalls('ast1')).toBe(0);
    const samples = sim.step(sim.now() + 1000);
    expect(values(samples, 'ast1', 'calls.dropped')).toEqual([active]);
    expect(sim.stats().droppedByRestart).toBe(active);
  });

  it('a crash drops the active calls, calls keep failing until probing notices, and the node comes back', () => {
    const crashAt = BUSY + 20 * MIN;
    const sim = new SimulatedCluster({
      seed: 23,
      startAt: BUSY,
      ...QUIET,
      incidents: [{ nodeId: 'ast3', mode: 'sudden_crash', onsetAt: crashAt, recoveryMs: 90_000 }],
    });
    sim.step(crashAt - 1000);
    const active = sim.activeCalls('ast3');
    expect(active).toBeGreaterThan(10);
    const samples = sim.step(crashAt + 10 * MIN);
    const outcome = sim.stats().incidents[0];
    expect(outcome?.outcome).toBe('crashed');
    expect(outcome?.droppedAtCrash).toBe(active);
    expect(values(samples, 'ast3', 'calls.dropped', crashAt - 1, crashAt)).toEqual([active]);
    expect(values(samples, 'ast3', 'node.up', crashAt - 1, crashAt + 60_000).every((v) => v === 0)).toBe(true);
    // Reactive baseline: Kamailio keeps selecting it for ~3 ping intervals, those calls fail.
    const failedEarly = sum(values(samples, 'ast3', 'calls.failed', crashAt, crashAt + 20_000));
    const failedLate = sum(values(samples, 'ast3', 'calls.failed', crashAt + 30_000, crashAt + 90_000));
    expect(failedEarly).toBeGreaterThan(0);
    expect(failedLate).toBe(0);
    expect(values(samples, 'ast3', 'node.up', crashAt + 91_000, crashAt + 92_000)).toEqual([1]);
    expect(sim.nodeView('ast3').dispatcherState).toBe('active');
    expect(sim.activeCalls('ast3')).toBeGreaterThan(0);
  });

  it('a restart before crashAt prevents the crash', () => {
    const onsetAt = BUSY + 5 * MIN;
    const crashAt = BUSY + 45 * MIN;
    const sim = new SimulatedCluster({
      seed: 24,
      startAt: BUSY,
      ...QUIET,
      incidents: [{ nodeId: 'ast4', mode: 'memory_leak', onsetAt, crashAt }],
    });
    sim.step(BUSY + 30 * MIN);
    sim.restart('ast4');
    const samples = sim.step(BUSY + 90 * MIN);
    const [outcome] = sim.stats().incidents;
    expect(outcome?.outcome).toBe('prevented');
    expect(outcome?.resolvedAt).toBe(BUSY + 30 * MIN);
    expect(sim.stats().crashes).toBe(0);
    expect(sim.isUp('ast4')).toBe(true);
    const rss = values(samples, 'ast4', 'host.memory_rss_mb', crashAt, Infinity);
    expect(Math.max(...rss)).toBeLessThan(600);
  });

  describe("a taskprocessor backlog is driven by the node's own calls", () => {
    const onsetAt = BUSY + 5 * MIN;
    const crashAt = onsetAt + 20 * MIN;
    const backlog = (seed: number) =>
      new SimulatedCluster({
        seed,
        startAt: BUSY,
        ...QUIET,
        incidents: [{ nodeId: 'ast2', mode: 'taskprocessor_backlog', onsetAt, crashAt, magnitude: 1 }],
      });

    it('undisturbed, it deadlocks at crashAt and drops the calls up', () => {
      const sim = backlog(51);
      sim.step(crashAt + 10_000);
      const [outcome] = sim.stats().incidents;
      expect(outcome?.outcome).toBe('crashed');
      expect(Math.abs((outcome?.resolvedAt ?? 0) - crashAt)).toBeLessThanOrEqual(1000);
      expect(outcome?.droppedAtCrash).toBeGreaterThan(10);
    });

    it('drained early, it slows with the calls left, outlives them, and a restart prevents it', () => {
      const sim = backlog(51);
      sim.step(onsetAt + 4 * MIN);
      sim.setAccepting('ast2', false);
      const queueAt = (samples: TelemetrySample[]) => values(samples, 'ast2', 'taskprocessor.max_queue');
      const samples = sim.step(crashAt + 5 * MIN);
      expect(sim.stats().incidents[0]?.outcome).toBe('active');
      expect(sim.isUp('ast2')).toBe(true);
      // The queue stops growing once the node's traffic dwindles.
      const q = queueAt(samples);
      expect(q.length).toBeGreaterThan(0);
      expect(Math.max(...q.slice(-30))).toBeLessThan(600);
      sim.step(crashAt + 30 * MIN);
      expect(sim.activeCalls('ast2')).toBe(0);
      sim.restart('ast2');
      const [outcome] = sim.stats().incidents;
      expect(outcome?.outcome).toBe('prevented');
      expect(outcome?.callsDropped).toBe(0);
    });

    it('drained a minute before the deadlock, it still deadlocks with some calls up', () => {
      const sim = backlog(52);
      sim.step(crashAt - MIN);
      const up = sim.activeCalls('ast2');
      sim.setAccepting('ast2', false);
      sim.step(crashAt + 10 * MIN);
      const [outcome] = sim.stats().incidents;
      expect(outcome?.outcome).toBe('crashed');
      expect(outcome?.resolvedAt).toBeGreaterThan(crashAt);
      expect(outcome?.droppedAtCrash).toBeGreaterThan(0);
      expect(outcome?.droppedAtCrash).toBeLessThan(up);
    });
  });

  it('labels a sudden crash unpredictable, with onset equal to crash', () => {
    const t = BUSY + 10 * MIN;
    const sim = new SimulatedCluster({
      seed: 25,
      startAt: BUSY,
      ...QUIET,
      incidents: [
        { nodeId: 'ast1', mode: 'sudden_crash', onsetAt: t, crashAt: t + HOUR },
        { nodeId: 'ast2', mode: 'db_degradation', onsetAt: t },
      ],
    });
    sim.step(BUSY + HOUR);
    const labels = sim.labels();
    expect(labels).toContainEqual({ nodeId: 'ast1', mode: 'sudden_crash', predictable: false, onsetAt: t, crashAt: t });
    const db = labels.find((l) => l.nodeId === 'ast2');
    expect(db?.predictable).toBe(true);
    expect((db?.crashAt ?? 0) - t).toBeGreaterThanOrEqual(2 * MIN);
    expect((db?.crashAt ?? 0) - t).toBeLessThanOrEqual(10 * MIN);
  });

  it('rejects bad options and unknown nodes with typed errors', () => {
    expect(() => new SimulatedCluster({ tickMs: 0 })).toThrowError(ForesightError);
    expect(() => new SimulatedCluster({ incidents: [{ nodeId: 'ast9', mode: 'memory_leak', onsetAt: 0 }] })).toThrow(
      /incidents\[0\]\.nodeId/,
    );
    const sim = new SimulatedCluster(QUIET);
    expect(() => sim.restart('nope')).toThrow(expect.objectContaining({ code: 'FORESIGHT_ERR_NOT_FOUND' }));
    expect(() => sim.step(Number.NaN)).toThrow(expect.objectContaining({ code: 'FORESIGHT_ERR_BAD_REQUEST' }));
  });
});

describe('SimulatedCluster failures that keep established calls', () => {
  function failing(mode: 'db_degradation' | 'retransmission_storm', restartAfterMs: number | null) {
    const onsetAt = BUSY + 20 * MIN;
    const crashAt = onsetAt + 5 * MIN;
    const sim = new SimulatedCluster({
      seed: 41,
      startAt: BUSY,
      ...QUIET,
      incidents: [{ nodeId: 'ast2', mode, onsetAt, crashAt, magnitude: 1, recoveryMs: 20 * MIN }],
    });
    sim.step(crashAt - 1000);
    const before = sim.activeCalls('ast2');
    const samples = sim.step(crashAt + (restartAfterMs ?? 3 * MIN));
    if (restartAfterMs !== null) sim.restart('ast2');
    sim.step(crashAt + 40 * MIN, samples);
    return { sim, samples, before, crashAt };
  }

  it.each(['db_degradation', 'retransmission_storm'] as const)(
    '%s: from crashAt new calls fail but established calls go on, until the cause clears',
    (mode) => {
      const { sim, samples, before, crashAt } = failing(mode, null);
      expect(before).toBeGreaterThan(10);
      const [outcome] = sim.stats().incidents;
      expect(outcome?.outcome).toBe('failed');
      expect(outcome?.resolvedAt).toBe(crashAt);
      expect(outcome?.callsDropped).toBe(0);
      expect(sim.stats().callsDropped).toBe(0);
      expect(sim.stats().crashes).toBe(0);
      expect(sim.stats().failures).toBe(1);
      // The node stayed up and its calls ended normally.
      expect(values(samples, 'ast2', 'node.up', crashAt, crashAt + 3 * MIN).every((v) => v === 1)).toBe(true);
      expect(sum(values(samples, 'ast2', 'calls.completed', crashAt, crashAt + 3 * MIN))).toBeGreaterThan(0);
      // Every setup offered while it failed is counted on the incident, and none of them got established.
      const failedWhileDown = sum(values(samples, 'ast2', 'calls.failed', crashAt, crashAt + 20 * MIN));
      expect(failedWhileDown).toBeGreaterThan(0);
      expect(outcome?.callsFailed).toBeGreaterThanOrEqual(failedWhileDown);
      // It recovered by itself after recoveryMs: calls succeed again.
      expect(outcome?.endedAt).toBe(crashAt + 20 * MIN);
      expect(sum(values(samples, 'ast2', 'calls.failed', crashAt + 21 * MIN, crashAt + 40 * MIN))).toBeLessThan(3);
      expect(sum(values(samples, 'ast2', 'calls.completed', crashAt + 21 * MIN, crashAt + 40 * MIN))).toBeGreaterThan(
        0,
      );
    },
  );

  it('a restart ends the failing early and charges the calls it drops to the incident', () => {
    const { sim, crashAt } = failing('db_degradation', 2 * MIN);
    const [outcome] = sim.stats().incidents;
    expect(outcome?.outcome).toBe('failed');
    expect(outcome?.endedAt).toBe(crashAt + 2 * MIN);
    expect(outcome?.droppedAtRestart).toBeGreaterThan(0);
    expect(outcome?.callsDropped).toBe(outcome?.droppedAtRestart);
    expect(sim.stats().droppedByRestart).toBe(outcome?.droppedAtRestart);
  });

  it('draws taskprocessor backlogs with a 10-30 min build-up', () => {
    const sim = new SimulatedCluster({
      seed: 42,
      startAt: BUSY,
      ...QUIET,
      incidents: Array.from({ length: 4 }, (_, i) => ({
        nodeId: `ast${i + 1}`,
        mode: 'taskprocessor_backlog' as const,
        onsetAt: BUSY + MIN,
      })),
    });
    sim.step(BUSY + 2 * MIN);
    for (const l of sim.labels()) {
      expect(l.crashAt - l.onsetAt).toBeGreaterThanOrEqual(10 * MIN);
      expect(l.crashAt - l.onsetAt).toBeLessThanOrEqual(30 * MIN);
    }
  });
});

describe('SimulatedCluster precursors', () => {
  /** ast1 gets the incident, ast2 is its healthy peer; returns samples of the last quarter of the precursor too. */
  function runIncident(mode: 'memory_leak' | 'taskprocessor_backlog' | 'db_degradation' | 'retransmission_storm') {
    const onsetAt = BUSY + 30 * MIN;
    const sim = new SimulatedCluster({
      seed: 31,
      startAt: BUSY,
      randomIncidents: { perNodeDay: 0 },
      incidents: [{ nodeId: 'ast1', mode, onsetAt, magnitude: 1 }],
    });
    const samples = sim.step(onsetAt + 3 * HOUR);
    const label = sim.labels()[0]!;
    // Processes that die (OOM, watchdog) crash; DB and network failures leave the node up, failing new calls.
    const keepsCalls = mode === 'db_degradation' || mode === 'retransmission_storm';
    expect(sim.stats().incidents[0]?.outcome).toBe(keepsCalls ? 'failed' : 'crashed');
    const lastQuarter = label.crashAt - (label.crashAt - label.onsetAt) / 4;
    const w = (id: string, metric: MetricName) => values(samples, id, metric, lastQuarter, label.crashAt - 1000);
    const baseline = (id: string, metric: MetricName) => values(samples, id, metric, onsetAt - 20 * MIN, onsetAt);
    return { label, samples, w, baseline };
  }

  it('memory_leak: RSS climbs to the limit while the peer stays flat', () => {
    const { label, samples } = runIncident('memory_leak');
    const sick = values(samples, 'ast1', 'host.memory_rss_mb', label.onsetAt, label.crashAt - 1000);
    const peer = values(samples, 'ast2', 'host.memory_rss_mb', label.onsetAt, label.crashAt - 1000);
    expect(slope(sick)).toBeGreaterThan(0.05); // MiB per tick
    expect(Math.abs(slope(peer))).toBeLessThan(slope(sick) / 10);
    expect(Math.max(...sick)).toBeGreaterThan(2000);
  });

  it('taskprocessor_backlog: queue depth and setup latency rise above the peer and the own baseline', () => {
    const { w, baseline } = runIncident('taskprocessor_backlog');
    expect(mean(w('ast1', 'taskprocessor.max_queue'))).toBeGreaterThan(5 * mean(w('ast2', 'taskprocessor.max_queue')));
    expect(mean(w('ast1', 'taskprocessor.max_queue'))).toBeGreaterThan(
      5 * mean(baseline('ast1', 'taskprocessor.max_queue')),
    );
    expect(median(w('ast1', 'sip.invite_setup_ms'))).toBeGreaterThan(5 * median(w('ast2', 'sip.invite_setup_ms')));
  });

  it('db_degradation: query latency climbs well above the peer', () => {
    const { w, baseline } = runIncident('db_degradation');
    expect(median(w('ast1', 'db.query_ms'))).toBeGreaterThan(5 * median(w('ast2', 'db.query_ms')));
    expect(median(w('ast1', 'db.query_ms'))).toBeGreaterThan(5 * median(baseline('ast1', 'db.query_ms')));
  });

  it('retransmission_storm: retransmissions and RTCP loss rise above the peer', () => {
    const { w } = runIncident('retransmission_storm');
    expect(mean(w('ast1', 'rtcp.loss_pct'))).toBeGreaterThan(5 * mean(w('ast2', 'rtcp.loss_pct')));
    expect(sum(w('ast1', 'sip.retransmissions'))).toBeGreaterThan(5 * (sum(w('ast2', 'sip.retransmissions')) + 1));
  });
});
