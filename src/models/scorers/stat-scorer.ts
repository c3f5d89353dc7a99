import { ForesightError } from '../../errors.js';
import { latencyCountOf, PACKET_CORROBORATION, PACKET_SIGNALS, Z_SIGNALS } from '../../features/names.js';
import { windowsCovering } from '../../features/stats.js';
import type { FeatureVector, NodeScore, ScoreContribution } from '../../messages.js';
import { type LimitOverrides, NodeLimits } from './limits.js';
import { MetricModel, type MetricModelOptions } from './metric-model.js';
import {
  foreignState,
  isUp,
  observedScore,
  type Scorer,
  type ScorerNodeState,
  type StateImport,
  unobservedScore,
} from './scorer.js';
import { DEFAULT_TREND_LIMITS, forecastExhaustion, type TrendLimits } from './trend.js';

/**
 * How much one z unit above the threshold of each signal adds to the logit. Signals that precede the failure modes
 * directly (latency, retransmissions, errors, queues) weigh most; CPU and jitter move with load and weigh least.
 */
export const DEFAULT_SIGNAL_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({
  invite_setup_p95: 1,
  options_rtt_p95: 0.5,
  db_query_p95: 1,
  jitter_p95: 0.4,
  retrans_rate: 1,
  error_rate: 1,
  fail_ratio: 1,
  loss_pct: 0.7,
  max_queue: 1,
  cpu_pct: 0.3,
  memory_slope: 0.3,
  queue_slope: 0.8,
  db_query_slope: 0.6,
  invite_setup_slope: 0.6,
  retrans_slope: 0.5,
});

export interface StatScorerOptions {
  /** Resource limits for the time-to-exhaustion forecasts (the cluster's). */
  limits?: Partial<TrendLimits>;
  /** Per-set and per-node limits over `limits` (model.limits.sets / .nodes). */
  limitOverrides?: LimitOverrides;
  /** Forecast time to failure at which a trend alone gives risk 0.5. Default 900 s. */
  horizonS?: number;
  /** Forecasts further out than this are not reported. Default 14400 s. */
  maxTimeToFailureS?: number;
  /** z-scores up to this are normal variation. Default 3. */
  zThreshold?: number;
  /** Logit of a node with no evidence at all (sigmoid(-4) ≈ 0.018). Default -4. */
  bias?: number;
  /** Per-signal weights, overriding DEFAULT_SIGNAL_WEIGHTS. */
  weights?: Partial<Record<string, number>>;
  /** How many contributions the explanation lists. Default 5. */
  explainTop?: number;
  /**
   * The feature window, ms. Persistence is a time (how long evidence lasts), so its defaults are counted in windows of
   * this length: with 1 s windows, six windows would be six seconds, and a start-up blip would drain a node. Default
   * 10 s.
   */
  windowMs?: number;
  /**
   * Consecutive windows evidence must last before it may push risk above 0.5. Default 1 min of windows (6 at 10 s):
   * single-node stalls (a burst of tasks, a slow setup) clear within that; precursors of failures do not.
   */
  persistWindows?: number;
  /**
   * Consecutive windows evidence must last when it comes only from stall signals (taskprocessor queue, INVITE setup,
   * OPTIONS round-trip, CPU and their trends). Default 2 min of windows (12 at 10 s): a node hiccup is a stall of 5–45 s, and two
   * hiccups in quick succession look like one stall of up to ~2 min; a taskprocessor backlog grows for 10–30 min.
   */
  stallPersistWindows?: number;
  /**
   * Stall evidence may act after `persistWindows` after all when the taskprocessor queue has grown steadily over the
   * last `persistWindows + 1` windows (see `queueGrowsSteadily`). Default true.
   */
  growthShortcut?: boolean;
  /** Corroborated packet-path evidence (see PACKET_SIGNALS) acts after PACKET_PERSIST_MS. Default true. */
  packetShortcut?: boolean;
  /**
   * Named metrics the scorer baselines itself (metric-model.ts: counters, seasonality, level shifts, sparse series,
   * joint term), e.g. the columns of a CSV. Their weight is `weights[name]`, default 1. Default none.
   */
  metrics?: readonly string[];
  /** Options of the metrics' baselines; the cadence is `windowMs`. */
  metricModel?: Partial<Omit<MetricModelOptions, 'cadenceMs'>>;
}

