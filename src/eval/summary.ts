import type { AuditRecord, FailureMode, IncidentLabel } from '../messages.js';

export interface IncidentSummary {
  node: string;
  mode: FailureMode;
  /** False for failures with no precursor (sudden crash): no model can predict them. */
  predictable: boolean;
  onsetAt: string;
  /** When the failure was due (ISO 8601). A drain and restart before it prevents the crash. */
  crashAt: string;
  /** When the node stopped taking new calls (DrainSucceeded), or null. */
  drainedAt: string | null;
  /** Seconds between drainedAt and crashAt, or null when not drained before it. */
  leadSeconds: number | null;
  /** Onset to failure: how much warning the incident gave at best. s */
  precursorSeconds: number;
  /**
   * `crashed` (the process died), `failed` (new calls failed, established calls went on), `prevented` (restarted
   * before crashAt) or `active` (still running at the end of the run).
   */
  outcome: string;
  /** Established calls the incident cost: torn down by the crash, or by a restart with calls still on the node. */
  callsDropped: number;
  /** Call setups that failed on the node because of the incident, or null when the input did not say. */
  callsFailed: number | null;
}

export interface RunSummary {
  seed: number;
  simulatedHours: number;
  nodes: number;
  scorer: string;
  incidents: IncidentSummary[];
  /** Automatic drains of nodes with no incident coming. */
  falseDrains: number;
  falseDrainDetails: { node: string; at: string; reason: string }[];
  callsCompleted: number;
  callsDropped: number;
  callsFailed: number;
  /** Calls dropped on incidents that had a precursor: the figure Foresight exists to keep at zero. */
  callsDroppedOnPredictable: number;
  /** Call setups that failed on incidents that had a precursor (where the inputs say). */
  callsFailedOnPredictable: number;
  drains: number;
}

export interface IncidentOutcomeInput {
  label: IncidentLabel;
  outcome: string;
  droppedAtCrash: number;
  /** Every call the incident dropped (crash and restart); droppedAtCrash when absent. */
  callsDropped?: number;
  /** Call setups that failed because of the incident; unknown when absent. */
  callsFailed?: number;
  /**
   * For incidents whose failure keeps the node up (outcome `failed`): when it stopped failing calls, epoch ms. A drain
   * between crashAt and this is a late drain of the incident, not a false one. Absent: the failure ends at crashAt.
   */
  endedAt?: number | null;
}

/** A drain this long before an incident's onset still counts as caused by it (the precursor starts softly). */
const ONSET_SLACK_MS = 5 * 60_000;

/**
 * Joins the simulator's ground truth with the audit trail. A drain belongs to an incident when it happened on that
 * node between (onset − slack) and the failure, or, for a node that stayed up failing calls, until that ended (a late
 * drain: drainedAt set, leadSeconds null); any other automatic drain is a false drain.
 */
export function summarizeRun(input: {
  seed: number;
  simulatedMs: number;
  nodes: number;
  scorer: string;
  incidents: IncidentOutcomeInput[];
  audit: AuditRecord[];
  callsCompleted: number;
  callsDropped: number;
  callsFailed: number;
}): RunSummary {
  const drains = input.audit.filter((r) => r.kind === 'DrainSucceeded').sort((a, b) => a.ts - b.ts);
  const explained = new Set<AuditRecord>();
  const incidents = input.incidents.map(({ label, outcome, droppedAtCrash, callsDropped, callsFailed, endedAt }) => {
    // A failed node stays up failing calls until endedAt, and a load-driven precursor slowed by a drain may end after
    // crashAt: a drain up to then still belongs to the incident.
    const until = typeof endedAt === 'number' ? Math.max(endedAt, label.crashAt) : label.crashAt;
    const belongs = (d: AuditRecord) =>
      d.nodeId === label.nodeId && d.ts >= label.onsetAt - ONSET_SLACK_MS && d.ts <= until;
    const drain = drains.find(belongs);
    for (const d of drains) if (belongs(d)) explained.add(d);
    const inTime = drain !== undefined && drain.ts <= label.crashAt;
    return {
      node: label.nodeId,
      mode: label.mode,
      predictable: label.predictable,
      onsetAt: new Date(label.onsetAt).toISOString(),
      crashAt: new Date(label.crashAt).toISOString(),
      drainedAt: drain ? new Date(drain.ts).toISOString() : null,
      leadSeconds: inTime ? Math.round((label.crashAt - drain.ts) / 1000) : null,
      precursorSeconds: Math.round((label.crashAt - label.onsetAt) / 1000),
      outcome,
      callsDropped: callsDropped ?? droppedAtCrash,
      callsFailed: callsFailed ?? null,
    } satisfies IncidentSummary;
  });
  const falseDrains = drains.filter((d) => !explained.has(d) && d.actor === 'auto');
  return {
    seed: input.seed,
    simulatedHours: input.simulatedMs / 3_600_000,
    nodes: input.nodes,
    scorer: input.scorer,
    incidents,
    falseDrains: falseDrains.length,
    falseDrainDetails: falseDrains.map((d) => ({ node: d.nodeId, at: new Date(d.ts).toISOString(), reason: d.reason })),
    callsCompleted: input.callsCompleted,
    callsDropped: input.callsDropped,
    callsFailed: input.callsFailed,
    callsDroppedOnPredictable: incidents.filter((i) => i.predictable).reduce((sum, i) => sum + i.callsDropped, 0),
    callsFailedOnPredictable: incidents.filter((i) => i.predictable).reduce((sum, i) => sum + (i.callsFailed ?? 0), 0),
    drains: drains.length,
  };
}
