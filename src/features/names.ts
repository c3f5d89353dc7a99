import { isMetricName, METRICS, type MetricName, MODEL_METRIC_NAMES } from '../messages.js';

/**
 * The feature vocabulary. FEATURE_NAMES is ordered and append-only in spirit: the model maps vectors to tensors in
 * this order (see `featureArray`), so reordering invalidates trained artefacts.
 */

/** Signals that get an own-baseline and a peer robust z-score. `scaleFloor`/`relFloor` keep z finite on flat series. */
export interface ZSignal {
  /** Short name used in `z.self.<name>` and `z.peer.<name>`. */
  name: string;
  /** Feature the z-score is computed on. */
  source: string;
  /** Smallest robust scale, in the source's unit: a deviation below it is noise, however flat the baseline. */
  scaleFloor: number;
  /** Smallest scale as a fraction of |median|, so busy nodes are not flagged for small relative changes. */
  relFloor: number;
  /** Level signals gate the own baseline (a node that looks abnormal does not teach its baseline). */
  level: boolean;
}

/** Series whose slope (per minute) is fitted by linear regression over the last windows. */
export interface SlopeSignal {
  name: string;
  source: string;
  /** True: fitted over the long slope window (slow precursors such as memory leaks). */
  long: boolean;
}

export interface EwmaSignal {
  name: string;
  source: string;
}

function perMetric(metric: MetricName): string[] {
  switch (METRICS[metric].kind) {
    case 'counter':
      return [`${metric}.rate`];
    case 'gauge':
      return [`${metric}.last`, `${metric}.mean`, `${metric}.max`];
    case 'latency':
      return [`${metric}.p50`, `${metric}.p95`, `${metric}.max`, `${metric}.count`];
  }
}

export const RAW_FEATURES: readonly string[] = MODEL_METRIC_NAMES.flatMap(perMetric);

export const DERIVED_FEATURES = ['calls.fail_ratio', 'sip.error_rate'] as const;

export const EWMA_SIGNALS: readonly EwmaSignal[] = [
  { name: 'invite_setup_p95', source: 'sip.invite_setup_ms.p95' },
  { name: 'db_query_p95', source: 'db.query_ms.p95' },
  { name: 'retrans_rate', source: 'sip.retransmissions.rate' },
  { name: 'error_rate', source: 'sip.error_rate' },
  { name: 'loss_pct', source: 'rtcp.loss_pct.mean' },
  { name: 'max_queue', source: 'taskprocessor.max_queue.max' },
  { name: 'memory_rss_mb', source: 'host.memory_rss_mb.last' },
  { name: 'cpu_pct', source: 'host.cpu_pct.mean' },
];

export const SLOPE_SIGNALS: readonly SlopeSignal[] = [
  { name: 'memory_rss_mb', source: 'host.memory_rss_mb.last', long: true },
  { name: 'open_fds', source: 'host.open_fds.last', long: true },
  { name: 'max_queue', source: 'taskprocessor.max_queue.max', long: false },
  { name: 'invite_setup_p95', source: 'sip.invite_setup_ms.p95', long: false },
  { name: 'db_query_p95', source: 'db.query_ms.p95', long: false },
  { name: 'retrans_rate', source: 'sip.retransmissions.rate', long: false },
  { name: 'loss_pct', source: 'rtcp.loss_pct.mean', long: false },
];

export function slopeFeature(name: string): string {
  return `slope.${name}_per_min`;
}

export const Z_SIGNALS: readonly ZSignal[] = [
  { name: 'invite_setup_p95', source: 'sip.invite_setup_ms.p95', scaleFloor: 20, relFloor: 0.1, level: true },
  { name: 'options_rtt_p95', source: 'sip.options_rtt_ms.p95', scaleFloor: 5, relFloor: 0.1, level: true },
  { name: 'db_query_p95', source: 'db.query_ms.p95', scaleFloor: 5, relFloor: 0.1, level: true },
  { name: 'jitter_p95', source: 'rtcp.jitter_ms.p95', scaleFloor: 2, relFloor: 0.1, level: true },
  { name: 'retrans_rate', source: 'sip.retransmissions.rate', scaleFloor: 0.5, relFloor: 0.1, level: true },
  { name: 'error_rate', source: 'sip.error_rate', scaleFloor: 0.2, relFloor: 0.1, level: true },
  { name: 'fail_ratio', source: 'calls.fail_ratio', scaleFloor: 0.02, relFloor: 0.1, level: true },
  { name: 'loss_pct', source: 'rtcp.loss_pct.mean', scaleFloor: 0.5, relFloor: 0.1, level: true },
  { name: 'max_queue', source: 'taskprocessor.max_queue.max', scaleFloor: 5, relFloor: 0.1, level: true },
  { name: 'cpu_pct', source: 'host.cpu_pct.mean', scaleFloor: 5, relFloor: 0.1, level: true },
  { name: 'memory_slope', source: slopeFeature('memory_rss_mb'), scaleFloor: 2, relFloor: 0, level: false },
  { name: 'queue_slope', source: slopeFeature('max_queue'), scaleFloor: 5, relFloor: 0, level: false },
  { name: 'db_query_slope', source: slopeFeature('db_query_p95'), scaleFloor: 5, relFloor: 0, level: false },
  { name: 'invite_setup_slope', source: slopeFeature('invite_setup_p95'), scaleFloor: 20, relFloor: 0, level: false },
  { name: 'retrans_slope', source: slopeFeature('retrans_rate'), scaleFloor: 0.5, relFloor: 0, level: false },
];

