import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { AuditRecord, FeatureVector, NodeScore } from '../../src/messages.js';
import type { Recording } from '../../src/models/lifecycle/cycle.js';
import { type LifecyclePorts, ModelLifecycle } from '../../src/models/lifecycle/manager.js';
import { judgePromotion, judgeShadow, type ScorerValidation } from '../../src/models/lifecycle/rule.js';
import { memoryState } from '../../src/models/lifecycle/state.js';
import type { Scorer } from '../../src/models/scorers/scorer.js';

const RULE = { minWindows: 100 };

function fig(over: Partial<ScorerValidation> = {}): ScorerValidation {
  return {
    scorer: 'x',
    windows: 500,
    falseAlarms: 0,
    falseAlarmRate: 0,
    p99Risk: 0.3,
    incidents: 0,
    incidentsDetected: 0,
    meanIncidentPeakRisk: null,
    ...over,
  };
}

describe('promotion rule', () => {
  it('promotes on fewer false alarms at the threshold with incidents no worse', () => {
    const v = judgePromotion(
      fig({ falseAlarms: 1, falseAlarmRate: 0.002 }),
      fig({ falseAlarms: 9, falseAlarmRate: 0.018 }),
      RULE,
    );
    expect(v.promote).toBe(true);
    expect(v.reasons.every((r) => r.startsWith('ok'))).toBe(true);
  });

  it('refuses a model with more false alarms, whatever it does on incidents', () => {
    const v = judgePromotion(
      fig({ falseAlarms: 5, falseAlarmRate: 0.01, incidents: 3, incidentsDetected: 3 }),
      fig({ falseAlarms: 1, falseAlarmRate: 0.002, incidents: 3, incidentsDetected: 1 }),
      RULE,
    );
    expect(v.promote).toBe(false);
    expect(v.reasons.some((r) => r.startsWith('FAIL false alarms'))).toBe(true);
  });

  it('refuses a quieter model that misses an incident stat caught', () => {
    const v = judgePromotion(
      fig({ falseAlarmRate: 0, incidents: 2, incidentsDetected: 1 }),
      fig({ falseAlarms: 3, falseAlarmRate: 0.006, incidents: 2, incidentsDetected: 2 }),
      RULE,
    );
    expect(v.promote).toBe(false);
    expect(v.reasons.some((r) => r.startsWith('FAIL incidents'))).toBe(true);
  });

  it('refuses on too little data, even when every figure is better', () => {
    const v = judgePromotion(fig({ windows: 99 }), fig({ windows: 99, falseAlarms: 50, falseAlarmRate: 0.5 }), RULE);
    expect(v.promote).toBe(false);
    expect(v.reasons[0]).toMatch(/^FAIL data: 99/);
  });

  it('leaves a tie with stat, however much quieter the model keeps healthy nodes below the threshold', () => {
    const v = judgePromotion(fig({ p99Risk: 0.05 }), fig({ p99Risk: 0.5 }), RULE);
    expect(v.promote).toBe(false);
    expect(v.reasons.at(-1)).toMatch(/^FAIL better somewhere: a tie stays with x/);
    expect(
      judgePromotion(fig({ incidents: 2, incidentsDetected: 2 }), fig({ incidents: 2, incidentsDetected: 1 }), RULE)
        .promote,
    ).toBe(true);
  });

  it('never promotes a model that is worse on false alarms or incidents (property)', () => {
    const arb = fc.record({
      windows: fc.integer({ min: 0, max: 2000 }),
      far: fc.double({ min: 0, max: 1, noNaN: true }),
      p99: fc.double({ min: 0, max: 1, noNaN: true }),
      incidents: fc.integer({ min: 0, max: 5 }),
      detected: fc.integer({ min: 0, max: 5 }),
    });
    fc.assert(
      fc.property(arb, arb, (c, s) => {
        const mk = (x: typeof c) =>
          fig({
            windows: x.windows,
            falseAlarmRate: x.far,
            p99Risk: x.p99,
            incidents: x.incidents,
            incidentsDetected: Math.min(x.detected, x.incidents),
          });
        const cand = mk(c);
        const stat = mk(s);
        const v = judgePromotion(cand, stat, RULE);
        if (v.promote) {
          expect(cand.falseAlarmRate! < stat.falseAlarmRate! || cand.incidentsDetected > stat.incidentsDetected).toBe(
            true,
          );
          expect(cand.falseAlarmRate!).toBeLessThanOrEqual(stat.falseAlarmRate!);
          expect(cand.incidentsDetected).toBeGreaterThanOrEqual(stat.incidentsDetected);
          expect(Math.min(cand.windows, stat.windows)).toBeGreaterThanOrEqual(RULE.minWindows);
        }
      }),
    );
  });

  it('shadow: needs enough live windows and no more alarms than the scorer in charge', () => {
    expect(judgeShadow({ windows: 50, candidateAlarms: 0, incumbentAlarms: 3 }, 100).promote).toBe(false);
    expect(judgeShadow({ windows: 200, candidateAlarms: 4, incumbentAlarms: 3 }, 100).promote).toBe(false);
    expect(judgeShadow({ windows: 200, candidateAlarms: 3, incumbentAlarms: 3 }, 100).promote).toBe(true);
  });
});

