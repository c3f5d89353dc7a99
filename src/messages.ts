/**
 * The one message vocabulary. Every stage exchanges only these types; the bus, the store and the API carry them.
 * Times are epoch milliseconds (event time, not wall time) unless a field name says otherwise.
 */

/** Where a sample came from. `sim` is the cluster simulator, which speaks the same metric vocabulary as the collectors. */
export type TelemetrySource = 'ami' | 'sip' | 'db' | 'host' | 'sim';

/**
 * How a metric is aggregated into a window.
 * - counter: each sample is a count of events since the previous sample; windows sum them and divide by the window length.
 * - gauge: each sample is an instantaneous reading; windows keep last, mean and max.
 * - latency: each sample is one measured duration; windows keep percentiles.
 */
export type MetricKind = 'counter' | 'gauge' | 'latency';

/** Every metric a collector or the simulator may emit, with its kind and unit. Closed set: unknown names are rejected. */
export const METRICS = {
  /** New inbound calls (Newchannel on the trunk from Kamailio). count */
  'calls.started': { kind: 'counter', unit: 'count' },
  /** Calls that ended normally (Hangup cause 16/17/19/21 after answer). count */
  'calls.completed': { kind: 'counter', unit: 'count' },
  /** Call setup failures (no answer because the node failed: 5xx/408, cause 34/38/41/42). count */
  'calls.failed': { kind: 'counter', unit: 'count' },
  /** Established calls torn down by a node failure. count */
  'calls.dropped': { kind: 'counter', unit: 'count' },
  /** Active channels on the node. channels */
  'channels.active': { kind: 'gauge', unit: 'channels' },
  /** Hangups with an abnormal cause (not 16/17/19/21). count */
  'hangup.abnormal': { kind: 'counter', unit: 'count' },
  /** SIP requests retransmitted toward the node (Timer A/E). count */
  'sip.retransmissions': { kind: 'counter', unit: 'count' },
  /** 5xx replies from the node. count */
  'sip.replies_5xx': { kind: 'counter', unit: 'count' },
  /** 408 replies or transaction timeouts toward the node. count */
  'sip.replies_408': { kind: 'counter', unit: 'count' },
  /** OPTIONS keepalive round-trip time. ms */
  'sip.options_rtt_ms': { kind: 'latency', unit: 'ms' },
  /** INVITE to first provisional/final reply. ms */
  'sip.invite_setup_ms': { kind: 'latency', unit: 'ms' },
  /** Realtime database query latency seen by the node. ms */
  'db.query_ms': { kind: 'latency', unit: 'ms' },
  /** Failed or timed-out database probes. count */
  'db.probe_failures': { kind: 'counter', unit: 'count' },
  /** Database connections waiting for a pooled client (pool saturation). count */
  'db.pool_waiting': { kind: 'gauge', unit: 'count' },
  /** Largest taskprocessor queue depth on the node. tasks */
  'taskprocessor.max_queue': { kind: 'gauge', unit: 'tasks' },
  /** Resident memory of the Asterisk process. MiB */
  'host.memory_rss_mb': { kind: 'gauge', unit: 'MiB' },
  /** CPU of the Asterisk process, 100 = one core. percent */
  'host.cpu_pct': { kind: 'gauge', unit: 'percent' },
  /** Open file descriptors of the Asterisk process. count */
  'host.open_fds': { kind: 'gauge', unit: 'count' },
  /** Threads of the Asterisk process. count */
  'host.threads': { kind: 'gauge', unit: 'count' },
  /** RTCP interarrival jitter. ms */
  'rtcp.jitter_ms': { kind: 'latency', unit: 'ms' },
  /** RTCP fraction lost. percent */
  'rtcp.loss_pct': { kind: 'gauge', unit: 'percent' },
  /** 1 while the node answers (AMI connected and FullyBooted), 0 when it is down or restarting. boolean */
  'node.up': { kind: 'gauge', unit: 'boolean' },
} as const satisfies Record<string, { kind: MetricKind; unit: string }>;

export type MetricName = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];

export function isMetricName(name: string): name is MetricName {
  return Object.hasOwn(METRICS, name);
}

/** One observation of one metric on one node. Keyed on the bus by `nodeId`. */
export interface TelemetrySample {
  /** Node id as configured (e.g. `ast1`). */
  nodeId: string;
  /** Event time, epoch ms. */
  ts: number;
  metric: MetricName;
  /** Value in the metric's unit (see METRICS). Always finite. */
  value: number;
  source: TelemetrySource;
}

/** Features of one node over one closed window. Keyed on the bus by `nodeId`. */
export interface FeatureVector {
  nodeId: string;
  /** Dispatcher set the node belongs to (peers for peer comparison). */
  setId: number;
  /** Window start, epoch ms (inclusive). */
  windowStart: number;
  /** Window end, epoch ms (exclusive). */
  windowEnd: number;
  /** Number of samples that fell in the window. 0 means the node was unobserved. */
  sampleCount: number;
  /** False when no telemetry arrived in the window: the node is unobserved, neither healthy nor failing. */
  observed: boolean;
  /** Named features; names come from FEATURE_NAMES in src/features. Missing inputs are 0, never NaN. */
  features: Record<string, number>;
}

