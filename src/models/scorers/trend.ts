import { slopeFeature } from '../../features/names.js';

/** Where each resource fails. Defaults suit the simulator; production sets them from the node's real limits. */
export interface TrendLimits {
  /** RSS at which the node is OOM-killed. MiB */
  memoryLimitMb: number;
  /** Taskprocessor queue depth at which the node stops making progress. tasks */
  queueLimit: number;
  /** Realtime DB query p95 at which calls fail. ms */
  dbQueryLimitMs: number;
  /** INVITE setup p95 at which callers give up (well below Timer B, 32 s). ms */
  inviteSetupLimitMs: number;
}

export const DEFAULT_TREND_LIMITS: Readonly<TrendLimits> = Object.freeze({
  memoryLimitMb: 2048,
  queueLimit: 500,
  dbQueryLimitMs: 1000,
  inviteSetupLimitMs: 3000,
});

/** The memory level the memory forecast reads. */
export const MEMORY_LEVEL_FEATURE = 'host.memory_rss_mb.last';

export type ForecastKind = 'memory' | 'queue' | 'db_latency' | 'invite_latency';

export interface Forecast {
  kind: ForecastKind;
  /** Feature holding the current level and its value. */
  levelFeature: string;
  level: number;
  /** Feature holding the slope and its value, per minute. */
  slopeFeature: string;
  slopePerMin: number;
  limit: number;
  /** Seconds until the level reaches the limit at the current slope. s */
  timeToLimitS: number;
  /** Z signal whose peer z tells whether the slope is this node's own (see Z_SIGNALS). */
  peerSignal: string;
  /** Z signal of the level itself, or null: when set, the trend counts only while the level stands out too. */
  levelSignal: string | null;
  /** Forecast time at which this trend alone gives risk 0.5, or null for the scorer's default. s */
  horizonS: number | null;
}

interface TrendSpec {
  kind: ForecastKind;
  levelFeature: string;
  slopeFeature: string;
  limit: keyof TrendLimits;
  /** Slopes below this are noise, not a trend. unit/min */
  minSlopePerMin: number;
  peerSignal: string;
  levelSignal: string | null;
  horizonS: number | null;
}

const SPECS: readonly TrendSpec[] = [
  {
    kind: 'memory',
    levelFeature: MEMORY_LEVEL_FEATURE,
    slopeFeature: slopeFeature('memory_rss_mb'),
    limit: 'memoryLimitMb',
    minSlopePerMin: 0.5,
    peerSignal: 'memory_slope',
    // RSS levels differ between nodes by design; a leak is told by its growth alone.
    levelSignal: null,
    // A leak is slow and relentless: with a hard limit ahead, warn early enough that calls can finish (mean 3 min,
    // the last of ~70 busy-hour calls ends ~15 min after a drain), i.e. risk 0.8 at ~38 min to the OOM.
    horizonS: 3600,
  },
  {
    kind: 'queue',
    levelFeature: 'taskprocessor.max_queue.max',
    slopeFeature: slopeFeature('max_queue'),
    limit: 'queueLimit',
    minSlopePerMin: 1,
    peerSignal: 'queue_slope',
    // A short burst of tasks (a hiccup) has a steep slope that outlives it in the fit; only a queue that is still
    // long says the node is falling behind.
    levelSignal: 'max_queue',
    horizonS: null,
  },
  {
    kind: 'db_latency',
    levelFeature: 'db.query_ms.p95',
    slopeFeature: slopeFeature('db_query_p95'),
    limit: 'dbQueryLimitMs',
    minSlopePerMin: 1,
    peerSignal: 'db_query_slope',
    levelSignal: 'db_query_p95',
    horizonS: null,
  },
  {
    kind: 'invite_latency',
    levelFeature: 'sip.invite_setup_ms.p95',
    slopeFeature: slopeFeature('invite_setup_p95'),
    limit: 'inviteSetupLimitMs',
    minSlopePerMin: 1,
    peerSignal: 'invite_setup_slope',
    levelSignal: 'invite_setup_p95',
    horizonS: null,
  },
];

/**
 * Linear time to exhaustion: seconds until `level` reaches `limit` growing at `slopePerMin`. Null when the series is
 * not growing faster than `minSlopePerMin` (no trend, no forecast); 0 when the limit is already reached.
 */
export function timeToLimitS(level: number, slopePerMin: number, limit: number, minSlopePerMin = 0): number | null {
  if (!Number.isFinite(level) || !Number.isFinite(slopePerMin) || !Number.isFinite(limit)) return null;
  if (!(slopePerMin > minSlopePerMin) || slopePerMin <= 0) return null;
  if (level >= limit) return 0;
  const seconds = ((limit - level) / slopePerMin) * 60;
  return Number.isFinite(seconds) ? seconds : null;
}

/** The features forecasts read, in this order: each kind's level, then its slope. */
export const TREND_INPUTS: readonly string[] = SPECS.flatMap((spec) => [spec.levelFeature, spec.slopeFeature]);

/** Every growing resource of one vector with its forecast, soonest first. */
export function forecastExhaustion(
  features: Readonly<Record<string, number>>,
  limits: Readonly<TrendLimits> = DEFAULT_TREND_LIMITS,
): readonly Forecast[] {
  const inputs = TREND_INPUTS.map((name) => features[name] ?? 0);
  return forecastFromInputs(inputs, 0, limits);
}

/**
 * As forecastExhaustion, from the TREND_INPUTS values at `at` in `inputs` (a scorer reads them with the rest of a
 * window's row, which is much cheaper than looking each one up by name).
 */
export function forecastFromInputs(
  inputs: ArrayLike<number>,
  at: number,
  limits: Readonly<TrendLimits> = DEFAULT_TREND_LIMITS,
): readonly Forecast[] {
  let out: Forecast[] | null = null;
  for (let i = 0; i < SPECS.length; i++) {
    const spec = SPECS[i]!;
    const level = inputs[at + 2 * i]!;
    const slope = inputs[at + 2 * i + 1]!;
    const limit = limits[spec.limit];
    const ttl = timeToLimitS(level, slope, limit, spec.minSlopePerMin);
    if (ttl === null) continue;
    out ??= [];
    out.push({
      kind: spec.kind,
      levelFeature: spec.levelFeature,
      level,
      slopeFeature: spec.slopeFeature,
      slopePerMin: slope,
      limit,
      timeToLimitS: ttl,
      peerSignal: spec.peerSignal,
      levelSignal: spec.levelSignal,
      horizonS: spec.horizonS,
    });
  }
  return out === null ? NO_FORECASTS : out.sort((a, b) => a.timeToLimitS - b.timeToLimitS);
}

/** Shared result when nothing grows (most windows); frozen, as callers get it by reference. */
const NO_FORECASTS: readonly Forecast[] = Object.freeze([]);
