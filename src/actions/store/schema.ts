/** Row shapes and conversions shared by the SQL stores, so SQLite and PostgreSQL read and write the same records. */
import { ForesightError } from '../../errors.js';
import { AUDIT_KINDS, type AuditKind, type AuditRecord, LIFECYCLE_STATES, type NodeRecord } from '../../messages.js';
import type { AuditQuery, StoredCheckpoint, ThresholdRecord } from '../ports.js';

export const DEFAULT_AUDIT_LIMIT = 100;
export const MAX_AUDIT_LIMIT = 10_000;

export interface NodeRow {
  node_id: string;
  set_id: number | string;
  uri: string;
  state: string;
  since: number | string;
  pinned: number | boolean;
  manual_override: string | null;
  last_drain_at: number | string | null;
  decision_id: string | null;
  reason: string;
}

export interface AuditRow {
  seq: number | string;
  ts: number | string;
  node_id: string;
  kind: string;
  actor: string;
  reason: string;
  decision_id: string | null;
  dry_run: number | boolean;
  details: string | Record<string, unknown>;
}

export interface ThresholdRow {
  scorer: string;
  threshold: number | string;
  false_alarms: number | string;
  true_alarms: number | string;
  updated_at: number | string;
}

export interface CheckpointRow {
  key: string;
  kind: string;
  node_id: string;
  window_end: number | string;
  ts: number | string;
  body: string | Record<string, unknown>;
}

export function rowToCheckpoint(row: CheckpointRow): StoredCheckpoint {
  const kind = row.kind === 'scorer' ? 'scorer' : 'features';
  return {
    key: row.key,
    checkpoint: {
      kind,
      nodeId: row.node_id,
      windowEnd: Number(row.window_end),
      ts: Number(row.ts),
      state: typeof row.body === 'string' ? (JSON.parse(row.body) as unknown) : row.body,
    },
  };
}

export function rowToThreshold(row: ThresholdRow): ThresholdRecord {
  return {
    scorer: row.scorer,
    threshold: Number(row.threshold),
    falseAlarms: Number(row.false_alarms),
    trueAlarms: Number(row.true_alarms),
    updatedAt: Number(row.updated_at),
  };
}

/** A threshold outside [0, 1] would silently disable or force drains; the store refuses it. */
export function checkThreshold(r: ThresholdRecord): void {
  if (!(r.threshold >= 0 && r.threshold <= 1) || r.scorer === '') {
    throw new ForesightError(
      'FORESIGHT_ERR_BAD_REQUEST',
      `threshold ${r.threshold} for scorer "${r.scorer}" is not in [0, 1]`,
    );
  }
}

export function rowToNode(row: NodeRow): NodeRecord {
  const state = row.state as NodeRecord['state'];
  if (!LIFECYCLE_STATES.includes(state)) {
    throw new ForesightError('FORESIGHT_ERR_STORE', `node ${row.node_id}: unknown state ${row.state}`);
  }
  return {
    nodeId: row.node_id,
    setId: Number(row.set_id),
    uri: row.uri,
    state,
    since: Number(row.since),
    pinned: row.pinned === true || row.pinned === 1,
    manualOverride: row.manual_override,
    lastDrainAt: row.last_drain_at === null ? null : Number(row.last_drain_at),
    decisionId: row.decision_id,
    reason: row.reason,
  };
}

export function rowToAudit(row: AuditRow): AuditRecord {
  const kind = row.kind as AuditKind;
  if (!AUDIT_KINDS.includes(kind)) {
    throw new ForesightError('FORESIGHT_ERR_STORE', `audit ${row.seq}: unknown kind ${row.kind}`);
  }
  return {
    seq: Number(row.seq),
    ts: Number(row.ts),
    nodeId: row.node_id,
    kind,
    actor: row.actor,
    reason: row.reason,
    decisionId: row.decision_id,
    dryRun: row.dry_run === true || row.dry_run === 1,
    details: typeof row.details === 'string' ? (JSON.parse(row.details) as Record<string, unknown>) : row.details,
  };
}

export function auditLimit(query: AuditQuery): number {
  const limit = query.limit ?? DEFAULT_AUDIT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `audit limit must be a positive integer, got ${limit}`);
  }
  return Math.min(limit, MAX_AUDIT_LIMIT);
}

/** WHERE clause for an audit query; `param(i)` renders the i-th placeholder in the dialect. */
export function auditWhere(query: AuditQuery, param: (i: number) => string): { sql: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  const add = (expr: string, value: unknown) => {
    values.push(value);
    parts.push(`${expr} ${param(values.length)}`);
  };
  if (query.nodeId !== undefined) add('node_id =', query.nodeId);
  if (query.kind !== undefined) add('kind =', query.kind);
  if (query.beforeSeq !== undefined) add('seq <', query.beforeSeq);
  if (query.since !== undefined) add('ts >=', query.since);
  if (query.decisionId !== undefined) add('decision_id =', query.decisionId);
  return { sql: parts.length > 0 ? `WHERE ${parts.join(' AND ')}` : '', values };
}

/** Details are JSON; values that JSON cannot hold (functions, bigint) are refused rather than silently dropped. */
export function serializeDetails(details: Record<string, unknown>): string {
  try {
    return JSON.stringify(details ?? {});
  } catch (err) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', 'audit details are not JSON-serialisable', { cause: err });
  }
}
