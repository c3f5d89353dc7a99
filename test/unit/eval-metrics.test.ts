import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_GUARDRAILS } from '../../src/core/guardrails.js';
import type { ScoredSeries } from '../../src/eval/collect.js';
import { type EvalLabel, parseLabels } from '../../src/eval/labels.js';
import { classifyDrains, scoreDetector, summarize } from '../../src/eval/metrics.js';
import { type ModelledDrain, type PolicySettings, runPolicy } from '../../src/eval/policy.js';
import type { IncidentLabel } from '../../src/messages.js';

const W = 10_000;
const T0 = 1_704_067_200_000;
const MIN = 60_000;

/** A synthetic scored series: `nodes` nodes, `windows` windows, 10 active calls, risk from `risk(node, ts)`. */
function series(nodes: number, windows: number, risk: (node: number, ts: number) => number): ScoredSeries {
  const s: ScoredSeries = {
    nodes: Array.from({ length: nodes }, (_, i) => `ast${i + 1}`),
    scorers: ['test'],
    ts: [],
    node: [],
    observed: [],
    up: [],
    activeCalls: [],
    risk: [[]],
    sumActive: 0,
    sumStartRate: 0,
    windowMs: W,
  };
  for (let w = 1; w <= windows; w++) {
    for (let n = 0; n < nodes; n++) {
      const ts = T0 + w * W;
      s.ts.push(ts);
      s.node.push(n);
      (s.observed as number[]).push(1);
      (s.up as number[]).push(1);
      s.activeCalls.push(10);
      s.risk[0]!.push(risk(n, ts));
    }
  }
  return s;
}

const SETTINGS: PolicySettings = {
  threshold: 0.8,
  hysteresisWindows: 3,
  guardrails: { ...DEFAULT_GUARDRAILS, cooldownMs: 10 * MIN },
  drainTimeoutMs: 15 * MIN,
  restartDownMs: 30_000,
  recoverWindows: 3,
  meanCallS: 180,
  matchSlackMs: 0,
  postCrashGraceMs: 10 * MIN,
};

const LABELS: IncidentLabel[] = [
  { nodeId: 'ast1', mode: 'memory_leak', predictable: true, onsetAt: T0 + 60 * MIN, crashAt: T0 + 120 * MIN },
  { nodeId: 'ast2', mode: 'db_degradation', predictable: true, onsetAt: T0 + 200 * MIN, crashAt: T0 + 206 * MIN },
  { nodeId: 'ast3', mode: 'sudden_crash', predictable: false, onsetAt: T0 + 300 * MIN, crashAt: T0 + 300 * MIN },
];

const WINDOWS = (8 * 60 * MIN) / W;

/** Risk 1 exactly while a predictable incident's precursor runs: a perfect oracle. */
function oracle(labels: IncidentLabel[]) {
  return (n: number, ts: number) =>
    labels.some((l) => l.predictable && l.nodeId === `ast${n + 1}` && ts >= l.onsetAt && ts < l.crashAt) ? 1 : 0;
}

function evaluate(s: ScoredSeries, labels: IncidentLabel[], drains: ModelledDrain[]) {
  return summarize('t', 0.8, scoreDetector(s, labels, drains, {}, SETTINGS));
}