interface Signal {
  name: string;
  source: string;
  weight: number;
  level: boolean;
  countFeature: string | null;
  stall: boolean;
  /** Feature names of its own and peer z, built once. */
  selfKey: string;
  peerKey: string;
}

/** Name of the joint (correlation-break) contribution of the named metrics. */
export const JOINT_FEATURE = 'joint';

/** Indices of the `k` largest positive values, largest first, without sorting them all. */
function topIndices(values: Float64Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (!(x > 0) || (top.length >= k && x <= values[top[top.length - 1]!]!)) continue;
    let pos = top.length;
    while (pos > 0 && x > values[top[pos - 1]!]!) pos--;
    top.splice(pos, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}

/** Strictly increasing and smooth: ranks evidence below the threshold too, ~ x above it. */
export function softplus(x: number): number {
  return x > 30 ? x : Math.log1p(Math.exp(x));
}

/**
 * Signals a short single-node stall (a burst of tasks) moves: the queue, setup latency, OPTIONS round-trip, CPU. Evidence
 * from these alone must persist `stallPersistWindows`; the others (DB, retransmissions, loss, errors, memory) do not
 * move in a stall, so `persistWindows` is enough for them.
 */
const STALL_SIGNALS: ReadonlySet<string> = new Set([
  'max_queue',
  'queue_slope',
  'invite_setup_p95',
  'invite_setup_slope',
  'options_rtt_p95',
  'cpu_pct',
]);
const STALL_TRENDS: ReadonlySet<string> = new Set(['queue', 'invite_latency']);

/** Risk of evidence that has not persisted yet is capped here (logit 0): visible, but never enough to act on. */
const UNPERSISTED_LOGIT_CAP = 0;
/** A window without evidence takes this much off the persistence streak (one noisy window does not restart it). */
const STREAK_DECAY = 2;
/**
 * Streaks count at most this far past what persistence needs. Without a cap, a long failure (a node failing calls for
 * 15 min) would leave a streak that outlasts the restart, and the node's first hiccup after it would act at once.
 */
const STREAK_HEADROOM = 2 * STREAK_DECAY;

/** How long corroborated packet-path evidence (PACKET_SIGNALS) must persist: two 10 s windows. */
const PACKET_PERSIST_MS = 20_000;
const PERSIST_MS = 60_000;
const STALL_PERSIST_MS = 120_000;
/**
 * Unobserved windows (no telemetry: a replica taking the node over, a collector outage) hold the streaks: absence of
 * evidence is neither evidence nor recovery. A gap longer than this starts them over, as the evidence before it is
 * then too old to add to.
 */
const UNOBSERVED_HOLD_MS = PERSIST_MS;

/** Window level of the taskprocessor queue whose shape tells a backlog from a pair of hiccups. */
const QUEUE_LEVEL_FEATURE = 'taskprocessor.max_queue.mean';
/** Between two windows the level may fall by this fraction of its highest level so far and still count as growing. */
const GROWTH_DIP_TOLERANCE = 0.15;
/** Over the whole span the level must rise by this fraction of its first level, and by at least GROWTH_MIN_TASKS. */
const GROWTH_MIN_FRACTION = 0.2;
const GROWTH_MIN_TASKS = 10;

/**
 * True when `levels` (one per consecutive window, oldest first) grow like a backlog: rising from window to window
 * (one flat or falling step allowed, for noise), never falling back toward the baseline, and clearly higher at the end.
 * A hiccup is a plateau that ends at the baseline; two hiccups are two plateaus with a fall between them (or, when the
 * gap hides inside a window, a single step): neither rises in almost every window.
 */
export function queueGrowsSteadily(levels: readonly number[]): boolean {
  if (levels.length < 3 || !levels.every((x) => Number.isFinite(x) && x >= 0)) return false;
  let rises = 0;
  let highest = levels[0]!;
  for (let i = 1; i < levels.length; i++) {
    const x = levels[i]!;
    if (x > levels[i - 1]!) rises++;
    if (x < highest * (1 - GROWTH_DIP_TOLERANCE)) return false;
    highest = Math.max(highest, x);
  }
  const first = levels[0]!;
  const last = levels[levels.length - 1]!;
  return rises >= levels.length - 2 && last - first >= Math.max(GROWTH_MIN_TASKS, GROWTH_MIN_FRACTION * first);
}

/** Logit units a trend gains per e-fold shortening of its time to failure. */
const TREND_GAIN = 3;
/** One signal's excess z is capped, and so is the sum, so that correlated signals do not compound without bound. */
const EXCESS_CAP = 10;
const ANOMALY_CAP = 12;
const TREND_CAP = 12;

function finite(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : 0;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/**
 * The first scorer: robust z-scores and trend forecasts combined in a logistic.
 *
 * Level signals (latency, rates, queue, CPU) count by their z against the node's own baseline, but only as far as the
 * node also stands out from its peers (min of both, when at least two peers were observed): a cluster-wide disturbance
 * or a busy hour raises own-z on every node and peer-z on none. Slope signals count by their peer z alone: a slow leak
 * has a steady slope, so after one baseline length it looks normal against the node's own past, never against peers
 * that do not leak. A latency percentile carried forward through a window without measurements is not evidence.
 *
 * A growing resource (memory, queue, latency) adds evidence as its forecast time to the limit shrinks, only when its
 * slope stands out from the peers' and, for queue and latencies, while the level itself still stands out. Each trend
 * has a horizon (the forecast at which it alone gives risk 0.5): memory warns at an hour, so a leaking node can be
 * drained and emptied of calls before the OOM; the others at 15 min.
 *
 * Evidence must persist: until it has lasted `persistWindows` consecutive windows, risk stays at most 0.5. Evidence
 * from stall signals alone (queue, setup latency, OPTIONS round-trip, CPU) must last `stallPersistWindows`: a single-node
 * stall (a hiccup) clears within 45 s, but two in quick succession look like one stall of up to ~2 min. What tells a
 * backlog apart is its shape, not its length: its queue rises in almost every window and never falls back, while a
 * hiccup is a plateau that ends at the baseline. So stall evidence whose queue level grew steadily over the last
 * `persistWindows + 1` windows acts after `persistWindows` too.
 *
 * Explanation weights are logit units; anomaly contributions name the feature that stands out (value: its level),
 * trend contributions are named `forecast.<kind>_s` (value: forecast seconds to the limit).
 */
export class StatScorer implements Scorer {
  readonly name = 'stat-v1';
  private readonly limits: NodeLimits;
  private readonly horizonS: number;
  private readonly maxTtfS: number;
  private readonly zThreshold: number;
  private readonly bias: number;
  private readonly explainTop: number;
  private readonly persistWindows: number;
  private readonly windowMs: number;
  private readonly stallPersistWindows: number;
  private readonly packetPersistWindows: number;
  private readonly signals: Signal[];
  /**
   * Per node: consecutive windows with evidence (decayed, not reset, by a quiet window), the same for evidence that is
   * not from stall signals alone, and the last window seen.
   */
  private readonly streaks = new Map<
    string,
    { streak: number; coreStreak: number; packetStreak: number; lastTs: number; queueLevels: number[] }
  >();
  private readonly growthShortcut: boolean;
  private readonly packetShortcut: boolean;
  private readonly metricModel: MetricModel | null;
  private readonly metricWeights: Float64Array;
  private readonly metricTerms: Float64Array;

  constructor(options: StatScorerOptions = {}) {
    this.limits = new NodeLimits({ ...DEFAULT_TREND_LIMITS, ...options.limits }, options.limitOverrides);
    this.horizonS = options.horizonS ?? 900;
    this.maxTtfS = options.maxTimeToFailureS ?? 14_400;
    this.zThreshold = options.zThreshold ?? 3;
    this.bias = options.bias ?? -4;
    this.explainTop = options.explainTop ?? 5;
    const windowMs = options.windowMs ?? 10_000;
    if (!(Number.isFinite(windowMs) && windowMs > 0)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `stat scorer windowMs must be positive, got ${windowMs}`);
    }
    this.windowMs = windowMs;
    this.persistWindows = options.persistWindows ?? windowsCovering(PERSIST_MS, windowMs);
    this.stallPersistWindows = Math.max(
      this.persistWindows,
      options.stallPersistWindows ?? windowsCovering(STALL_PERSIST_MS, windowMs),
    );
    this.packetPersistWindows = windowsCovering(PACKET_PERSIST_MS, windowMs);
    this.growthShortcut = options.growthShortcut ?? true;
    this.packetShortcut = options.packetShortcut ?? true;
    for (const [key, v] of Object.entries({
      ...this.limits.base,
      horizonS: this.horizonS,
      maxTimeToFailureS: this.maxTtfS,
    })) {
      if (!(Number.isFinite(v) && v > 0)) {
        throw new ForesightError(
          'FORESIGHT_ERR_CONFIG',
          `stat scorer option ${key} must be a positive number, got ${v}`,
        );
      }
    }
    if (!Number.isFinite(this.bias) || !Number.isFinite(this.zThreshold)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'stat scorer bias and zThreshold must be finite');
    }
    if (!Number.isInteger(this.persistWindows) || this.persistWindows < 0) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'stat scorer persistWindows must be an integer >= 0');
    }
    if (!Number.isInteger(this.stallPersistWindows)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'stat scorer stallPersistWindows must be an integer');
    }
    const weights = { ...DEFAULT_SIGNAL_WEIGHTS, ...options.weights };
    this.signals = Z_SIGNALS.map((s) => ({
      name: s.name,
      source: s.source,
      weight: finite(weights[s.name]),
      level: s.level,
      countFeature: latencyCountOf(s.source),
      stall: STALL_SIGNALS.has(s.name),
      selfKey: `z.self.${s.name}`,
      peerKey: `z.peer.${s.name}`,
    }));
    const metrics = options.metrics ?? [];
    this.metricModel =
      metrics.length > 0
        ? new MetricModel(metrics, { zThreshold: this.zThreshold, ...options.metricModel, cadenceMs: windowMs })
        : null;
    this.metricTerms = new Float64Array(metrics.length);
    this.metricWeights = Float64Array.from(metrics, (m) => {
      const w = options.weights?.[m];
      return w === undefined ? 1 : finite(w);
    });
  }

  /**
   * Learns the named metrics from windows the user says were normal (every value learnt, however far out), so that
   * scoring starts warm. Product signals need no fitting: the feature extractor's baselines come with the vectors.
   */
  fit(vectors: readonly FeatureVector[]): void {
    if (this.metricModel === null) return;
    for (const v of vectors) if (v.observed) this.metricModel.observe(v.nodeId, v.windowEnd, v.features ?? {}, true);
    this.metricModel.restartClock();
  }

  /**
   * Each node's streaks as of its last observed window. The named metrics' baselines (`model.metrics`, opt-in) are not
   * in it: a replica that takes those nodes over learns them again (docs/reliability.md).
   */
  exportStates(include: (nodeId: string) => boolean = () => true): ScorerNodeState[] {
    const out: ScorerNodeState[] = [];
    for (const [nodeId, st] of this.streaks) {
      if (!include(nodeId) || !Number.isFinite(st.lastTs)) continue;
      const { streak, coreStreak, packetStreak, queueLevels } = st;
      out.push({
        scorer: this.name,
        nodeId,
        windowEnd: st.lastTs,
        state: { streak, coreStreak, packetStreak, queueLevels: [...queueLevels] },
      });
    }
    return out;
  }

  /** Takes a node's streaks over unless this scorer already saw a later window of it. */
  importState(s: ScorerNodeState): StateImport {
    const foreign = foreignState(s, this.name);
    if (foreign !== null) return { ok: false, reason: foreign };
    const st = s.state as Record<string, unknown> | null;
    const count = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (
      typeof st !== 'object' ||
      st === null ||
      !count(st.streak) ||
      !count(st.coreStreak) ||
      !count(st.packetStreak) ||
      !Array.isArray(st.queueLevels) ||
      st.queueLevels.length > this.persistWindows + 1 ||
      !st.queueLevels.every((v) => typeof v === 'number' && Number.isFinite(v))
    ) {
      return { ok: false, reason: 'streaks missing or not finite' };
    }
    const mine = this.streaks.get(s.nodeId);
    if (mine !== undefined && mine.lastTs >= s.windowEnd) return { ok: false, reason: 'already holds a later window' };
    this.streaks.set(s.nodeId, {
      streak: st.streak as number,
      coreStreak: st.coreStreak as number,
      packetStreak: st.packetStreak as number,
      lastTs: s.windowEnd,
      queueLevels: [...(st.queueLevels as number[])],
    });
    return { ok: true };
  }

  /** The named metrics judged as rates (counters) for a node. */
  counters(nodeId: string): string[] {
    return this.metricModel?.counters(nodeId) ?? [];
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    return vectors.map((v) => this.scoreOne(v));
  }

  /** z evidence of one signal: own and peer for levels, peer alone for slopes (own alone without peers). */
  private evidence(f: Readonly<Record<string, number>>, sig: Signal, peersOk: boolean): number {
    const own = finite(f[sig.selfKey]);
    if (!peersOk) return own;
    const peer = finite(f[sig.peerKey]);
    const level = sig.level;
    return level ? Math.min(own, peer) : peer;
  }

  /**
   * Counts consecutive windows with evidence (any, and not from stall signals alone); a redelivered or older window
   * does not move the streaks. Persisted: core evidence for `persistWindows`; any evidence for `stallPersistWindows`,
   * or for `persistWindows` while the queue level grew steadily over those windows. The queue levels kept are those
   * of the current run of evidence windows only (a quiet or unobserved window starts a new run).
   */
  private persisted(
    v: FeatureVector,
    hasEvidence: boolean,
    hasCoreEvidence: boolean,
    queueLevel: number,
    packetCorroborated: boolean,
  ): boolean {
    let st = this.streaks.get(v.nodeId);
    if (st === undefined) {
      st = { streak: 0, coreStreak: 0, packetStreak: 0, lastTs: Number.NEGATIVE_INFINITY, queueLevels: [] };
      this.streaks.set(v.nodeId, st);
    }
    if (v.windowEnd > st.lastTs) {
      // lastTs is the last observed window: a longer gap of unobserved windows than the hold starts over.
      if (v.windowEnd - st.lastTs > UNOBSERVED_HOLD_MS + this.windowMs) {
        st.streak = 0;
        st.coreStreak = 0;
        st.packetStreak = 0;
      }
      st.lastTs = v.windowEnd;
      st.streak = hasEvidence
        ? Math.min(st.streak + 1, this.stallPersistWindows + 1 + STREAK_HEADROOM)
        : Math.max(0, st.streak - STREAK_DECAY);
      st.coreStreak = hasCoreEvidence
        ? Math.min(st.coreStreak + 1, this.persistWindows + 1 + STREAK_HEADROOM)
        : Math.max(0, st.coreStreak - STREAK_DECAY);
      st.packetStreak =
        hasCoreEvidence && packetCorroborated
          ? Math.min(st.packetStreak + 1, this.packetPersistWindows + 1 + STREAK_HEADROOM)
          : Math.max(0, st.packetStreak - STREAK_DECAY);
      if (hasEvidence) {
        st.queueLevels.push(queueLevel);
        if (st.queueLevels.length > this.persistWindows + 1) st.queueLevels.shift();
      } else {
        st.queueLevels.length = 0;
      }
    }
    if (st.coreStreak > this.persistWindows || st.streak > this.stallPersistWindows) return true;
    if (this.packetShortcut && st.packetStreak > this.packetPersistWindows) return true;
    return (
      this.growthShortcut &&
      st.streak > this.persistWindows &&
      st.queueLevels.length > this.persistWindows &&
      queueGrowsSteadily(st.queueLevels)
    );
  }

  private scoreOne(v: FeatureVector): NodeScore {
    if (!v.observed) {
      // The growth shortcut needs consecutive levels; the streaks themselves are held (see UNOBSERVED_HOLD_MS).
      const st = this.streaks.get(v.nodeId);
      if (st) st.queueLevels.length = 0;
      return unobservedScore(v, this.name);
    }
    const f = v.features ?? {};
    const peersOk = finite(f['peers.observed']) >= 2;
    const contributions: ScoreContribution[] = [];

    let anomaly = 0;
    let coreAnomaly = 0;
    // Uncapped, unrounded evidence: every term strictly increasing in its z, so rows rank below the threshold too.
    let raw = 0;
    let productEvidence = false;
    const levelEvidence = new Map<string, number>();
    for (const sig of this.signals) {
      if (sig.weight <= 0) continue;
      if (sig.countFeature !== null && !(finite(f[sig.countFeature]) > 0)) continue;
      const evidence = this.evidence(f, sig, peersOk);
      levelEvidence.set(sig.name, evidence);
      if (sig.selfKey in f) {
        productEvidence = true;
        raw += sig.weight * softplus(evidence - this.zThreshold);
      }
      const excess = clamp(evidence - this.zThreshold, 0, EXCESS_CAP);
      if (excess <= 0) continue;
      const weight = sig.weight * excess;
      anomaly += weight;
      if (!sig.stall) coreAnomaly += weight;
      contributions.push({ feature: sig.source, weight, value: finite(f[sig.source]) });
    }
    let warmup = false;
    if (this.metricModel !== null) {
      const m = this.metricModel.observe(v.nodeId, v.windowEnd, f);
      warmup = m.present && !m.warm && !productEvidence;
      const names = this.metricModel.names;
      const terms = this.metricTerms;
      for (let i = 0; i < names.length; i++) {
        terms[i] = 0;
        const z = m.z[i]!;
        const w = this.metricWeights[i]!;
        if (!Number.isFinite(z) || w <= 0) continue;
        const e = Math.abs(z);
        const term = w * softplus(e - this.zThreshold);
        terms[i] = term;
        raw += term;
        const excess = w * clamp(e - this.zThreshold, 0, EXCESS_CAP);
        anomaly += excess;
        coreAnomaly += excess;
      }
      // Only the metrics that can make the explanation become objects (CSVs have dozens of columns).
      for (const i of topIndices(terms, this.explainTop)) {
        contributions.push({ feature: names[i]!, weight: terms[i]!, value: m.value[i]! });
      }
      if (Number.isFinite(m.jointZ)) {
        const term = softplus(m.jointZ - this.zThreshold);
        raw += term;
        const excess = clamp(m.jointZ - this.zThreshold, 0, EXCESS_CAP);
        anomaly += excess;
        coreAnomaly += excess;
        const pair = m.jointPair.filter((i) => i >= 0).map((i) => names[i]!);
        contributions.push({
          feature: pair.length > 0 ? `${JOINT_FEATURE}(${pair.join('+')})` : JOINT_FEATURE,
          weight: term,
          value: m.jointZ,
        });
      }
    }
    anomaly = Math.min(anomaly, ANOMALY_CAP);
    coreAnomaly = Math.min(coreAnomaly, ANOMALY_CAP);

    let trend = 0;
    let coreTrend = 0;
    let timeToFailureS: number | null = null;
    for (const fc of forecastExhaustion(f, this.limits.of(v.nodeId, v.setId))) {
      if (fc.timeToLimitS > this.maxTtfS) continue;
      // A slope the peers share (a load ramp) is not this node's precursor.
      const gate = peersOk ? clamp((finite(f[`z.peer.${fc.peerSignal}`]) - 2) / 2, 0, 1) : 1;
      if (gate <= 0) continue;
      // A level back to normal (or not measured in this window) means the burst that made the slope is over.
      if (fc.levelSignal !== null && !((levelEvidence.get(fc.levelSignal) ?? 0) > this.zThreshold)) continue;
      timeToFailureS = timeToFailureS === null ? fc.timeToLimitS : Math.min(timeToFailureS, fc.timeToLimitS);
      const trendStartS = (fc.horizonS ?? this.horizonS) * Math.exp(Math.max(0, -this.bias) / TREND_GAIN);
      const weight =
        gate * TREND_GAIN * clamp(Math.log(trendStartS / Math.max(fc.timeToLimitS, 1)), 0, TREND_CAP / TREND_GAIN);
      if (weight <= 0) continue;
      raw += weight;
      trend = Math.max(trend, weight);
      if (!STALL_TRENDS.has(fc.kind)) coreTrend = Math.max(coreTrend, weight);
      contributions.push({ feature: `forecast.${fc.kind}_s`, weight, value: fc.timeToLimitS });
    }

    let logit = this.bias + anomaly + trend;
    // Only evidence strong enough to matter (risk above 0.5 on its own) builds the streak, so a faint background
    // anomaly cannot pre-charge it for the next short burst.
    const coreLogit = this.bias + coreAnomaly + coreTrend;
    const queueLevel = typeof f[QUEUE_LEVEL_FEATURE] === 'number' ? f[QUEUE_LEVEL_FEATURE] : Number.NaN;
    let packetSignals = 0;
    for (const name of PACKET_SIGNALS) if ((levelEvidence.get(name) ?? 0) > this.zThreshold) packetSignals++;
    const packet = packetSignals >= PACKET_CORROBORATION;
    if (!this.persisted(v, logit > UNPERSISTED_LOGIT_CAP, coreLogit > UNPERSISTED_LOGIT_CAP, queueLevel, packet)) {
      logit = Math.min(logit, UNPERSISTED_LOGIT_CAP);
    }
    const risk = warmup ? 0 : 1 / (1 + Math.exp(-logit));
    contributions.sort((a, b) => b.weight - a.weight);
    return observedScore(v, this.name, {
      risk,
      timeToFailureS,
      explanation: contributions.slice(0, this.explainTop),
      up: isUp(v),
      ...(warmup ? { warmup: true } : { rawScore: raw }),
    });
  }
}
