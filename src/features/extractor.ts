import { quantileSorted } from 'simple-statistics';
import { ForesightError } from '../errors.js';
import { fnv1a32 } from '../hash.js';
import { type Logger, silentLogger } from '../log.js';
import {
  type FeatureVector,
  isMetricName,
  METRICS,
  type MetricName,
  MODEL_METRIC_NAMES,
  type StateImport,
  type TelemetrySample,
  type WindowEvidence,
} from '../messages.js';
import { EvidenceWindow, NO_EVIDENCE } from './evidence.js';
import { EWMA_SIGNALS, FEATURE_NAMES, featureIndex, SLOPE_SIGNALS, slopeFeature, Z_SIGNALS } from './names.js';
import type { RemotePeer, RemotePeerSource } from './peer-board.js';
import { Ring, robustZ, slopePerMinute, windowsCovering } from './stats.js';

/** Why a sample was not aggregated. Every rejected sample is reported once with one of these. */
export type RejectReason =
  /** Its window had already closed (event time older than the watermark allows). */
  | 'late'
  /** Event time too far ahead of the newest time seen (a clock jump); accepting it would close windows early. */
  | 'future'
  /** value is NaN or ±Infinity (or not a number). */
  | 'non_finite'
  /** metric is not in METRICS. */
  | 'unknown_metric'
  /** Not an object, nodeId not a non-empty string, or ts not a finite number. */
  | 'malformed'
  /** A new node id beyond `maxNodes`: protects memory from garbage ids. */
  | 'too_many_nodes';

export const REJECT_REASONS: readonly RejectReason[] = [
  'late',
  'future',
  'non_finite',
  'unknown_metric',
  'malformed',
  'too_many_nodes',
];

export interface RejectedSample {
  sample: unknown;
  reason: RejectReason;
}

export interface NodeRef {
  nodeId: string;
  /** Dispatcher set; default `defaultSetId`. */
  setId?: number;
}

export interface FeatureExtractorOptions {
  /** Nodes known up front; they get vectors (observed=false) even before they send anything. */
  nodes?: readonly NodeRef[];
  /** Set for nodes discovered from samples. Default 1. */
  defaultSetId?: number;
  /** Tumbling window length, aligned to the epoch. Default 10000 ms. */
  windowMs?: number;
  /** How long after its end a window stays open for out-of-order samples. Default 2000 ms. */
  allowedLatenessMs?: number;
  /** Samples more than this ahead of the newest event time (or clock) are rejected as `future`. Default 300000 ms. */
  maxFutureSkewMs?: number;
  /*
   * The defaults of the lengths below are times (10 min of baseline, 2 and 6 min of slope fit, ...) counted in windows
   * of `windowMs`; the figures given are at the default 10 s. Counted in windows alone, 1 s windows fitted a memory
   * slope to 36 s of a host's start-up and forecast its exhaustion within a minute.
   */
  /** Own-baseline length for z.self, in windows. Default 60 (10 min). */
  baselineWindows?: number;
  /** z.self stays 0 until the baseline has this many windows. Default 6 (1 min). */
  minBaselineWindows?: number;
  /** Windows in the short slope fit. Default 12 (2 min). */
  slopeWindows?: number;
  /** Windows in the long slope fit (memory, fds). Default 36 (6 min). */
  longSlopeWindows?: number;
  /** A slope is 0 until its fit holds this many windows (at least 3). Default 3 (30 s). */
  minSlopeWindows?: number;
  /** EWMA weight of the newest window. Default 0.3 (a time constant of about 28 s). */
  ewmaAlpha?: number;
  /** A window whose largest |z.self| of a level signal reaches this does not enter the baseline. Default 4. */
  baselineGateZ?: number;
  /** ...except every n-th such window, so a lasting level shift is eventually learnt. Default 10 (100 s). */
  baselineForceEvery?: number;
  /** Cap on distinct node ids. Default 10000. */
  maxNodes?: number;
  /** When time jumps by more windows than this, older empty windows are skipped instead of emitted. Default 360 (1 h). */
  maxCatchUpWindows?: number;
  /**
   * With samples tagged by source (a Kafka partition, see `ingest`): a source that delivered nothing for this long
   * (on the clock of `advance` and of the arrivals) stops holding windows open. Default 60000 ms. See `ingest`.
   */
  idleSourceMs?: number;
  /**
   * Peers other replicas hold (with several replicas each extractor sees only its partitions' nodes): a node's peers
   * are then the observed members of its set here plus the fresh remote ones (see PeerBoard). Their values are the
   * newest the other replicas published, usually one window behind: replicas close a window at about the same time and
   * do not wait for each other. Absent (one replica): peers are the local members only.
   */
  remotePeers?: RemotePeerSource;
  /** Receives every rejected sample. Without it, rejects are kept (bounded) for `takeRejected()`. */
  onRejected?: (sample: unknown, reason: RejectReason) => void;
  logger?: Logger;
}

export interface ExtractorStats {
  accepted: number;
  rejected: Record<RejectReason, number>;
  /** Rejects dropped from the internal buffer because it was full and no callback was set (still counted above). */
  rejectedUnbuffered: number;
  windowsClosed: number;
  /** Empty windows skipped after a large time jump. */
  windowsSkipped: number;
  vectorsEmitted: number;
  nodes: number;
  /** Sources (partitions) that hold windows open now: they delivered within idleSourceMs. */
  activeSources: number;
  /** How far the oldest active source's newest event time trails the newest of all, ms (0 without sources). */
  sourceSkewMs: number;
}

/** Where a batch of samples came from: a source (Kafka partition) and its arrival time on the extractor's clock. */
export interface SampleSource {
  source: number;
  at: number;
}

