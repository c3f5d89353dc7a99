import { ForesightError } from '../errors.js';
import { FAILURE_MODES, type FailureMode } from '../messages.js';

/** An incident the caller wants at a known time (tests, demos, scripted scenarios). */
export interface IncidentPlan {
  nodeId: string;
  mode: FailureMode;
  /** When the precursor starts, epoch ms. For `sudden_crash` this is the crash time. */
  onsetAt: number;
  /** When the node fails, epoch ms; drawn from the mode's duration range when omitted. Ignored for `sudden_crash`. */
  crashAt?: number;
  /** Precursor strength, 1 = typical; drawn from `randomIncidents.magnitude` when omitted. */
  magnitude?: number;
  /**
   * How long the node stays down after the crash before systemd has it back, ms; for modes that keep established
   * calls (db_degradation, retransmission_storm), how long it goes on failing new calls. Drawn when omitted.
   */
  recoveryMs?: number;
}

/** Random incidents: a Poisson process per node, with everything about each incident drawn from the seed. */
export interface RandomIncidentOptions {
  /** Expected incidents per node per simulated day; 0 turns them off. */
  perNodeDay: number;
  /** Relative weights of the failure modes; missing modes weigh 0 when the record is given. */
  modeWeights: Partial<Record<FailureMode, number>>;
  /** Precursor magnitude drawn uniformly in [min, max]. */
  magnitude: readonly [number, number];
  /** No random incident starts before start + warmupMs, so detectors can learn a baseline. ms */
  warmupMs: number;
}

/** Mild disturbances a naive detector mistakes for incidents: they never crash anything. */
export interface DisturbanceOptions {
  /** Short realtime-DB slowdowns seen by every node at once. per simulated day */
  dbBlipsPerDay: number;
  /** Short network degradations (loss, jitter) on every node at once. per simulated day */
  networkBlipsPerDay: number;
  /** Short single-node stalls (taskprocessor burst, slow setup) that clear by themselves. per node per day */
  hiccupsPerNodeDay: number;
}

export interface SimulatedClusterOptions {
  /** 32-bit seed; the same seed and the same calls give the same samples and labels. */
  seed: number;
  /** Number of Asterisk nodes, ids `ast1..astN`. */
  nodes: number;
  /** Dispatcher set id of every node. */
  setId: number;
  /** Virtual start time, epoch ms. */
  startAt: number;
  /** Tick length: every node reports once per tick. ms */
  tickMs: number;
  /** Calls per second offered per node at the busiest hour of a weekday. calls/s */
  callRatePerNode: number;
  /** Load at night relative to the busiest hour, in (0, 1]. */
  nightLoad: number;
  /** Load on Saturday and Sunday relative to weekdays, in (0, 1]. */
  weekendLoad: number;
  /** Hour offset of local time from UTC, for the daily load curve. h */
  utcOffsetHours: number;
  /** Mean call duration (durations are exponential). ms */
  meanCallMs: number;
  /** Kamailio `ds_ping_interval`. ms */
  pingIntervalMs: number;
  /** Kamailio `ds_probing_threshold`: failed pings before a destination becomes inactive. */
  probingThreshold: number;
  /** Kamailio `ds_inactive_threshold`: answered pings before an inactive destination is active again. */
  inactiveThreshold: number;
  /** How long a requested restart keeps the node down. ms */
  restartMs: number;
  /** Down time after a crash before the node is back (systemd restart + boot), drawn uniformly. ms */
  crashRecoveryMs: readonly [number, number];
  /**
   * How long a node whose failure keeps established calls (DB degradation, packet loss) goes on failing new calls
   * before the cause clears by itself, unless it is restarted first; drawn uniformly. ms
   */
  failedRecoveryMs: readonly [number, number];
  /** Memory at which the kernel OOM-kills Asterisk. MiB */
  memoryLimitMb: number;
  incidents: readonly IncidentPlan[];
  randomIncidents: RandomIncidentOptions;
  disturbances: DisturbanceOptions;
}

export type SimulatedClusterInput = Partial<
  Omit<SimulatedClusterOptions, 'randomIncidents' | 'disturbances'> & {
    randomIncidents: Partial<RandomIncidentOptions>;
    disturbances: Partial<DisturbanceOptions>;
  }
>;

/** Precursor length of each mode (onset to crash), drawn uniformly in [min, max]. ms */
export const MODE_DURATION_MS: Readonly<Record<FailureMode, readonly [number, number]>> = {
  memory_leak: [30 * 60_000, 120 * 60_000],
  // A backlog builds for a while before the watchdog fires: the queue grows as the node falls behind its load.
  taskprocessor_backlog: [10 * 60_000, 30 * 60_000],
  db_degradation: [2 * 60_000, 10 * 60_000],
  retransmission_storm: [60_000, 5 * 60_000],
  sudden_crash: [0, 0],
};

export const DEFAULT_MODE_WEIGHTS: Readonly<Record<FailureMode, number>> = {
  memory_leak: 1,
  taskprocessor_backlog: 1,
  db_degradation: 1,
  retransmission_storm: 1,
  sudden_crash: 0.5,
};

/** 2024-01-01T00:00:00Z, a Monday: a fixed default keeps runs reproducible. */
export const DEFAULT_START_AT = Date.UTC(2024, 0, 1, 0, 0, 0);