/**
 * The `.count` feature of the latency a feature is computed from (its percentiles are carried forward through windows
 * without measurements, which are not evidence), or null when the source is not a latency.
 */
export function latencyCountOf(source: string): string | null {
  const metric = source.slice(0, source.lastIndexOf('.'));
  return isMetricName(metric) && METRICS[metric].kind === 'latency' ? `${metric}.count` : null;
}

/** The `.count` feature behind each Z signal whose source is a latency percentile. */
export const Z_SIGNAL_COUNT: ReadonlyMap<string, string> = new Map(
  Z_SIGNALS.flatMap((s) => {
    const count = latencyCountOf(s.source);
    return count === null ? [] : [[s.name, count] as const];
  }),
);

/**
 * Packet-path Z signals. Loss on one node's own path moves them together; a single-node stall moves none of them, and a
 * network blip moves them on every node (no peer evidence). When at least PACKET_CORROBORATION of them stand out at
 * once, the scorers let the evidence act after a shorter persistence: a retransmission storm can fail calls within
 * 100 s of its first symptom, too soon for the general persistence plus the action layer's hysteresis.
 */
export const PACKET_SIGNALS: readonly string[] = ['loss_pct', 'jitter_p95', 'retrans_rate'];
export const PACKET_CORROBORATION = 2;

/** z-scores are clamped to this magnitude so that one absurd value cannot dominate everything downstream. */
export const Z_LIMIT = 50;

export const FEATURE_NAMES: readonly string[] = [
  ...RAW_FEATURES,
  ...DERIVED_FEATURES,
  ...EWMA_SIGNALS.map((s) => `ewma.${s.name}`),
  ...SLOPE_SIGNALS.map((s) => slopeFeature(s.name)),
  ...Z_SIGNALS.map((s) => `z.self.${s.name}`),
  ...Z_SIGNALS.map((s) => `z.peer.${s.name}`),
  'peers.observed',
];

export const FEATURE_INDEX: ReadonlyMap<string, number> = new Map(FEATURE_NAMES.map((n, i) => [n, i]));

/** Index of a feature in FEATURE_NAMES; throws on a name that is not in the vocabulary (a programming error). */
export function featureIndex(name: string): number {
  const i = FEATURE_INDEX.get(name);
  if (i === undefined) throw new Error(`unknown feature ${name}`);
  return i;
}

function rawDoc(name: string): string {
  const cut = name.lastIndexOf('.');
  const metric = name.slice(0, cut) as MetricName;
  const agg = name.slice(cut + 1);
  const unit = METRICS[metric].unit;
  switch (agg) {
    case 'rate':
      return `${metric}: events per second over the window (sum of per-sample counts / window length). ${unit}/s`;
    case 'last':
      return `${metric}: reading with the latest event time in the window (carried forward when absent). ${unit}`;
    case 'mean':
      return `${metric}: mean of the readings in the window (carried forward when absent). ${unit}`;
    case 'max':
      return `${metric}: largest value in the window (carried forward when absent). ${unit}`;
    case 'p50':
      return `${metric}: median measurement in the window (linear interpolation; carried forward when absent). ${unit}`;
    case 'p95':
      return `${metric}: 95th percentile measurement in the window (carried forward when absent). ${unit}`;
    case 'count':
      return `${metric}: number of measurements in the window. count`;
    default:
      return metric;
  }
}

/** One line per feature, for docs and the model card. */
export const FEATURE_DOCS: Readonly<Record<string, string>> = Object.freeze({
  ...Object.fromEntries(RAW_FEATURES.map((n) => [n, rawDoc(n)])),
  'calls.fail_ratio': '(calls.failed + calls.dropped) / max(calls.started, 1) in the window. ratio',
  'sip.error_rate': '(sip.replies_5xx + sip.replies_408) per second over the window. 1/s',
  ...Object.fromEntries(
    EWMA_SIGNALS.map((s) => [`ewma.${s.name}`, `Exponentially weighted mean of ${s.source} over observed windows.`]),
  ),
  ...Object.fromEntries(
    SLOPE_SIGNALS.map((s) => [
      slopeFeature(s.name),
      `Least-squares slope of ${s.source} per minute over the last ${s.long ? 'long' : 'short'} slope window (windows where it was reported).`,
    ]),
  ),
  ...Object.fromEntries(
    Z_SIGNALS.map((s) => [
      `z.self.${s.name}`,
      `Robust z of ${s.source} against the node's own recent baseline (median/MAD, current window excluded), clamped to ±${Z_LIMIT}.`,
    ]),
  ),
  ...Object.fromEntries(
    Z_SIGNALS.map((s) => [
      `z.peer.${s.name}`,
      `Robust z of ${s.source} against the other observed nodes of the same set in the same window (nodes another replica holds: their newest vector, usually one window behind); 0 with fewer than 2 peers.`,
    ]),
  ),
  'peers.observed':
    'Number of other nodes of the same set observed in the window, on this replica or (their newest vector within 3 windows) on another. count',
});

/** A vector's features in FEATURE_NAMES order (missing names read as 0), for models that want a dense array. */
export function featureArray(features: Readonly<Record<string, number>>): Float64Array {
  const out = new Float64Array(FEATURE_NAMES.length);
  for (let i = 0; i < FEATURE_NAMES.length; i++) {
    const v = features[FEATURE_NAMES[i]!];
    out[i] = typeof v === 'number' && Number.isFinite(v) ? v : 0;
  }
  return out;
}