describe('evaluation metrics', () => {
  it('a perfect oracle has recall 1, precision 1, no false drains, and leads close to the precursor length', () => {
    const s = series(4, WINDOWS, oracle(LABELS));
    const { drains } = runPolicy(s, s.risk[0]!, LABELS, SETTINGS);
    const sum = evaluate(s, LABELS, drains);
    expect(sum.recall).toBe(1);
    expect(sum.precision).toBe(1);
    expect(sum.falseDrains).toBe(0);
    expect(sum.predictableIncidents).toBe(2);
    // K windows of hysteresis after onset.
    expect(sum.leadSlow.medianS).toBe(60 * 60 - 3 * 10 + 10);
    expect(sum.leadFast.medianS).toBe(6 * 60 - 3 * 10 + 10);
    expect(sum.callsSaved).toBeGreaterThan(0);
  });

  it('sudden crashes stay out of recall but are reported with their dropped calls', () => {
    const s = series(4, WINDOWS, oracle(LABELS));
    const out = scoreDetector(s, LABELS, [], {}, SETTINGS);
    const sudden = out.incidents.filter((i) => !i.predictable);
    expect(sudden).toHaveLength(1);
    expect(sudden[0]!.callsDroppedEstimate).toBe(10);
    expect(summarize('r', null, out).predictableIncidents).toBe(2);
  });

  it('the reactive baseline (no drains) detects nothing and saves 0 calls, losing every call at risk', () => {
    const s = series(4, WINDOWS, () => 0);
    const sum = evaluate(s, LABELS, []);
    expect(sum.recall).toBe(0);
    expect(sum.callsSaved).toBe(0);
    expect(sum.callsDroppedEstimate).toBe(sum.callsAtRisk);
    expect(sum.callsAtRisk).toBe(30);
  });

  it('a risk that is always high on every node is a shared fault: nothing is drained, the refusal says so', () => {
    const s = series(4, WINDOWS, () => 0.99);
    const { drains, refusals } = runPolicy(s, s.risk[0]!, [], SETTINGS);
    expect(drains).toEqual([]);
    expect(refusals.shared_fault).toBeGreaterThan(0);
  });

  it('one node always high is drained once: the restart does not cure it, so it stays out (quarantined), never cycled', () => {
    const s = series(4, WINDOWS, (n) => (n === 0 ? 0.99 : 0.05));
    const { drains } = runPolicy(s, s.risk[0]!, [], SETTINGS);
    expect(drains.map((d) => d.nodeId)).toEqual(['ast1']);
    expect(drains[0]!.backAt).toBe(s.ts[s.ts.length - 1]);
    expect(evaluate(s, [], drains).precision).toBe(0);
  });

  const drainArb = fc.record({
    node: fc.integer({ min: 0, max: 3 }),
    minute: fc.integer({ min: 0, max: 479 }),
  });
  const toDrain = (d: { node: number; minute: number }): ModelledDrain => ({
    nodeId: `ast${d.node + 1}`,
    ts: T0 + d.minute * MIN,
    risk: 0.9,
    activeCalls: 10,
    backAt: T0 + d.minute * MIN + 10 * MIN,
  });

  it('property: more false positives never score better', () => {
    const s = series(4, WINDOWS, () => 0);
    fc.assert(
      fc.property(
        fc.array(drainArb, { maxLength: 20 }),
        fc.array(drainArb, { minLength: 1, maxLength: 10 }),
        (base, extra) => {
          const before = base.map(toDrain);
          // Extra drains on a node with no incident are false by construction.
          const added = extra.map((d) => toDrain({ ...d, node: 3 }));
          const a = evaluate(s, LABELS.slice(0, 2), before);
          const b = evaluate(
            s,
            LABELS.slice(0, 2),
            [...before, ...added].sort((x, y) => x.ts - y.ts),
          );
          expect(b.falseDrains).toBeGreaterThan(a.falseDrains);
          expect(b.falseDrainsPerNodeDay).toBeGreaterThan(a.falseDrainsPerNodeDay);
          expect(b.precision ?? 0).toBeLessThanOrEqual(a.precision ?? 1);
          expect(b.recall).toBe(a.recall);
        },
      ),
    );
  });

  it('property: a detector that drains earlier never has less lead nor saves fewer calls', () => {
    const s = series(4, WINDOWS, () => 0);
    const label = LABELS[0]!;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 59 }), (a, b) => {
        const [early, late] = a <= b ? [a, b] : [b, a];
        const drainAt = (m: number) => [toDrain({ node: 0, minute: 60 + m })];
        const e = scoreDetector(s, [label], drainAt(early), {}, SETTINGS).incidents[0]!;
        const l = scoreDetector(s, [label], drainAt(late), {}, SETTINGS).incidents[0]!;
        expect(e.leadS!).toBeGreaterThanOrEqual(l.leadS!);
        expect(e.callsSaved).toBeGreaterThanOrEqual(l.callsSaved);
      }),
    );
  });

  it('classifies repeats and post-crash drains apart from false drains', () => {
    const l = LABELS[0]!;
    const kinds = classifyDrains(
      [
        toDrain({ node: 0, minute: 70 }),
        toDrain({ node: 0, minute: 100 }),
        toDrain({ node: 0, minute: 125 }),
        toDrain({ node: 0, minute: 200 }),
        toDrain({ node: 0, minute: 59 }),
      ],
      [l],
      SETTINGS,
    ).map((d) => d.kind);
    expect(kinds).toEqual(['true', 'repeat', 'post_crash', 'false', 'false']);
  });

  it('incidents whose crash falls after the end are censored, not missed', () => {
    const s = series(2, 60, () => 0);
    const late: IncidentLabel = {
      nodeId: 'ast1',
      mode: 'memory_leak',
      predictable: true,
      onsetAt: T0,
      crashAt: T0 + 999 * MIN,
    };
    const sum = summarize('t', 0.8, scoreDetector(s, [late], [], {}, SETTINGS));
    expect(sum.predictableIncidents).toBe(0);
    expect(sum.recall).toBeNull();
  });

  it('a drain while the node is failing calls (crashAt..endedAt) is late, not false; after that it is false', () => {
    const db: EvalLabel = { ...LABELS[1]!, endedAt: T0 + 226 * MIN };
    const kinds = classifyDrains(
      [210, 224, 240].map((minute) => toDrain({ node: 1, minute })),
      [db],
      { ...SETTINGS, postCrashGraceMs: 0 },
    ).map((d) => d.kind);
    expect(kinds).toEqual(['late', 'late', 'false']);
    // Without endedAt the failure ends at crashAt, as before.
    expect(
      classifyDrains([toDrain({ node: 1, minute: 224 })], [LABELS[1]!], { ...SETTINGS, postCrashGraceMs: 0 })[0]!.kind,
    ).toBe('false');
    // Still failing at the end of the recording (endedAt null).
    expect(classifyDrains([toDrain({ node: 1, minute: 400 })], [{ ...db, endedAt: null }], SETTINGS)[0]!.kind).toBe(
      'late',
    );
    const sum = summarize(
      't',
      0.8,
      scoreDetector(
        series(4, WINDOWS, () => 0),
        [db],
        [toDrain({ node: 1, minute: 224 })],
        {},
        SETTINGS,
      ),
    );
    expect(sum).toMatchObject({ lateDrains: 1, falseDrains: 0, detected: 0 });
  });

  it('a caught failure is ended by the restart: its recorded failing period does not drain the node again', () => {
    // Risk stays high from onset until the recorded end of the failing period (20 min after crashAt).
    const db: EvalLabel = { ...LABELS[1]!, endedAt: LABELS[1]!.crashAt + 20 * MIN };
    const s = series(4, WINDOWS, (n, ts) => (n === 1 && ts >= db.onsetAt && ts < db.endedAt! ? 1 : 0));
    const { drains } = runPolicy(s, s.risk[0]!, [db], SETTINGS);
    const kinds = classifyDrains(drains, [db], SETTINGS).map((d) => d.kind);
    expect(kinds).toEqual(['true']);
    // Without the end of the failing period the replay drains the failing node again every cooldown.
    const open = runPolicy(s, s.risk[0]!, [LABELS[1]!], SETTINGS);
    expect(open.drains.length).toBeGreaterThan(1);
  });

  it('labels files may carry endedAt (epoch ms, ISO 8601 or null) and refuse one before crashAt', () => {
    const base = { nodeId: 'ast1', mode: 'db_degradation', onsetAt: 1000, crashAt: 2000 };
    expect(parseLabels([{ ...base, endedAt: 5000 }])[0]!.endedAt).toBe(5000);
    expect(parseLabels([{ ...base, endedAt: '1970-01-01T00:00:05Z' }])[0]!.endedAt).toBe(5000);
    expect(parseLabels([{ ...base, endedAt: null }])[0]!.endedAt).toBeNull();
    expect(parseLabels([base])[0]!.endedAt).toBeUndefined();
    expect(() => parseLabels([{ ...base, endedAt: 1500 }])).toThrow(/endedAt is before crashAt/);
    expect(() => parseLabels([{ ...base, endedAt: 'soon' }])).toThrow(/endedAt/);
  });
});