export const DEFAULT_OPTIONS: SimulatedClusterOptions = {
  seed: 1,
  nodes: 4,
  setId: 1,
  startAt: DEFAULT_START_AT,
  tickMs: 1000,
  callRatePerNode: 0.4,
  nightLoad: 0.08,
  weekendLoad: 0.45,
  utcOffsetHours: 0,
  meanCallMs: 180_000,
  pingIntervalMs: 5000,
  probingThreshold: 3,
  inactiveThreshold: 2,
  restartMs: 20_000,
  crashRecoveryMs: [60_000, 120_000],
  failedRecoveryMs: [10 * 60_000, 30 * 60_000],
  memoryLimitMb: 2048,
  incidents: [],
  randomIncidents: { perNodeDay: 1, modeWeights: DEFAULT_MODE_WEIGHTS, magnitude: [0.6, 1.6], warmupMs: 30 * 60_000 },
  disturbances: { dbBlipsPerDay: 8, networkBlipsPerDay: 6, hiccupsPerNodeDay: 6 },
};

function fail(field: string, why: string): never {
  throw new ForesightError('FORESIGHT_ERR_CONFIG', `simulator option ${field}: ${why}`, { details: { field } });
}

function positive(field: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0) fail(field, `must be a finite number > 0, got ${v}`);
}

function nonNegative(field: string, v: number): void {
  if (!Number.isFinite(v) || v < 0) fail(field, `must be a finite number >= 0, got ${v}`);
}

function fraction(field: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0 || v > 1) fail(field, `must be in (0, 1], got ${v}`);
}

function interval(field: string, v: readonly [number, number], min: number): void {
  if (!(v[0] >= min) || !(v[1] >= v[0]) || !Number.isFinite(v[1]))
    fail(field, `must be [min, max] with ${min} <= min <= max`);
}

/** Merges the input over the defaults and validates every field; throws FORESIGHT_ERR_CONFIG naming the field. */
export function resolveOptions(input: SimulatedClusterInput = {}): SimulatedClusterOptions {
  const o: SimulatedClusterOptions = {
    ...DEFAULT_OPTIONS,
    ...input,
    randomIncidents: { ...DEFAULT_OPTIONS.randomIncidents, ...input.randomIncidents },
    disturbances: { ...DEFAULT_OPTIONS.disturbances, ...input.disturbances },
  };
  if (!Number.isInteger(o.seed)) fail('seed', 'must be an integer');
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 99) fail('nodes', 'must be an integer in 1..99');
  if (!Number.isInteger(o.setId) || o.setId < 0) fail('setId', 'must be an integer >= 0');
  if (!Number.isFinite(o.startAt)) fail('startAt', 'must be epoch ms');
  if (!Number.isInteger(o.tickMs) || o.tickMs < 10 || o.tickMs > 60_000)
    fail('tickMs', 'must be an integer in 10..60000');
  nonNegative('callRatePerNode', o.callRatePerNode);
  fraction('nightLoad', o.nightLoad);
  fraction('weekendLoad', o.weekendLoad);
  if (!Number.isFinite(o.utcOffsetHours) || Math.abs(o.utcOffsetHours) > 14)
    fail('utcOffsetHours', 'must be in -14..14');
  positive('meanCallMs', o.meanCallMs);
  positive('pingIntervalMs', o.pingIntervalMs);
  if (!Number.isInteger(o.probingThreshold) || o.probingThreshold < 1)
    fail('probingThreshold', 'must be an integer >= 1');
  if (!Number.isInteger(o.inactiveThreshold) || o.inactiveThreshold < 1)
    fail('inactiveThreshold', 'must be an integer >= 1');
  nonNegative('restartMs', o.restartMs);
  interval('crashRecoveryMs', o.crashRecoveryMs, 0);
  interval('failedRecoveryMs', o.failedRecoveryMs, 0);
  positive('memoryLimitMb', o.memoryLimitMb);
  if (o.memoryLimitMb < 600) fail('memoryLimitMb', 'must be at least 600 (the healthy footprint is ~300-500 MiB)');
  const r = o.randomIncidents;
  nonNegative('randomIncidents.perNodeDay', r.perNodeDay);
  interval('randomIncidents.magnitude', r.magnitude, 0.05);
  nonNegative('randomIncidents.warmupMs', r.warmupMs);
  let weightSum = 0;
  for (const [mode, w] of Object.entries(r.modeWeights)) {
    if (!FAILURE_MODES.includes(mode as FailureMode)) fail(`randomIncidents.modeWeights.${mode}`, 'unknown mode');
    nonNegative(`randomIncidents.modeWeights.${mode}`, w ?? 0);
    weightSum += w ?? 0;
  }
  if (r.perNodeDay > 0 && weightSum <= 0) fail('randomIncidents.modeWeights', 'at least one weight must be > 0');
  nonNegative('disturbances.dbBlipsPerDay', o.disturbances.dbBlipsPerDay);
  nonNegative('disturbances.networkBlipsPerDay', o.disturbances.networkBlipsPerDay);
  nonNegative('disturbances.hiccupsPerNodeDay', o.disturbances.hiccupsPerNodeDay);
  o.incidents.forEach((plan, i) => {
    const f = `incidents[${i}]`;
    if (!FAILURE_MODES.includes(plan.mode)) fail(`${f}.mode`, `unknown mode ${String(plan.mode)}`);
    const m = /^ast(\d+)$/.exec(plan.nodeId);
    const idx = m ? Number(m[1]) : 0;
    if (idx < 1 || idx > o.nodes) fail(`${f}.nodeId`, `unknown node ${plan.nodeId}`);
    if (!Number.isFinite(plan.onsetAt)) fail(`${f}.onsetAt`, 'must be epoch ms');
    if (plan.crashAt !== undefined && plan.mode !== 'sudden_crash' && !(plan.crashAt > plan.onsetAt))
      fail(`${f}.crashAt`, 'must be after onsetAt');
    if (plan.magnitude !== undefined) positive(`${f}.magnitude`, plan.magnitude);
    if (plan.recoveryMs !== undefined) nonNegative(`${f}.recoveryMs`, plan.recoveryMs);
  });
  return o;
}