// ---- the state machine, with its clock and every port injected -------------------------------------------------

const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const MIN = 60_000;
const WINDOW = 10_000;
const NODES = ['n1', 'n2'];

function vector(nodeId: string, windowEnd: number, x: number): FeatureVector {
  return {
    nodeId,
    setId: 1,
    windowStart: windowEnd - WINDOW,
    windowEnd,
    sampleCount: 10,
    observed: true,
    features: { 'node.up.last': 1, x },
    evidence: { calls: null, upReported: null, probe: null },
  };
}

/** A scorer whose risk is f(feature x): stands in for stat and for trained models. */
function scorer(name: string, risk: (x: number) => number): Scorer {
  return {
    name,
    score: (vs) =>
      vs.map(
        (v): NodeScore => ({
          nodeId: v.nodeId,
          setId: v.setId,
          ts: v.windowEnd,
          risk: risk(v.features.x ?? 0),
          timeToFailureS: null,
          explanation: [],
          scorer: name,
          observed: true,
          up: true,
          activeCalls: null,
          activeCallsSource: null,
          evidence: v.evidence,
        }),
      ),
  };
}

/** Healthy telemetry where x is 1 for 2 min every 10 min: stat (risk 0.9 at x=1) alarms on it, a model that learned it does not. */
function periodicX(ts: number): number {
  return Math.floor((ts - T0) / MIN) % 10 < 2 ? 1 : 0;
}

function recording(fromTs: number, toTs: number): Recording {
  const vectors: FeatureVector[] = [];
  for (let t = fromTs + WINDOW; t <= toTs; t += WINDOW) for (const n of NODES) vectors.push(vector(n, t, periodicX(t)));
  return { fromTs, toTs, samples: vectors.length * 10, vectors, digest: 'sha256:test', source: 'test' };
}

const statRisk = (x: number) => (x > 0.5 ? 0.9 : 0.1);

function harness(candidateRisk: (x: number) => number, settings: Partial<{ shadowMs: number }> = {}) {
  const audit: AuditRecord[] = [];
  const state = memoryState();
  const trained: string[] = [];
  const loaded: string[] = [];
  const discarded: string[] = [];
  const ports: LifecyclePorts = {
    stat: scorer('stat-v1', statRisk),
    freshStat: () => scorer('stat-v1', statRisk),
    record: async (fromTs, toTs) => recording(fromTs, toTs),
    labels: async () => ({ incidents: [], falseDrains: [] }),
    train: async (_rec, o) => {
      const name = `m${trained.length + 1}@${(o.at - T0) / MIN}min`;
      trained.push(name);
      return { ref: { kind: 'tfjs', name, path: `/models/${name}` }, scorer: scorer(name, candidateRisk) };
    },
    load: async (ref) => {
      loaded.push(ref.name);
      return scorer(ref.name, candidateRisk);
    },
    discard: (ref) => discarded.push(ref.name),
    audit: async (r) => {
      const rec = { ...r, seq: audit.length + 1 };
      audit.push(rec);
      return rec;
    },
    state,
    logger: silentLogger(),
  };
  const settingsFull = {
    recordMs: 60 * MIN,
    heldBackFraction: 0.25,
    shadowMs: settings.shadowMs ?? 10 * MIN,
    shadowMinWindows: 50,
    schedule: '0 */6 * * *',
    threshold: 0.8,
    rule: RULE,
  };
  return { ports, settings: settingsFull, audit, state, trained, loaded, discarded };
}

/** Drives the lifecycle as the loop does: one batch of live windows per window end, then waits for its work. */
async function run(lc: ModelLifecycle, from: number, to: number): Promise<NodeScore[]> {
  const out: NodeScore[] = [];
  for (let t = from + WINDOW; t <= to; t += WINDOW) {
    out.push(...lc.score(NODES.map((n) => vector(n, t, periodicX(t)))));
    await lc.idle();
  }
  return out;
}