/** Per source (partition): its newest event time and when it last delivered (arrival clock). */
interface SourceMark {
  maxTs: number;
  seenAt: number;
}

const COUNTERS = MODEL_METRIC_NAMES.filter((m) => METRICS[m].kind === 'counter');
const GAUGES = MODEL_METRIC_NAMES.filter((m) => METRICS[m].kind === 'gauge');
const LATENCIES = MODEL_METRIC_NAMES.filter((m) => METRICS[m].kind === 'latency');
/** How many metrics of each kind: the lengths of a window's per-kind accumulators. */
const COUNTER_COUNT = COUNTERS.length;
const GAUGE_COUNT = GAUGES.length;
const LATENCY_COUNT = LATENCIES.length;

const KIND_COUNTER = 0;
const KIND_GAUGE = 1;
const KIND_LATENCY = 2;
/** metric → kind * 256 + slot within its kind, so the hot path does one Map lookup. */
const METRIC_SLOT = new Map<string, number>([
  ...COUNTERS.map((m, i) => [m, KIND_COUNTER * 256 + i] as const),
  ...GAUGES.map((m, i) => [m, KIND_GAUGE * 256 + i] as const),
  ...LATENCIES.map((m, i) => [m, KIND_LATENCY * 256 + i] as const),
]);

/**
 * Where each metric's features sit in the feature row (indices into FEATURE_NAMES), by the metric's slot within its
 * kind: a counter's rate; a gauge's last, mean and max; a latency's p50, p95, max and count.
 */
const RATE_FEATURE_OF_COUNTER = COUNTERS.map((m) => featureIndex(`${m}.rate`));
const FEATURES_OF_GAUGE = GAUGES.map((m) => [
  featureIndex(`${m}.last`),
  featureIndex(`${m}.mean`),
  featureIndex(`${m}.max`),
]);
const FEATURES_OF_LATENCY = LATENCIES.map((m) => [
  featureIndex(`${m}.p50`),
  featureIndex(`${m}.p95`),
  featureIndex(`${m}.max`),
  featureIndex(`${m}.count`),
]);
const counterSlot = (m: MetricName) => COUNTERS.indexOf(m);
/** Slots of the counters and gauge the derived features read. */
const SLOT_CALLS_STARTED = counterSlot('calls.started');
const SLOT_CALLS_FAILED = counterSlot('calls.failed');
const SLOT_CALLS_DROPPED = counterSlot('calls.dropped');
const SLOT_REPLIES_5XX = counterSlot('sip.replies_5xx');
const SLOT_REPLIES_408 = counterSlot('sip.replies_408');
const SLOT_NODE_UP = GAUGES.indexOf('node.up');
/** Indices of the features derived from several metrics. */
const FAIL_RATIO_FEATURE = featureIndex('calls.fail_ratio');
const ERROR_RATE_FEATURE = featureIndex('sip.error_rate');
const PEERS_FEATURE = featureIndex('peers.observed');
/** A node that sends telemetry but never reported node.up is assumed up: silence about liveness is not a crash. */
const GAUGE_DEFAULT = GAUGES.map((m) => (m === 'node.up' ? 1 : 0));

/** Per EWMA, slope and z signal: the feature it reads and the feature(s) it writes. */
const EWMA_SOURCE_FEATURE = EWMA_SIGNALS.map((s) => featureIndex(s.source));
const EWMA_FEATURE = EWMA_SIGNALS.map((s) => featureIndex(`ewma.${s.name}`));
const SLOPE_SOURCE_FEATURE = SLOPE_SIGNALS.map((s) => featureIndex(s.source));
const SLOPE_FEATURE = SLOPE_SIGNALS.map((s) => featureIndex(slopeFeature(s.name)));
/** Which metric feeds each EWMA (-1: derived, always fed), so a window without it does not pull in a carried value. */
const EWMA_METRIC_SLOT = EWMA_SIGNALS.map((s) => METRIC_SLOT.get(s.source.slice(0, s.source.lastIndexOf('.'))) ?? -1);
/** Which metric feeds each slope, so a window that did not report it adds no (carried-forward) point. */
const SLOPE_METRIC_SLOT = SLOPE_SIGNALS.map((s) => METRIC_SLOT.get(s.source.slice(0, s.source.lastIndexOf('.'))) ?? -1);
const Z_SOURCE_FEATURE = Z_SIGNALS.map((s) => featureIndex(s.source));
const Z_SELF_FEATURE = Z_SIGNALS.map((s) => featureIndex(`z.self.${s.name}`));
const Z_PEER_FEATURE = Z_SIGNALS.map((s) => featureIndex(`z.peer.${s.name}`));

/** Per node, per open window accumulators: O(1) work per sample, percentiles deferred to window close. */
class NodeWindow {
  start = 0;
  count = 0;
  readonly counterSum = new Float64Array(COUNTER_COUNT);
  readonly gaugeN = new Float64Array(GAUGE_COUNT);
  readonly gaugeSum = new Float64Array(GAUGE_COUNT);
  readonly gaugeMax = new Float64Array(GAUGE_COUNT);
  readonly gaugeLast = new Float64Array(GAUGE_COUNT);
  readonly gaugeLastTs = new Float64Array(GAUGE_COUNT);
  readonly latency: number[][] = Array.from({ length: LATENCY_COUNT }, () => []);
  readonly evidence = new EvidenceWindow();

  reset(start: number): void {
    this.start = start;
    this.count = 0;
    this.evidence.reset();
    this.counterSum.fill(0);
    this.gaugeN.fill(0);
    this.gaugeSum.fill(0);
    this.gaugeMax.fill(0);
    this.gaugeLast.fill(0);
    this.gaugeLastTs.fill(0);
    for (const values of this.latency) values.length = 0;
  }

