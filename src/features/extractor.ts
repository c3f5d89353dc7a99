import { quantileSorted } from 'simple-statistics';
import { ForesightError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { type FeatureVector, METRIC_NAMES, METRICS, type MetricName, type TelemetrySample } from '../messages.js';
import { EWMA_SIGNALS, FEATURE_NAMES, featureIndex, SLOPE_SIGNALS, slopeFeature, Z_SIGNALS } from './names.js';
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
}

const COUNTERS = METRIC_NAMES.filter((m) => METRICS[m].kind === 'counter');
const GAUGES = METRIC_NAMES.filter((m) => METRICS[m].kind === 'gauge');
const LATENCIES = METRIC_NAMES.filter((m) => METRICS[m].kind === 'latency');
const NC = COUNTERS.length;
const NG = GAUGES.length;
const NL = LATENCIES.length;

const KIND_COUNTER = 0;
const KIND_GAUGE = 1;
const KIND_LATENCY = 2;
/** metric → kind * 256 + slot within its kind, so the hot path does one Map lookup. */
const METRIC_SLOT = new Map<string, number>([
  ...COUNTERS.map((m, i) => [m, KIND_COUNTER * 256 + i] as const),
  ...GAUGES.map((m, i) => [m, KIND_GAUGE * 256 + i] as const),
  ...LATENCIES.map((m, i) => [m, KIND_LATENCY * 256 + i] as const),
]);

const F_COUNTER_RATE = COUNTERS.map((m) => featureIndex(`${m}.rate`));
const F_GAUGE = GAUGES.map((m) => [featureIndex(`${m}.last`), featureIndex(`${m}.mean`), featureIndex(`${m}.max`)]);
const F_LATENCY = LATENCIES.map((m) => [
  featureIndex(`${m}.p50`),
  featureIndex(`${m}.p95`),
  featureIndex(`${m}.max`),
  featureIndex(`${m}.count`),
]);
const counterSlot = (m: MetricName) => COUNTERS.indexOf(m);
const C_STARTED = counterSlot('calls.started');
const C_FAILED = counterSlot('calls.failed');
const C_DROPPED = counterSlot('calls.dropped');
const C_5XX = counterSlot('sip.replies_5xx');
const C_408 = counterSlot('sip.replies_408');
const F_FAIL_RATIO = featureIndex('calls.fail_ratio');
const F_ERROR_RATE = featureIndex('sip.error_rate');
const F_PEERS = featureIndex('peers.observed');
const G_UP = GAUGES.indexOf('node.up');
/** A node that sends telemetry but never reported node.up is assumed up: silence about liveness is not a crash. */
const GAUGE_DEFAULT = GAUGES.map((m) => (m === 'node.up' ? 1 : 0));

const EWMA_SRC = EWMA_SIGNALS.map((s) => featureIndex(s.source));
const EWMA_DST = EWMA_SIGNALS.map((s) => featureIndex(`ewma.${s.name}`));
const SLOPE_SRC = SLOPE_SIGNALS.map((s) => featureIndex(s.source));
const SLOPE_DST = SLOPE_SIGNALS.map((s) => featureIndex(slopeFeature(s.name)));
/** Which metric feeds each EWMA (-1: derived, always fed), so a window without it does not pull in a carried value. */
const EWMA_METRIC = EWMA_SIGNALS.map((s) => METRIC_SLOT.get(s.source.slice(0, s.source.lastIndexOf('.'))) ?? -1);
/** Which metric feeds each slope, so a window that did not report it adds no (carried-forward) point. */
const SLOPE_METRIC = SLOPE_SIGNALS.map((s) => METRIC_SLOT.get(s.source.slice(0, s.source.lastIndexOf('.'))) ?? -1);
const Z_SRC = Z_SIGNALS.map((s) => featureIndex(s.source));
const ZSELF_DST = Z_SIGNALS.map((s) => featureIndex(`z.self.${s.name}`));
const ZPEER_DST = Z_SIGNALS.map((s) => featureIndex(`z.peer.${s.name}`));

/** Per node, per open window accumulators: O(1) work per sample, percentiles deferred to window close. */
class NodeWindow {
  start = 0;
  count = 0;
  readonly counterSum = new Float64Array(NC);
  readonly gaugeN = new Float64Array(NG);
  readonly gaugeSum = new Float64Array(NG);
  readonly gaugeMax = new Float64Array(NG);
  readonly gaugeLast = new Float64Array(NG);
  readonly gaugeLastTs = new Float64Array(NG);
  readonly latency: number[][] = Array.from({ length: NL }, () => []);

  reset(start: number): void {
    this.start = start;
    this.count = 0;
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
  readonly carryGauge = new Float64Array(NG);
  readonly seenGauge = new Uint8Array(NG);
  /** p50, p95, max per latency metric. */
  readonly carryLatency = new Float64Array(NL * 3);
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
  private readonly defaultSetId: number;
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
    };
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

  stats(): ExtractorStats {
    return { ...this.counts, rejected: { ...this.counts.rejected } };
  }

  /** Rejected samples kept when no `onRejected` callback is set; empties the buffer. */
  takeRejected(): RejectedSample[] {
    return this.rejectedBuffer.splice(0);
  }

