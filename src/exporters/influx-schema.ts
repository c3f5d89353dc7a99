import { Point, type PointSettings } from '@influxdata/influxdb-client';
import { FEATURE_NAMES } from '../features/index.js';
import type { AuditRecord, FeatureVector, NodeScore } from '../messages.js';

/**
 * What the InfluxDB exporter writes: one measurement per message type. Dashboards (deploy/grafana) and their test read
 * this table, so a renamed field breaks the test rather than a panel.
 */
export const INFLUX_SCHEMA = {
  features: {
    measurement: 'foresight_features',
    tags: ['node', 'set'],
    /** One float field per feature, named exactly as in FEATURE_NAMES. */
    fields: FEATURE_NAMES,
  },
  scores: {
    measurement: 'foresight_scores',
    tags: ['node', 'set', 'scorer'],
    /** `time_to_failure_s` is absent when the scorer has no estimate; `observed` and `up` are 0/1 integers. */
    fields: ['risk', 'time_to_failure_s', 'active_calls', 'observed', 'up'],
  },
  actions: {
    measurement: 'foresight_actions',
    tags: ['node', 'kind', 'actor', 'dry_run'],
    /** `reason` is a string field (servers without string fields, such as victoria-metrics, store it as 0). */
    fields: ['seq', 'reason'],
  },
} as const satisfies Record<string, { measurement: string; tags: readonly string[]; fields: readonly string[] }>;

export type InfluxSeriesKind = keyof typeof INFLUX_SCHEMA;

/** Timestamps are written in milliseconds, the unit of every time in messages.ts. */
export const INFLUX_PRECISION = 'ms';

const msSettings: PointSettings = { convertTime: (t) => (typeof t === 'number' ? String(Math.floor(t)) : undefined) };

/** Largest epoch ms a JavaScript Date can hold; beyond it String(ts) turns exponential and breaks the line. */
const MAX_TIME_MS = 8.64e15;

/** A point needs a node to be attributed to and a time that prints as plain digits. */
function writable(nodeId: unknown, ts: number): boolean {
  return typeof nodeId === 'string' && nodeId !== '' && Number.isFinite(ts) && ts >= 0 && ts <= MAX_TIME_MS;
}

/** Line protocol for a feature vector, or null when nothing in it can be written (no finite feature, bad time). */
export function featureLine(v: FeatureVector): string | null {
  if (!writable(v.nodeId, v.windowEnd)) return null;
  const s = INFLUX_SCHEMA.features;
  // Points are stamped at window end, like the score computed from the same window.
  const p = new Point(s.measurement).tag('node', v.nodeId).tag('set', String(v.setId)).timestamp(v.windowEnd);
  for (const [name, value] of Object.entries(v.features)) {
    if (typeof value === 'number' && Number.isFinite(value)) p.floatField(name, value);
  }
  return p.toLineProtocol(msSettings) ?? null;
}

export function scoreLine(s: NodeScore): string | null {
  if (!writable(s.nodeId, s.ts) || !Number.isFinite(s.risk)) return null;
  const m = INFLUX_SCHEMA.scores;
  const p = new Point(m.measurement)
    .tag('node', s.nodeId)
    .tag('set', String(s.setId))
    .tag('scorer', s.scorer)
    .floatField('risk', s.risk)
    .intField('observed', s.observed ? 1 : 0)
    .intField('up', s.up ? 1 : 0)
    .timestamp(s.ts);
  if (s.activeCalls !== null && Number.isFinite(s.activeCalls)) p.floatField('active_calls', s.activeCalls);
  if (s.timeToFailureS !== null && Number.isFinite(s.timeToFailureS))
    p.floatField('time_to_failure_s', s.timeToFailureS);
  return p.toLineProtocol(msSettings) ?? null;
}

export function auditLine(a: AuditRecord): string | null {
  if (!writable(a.nodeId, a.ts) || !Number.isSafeInteger(a.seq)) return null;
  const m = INFLUX_SCHEMA.actions;
  const p = new Point(m.measurement)
    .tag('node', a.nodeId)
    .tag('kind', a.kind)
    .tag('actor', a.actor)
    .tag('dry_run', a.dryRun ? 'true' : 'false')
    .intField('seq', a.seq)
    .stringField('reason', a.reason)
    .timestamp(a.ts);
  return p.toLineProtocol(msSettings) ?? null;
}
