import { describe, expect, it } from 'vitest';
import { summarizeRun } from '../../src/eval/summary.js';
import type { AuditRecord, IncidentLabel } from '../../src/messages.js';

const T0 = Date.UTC(2024, 0, 1);
const min = 60_000;

function drain(nodeId: string, ts: number, actor = 'auto'): AuditRecord {
  return {
    seq: 0,
    ts,
    nodeId,
    kind: 'DrainSucceeded',
    actor,
    reason: 'risk',
    decisionId: 'd',
    dryRun: false,
    details: {},
  };
}

function label(nodeId: string, onset: number, crash: number, predictable = true): IncidentLabel {
  return {
    nodeId,
    mode: predictable ? 'memory_leak' : 'sudden_crash',
    predictable,
    onsetAt: T0 + onset,
    crashAt: T0 + crash,
  };
}

function run(audit: AuditRecord[], labels: IncidentLabel[], dropped: number[] = labels.map(() => 0)) {
  return summarizeRun({
    seed: 1,
    simulatedMs: 3_600_000,
    nodes: 4,
    scorer: 'test',
    incidents: labels.map((l, i) => ({ label: l, outcome: 'crashed', droppedAtCrash: dropped[i] ?? 0 })),
    audit,
    callsCompleted: 100,
    callsDropped: dropped.reduce((a, b) => a + b, 0),
    callsFailed: 0,
  });
}

describe('run summary', () => {
  it('credits a drain between onset and crash with its lead time', () => {
    const s = run([drain('ast1', T0 + 20 * min)], [label('ast1', 10 * min, 30 * min)]);
    expect(s.incidents[0]?.leadSeconds).toBe(600);
    expect(s.incidents[0]?.drainedAt).toBe(new Date(T0 + 20 * min).toISOString());
    expect(s.falseDrains).toBe(0);
  });

  it('counts drains of nodes with no incident coming, and drains after the crash, as false', () => {
    const s = run(
      [drain('ast2', T0 + 20 * min), drain('ast1', T0 + 40 * min), drain('ast3', T0 + 25 * min, 'alice')],
      [label('ast1', 10 * min, 30 * min)],
    );
    expect(s.incidents[0]?.leadSeconds).toBeNull();
    // ast2 (no incident) and ast1 after its crash are false; a person's manual drain is not the model's mistake.
    expect(s.falseDrains).toBe(2);
  });

  it('keeps unpredictable incidents visible and separates their dropped calls', () => {
    const s = run([], [label('ast1', 10 * min, 10 * min, false), label('ast2', 5 * min, 20 * min)], [7, 3]);
    expect(s.incidents.map((i) => i.predictable)).toEqual([false, true]);
    expect(s.callsDroppedOnPredictable).toBe(3);
  });

  it('passes through every call an incident cost and its precursor length', () => {
    const s = summarizeRun({
      seed: 1,
      simulatedMs: 3_600_000,
      nodes: 4,
      scorer: 'test',
      incidents: [
        {
          label: label('ast1', 10 * min, 30 * min),
          outcome: 'prevented',
          droppedAtCrash: 0,
          callsDropped: 2,
          callsFailed: 5,
        },
      ],
      audit: [drain('ast1', T0 + 12 * min)],
      callsCompleted: 100,
      callsDropped: 2,
      callsFailed: 5,
    });
    expect(s.incidents[0]).toMatchObject({
      callsDropped: 2,
      callsFailed: 5,
      precursorSeconds: 1200,
      leadSeconds: 1080,
    });
    expect(s.callsDroppedOnPredictable).toBe(2);
    expect(s.callsFailedOnPredictable).toBe(5);
  });

  it('a drain while a node is still up failing calls is a late drain of that incident, not a false one', () => {
    const failed = (endedAt: number | undefined) =>
      summarizeRun({
        seed: 1,
        simulatedMs: 3_600_000,
        nodes: 4,
        scorer: 'test',
        incidents: [{ label: label('ast1', 10 * min, 30 * min), outcome: 'failed', droppedAtCrash: 0, endedAt }],
        audit: [drain('ast1', T0 + 35 * min)],
        callsCompleted: 100,
        callsDropped: 0,
        callsFailed: 0,
      });
    const late = failed(T0 + 50 * min);
    expect(late.falseDrains).toBe(0);
    expect(late.incidents[0]).toMatchObject({ drainedAt: new Date(T0 + 35 * min).toISOString(), leadSeconds: null });
    // Without the end of the failure, or after it ended, the same drain explains nothing.
    expect(failed(undefined).falseDrains).toBe(1);
    expect(failed(T0 + 32 * min).falseDrains).toBe(1);
  });

  it('an earlier drain never reports less lead', () => {
    const l = [label('ast1', 10 * min, 30 * min)];
    const late = run([drain('ast1', T0 + 25 * min)], l).incidents[0]!.leadSeconds!;
    const early = run([drain('ast1', T0 + 12 * min)], l).incidents[0]!.leadSeconds!;
    expect(early).toBeGreaterThan(late);
  });
});