/** One feature's share of a score, for the explanation shown to operators. */
export interface ScoreContribution {
  feature: string;
  /** Signed contribution in score units or z-score units, as the scorer documents. */
  weight: number;
  /** The feature's value in the window. */
  value: number;
}

/** A scorer's verdict on one node for one window. Keyed on the bus by `nodeId`. */
export interface NodeScore {
  nodeId: string;
  setId: number;
  /** End of the window scored, epoch ms. */
  ts: number;
  /** Probability-like risk of failure soon, in [0, 1]; enforced at the scorer boundary. */
  risk: number;
  /** Predicted seconds until failure, or null where no trend allows an estimate. s */
  timeToFailureS: number | null;
  /** The features that drive the score, largest first. */
  explanation: ScoreContribution[];
  /** Scorer name and version, e.g. `stat-v1`. */
  scorer: string;
  /** Copied from the feature vector: an unobserved node's risk is not evidence of health. */
  observed: boolean;
  /** Active channels at window end, for the drain lifecycle. channels */
  activeCalls: number;
  /** Whether the node was up at window end (node.up). */
  up: boolean;
}

/** Lifecycle states of a node as Foresight drives it. */
export type NodeLifecycleState = 'active' | 'draining' | 'restarting' | 'recovering';

export const LIFECYCLE_STATES: readonly NodeLifecycleState[] = ['active', 'draining', 'restarting', 'recovering'];

/** What an action asks for. */
export type DrainAction = 'drain' | 'undrain' | 'restart' | 'pin' | 'unpin';

/** A decision taken (or refused) by the action module. */
export interface DrainDecision {
  /** Unique id, also the idempotency key. */
  id: string;
  nodeId: string;
  /** Decision time, epoch ms (event time). */
  ts: number;
  action: DrainAction;
  /** Who asked: `auto` for the model loop, or an operator's name. */
  actor: string;
  /** Why, in plain words. */
  reason: string;
  /** Risk at decision time, in [0, 1], where a score was known. */
  risk: number | null;
  /** True when the actuator was the dry-run one. */
  dryRun: boolean;
}

/** Closed set of audit kinds, so that dashboards and counters can rely on them. */
export const AUDIT_KINDS = [
  'DrainStarting',
  'DrainSucceeded',
  'DrainFailed',
  'DrainRefused',
  'DrainExtended',
  'RestartStarting',
  'RestartSucceeded',
  'RestartFailed',
  'RecoveryStarted',
  'NodeReturned',
  'UndrainSucceeded',
  'UndrainFailed',
  'Pinned',
  'Unpinned',
  'ManualOverrideDetected',
  'StateReapplied',
  'Verdict',
  'Resumed',
  'OverrideCleared',
  'RecoveryFailed',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** One line of the audit trail. Append-only. */
export interface AuditRecord {
  /** Monotonic id assigned by the store (0 before it is stored). */
  seq: number;
  /** Event time, epoch ms. */
  ts: number;
  nodeId: string;
  kind: AuditKind;
  /** `auto` or an operator's name. */
  actor: string;
  reason: string;
  /** Decision this record belongs to, if any. */
  decisionId: string | null;
  dryRun: boolean;
  /** Free-form details (risk, guardrail that refused, error text). */
  details: Record<string, unknown>;
}

/** Durable per-node state kept by the action module, so a restarted Foresight resumes where it was. */
export interface NodeRecord {
  nodeId: string;
  setId: number;
  /** Dispatcher destination URI, e.g. `sip:127.0.0.1:5071`. */
  uri: string;
  state: NodeLifecycleState;
  /** When the current state was entered, epoch ms. */
  since: number;
  /** Operator pinned the node: never drained automatically. */
  pinned: boolean;
  /** A person changed the node in the dispatcher by hand; Foresight leaves it alone until cleared. */
  manualOverride: string | null;
  /** Last time the node left `active`, epoch ms, for the cooldown. */
  lastDrainAt: number | null;
  /** Decision that put the node in its current state. */
  decisionId: string | null;
  /** Why the node is in its current state. */
  reason: string;
}

/** Ground truth the simulator (or an operator's labels file) provides for evaluation. Never seen by the pipeline. */
export interface IncidentLabel {
  nodeId: string;
  mode: FailureMode;
  /** False for failures with no precursor (sudden crash). */
  predictable: boolean;
  /** When the precursor starts, epoch ms. */
  onsetAt: number;
  /** When the node fails, epoch ms. */
  crashAt: number;
}

export type FailureMode =
  | 'memory_leak'
  | 'taskprocessor_backlog'
  | 'db_degradation'
  | 'retransmission_storm'
  | 'sudden_crash';

export const FAILURE_MODES: readonly FailureMode[] = [
  'memory_leak',
  'taskprocessor_backlog',
  'db_degradation',
  'retransmission_storm',
  'sudden_crash',
];

/** A message that could not be processed, with why and where it came from. */
export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  /** Error code, e.g. FORESIGHT_ERR_BAD_MESSAGE. */
  code: string;
  reason: string;
  /** The raw payload, truncated to a few KiB. */
  payload: string;
  ts: number;
}