  /** Aggregates samples; returns the vectors of every window their event time closed. */
  ingest(samples: readonly TelemetrySample[]): FeatureVector[] {
    const out: FeatureVector[] = [];
    const W = this.windowMs;
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
      if (slot === undefined) {
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

      win.count++;
      const kind = slot >> 8;
      const k = slot & 255;
      if (kind === KIND_COUNTER) {
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

      if (ts > this.maxEventTs) {
        this.maxEventTs = ts;
        if (ts - this.latenessMs >= this.nextClose! + W) this.closeUpTo(ts - this.latenessMs, out);
      }
    }
    return out;
  }

  /** Moves the clock: closes every window whose end + allowedLateness <= nowMs, even if nothing arrived. */
  advance(nowMs: number): FeatureVector[] {
    const out: FeatureVector[] = [];
    if (!Number.isFinite(nowMs)) return out;
    if (nowMs > this.clockNow) this.clockNow = nowMs;
    if (this.nextClose === null) {
      this.nextClose = this.alignDown(nowMs - this.latenessMs);
      return out;
    }
    this.closeUpTo(nowMs - this.latenessMs, out);
    return out;
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
      this.computePeers(members);
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

    for (let i = 0; i < NC; i++) f[F_COUNTER_RATE[i]!] = win.counterSum[i]! / seconds;
    // Down → up is a restart (ours, systemd's, or an operator's): the node's own history no longer applies.
    const upValue = win.gaugeN[G_UP]! > 0 ? win.gaugeLast[G_UP]! : node.seenGauge[G_UP] ? node.carryGauge[G_UP]! : 1;
    const up = upValue >= 0.5;
    if (up && node.down) node.forgetHistory();
    node.down = !up;
    for (let i = 0; i < NG; i++) {
      const [fLast, fMean, fMax] = F_GAUGE[i]! as [number, number, number];
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
    for (let i = 0; i < NL; i++) {
      const [f50, f95, fMax, fCount] = F_LATENCY[i]! as [number, number, number, number];
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
    f[F_FAIL_RATIO] = (c[C_FAILED]! + c[C_DROPPED]!) / Math.max(c[C_STARTED]!, 1);
    f[F_ERROR_RATE] = (c[C_5XX]! + c[C_408]!) / seconds;

    for (let i = 0; i < EWMA_SRC.length; i++) {
      const v = f[EWMA_SRC[i]!]!;
      const slot = EWMA_METRIC[i]!;
      if (slot >= 0 && !win.has(slot)) {
        // Nothing measured: the average holds (a carried value is not a new observation).
        f[EWMA_DST[i]!] = node.ewmaInit[i] ? node.ewma[i]! : v;
        continue;
      }
      if (node.ewmaInit[i]) node.ewma[i]! += this.alpha * (v - node.ewma[i]!);
      else {
        node.ewma[i] = v;
        node.ewmaInit[i] = 1;
      }
      f[EWMA_DST[i]!] = node.ewma[i]!;
    }

    for (let i = 0; i < SLOPE_SRC.length; i++) {
      const slot = SLOPE_METRIC[i]!;
      if (slot < 0 || win.has(slot)) {
        node.slopeTimes[i]!.push(end);
        node.slopeValues[i]!.push(f[SLOPE_SRC[i]!]!);
      }
      f[SLOPE_DST[i]!] = slopePerMinute(node.slopeTimes[i]!, node.slopeValues[i]!, this.minSlope);
    }

    // Own baseline: z against past windows only, then decide whether this window may teach the baseline.
    let worstLevelZ = 0;
    for (let i = 0; i < Z_SIGNALS.length; i++) {
      const sig = Z_SIGNALS[i]!;
      const ring = node.baseline[i]!;
      const z = robustZ(f[Z_SRC[i]!]!, ring.toArray(), sig.scaleFloor, sig.relFloor, this.minBaseline);
      f[ZSELF_DST[i]!] = z;
      if (sig.level && Math.abs(z) > worstLevelZ) worstLevelZ = Math.abs(z);
    }
    const warmingUp = node.baseline[0]!.size < this.minBaseline;
    let admit = warmingUp || worstLevelZ < this.gateZ;
    if (!admit) {
      node.gatedWindows++;
      admit = node.gatedWindows % this.forceEvery === 0;
    }
    if (admit) {
      for (let i = 0; i < Z_SIGNALS.length; i++) node.baseline[i]!.push(f[Z_SRC[i]!]!);
    }
    this.pool.push(win);
  }

  private computePeers(members: NodeState[]): void {
    const observed = members.filter((n) => n.observed);
    const others: number[] = [];
    for (const node of observed) {
      const f = node.features;
      f[F_PEERS] = observed.length - 1;
      for (let j = 0; j < Z_SIGNALS.length; j++) {
        const sig = Z_SIGNALS[j]!;
        const src = Z_SRC[j]!;
        others.length = 0;
        for (const peer of observed) if (peer !== node) others.push(peer.features[src]!);
        f[ZPEER_DST[j]!] = robustZ(f[src]!, others, sig.scaleFloor, sig.relFloor, 2);
      }
    }
  }
}