  has(slot: number): boolean {
    const kind = slot >> 8;
    const i = slot & 255;
    if (kind === KIND_COUNTER) return true;
    if (kind === KIND_GAUGE) return this.gaugeN[i]! > 0;
    return this.latency[i]!.length > 0;
  }
}

class NodeState {
  open: NodeWindow[] = [];
  current: NodeWindow | null = null;
  readonly carryGauge = new Float64Array(GAUGE_COUNT);
  readonly seenGauge = new Uint8Array(GAUGE_COUNT);
  /** p50, p95, max per latency metric. */
  readonly carryLatency = new Float64Array(LATENCY_COUNT * 3);
  readonly ewma = new Float64Array(EWMA_SIGNALS.length);
  readonly ewmaInit = new Uint8Array(EWMA_SIGNALS.length);
  readonly slopeTimes: Ring[];
  readonly slopeValues: Ring[];
  readonly baseline: Ring[];
  gatedWindows = 0;
  /** The last observed window reported the node down (node.up < 0.5). */
  down = false;
  readonly features = new Float64Array(FEATURE_NAMES.length);
  observed = false;
  sampleCount = 0;
  evidence: WindowEvidence = NO_EVIDENCE;
  /** Windows ending at or before this are already in the history (imported from a checkpoint): not learnt twice. */
  restoredThrough = Number.NEGATIVE_INFINITY;

  constructor(
    readonly nodeId: string,
    public setId: number,
    shortSlope: number,
    longSlope: number,
    baselineWindows: number,
  ) {
    this.slopeTimes = SLOPE_SIGNALS.map((s) => new Ring(s.long ? longSlope : shortSlope));
    this.slopeValues = SLOPE_SIGNALS.map((s) => new Ring(s.long ? longSlope : shortSlope));
    this.baseline = Z_SIGNALS.map(() => new Ring(baselineWindows));
  }

  /**
   * Forgets the node's history after a restart: a fresh process starts from its healthy footprint (memory, queues,
   * counters), so slopes across the restart and z against the failing process's baseline would describe the
   * restart, not the node. z.self stays 0 until a new baseline has minBaselineWindows windows.
   */
  forgetHistory(): void {
    for (const r of this.slopeTimes) r.clear();
    for (const r of this.slopeValues) r.clear();
    for (const r of this.baseline) r.clear();
    this.ewmaInit.fill(0);
    // Latencies and gauges measured on the failing process (a storm's jitter and RTCP loss, a backlog's setup time) say
    // nothing about the new one; carried on, they kept a restarted node that gets no calls yet looking sick.
    this.carryLatency.fill(0);
    this.carryGauge.fill(0);
    this.seenGauge.fill(0);
    this.gatedWindows = 0;
  }
}

/**
 * One node's learnt history as a checkpoint carries it (docs/reliability.md): plain arrays, oldest first in the rings,
 * as of the end of window `windowEnd`. `layout` names the shape it fits.
 */
export interface NodeFeatureState {
  layout: string;
  nodeId: string;
  setId: number;
  windowEnd: number;
  down: boolean;
  gatedWindows: number;
  ewma: number[];
  ewmaInit: number[];
  carryGauge: number[];
  seenGauge: number[];
  carryLatency: number[];
  slopeTimes: number[][];
  slopeValues: number[][];
  baseline: number[][];
}

/** A short, stable digest of the layout's parts. */
function stateLayoutOf(parts: ReadonlyArray<string | number>): string {
  return `f1-${fnv1a32(parts.join('|')).toString(16)}`;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new ForesightError('FORESIGHT_ERR_CONFIG', `features.${name} must be an integer >= ${min}, got ${v}`);
  }
  return v;
}

/** Feature window length when none is configured (also the config's default). */
export const DEFAULT_WINDOW_MS = 10_000;
const MAX_REJECT_BUFFER = 10_000;
const NO_REMOTE_PEERS: readonly RemotePeer[] = [];

/**
 * Turns telemetry into one FeatureVector per known node per closed window. Event time only: a window
 * [start, start + windowMs) closes once the watermark (newest event time seen, or the time given to `advance`)
 * passes its end + allowedLateness. Windows are aligned to the epoch, so every dispatcher set closes the same windows.
 */
export class FeatureExtractor {
  private readonly windowMs: number;
  private readonly latenessMs: number;
  private readonly futureSkewMs: number;
  private readonly baselineWindows: number;
  private readonly minBaseline: number;
  private readonly shortSlope: number;
  private readonly longSlope: number;
  private readonly minSlope: number;
  private readonly alpha: number;
  private readonly gateZ: number;
  private readonly forceEvery: number;
  private readonly maxNodes: number;
  private readonly maxCatchUp: number;
  private readonly idleSourceMs: number;
  private readonly sources = new Map<number, SourceMark>();
  /** Event time of the oldest sample a producer the caller knows of still holds unsent (+Infinity: none). */
  private upstreamOldestTs = Number.POSITIVE_INFINITY;
  private readonly defaultSetId: number;
  private readonly remotePeers: RemotePeerSource | undefined;
  private readonly onRejected: ((sample: unknown, reason: RejectReason) => void) | undefined;
  private readonly logger: Logger;