describe('model lifecycle: record → train → validate → shadow → promote / refuse → rollback', () => {
  it('records for recordMs, trains, shadows, then promotes a model that beats stat; decisions switch only then', async () => {
    const h = harness(() => 0.05);
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    expect(lc.status().lifecycle.phase).toBe('recording');
    expect(lc.status().lifecycle.nextCycleAt).toBe(new Date(T0 + 60 * MIN).toISOString());

    const before = await run(lc, T0, T0 + 60 * MIN - WINDOW);
    expect(h.trained).toEqual([]);
    expect(before.every((s) => s.scorer === 'stat-v1')).toBe(true);

    await run(lc, T0 + 60 * MIN - WINDOW, T0 + 61 * MIN);
    expect(h.trained).toEqual(['m1@60min']);
    const st = lc.status();
    expect(st.lifecycle.phase).toBe('shadow');
    expect(st.inCharge.kind).toBe('stat');
    // In shadow the candidate is scored but decisions stay with stat, alarms included.
    const inShadow = await run(lc, T0 + 61 * MIN, T0 + 69 * MIN);
    expect(inShadow.every((s) => s.scorer === 'stat-v1')).toBe(true);
    expect(inShadow.some((s) => s.risk >= 0.8)).toBe(true);
    expect(lc.status().lifecycle.shadow?.incumbentAlarms).toBeGreaterThan(0);
    expect(lc.status().lifecycle.shadow?.candidateAlarms).toBe(0);

    const after = await run(lc, T0 + 69 * MIN, T0 + 75 * MIN);
    const s2 = lc.status();
    expect(s2.inCharge).toMatchObject({ kind: 'tfjs', name: 'm1@60min', since: expect.any(String) });
    expect(s2.inCharge.why).toMatch(/^promoted: beat stat-v1/);
    expect(s2.inCharge.validation?.stat.falseAlarms).toBeGreaterThan(0);
    expect(s2.inCharge.validation?.candidate.falseAlarms).toBe(0);
    expect(s2.previous?.kind).toBe('stat');
    expect(after.at(-1)?.scorer).toBe('m1@60min');
    expect(after.filter((s) => s.ts > Date.parse(s2.inCharge.since!)).every((s) => s.risk < 0.8)).toBe(true);
    expect(h.audit.map((a) => a.kind)).toEqual(['ModelPromoted']);
    expect(h.discarded).toEqual([]);
    expect(h.state.current?.inCharge.scorer).toEqual({ kind: 'tfjs', name: 'm1@60min', path: '/models/m1@60min' });
    expect(s2.lifecycle.phase).toBe('idle');
    // Next cycle at the next scheduled time (every 6 h, UTC).
    expect(s2.lifecycle.nextCycleAt).toBe(new Date(T0 + 6 * 60 * MIN).toISOString());
  });

  it('refuses a model that alarms more than stat on the held-back part; stat stays in charge, with an audit entry', async () => {
    const h = harness((x) => (x > 0.5 ? 0.95 : 0.85));
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    const scores = await run(lc, T0, T0 + 62 * MIN);
    const st = lc.status();
    expect(st.inCharge.kind).toBe('stat');
    expect(st.lifecycle.phase).toBe('idle');
    expect(st.lifecycle.lastCycle).toMatchObject({ outcome: 'refused', candidate: 'm1@60min' });
    expect(st.lifecycle.lastCycle?.reasons.some((r) => r.startsWith('FAIL false alarms'))).toBe(true);
    expect(h.audit.map((a) => a.kind)).toEqual(['ModelRefused']);
    expect(h.audit[0]!.reason).toMatch(/FAIL false alarms/);
    expect(scores.every((s) => s.scorer === 'stat-v1')).toBe(true);
    expect(h.discarded).toEqual(['m1@60min']);
  });

  it('judges the incidents the recording holds (confirmed drains): a quieter model that misses one stat caught is refused', async () => {
    // Both quiet on healthy windows; an incident on n2 where x rises, which stat (risk 0.9 at x=1) reaches and the
    // candidate (0.3 whatever x is) does not.
    const h = harness(() => 0.3);
    h.ports.stat = scorer('stat-v1', () => 0.1);
    h.ports.freshStat = () => scorer('stat-v1', (x) => (x > 0.5 ? 0.9 : 0.1));
    const incident = { nodeId: 'n2', from: T0 + 20 * MIN, to: T0 + 25 * MIN };
    h.ports.labels = async () => ({ incidents: [incident], falseDrains: [] });
    let trainedWith: unknown = null;
    const train = h.ports.train;
    h.ports.train = async (rec, o) => {
      trainedWith = o.incidents;
      return train(rec, o);
    };
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    await run(lc, T0, T0 + 61 * MIN);
    const last = lc.status().lifecycle.lastCycle!;
    expect(trainedWith).toEqual([incident]);
    expect(last.outcome).toBe('refused');
    expect(last.validation?.candidate).toMatchObject({ incidents: 1, incidentsDetected: 0, meanIncidentPeakRisk: 0.3 });
    expect(last.validation?.stat).toMatchObject({ incidents: 1, incidentsDetected: 1, meanIncidentPeakRisk: 0.9 });
    expect(last.reasons.find((r) => r.startsWith('FAIL'))).toMatch(/^FAIL incidents detected: 0\/1 vs 1\/1/);
  });

  it('refuses in shadow a candidate that validated but alarms more live (the live windows are its last test)', async () => {
    let live = false;
    const h = harness((x) => (live && x > 0.5 ? 0.99 : 0.05));
    h.ports.stat = scorer('stat-v1', () => 0.1); // quiet live, so any candidate alarm is one too many
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    await run(lc, T0, T0 + 61 * MIN);
    expect(lc.status().lifecycle.phase).toBe('shadow');
    live = true;
    await run(lc, T0 + 61 * MIN, T0 + 72 * MIN);
    const st = lc.status();
    expect(st.inCharge.kind).toBe('stat');
    expect(st.lifecycle.lastCycle?.outcome).toBe('refused');
    expect(st.lifecycle.lastCycle?.reasons.at(-1)).toMatch(/^FAIL shadow alarms/);
    expect(h.discarded).toEqual(['m1@60min']);
  });

  it('a failed cycle (training refused the data) is reported and retried on schedule, stat stays', async () => {
    const h = harness(() => 0.05);
    h.ports.train = async () => {
      throw new Error('only 12 healthy windows to train on; need at least 50');
    };
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    await run(lc, T0, T0 + 61 * MIN);
    expect(lc.status().lifecycle.lastCycle).toMatchObject({ outcome: 'failed' });
    expect(h.audit[0]).toMatchObject({ kind: 'ModelRefused', nodeId: 'model' });
    expect(h.audit[0]!.reason).toMatch(/only 12 healthy windows/);
    expect(lc.status().lifecycle.nextCycleAt).toBe(new Date(T0 + 6 * 60 * MIN).toISOString());
  });

  it('rollback puts the previous scorer back at once, audits it, and a second rollback undoes the first', async () => {
    const h = harness(() => 0.05, { shadowMs: 0 });
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    await expect(lc.rollback('olga', 'nothing yet')).rejects.toThrow(/nothing to roll back to/);
    h.settings.shadowMinWindows = 0;
    await run(lc, T0, T0 + 62 * MIN);
    expect(lc.status().inCharge.kind).toBe('tfjs');

    const rec = await lc.rollback('olga', 'drains look wrong', T0 + 63 * MIN);
    expect(rec).toMatchObject({ kind: 'ModelRolledBack', actor: 'olga', nodeId: 'model' });
    expect(lc.status().inCharge).toMatchObject({ kind: 'stat', since: new Date(T0 + 63 * MIN).toISOString() });
    expect(lc.status().inCharge.why).toMatch(/rolled back from m1@60min by olga: drains look wrong/);
    expect(lc.score([vector('n1', T0 + 64 * MIN, 1)])[0]!.scorer).toBe('stat-v1');
    expect(h.state.current?.inCharge.scorer.kind).toBe('stat');

    await lc.rollback('olga', 'it was fine after all', T0 + 65 * MIN);
    expect(lc.status().inCharge).toMatchObject({ kind: 'tfjs', name: 'm1@60min' });
    expect(h.loaded).toEqual(['m1@60min']);
    expect(h.audit.map((a) => a.kind)).toEqual(['ModelPromoted', 'ModelRolledBack', 'ModelRolledBack']);
  });

  it('a restart resumes with the promoted model in charge, loaded from the saved state', async () => {
    const h = harness(() => 0.05, { shadowMs: 0 });
    h.settings.shadowMinWindows = 0;
    const lc = await ModelLifecycle.start(h.ports, h.settings, T0);
    await run(lc, T0, T0 + 62 * MIN);
    const again = await ModelLifecycle.start(h.ports, h.settings, T0 + 100 * MIN);
    expect(again.status().inCharge).toMatchObject({ kind: 'tfjs', name: 'm1@60min' });
    expect(again.name).toBe('m1@60min');
    expect(h.loaded).toEqual(['m1@60min']);
  });

  it('refuses a schedule that is not a cron expression, saying so', async () => {
    const h = harness(() => 0.05);
    await expect(ModelLifecycle.start(h.ports, { ...h.settings, schedule: 'every day' }, T0)).rejects.toThrow(
      /model.lifecycle.schedule "every day" is not a cron expression/,
    );
  });
});
