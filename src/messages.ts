/**
 * The one message vocabulary. Every stage exchanges only these types; the bus, the store and the API carry them.
 * Times are epoch milliseconds (event time, not wall time) unless a field name says otherwise.
 */

/**
 * Where a sample came from. `sim` is the cluster simulator, which speaks the same metric vocabulary as the collectors;
 * `probe` is Foresight's own OPTIONS prober (src/ingest/probe).
 */
export type TelemetrySource = 'ami' | 'sip' | 'db' | 'host' | 'sim' | 'probe';

/** Every TelemetrySource, for the validators at the bus and file boundaries. */
export const TELEMETRY_SOURCES: readonly TelemetrySource[] = ['ami', 'sip', 'db', 'host', 'sim', 'probe'];

/**
 * How a metric is aggregated into a window.
 * - counter: each sample is a count of events since the previous sample; windows sum them and divide by the window length.
 * - gauge: each sample is an instantaneous reading; windows keep last, mean and max.
 * - latency: each sample is one measured duration; windows keep percentiles.
 */
export type MetricKind = 'counter' | 'gauge' | 'latency';

/**
 * Every metric a collector or the simulator may emit, with its kind and unit. Closed set: unknown names are rejected.
 * `modelInput: false` marks evidence for the lifecycle decisions that is not a model input: it stays out of
 * FEATURE_NAMES, so the trained artefacts (whose manifest must list FEATURE_NAMES exactly) remain valid.
 */
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
  /**
   * Confirmed SIP dialogs with the node (a 2xx to an INVITE crossed between the proxy and the node, no BYE yet),
   * counted from the HEP stream. Emitted only while the count is complete: after a warm-up since mirrored traffic of
   * the node was first (or again) seen, because dialogs set up before then are invisible. No sample means unknown,
   * never 0. dialogs
   */
  'sip.dialogs_active': { kind: 'gauge', unit: 'dialogs', modelInput: false },
  /**
   * The same count, emitted whenever the node's traffic is seen, also during warm-up: a lower bound (a value above 0
   * proves calls are up; 0 proves nothing until sip.dialogs_active is emitted). dialogs
   */
  'sip.dialogs_seen': { kind: 'gauge', unit: 'dialogs', modelInput: false },
  /** OPTIONS probes Foresight itself sent to the node. count */
  'probe.options_sent': { kind: 'counter', unit: 'count', modelInput: false },
  /** OPTIONS probes without any final reply within the probe timeout. count */
  'probe.options_lost': { kind: 'counter', unit: 'count', modelInput: false },
  /** Round trip of an answered OPTIONS probe (any final reply), one sample per answered probe. ms */
  'probe.options_rtt_ms': { kind: 'latency', unit: 'ms', modelInput: false },
  /** OPTIONS probes answered 5xx (503: Asterisk refuses new work, e.g. a graceful shutdown is pending). count */
  'probe.options_5xx': { kind: 'counter', unit: 'count', modelInput: false },
} as const satisfies Record<string, { kind: MetricKind; unit: string; modelInput?: false }>;

export type MetricName = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];

export function isMetricName(name: string): name is MetricName {
  return Object.hasOwn(METRICS, name);
}

/** False for evidence-only metrics (see METRICS). */
export function isModelInput(metric: MetricName): boolean {
  return !('modelInput' in METRICS[metric]);
}

/** The metrics the feature pipeline turns into model features, in METRICS order. */
export const MODEL_METRIC_NAMES: readonly MetricName[] = METRIC_NAMES.filter(isModelInput);

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
  /** What the window itself reported (calls and who counted them, liveness, probes), with null for silence. */
  evidence: WindowEvidence;
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
  /**
   * The scorer's uncalibrated evidence at full precision (>= 0, unbounded, monotone in the evidence): what ranks
   * windows, where `risk` saturates. Absent from scorers that have none, and while warming up.
   */
  rawScore?: number;
  /** True while the scorer has not learnt enough of this node to judge it: risk 0 then claims nothing. */
  warmup?: boolean;
  /** Predicted seconds until failure, or null where no trend allows an estimate. s */
  timeToFailureS: number | null;
  /** The features that drive the score, largest first. */
  explanation: ScoreContribution[];
  /** Scorer name and version, e.g. `stat-v1`. */
  scorer: string;
  /** Copied from the feature vector: an unobserved node's risk is not evidence of health. */
  observed: boolean;
  /** Active calls at window end as counted by `activeCallsSource`; null when nothing counted them in the window. */
  activeCalls: number | null;
  activeCallsSource: CallsSource | null;
  /** Whether the node was up at window end (node.up; a node that never reported it is assumed up by the scorers). */
  up: boolean;
  /** What the window itself reported, for the decision core: never filled in from assumptions. */
  evidence: WindowEvidence;
}

/** Who counted a node's active calls: Asterisk over AMI (the simulator stands in for it), or Foresight's SIP dialogs. */
export type CallsSource = 'ami' | 'sip';

/** Foresight's own SIP OPTIONS probes of one node over one window. */
export interface ProbeWindow {
  sent: number;
  /** Probes left without any reply within the probe timeout. */
  lost: number;
  /** Replies 5xx (the node answers but refuses work). */
  replies5xx: number;
  /** Median round trip of the answered probes, null when none was answered. ms */
  rttMsP50: number | null;
}

/**
 * What one window reported, as opposed to what a scorer assumes: the evidence that drain, restart and return rest on.
 * Null means "nobody said": unknown, never zero, never healthy.
 */
export interface WindowEvidence {
  calls: { count: number; source: CallsSource } | null;
  /** node.up as the node itself reported it in the window (AMI FullyBooted, or the simulator); null without a report. */
  upReported: boolean | null;
  probe: ProbeWindow | null;
}

/** Lifecycle states of a node as Foresight drives it. */
export type NodeLifecycleState = 'active' | 'draining' | 'restarting' | 'recovering' | 'quarantined';

export const LIFECYCLE_STATES: readonly NodeLifecycleState[] = [
  'active',
  'draining',
  'restarting',
  'recovering',
  'quarantined',
];

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
  'DrainWaiting',
  'Quarantined',
  'ThresholdMoved',
  /** Model lifecycle (src/models/lifecycle/), on node `model`: a scorer took over, was refused, was rolled back. */
  'ModelPromoted',
  'ModelRefused',
  'ModelRolledBack',
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

/**
 * A checkpoint of what one stage learnt about one node (docs/reliability.md, "state across replicas"), keyed
 * `<kind>:<nodeId>` on the compacted `state` topic. `state` is the stage's own format; the stage that reads it checks
 * it and starts the node cold when it does not fit.
 */
export interface StateCheckpoint {
  kind: 'features' | 'scorer';
  nodeId: string;
  /** End of the last window the state includes, epoch ms. */
  windowEnd: number;
  /** When it was written, epoch ms. */
  ts: number;
  state: unknown;
}

/** What a stage answers when asked to take a checkpointed state over: refused states name why. */
export type StateImport = { ok: true } | { ok: false; reason: string };

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