  private readonly nodes = new Map<string, NodeState>();
  private readonly sets = new Map<number, NodeState[]>();
  private readonly openStarts = new Set<number>();
  private readonly pool: NodeWindow[] = [];
  private readonly rejectedBuffer: RejectedSample[] = [];
  /** Start of the oldest window not yet emitted; null until the first sample or advance. */
  private nextClose: number | null = null;
  private maxEventTs = Number.NEGATIVE_INFINITY;
  private clockNow = Number.NEGATIVE_INFINITY;
  private readonly counts: ExtractorStats;
  /** What a checkpoint must match to be taken over: window length, ring sizes and the signals, in order. */
  private readonly stateLayout: string;

  constructor(options: FeatureExtractorOptions = {}) {
    this.windowMs = positiveInt('windowMs', options.windowMs, DEFAULT_WINDOW_MS);
    this.latenessMs = positiveInt('allowedLatenessMs', options.allowedLatenessMs, 2000, 0);
    this.futureSkewMs = positiveInt('maxFutureSkewMs', options.maxFutureSkewMs, 300_000, 0);
    const windows = (ms: number, min: number) => windowsCovering(ms, this.windowMs, min);
    this.baselineWindows = positiveInt('baselineWindows', options.baselineWindows, windows(600_000, 2), 2);
    this.minBaseline = Math.min(
      positiveInt('minBaselineWindows', options.minBaselineWindows, windows(60_000, 2), 2),
      this.baselineWindows,
    );
    this.shortSlope = positiveInt('slopeWindows', options.slopeWindows, windows(120_000, 3), 3);
    this.longSlope = positiveInt('longSlopeWindows', options.longSlopeWindows, windows(360_000, 3), 3);
    this.minSlope = Math.min(
      positiveInt('minSlopeWindows', options.minSlopeWindows, windows(30_000, 3), 3),
      this.shortSlope,
    );
    this.gateZ = options.baselineGateZ ?? 4;
    this.forceEvery = positiveInt('baselineForceEvery', options.baselineForceEvery, windows(100_000, 1));
    this.maxNodes = positiveInt('maxNodes', options.maxNodes, 10_000);
    this.maxCatchUp = positiveInt('maxCatchUpWindows', options.maxCatchUpWindows, windows(3_600_000, 1));
    this.idleSourceMs = positiveInt('idleSourceMs', options.idleSourceMs, 60_000, 0);
    this.defaultSetId = options.defaultSetId ?? 1;
    // The time constant of 0.3 per 10 s window, at any window (exactly 0.3 at 10 s).
    const per10s = DEFAULT_WINDOW_MS / this.windowMs;
    this.alpha = options.ewmaAlpha ?? (per10s === 1 ? 0.3 : 1 - 0.7 ** (1 / per10s));
    if (!(this.alpha > 0 && this.alpha <= 1)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `features.ewmaAlpha must be in (0, 1], got ${this.alpha}`);
    }
    if (!(this.gateZ > 0)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `features.baselineGateZ must be > 0, got ${this.gateZ}`);
    }
    this.remotePeers = options.remotePeers;
    this.onRejected = options.onRejected;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'features' });
    this.counts = {
      accepted: 0,
      rejected: { late: 0, future: 0, non_finite: 0, unknown_metric: 0, malformed: 0, too_many_nodes: 0 },
      rejectedUnbuffered: 0,
      windowsClosed: 0,
      windowsSkipped: 0,
      vectorsEmitted: 0,
      nodes: 0,
      activeSources: 0,
      sourceSkewMs: 0,
    };
    this.stateLayout = stateLayoutOf([
      this.windowMs,
      this.baselineWindows,
      this.shortSlope,
      this.longSlope,
      ...GAUGES,
      ...LATENCIES,
      ...EWMA_SIGNALS.map((sig) => sig.name),
      ...SLOPE_SIGNALS.map((sig) => sig.name),
      ...Z_SIGNALS.map((sig) => sig.name),
    ]);
    for (const n of options.nodes ?? []) this.addNode(n.nodeId, n.setId ?? this.defaultSetId);
  }

  /** Registers a node (or moves it to another set); it is reported in every window closed from now on. */
  addNode(nodeId: string, setId: number = this.defaultSetId): void {
    const existing = this.nodes.get(nodeId);
    if (existing) {
      if (existing.setId === setId) return;
      const old = this.sets.get(existing.setId);
      if (old) old.splice(old.indexOf(existing), 1);
      existing.setId = setId;
      this.members(setId).push(existing);
      return;
    }
    const node = new NodeState(nodeId, setId, this.shortSlope, this.longSlope, this.baselineWindows);
    this.nodes.set(nodeId, node);
    this.members(setId).push(node);
    this.counts.nodes = this.nodes.size;
  }

  knownNodes(): Array<{ nodeId: string; setId: number }> {
    return [...this.nodes.values()].map((n) => ({ nodeId: n.nodeId, setId: n.setId }));
  }

  /**
   * Each node's learnt history (baselines, slopes, averages, carried values) as of the end of the last closed window,
   * for a checkpoint; `include` picks the nodes (default all). Nothing before the first closed window.
   */
  exportStates(include: (nodeId: string) => boolean = () => true): NodeFeatureState[] {
    const windowEnd = this.nextClose;
    if (windowEnd === null) return [];
    const out: NodeFeatureState[] = [];
    for (const node of this.nodes.values()) {
      if (!include(node.nodeId)) continue;
      out.push({
        layout: this.stateLayout,
        nodeId: node.nodeId,
        setId: node.setId,
        windowEnd,
        down: node.down,
        gatedWindows: node.gatedWindows,
        ewma: Array.from(node.ewma),
        ewmaInit: Array.from(node.ewmaInit),
        carryGauge: Array.from(node.carryGauge),
        seenGauge: Array.from(node.seenGauge),
        carryLatency: Array.from(node.carryLatency),
        slopeTimes: node.slopeTimes.map((r) => r.toArray()),
        slopeValues: node.slopeValues.map((r) => r.toArray()),
        baseline: node.baseline.map((r) => r.toArray()),
      });
    }
    return out;
  }

  /**
   * Takes a node's history over from a checkpoint (another replica's, or this process's before a restart). Windows
   * ending at or before its `windowEnd` are not learnt again when a replay brings them. A checkpoint of another
   * layout (other window length, ring sizes or signals: a changed config or version) or with values that do not
   * check is refused with the reason, and the node starts cold as it would without one.
   */
  importState(state: NodeFeatureState): StateImport {
    const problem = this.checkState(state);
    if (problem !== null) return { ok: false, reason: problem };
    if (!this.nodes.has(state.nodeId)) {
      if (this.nodes.size >= this.maxNodes) return { ok: false, reason: 'too many nodes' };
      this.addNode(state.nodeId, state.setId);
    }
    const node = this.nodes.get(state.nodeId)!;
    node.down = state.down;
    node.gatedWindows = state.gatedWindows;
    node.ewma.set(state.ewma);
    node.ewmaInit.set(state.ewmaInit);
    node.carryGauge.set(state.carryGauge);
    node.seenGauge.set(state.seenGauge);
    node.carryLatency.set(state.carryLatency);
    const refill = (rings: Ring[], values: number[][]) =>
      rings.forEach((ring, i) => {
        ring.clear();
        for (const v of values[i]!) ring.push(v);
      });
    refill(node.slopeTimes, state.slopeTimes);
    refill(node.slopeValues, state.slopeValues);
    refill(node.baseline, state.baseline);
    node.restoredThrough = state.windowEnd;
    return { ok: true };
  }

  private checkState(s: NodeFeatureState): string | null {
    if (typeof s !== 'object' || s === null) return 'not an object';
    if (s.layout !== this.stateLayout) return `layout ${String(s.layout)} is not this extractor's ${this.stateLayout}`;
    if (typeof s.nodeId !== 'string' || s.nodeId.length === 0) return 'no node id';
    if (!Number.isInteger(s.setId) || !Number.isFinite(s.windowEnd)) return 'bad setId or windowEnd';
    const finiteArray = (a: unknown): a is number[] =>
      Array.isArray(a) && a.every((v) => typeof v === 'number' && Number.isFinite(v));
    const exactly = (a: unknown, length: number) => finiteArray(a) && a.length === length;
    const rings = (a: unknown, cap: (i: number) => number, count: number) =>
      Array.isArray(a) && a.length === count && a.every((r, i) => finiteArray(r) && r.length <= cap(i));
    const slopeCap = (i: number) => (SLOPE_SIGNALS[i]!.long ? this.longSlope : this.shortSlope);
    const ok =
      typeof s.down === 'boolean' &&
      Number.isInteger(s.gatedWindows) &&
      s.gatedWindows >= 0 &&
      exactly(s.ewma, EWMA_SIGNALS.length) &&
      exactly(s.ewmaInit, EWMA_SIGNALS.length) &&
      exactly(s.carryGauge, GAUGE_COUNT) &&
      exactly(s.seenGauge, GAUGE_COUNT) &&
      exactly(s.carryLatency, LATENCY_COUNT * 3) &&
      rings(s.slopeTimes, slopeCap, SLOPE_SIGNALS.length) &&
      rings(s.slopeValues, slopeCap, SLOPE_SIGNALS.length) &&
      rings(s.baseline, () => this.baselineWindows, Z_SIGNALS.length);
    return ok ? null : 'values missing, of the wrong length or not finite';
  }

  stats(): ExtractorStats {
    const now = this.clockNow;
    let active = 0;
    let oldest = Number.POSITIVE_INFINITY;
    let newest = Number.NEGATIVE_INFINITY;
    for (const m of this.sources.values()) {
      if (m.maxTs > newest) newest = m.maxTs;
      if (now - m.seenAt > this.idleSourceMs || m.maxTs === Number.NEGATIVE_INFINITY) continue;
      active++;
      if (m.maxTs < oldest) oldest = m.maxTs;
    }
    const skew = active > 0 && Number.isFinite(oldest) && Number.isFinite(newest) ? newest - oldest : 0;
    return { ...this.counts, rejected: { ...this.counts.rejected }, activeSources: active, sourceSkewMs: skew };
  }

  /** Rejected samples kept when no `onRejected` callback is set; empties the buffer. */
  takeRejected(): RejectedSample[] {
    return this.rejectedBuffer.splice(0);
  }

  /**
   * Aggregates samples; returns the vectors of every window their event time closed.
   *
   * Without `from`, one watermark: the newest event time seen closes windows. With `from` (the Kafka partition the
   * samples came from, and when they arrived on the clock `advance` is given), one watermark per source: windows close only as far as the *slowest active* source has reached, so a partition the
   * consumer has not caught up on yet (after a broker outage it fetches one partition at a time) keeps its windows
   * open instead of seeing them closed by another partition's newer samples. A source that delivered nothing for
   * `idleSourceMs` is idle and holds nothing (a partition whose nodes went quiet must not stop every window); it
   * holds again from its next delivery, and what it brings for windows closed meanwhile is `late`.
   */
  ingest(samples: readonly TelemetrySample[], from?: SampleSource): FeatureVector[] {
    const out: FeatureVector[] = [];
    const W = this.windowMs;
    let mark: SourceMark | undefined;
    if (from !== undefined && Number.isFinite(from.at)) {
      if (from.at > this.clockNow) this.clockNow = from.at;
      mark = this.sources.get(from.source);
      if (mark === undefined) {
        mark = { maxTs: Number.NEGATIVE_INFINITY, seenAt: from.at };
        this.sources.set(from.source, mark);
      } else if (from.at > mark.seenAt) mark.seenAt = from.at;
    }
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i] as TelemetrySample | null | undefined;
      if (typeof s !== 'object' || s === null) {
        this.reject(s, 'malformed');
        continue;
      }
      const ts = s.ts;
      const nodeId = s.nodeId;
      if (typeof nodeId !== 'string' || nodeId.length === 0 || typeof ts !== 'number' || !Number.isFinite(ts)) {
        this.reject(s, 'malformed');
        continue;
      }
      const slot = METRIC_SLOT.get(s.metric);
      if (slot === undefined && !isMetricName(s.metric)) {
        this.reject(s, 'unknown_metric');
        continue;
      }
      const value = s.value;
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        this.reject(s, 'non_finite');
        continue;
      }
      const reference = Math.max(this.maxEventTs, this.clockNow);
      if (reference !== Number.NEGATIVE_INFINITY && ts > reference + this.futureSkewMs) {
        this.reject(s, 'future');
        continue;
      }
      const start = ts - (((ts % W) + W) % W);
      if (this.nextClose === null) this.nextClose = this.alignDown(ts - this.latenessMs);
      else if (start < this.nextClose) {
        this.reject(s, 'late');
        continue;
      }
      let node = this.nodes.get(nodeId);
      if (node === undefined) {
        if (this.nodes.size >= this.maxNodes) {
          this.reject(s, 'too_many_nodes');
          continue;
        }
        this.addNode(nodeId);
        node = this.nodes.get(nodeId)!;
      }
      let win = node.current;
      if (win === null || win.start !== start) win = this.windowOf(node, start);

      win.evidence.add(s);
      // Evidence-only samples (Foresight's own probes, its SIP dialog count) say nothing of what the node reported,
      // so they do not make a window observed: a dead node that Foresight probes stays unobserved.
      const kind = slot === undefined ? -1 : slot >> 8;
      const k = slot === undefined ? 0 : slot & 255;
      if (kind >= 0) win.count++;
      if (kind === -1) {
        // evidence only: nothing to aggregate
      } else if (kind === KIND_COUNTER) {
        win.counterSum[k]! += value;
      } else if (kind === KIND_GAUGE) {
        const n = win.gaugeN[k]!;
        win.gaugeN[k] = n + 1;
        win.gaugeSum[k]! += value;
        if (n === 0 || value > win.gaugeMax[k]!) win.gaugeMax[k] = value;
        // Out-of-order within lateness: "last" is the latest event time, ties go to the later arrival.
        if (n === 0 || ts >= win.gaugeLastTs[k]!) {
          win.gaugeLast[k] = value;
          win.gaugeLastTs[k] = ts;
        }
      } else {
        win.latency[k]!.push(value);
      }
      this.counts.accepted++;

      if (mark !== undefined) {
        if (ts > this.maxEventTs) this.maxEventTs = ts;
        if (ts > mark.maxTs) {
          mark.maxTs = ts;
          const held = Math.min(this.heldWatermark(), this.maxEventTs);
          if (held - this.latenessMs >= this.nextClose! + W) this.closeUpTo(held - this.latenessMs, out);
        }
      } else if (ts > this.maxEventTs) {
        this.maxEventTs = ts;
        if (ts - this.latenessMs >= this.nextClose! + W) this.closeUpTo(ts - this.latenessMs, out);
      }
    }
    return out;
  }

  /**
   * Moves the clock: closes every window whose end + allowedLateness <= nowMs, even if nothing arrived (a silent
   * cluster must show as unobserved). With sources, not beyond what the active sources have reached: silence while a
   * source still counts as active (a broker outage shorter than idleSourceMs) is the bus's, not the nodes'.
   * `waitForSources: false` when the caller knows nothing is left to deliver (the consumer is caught up): then the
   * silence is the nodes' and the clock closes windows at once.
   */
  advance(nowMs: number, options: { waitForSources?: boolean } = {}): FeatureVector[] {
    const out: FeatureVector[] = [];
    if (!Number.isFinite(nowMs)) return out;
    if (nowMs > this.clockNow) this.clockNow = nowMs;
    if (this.nextClose === null) {
      this.nextClose = this.alignDown(nowMs - this.latenessMs);
      return out;
    }
    const held = options.waitForSources === false ? Number.POSITIVE_INFINITY : this.heldWatermark();
    this.closeUpTo(Math.min(nowMs, held) - this.latenessMs, out);
    return out;
  }

  /**
   * Counts every active source as heard from at `nowMs` (the caller knows the bus is unreachable): a broker outage
   * longer than idleSourceMs must not turn the partitions idle, or the windows its spooled telemetry belongs to would
   * close before it arrives. Sources already idle stay idle.
   */
  holdSources(nowMs: number): void {
    if (!Number.isFinite(nowMs)) return;
    if (nowMs > this.clockNow) this.clockNow = nowMs;
    for (const m of this.sources.values()) {
      if (m.maxTs === Number.NEGATIVE_INFINITY) continue;
      if (nowMs - m.seenAt <= this.idleSourceMs && nowMs > m.seenAt) m.seenAt = nowMs;
    }
  }

  /**
   * Holds windows open for samples a producer still holds unsent (the caller's own outbox draining its spool after a
   * broker outage): each partition has several producers, and the one that drains first moves the partition's
   * watermark past what the others have yet to send. `null`: nothing waits. The feature stage sets it only with
   * per-partition watermarks.
   */
  holdUpstream(oldestUnsentTs: number | null): void {
    this.upstreamOldestTs =
      oldestUnsentTs === null || !Number.isFinite(oldestUnsentTs) ? Number.POSITIVE_INFINITY : oldestUnsentTs;
  }

  /**
   * How far windows may close on event time: the newest event time of the slowest active source, and not past what a
   * producer still holds (holdUpstream). +Infinity when nothing holds (no sources, every one idle, or none has
   * delivered a usable sample yet): then the clock alone closes windows, as with one watermark. A source holds from
   * its first usable sample: a partition that was assigned but never delivered may simply be empty, and would
   * otherwise hold every window at each start.
   */
  private heldWatermark(): number {
    let held = this.upstreamOldestTs;
    for (const m of this.sources.values()) {
      if (this.clockNow - m.seenAt > this.idleSourceMs || m.maxTs === Number.NEGATIVE_INFINITY) continue;
      if (m.maxTs < held) held = m.maxTs;
    }
    return held;
  }

  private alignDown(t: number): number {
    const W = this.windowMs;
    return t - (((t % W) + W) % W);
  }

  private members(setId: number): NodeState[] {
    let list = this.sets.get(setId);
    if (!list) {
      list = [];
      this.sets.set(setId, list);
    }
    return list;
  }

  private reject(sample: unknown, reason: RejectReason): void {
    this.counts.rejected[reason]++;
    if (this.onRejected) {
      this.onRejected(sample, reason);
    } else if (this.rejectedBuffer.length < MAX_REJECT_BUFFER) {
      this.rejectedBuffer.push({ sample, reason });
    } else {
      this.counts.rejectedUnbuffered++;
    }
  }

  private windowOf(node: NodeState, start: number): NodeWindow {
    for (const w of node.open) {
      if (w.start === start) {
        node.current = w;
        return w;
      }
    }
    const w = this.pool.pop() ?? new NodeWindow();
    w.reset(start);
    node.open.push(w);
    node.current = w;
    this.openStarts.add(start);
    return w;
  }

  private closeUpTo(watermark: number, out: FeatureVector[]): void {
    if (this.nextClose === null) return;
    const W = this.windowMs;
    const due = Math.floor((watermark - this.nextClose) / W);
    if (due <= 0) return;
    if (due > this.maxCatchUp) {
      // A long jump: emitting every empty window in between would flood the bus with nothing.
      const keepFrom = this.nextClose + (due - this.maxCatchUp) * W;
      const withData = [...this.openStarts].filter((s) => s < keepFrom).sort((a, b) => a - b);
      for (const s of withData) this.closeWindow(s, out);
      const skipped = (keepFrom - this.nextClose) / W - withData.length;
      this.counts.windowsSkipped += skipped;
      this.logger.warn({ skipped, from: this.nextClose, to: keepFrom }, 'time jumped; skipped empty windows');
      this.nextClose = keepFrom;
    }
    while (this.nextClose + W <= watermark) {
      this.closeWindow(this.nextClose, out);
      this.nextClose += W;
    }
  }

  private closeWindow(start: number, out: FeatureVector[]): void {
    const end = start + this.windowMs;
    for (const [setId, members] of this.sets) {
      for (const node of members) this.computeOwn(node, start, end);
      this.computePeers(members, setId, end);
      for (const node of members) {
        const features: Record<string, number> = {};
        const f = node.features;
        for (let i = 0; i < FEATURE_NAMES.length; i++) features[FEATURE_NAMES[i]!] = f[i]!;
        out.push({
          nodeId: node.nodeId,
          setId,
          windowStart: start,
          windowEnd: end,
          sampleCount: node.sampleCount,
          observed: node.observed,
          features,
          evidence: node.evidence,
        });
      }
      this.counts.vectorsEmitted += members.length;
    }
    this.openStarts.delete(start);
    this.counts.windowsClosed++;
  }

  private computeOwn(node: NodeState, start: number, end: number): void {
    const f = node.features;
    let win: NodeWindow | null = null;
    for (let i = 0; i < node.open.length; i++) {
      if (node.open[i]!.start === start) {
        win = node.open[i]!;
        node.open.splice(i, 1);
        break;
      }
    }
    if (node.current === win) node.current = null;
    if (end <= node.restoredThrough) {
      // A replay after a takeover re-reads windows the imported history already holds; the previous owner emitted
      // them, so they are only passed over (the stage drops their vectors) and never learnt a second time.
      if (win) this.pool.push(win);
      f.fill(0);
      node.observed = false;
      node.sampleCount = 0;
      node.evidence = NO_EVIDENCE;
      return;
    }
    node.evidence = win === null ? NO_EVIDENCE : win.evidence.close();
    if (win === null || win.count === 0) {
      if (win) this.pool.push(win);
      f.fill(0);
      node.observed = false;
      node.sampleCount = 0;
      return;
    }
    node.observed = true;
    node.sampleCount = win.count;
    const seconds = this.windowMs / 1000;

    for (let i = 0; i < COUNTER_COUNT; i++) f[RATE_FEATURE_OF_COUNTER[i]!] = win.counterSum[i]! / seconds;
    // Down → up is a restart (ours, systemd's, or an operator's): the node's own history no longer applies.
    const upValue =
      win.gaugeN[SLOT_NODE_UP]! > 0
        ? win.gaugeLast[SLOT_NODE_UP]!
        : node.seenGauge[SLOT_NODE_UP]
          ? node.carryGauge[SLOT_NODE_UP]!
          : 1;
    const up = upValue >= 0.5;
    if (up && node.down) node.forgetHistory();
    node.down = !up;
    for (let i = 0; i < GAUGE_COUNT; i++) {
      const [fLast, fMean, fMax] = FEATURES_OF_GAUGE[i]! as [number, number, number];
      const n = win.gaugeN[i]!;
      if (n > 0) {
        f[fLast] = win.gaugeLast[i]!;
        f[fMean] = win.gaugeSum[i]! / n;
        f[fMax] = win.gaugeMax[i]!;
        node.carryGauge[i] = win.gaugeLast[i]!;
        node.seenGauge[i] = 1;
      } else {
        const carried = node.seenGauge[i] ? node.carryGauge[i]! : GAUGE_DEFAULT[i]!;
        f[fLast] = carried;
        f[fMean] = carried;
        f[fMax] = carried;
      }
    }
    for (let i = 0; i < LATENCY_COUNT; i++) {
      const [f50, f95, fMax, fCount] = FEATURES_OF_LATENCY[i]! as [number, number, number, number];
      const values = win.latency[i]!;
      if (values.length > 0) {
        values.sort((a, b) => a - b);
        node.carryLatency[i * 3] = quantileSorted(values, 0.5);
        node.carryLatency[i * 3 + 1] = quantileSorted(values, 0.95);
        node.carryLatency[i * 3 + 2] = values[values.length - 1]!;
      }
      f[f50] = node.carryLatency[i * 3]!;
      f[f95] = node.carryLatency[i * 3 + 1]!;
      f[fMax] = node.carryLatency[i * 3 + 2]!;
      f[fCount] = values.length;
    }
    const c = win.counterSum;
    f[FAIL_RATIO_FEATURE] = (c[SLOT_CALLS_FAILED]! + c[SLOT_CALLS_DROPPED]!) / Math.max(c[SLOT_CALLS_STARTED]!, 1);
    f[ERROR_RATE_FEATURE] = (c[SLOT_REPLIES_5XX]! + c[SLOT_REPLIES_408]!) / seconds;

    for (let i = 0; i < EWMA_SOURCE_FEATURE.length; i++) {
      const v = f[EWMA_SOURCE_FEATURE[i]!]!;
      const slot = EWMA_METRIC_SLOT[i]!;
      if (slot >= 0 && !win.has(slot)) {
        // Nothing measured: the average holds (a carried value is not a new observation).
        f[EWMA_FEATURE[i]!] = node.ewmaInit[i] ? node.ewma[i]! : v;
        continue;
      }
      if (node.ewmaInit[i]) node.ewma[i]! += this.alpha * (v - node.ewma[i]!);
      else {
        node.ewma[i] = v;
        node.ewmaInit[i] = 1;
      }
      f[EWMA_FEATURE[i]!] = node.ewma[i]!;
    }

    for (let i = 0; i < SLOPE_SOURCE_FEATURE.length; i++) {
      const slot = SLOPE_METRIC_SLOT[i]!;
      if (slot < 0 || win.has(slot)) {
        node.slopeTimes[i]!.push(end);
        node.slopeValues[i]!.push(f[SLOPE_SOURCE_FEATURE[i]!]!);
      }
      f[SLOPE_FEATURE[i]!] = slopePerMinute(node.slopeTimes[i]!, node.slopeValues[i]!, this.minSlope);
    }

    // Own baseline: z against past windows only, then decide whether this window may teach the baseline.
    let worstLevelZ = 0;
    for (let i = 0; i < Z_SIGNALS.length; i++) {
      const sig = Z_SIGNALS[i]!;
      const ring = node.baseline[i]!;
      const z = robustZ(f[Z_SOURCE_FEATURE[i]!]!, ring.toArray(), sig.scaleFloor, sig.relFloor, this.minBaseline);
      f[Z_SELF_FEATURE[i]!] = z;
      if (sig.level && Math.abs(z) > worstLevelZ) worstLevelZ = Math.abs(z);
    }
    const warmingUp = node.baseline[0]!.size < this.minBaseline;
    let admit = warmingUp || worstLevelZ < this.gateZ;
    if (!admit) {
      node.gatedWindows++;
      admit = node.gatedWindows % this.forceEvery === 0;
    }
    if (admit) {
      for (let i = 0; i < Z_SIGNALS.length; i++) node.baseline[i]!.push(f[Z_SOURCE_FEATURE[i]!]!);
    }
    this.pool.push(win);
  }

  private computePeers(members: NodeState[], setId: number, windowEnd: number): void {
    const observed = members.filter((n) => n.observed);
    const remote = observed.length > 0 ? this.remotePeersOf(setId, windowEnd, observed) : NO_REMOTE_PEERS;
    const others: number[] = [];
    for (const node of observed) {
      const f = node.features;
      f[PEERS_FEATURE] = observed.length - 1 + remote.length;
      for (let j = 0; j < Z_SIGNALS.length; j++) {
        const sig = Z_SIGNALS[j]!;
        const src = Z_SOURCE_FEATURE[j]!;
        others.length = 0;
        for (const peer of observed) if (peer !== node) others.push(peer.features[src]!);
        for (const peer of remote) others.push(peer.values[j]!);
        f[Z_PEER_FEATURE[j]!] = robustZ(f[src]!, others, sig.scaleFloor, sig.relFloor, 2);
      }
    }
  }

  /** Fresh remote members of the set, minus any node observed here: this window's own value beats a remote one. */
  private remotePeersOf(setId: number, windowEnd: number, observed: readonly NodeState[]): readonly RemotePeer[] {
    const remote = this.remotePeers?.peersOf(setId, windowEnd) ?? NO_REMOTE_PEERS;
    if (remote.length === 0) return remote;
    const local = new Set(observed.map((n) => n.nodeId));
    return remote.filter((peer) => !local.has(peer.nodeId));
  }
}
