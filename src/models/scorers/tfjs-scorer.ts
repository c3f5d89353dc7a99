import { PACKET_CORROBORATION, PACKET_SIGNALS, Z_SIGNAL_COUNT } from '../../features/names.js';
import type { FeatureVector, NodeScore, ScoreContribution } from '../../messages.js';
import type { ModelArtefact, ModelManifest } from '../artefact/format.js';
import { riskFromError } from '../autoencoder/calibration.js';
import { centreValues, type MissingGroup, maskMissing, missingGroups } from '../autoencoder/missing-mask.js';
import { AutoencoderRunner } from '../autoencoder/runner.js';
import type { Tf } from '../autoencoder/tf-backend.js';
import { type LimitOverrides, NodeLimits } from './limits.js';
import {
  foreignState,
  observedScore,
  type Scorer,
  type ScorerNodeState,
  type StateImport,
  UP_FEATURE,
  unobservedScore,
} from './scorer.js';
import { forecastFromInputs, TREND_INPUTS, type TrendLimits } from './trend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface TfjsScorerOptions {
  /** How many contributions the explanation lists. Default 5. */
  explainTop?: number;
  /** How long an anomaly or a fast trend (queue, latency) must have held before it can drain. Default 60 s. */
  persistS?: number;
  /** How long corroborated packet-path evidence must have held before it can drain. Default 20 s. */
  packetPersistS?: number;
  /** Anomaly risk from which persistence is tracked. Default ELEVATED_RISK. */
  elevatedRisk?: number;
  /** Logit units a sustained anomaly gains. Default SUSTAINED_GAIN. */
  sustainedGain?: number;
  /** The cluster's resource limits for the exhaustion forecasts, over those the model was trained with. */
  limits?: Partial<TrendLimits>;
  /** Per-set and per-node limits over `limits` (model.limits.sets / .nodes). */
  limitOverrides?: LimitOverrides;
}

/** Logit units a trend gains per e-fold shortening of its forecast, and the cap (same shape as the stat scorer's). */
const TREND_GAIN = 3;
const TREND_CAP = 12;
const TREND_BIAS = -4;
/** Healthy-error percentile a fast trend without a level signal needs from the autoencoder to count. */
export const CORROBORATE_PERCENTILE = 0.995;
/** A fast trend counts only while its level stands out this far, own and peer z (when peers are known). */
export const LEVEL_Z = 3;
/** Self-clearing stalls and blips last up to about a minute; evidence must outlast that to drain. */
export const DEFAULT_PERSIST_S = 60;
/** Rows whose anomaly risk is below this get no reconstruction explanation (nothing stands out worth naming). */
export const EXPLAIN_FLOOR = 0.05;
/** Evidence kind of an elevated autoencoder error. */
const ANOMALY = 'anomaly';
/** Anomaly risk ceiling until the anomaly has persisted (below 0.8, the default drain threshold). */
export const UNSUSTAINED_CAP = 0.7;
/** Logit units a persisted anomaly gains while its error is at or above the calibration threshold. */
export const SUSTAINED_GAIN = 2;
/** Calibrated anomaly risk from which an anomaly counts as elevated, i.e. its persistence is tracked. */
export const ELEVATED_RISK = 0.3;
/** Per-node memory of persistence; the oldest node is forgotten beyond this. */
const MAX_TRACKED_NODES = 100_000;
/** A gap of more than this many windows in a node's history restarts its persistence. */
const MAX_GAP_WINDOWS = 3;

/** Evidence kind of corroborated packet-path levels (PACKET_SIGNALS); it must last only `packetPersistS`. */
const PACKET = 'packet';
export const DEFAULT_PACKET_PERSIST_S = 20;

/** Trends whose slope is fitted over the long window (smooth, slow): they count without persistence. */
const SELF_SUFFICIENT: ReadonlySet<string> = new Set(['memory']);

function finite(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : 0;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Where the scorer reads one feature of a window: its column in the row already read for the network, or, for a
 * feature the model has no column for, the vector itself. Names are built once: a key made per lookup costs more than
 * the lookup.
 */
interface FeatureSlot {
  name: string;
  col: number;
}

/** The features a level check reads (standsOut). */
interface LevelSlots {
  /** The latency count behind the level, when it is a latency percentile. */
  count: FeatureSlot | null;
  self: FeatureSlot;
  peer: FeatureSlot;
}

/** Shared empty value, never written to: most windows of most nodes have no evidence at all. */
const NO_RUNS: Map<string, number> = new Map();

/**
 * How long each kind of evidence (the anomaly, each fast trend) of one node has held, window by window. Scoring the same window again (a retry) gives the
 * same answer; a window older than the newest seen is scored as if nothing had persisted (no history, no credit).
 */
class Persistence {
  /** Window end of the newest window seen. */
  ts = Number.NEGATIVE_INFINITY;
  /** End of the first window of each evidence kind's current run, as of `ts`, and as of the window before it. */
  since: Map<string, number> = NO_RUNS;
  sinceBefore: Map<string, number> = NO_RUNS;
}

/**
 * Scores windows with the trained autoencoder and the trend forecasts.
 *
 * Persistence. Short single-node stalls, DB and network blips clear by themselves within about a minute, and look
 * just as odd as a failure's start while they last. So evidence that can come and go quickly must have lasted
 * more than `persistS` (60 s, from the end of the first window it showed in) before it can push the risk past
 * the drain threshold; a stall that clears within a minute never does. This is evidence, not alarm hysteresis: the
 * action layer's K consecutive windows at or above the threshold apply on top, to the risk.
 *
 * - Anomaly risk: the mean squared reconstruction error of the normalised window, mapped through the artefact's
 *   calibration (0.5 at the threshold chosen on held-out healthy data). Until the error has stayed at or above
 *   ELEVATED_RISK for `persistS`, the anomaly risk is capped at UNSUSTAINED_CAP (0.7); once it has, and while the
 *   error is at or above the threshold, it gains SUSTAINED_GAIN logit units (a storm that keeps going).
 * - Trend risk: each growing resource's forecast time to its limit (src/models/scorers/trend.ts), counted only when the slope
 *   stands out from the node's peers; 0.5 at the forecast's own horizon (or the artefact's `trend.horizonS`), and
 *   the forecast is the predicted time to failure. Memory grows smoothly and its slope is fitted over the long window,
 *   so it counts alone. Fast resources (queue, latencies) swing in stalls, and a slope fitted over two minutes
 *   outlives the stall, so their forecast counts only after its level has stood out (own and peer z >= LEVEL_Z;
 *   for a trend without a level signal: the autoencoder's error above CORROBORATE_PERCENTILE of held-out healthy
 *   windows) in every window for `persistS`. The autoencoder is not required to agree: it reconstructs coherent
 *   shifts (DB latency with its EWMA and z-scores) too well to be a reliable witness.
 * - risk = 1 - (1 - anomaly)(1 - trend): either kind of evidence alone can raise it.
 *
 * Explanation: reconstruction contributions are named after the feature, weight = the feature's share of the
 * window's squared error times the anomaly risk (so weights are in risk units and sum to at most the anomaly risk),
 * value = the raw feature; listed only when the anomaly risk reaches EXPLAIN_FLOOR. Trend contributions are
 * `forecast.<kind>_s` with weight = the trend risk and value = the forecast seconds.
 *
 * Speed: all observed vectors of a call go through the network as one batch on the backend (AutoencoderRunner);
 * only the row errors and the cells of rows to explain are read back.
 */
export class TfjsScorer implements Scorer {
  readonly name: string;
  readonly manifest: ModelManifest;
  private readonly runner: AutoencoderRunner;
  private readonly features: readonly string[];
  private readonly explainTop: number;
  private readonly limits: NodeLimits;
  private readonly persistMs: number;
  private readonly packetPersistMs: number;
  /** Error at which the anomaly risk reaches EXPLAIN_FLOOR. */
  private readonly explainError: number;
  private readonly corroborateError: number;
  /** Error at which the anomaly counts as elevated (ELEVATED_RISK) for persistence. */
  private readonly elevatedError: number;
  private readonly sustainedGain: number;
  private readonly nodes = new Map<string, Persistence>();
  private raw = new Float64Array(0);
  private keep = new Float32Array(0);
  private readonly missing: MissingGroup[];
  private readonly centre: Float64Array;
  private readonly columns: ReadonlyMap<string, number>;
  private readonly levelSlots = new Map<string, LevelSlots>();
  private readonly upSlot: FeatureSlot;
  private readonly peersSlot: FeatureSlot;
  private readonly trendSlots: FeatureSlot[];
  /** TREND_INPUTS of each row, read before masking (a forecast reads the carried level, as the stat scorer does). */
  private trendInputs = new Float64Array(0);

  constructor(artefact: Pick<ModelArtefact, 'manifest' | 'model' | 'tf'>, options: TfjsScorerOptions = {}) {
    this.manifest = artefact.manifest;
    this.name = artefact.manifest.scorer;
    this.runner = new AutoencoderRunner(
      artefact.tf as Tf,
      artefact.model as LayersModel,
      artefact.manifest.normalisation,
    );
    this.features = artefact.manifest.features;
    this.explainTop = options.explainTop ?? 5;
    this.limits = new NodeLimits({ ...artefact.manifest.trend.limits, ...options.limits }, options.limitOverrides);
    this.persistMs = (options.persistS ?? DEFAULT_PERSIST_S) * 1000;
    this.packetPersistMs = Math.min(this.persistMs, (options.packetPersistS ?? DEFAULT_PACKET_PERSIST_S) * 1000);
    const cal = this.manifest.calibration;
    this.explainError = errorAtRisk(EXPLAIN_FLOOR, cal.threshold, cal.steepness);
    this.corroborateError = errorAtPercentile(CORROBORATE_PERCENTILE, cal.p, cal.error);
    this.elevatedError = errorAtRisk(options.elevatedRisk ?? ELEVATED_RISK, cal.threshold, cal.steepness);
    this.sustainedGain = options.sustainedGain ?? SUSTAINED_GAIN;
    this.missing = missingGroups(this.features);
    this.centre = centreValues(this.manifest.normalisation);
    this.columns = new Map(this.features.map((name, col) => [name, col]));
    this.upSlot = this.slot(UP_FEATURE);
    this.peersSlot = this.slot('peers.observed');
    this.trendSlots = TREND_INPUTS.map((name) => this.slot(name));
  }

  private slot(name: string): FeatureSlot {
    return { name, col: this.columns.get(name) ?? -1 };
  }

  /** A feature of row `rowAt` (read, non-finite as 0); masked columns read their centre, see standsOut. */
  private read(f: Readonly<Record<string, number>>, rowAt: number, slot: FeatureSlot): number {
    return slot.col >= 0 ? this.raw[rowAt + slot.col]! : finite(f[slot.name]);
  }

  private levelSlotsOf(level: string): LevelSlots {
    let slots = this.levelSlots.get(level);
    if (slots === undefined) {
      const count = Z_SIGNAL_COUNT.get(level);
      slots = {
        count: count === undefined ? null : this.slot(count),
        self: this.slot(`z.self.${level}`),
        peer: this.slot(`z.peer.${level}`),
      };
      this.levelSlots.set(level, slots);
    }
    return slots;
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    const cols = this.features.length;
    const observed: number[] = [];
    for (let i = 0; i < vectors.length; i++) if (vectors[i]!.observed) observed.push(i);
    const n = observed.length;
    if (this.raw.length < n * cols) {
      this.raw = new Float64Array(n * cols);
      this.keep = new Float32Array(n * cols);
      this.trendInputs = new Float64Array(n * TREND_INPUTS.length);
    }
    const { raw, features } = this;
    const trendSlots = this.trendSlots;
    const trendWidth = trendSlots.length;
    for (let k = 0; k < n; k++) {
      const f = vectors[observed[k]!]!.features ?? {};
      readRow(f, features, raw, k * cols);
      for (let j = 0; j < trendWidth; j++)
        this.trendInputs[k * trendWidth + j] = this.read(f, k * cols, trendSlots[j]!);
    }
    const masked = maskMissing(raw, n, cols, this.missing, this.centre, this.keep);
    const explainError = this.explainError;
    // Raw values go to the backend, which normalises them as training did (autoencoder/normalisation.ts normaliseRow).
    const batch = this.runner.errorsFromRaw(
      raw,
      n,
      cols,
      (rowError) => {
        let m = 0;
        for (let k = 0; k < rowError.length; k++) if (rowError[k]! >= explainError) m++;
        const rows = new Int32Array(m);
        m = 0;
        for (let k = 0; k < rowError.length; k++) if (rowError[k]! >= explainError) rows[m++] = k;
        return rows;
      },
      masked > 0 ? this.keep : undefined,
    );
    const out: NodeScore[] = new Array(vectors.length);
    let k = 0;
    let explained = 0;
    for (let i = 0; i < vectors.length; i++) {
      const v = vectors[i]!;
      if (!v.observed) {
        out[i] = unobservedScore(v, this.name);
        continue;
      }
      const explain = batch.rows[explained] === k;
      if (explain) explained++;
      out[i] = this.combine(v, batch.rowError[k]!, explain ? batch.cells : null, k);
      k++;
    }
    return out;
  }

  /** Forgets every node's persistence (e.g. before replaying another recording with the same scorer). */
  reset(): void {
    this.nodes.clear();
  }

  /** Row `row` of the batch; `cells` when it is to be explained. */
  private combine(v: FeatureVector, err: number, cells: Float32Array | null, row: number): NodeScore {
    const rowAt = row * this.features.length;
    const f = v.features ?? {};
    // A model of named metrics without node.up (a CSV's columns) has no liveness input: the node is taken as up.
    if ((this.upSlot.col >= 0 || UP_FEATURE in f) && !(this.read(f, rowAt, this.upSlot) >= 0.5)) {
      // A node reporting itself down has already failed: that is for probing and the restart to handle, and its
      // windows (never in training) say nothing about a failure to come. No evidence, and no persistence carried.
      this.track(v, []);
      return { ...unobservedScore(v, this.name), observed: true };
    }
    const cal = this.manifest.calibration;
    const peersOk = this.read(f, rowAt, this.peersSlot) >= 2;
    const limits = this.limits.of(v.nodeId, v.setId);
    const forecasts = forecastFromInputs(this.trendInputs, row * TREND_INPUTS.length, limits);

    // Evidence that must persist: an elevated anomaly, and each fast trend whose level stands out.
    const active: string[] = [];
    if (err >= this.elevatedError) active.push(ANOMALY);
    for (const fc of forecasts) {
      if (SELF_SUFFICIENT.has(fc.kind) || fc.timeToLimitS > this.manifest.trend.maxTimeToFailureS) continue;
      const level = fc.levelSignal ?? null;
      if (level !== null) {
        if (!this.standsOut(f, rowAt, level, peersOk)) continue;
      } else if (err < this.corroborateError) continue;
      active.push(fc.kind);
    }
    let packetSignals = 0;
    for (const level of PACKET_SIGNALS) if (this.standsOut(f, rowAt, level, peersOk)) packetSignals++;
    if (packetSignals >= PACKET_CORROBORATION && err >= this.elevatedError) active.push(PACKET);
    const since = this.track(v, active);

    // Anomaly: calibrated error; capped below the drain threshold until it has lasted, then strengthened.
    let anomaly = riskFromError(err, cal);
    const anomalyHeld =
      this.held(since, v, ANOMALY, this.persistMs) || this.held(since, v, PACKET, this.packetPersistMs);
    if (anomalyHeld && err >= cal.threshold) {
      anomaly = sigmoid(cal.steepness * (Math.log(err) - Math.log(cal.threshold)) + this.sustainedGain);
    } else if (anomaly > UNSUSTAINED_CAP && !anomalyHeld) anomaly = UNSUSTAINED_CAP;
    const contributions: ScoreContribution[] = cells !== null ? this.explainCells(cells, rowAt, anomaly) : [];

    let trendLogit = Number.NEGATIVE_INFINITY;
    let timeToFailureS: number | null = null;
    for (const fc of forecasts) {
      if (fc.timeToLimitS > this.manifest.trend.maxTimeToFailureS) continue;
      if (!SELF_SUFFICIENT.has(fc.kind) && !this.held(since, v, fc.kind, this.persistMs)) continue;
      const gate = peersOk ? clamp((finite(f[this.levelSlotsOf(fc.peerSignal).peer.name]) - 2) / 2, 0, 1) : 1;
      if (gate <= 0) continue;
      timeToFailureS = timeToFailureS === null ? fc.timeToLimitS : Math.min(timeToFailureS, fc.timeToLimitS);
      const start = (fc.horizonS ?? this.manifest.trend.horizonS) * Math.exp(-TREND_BIAS / TREND_GAIN);
      const gain = gate * TREND_GAIN * clamp(Math.log(start / Math.max(fc.timeToLimitS, 1)), 0, TREND_CAP / TREND_GAIN);
      if (gain <= 0) continue;
      const logit = TREND_BIAS + gain;
      if (logit > trendLogit) trendLogit = logit;
      contributions.push({ feature: `forecast.${fc.kind}_s`, weight: sigmoid(logit), value: fc.timeToLimitS });
    }
    const trend = trendLogit === Number.NEGATIVE_INFINITY ? 0 : sigmoid(trendLogit);
    const risk = 1 - (1 - anomaly) * (1 - trend);
    if (contributions.length > 1) contributions.sort((a, b) => b.weight - a.weight);
    if (contributions.length > this.explainTop) contributions.length = this.explainTop;
    // Raw: the reconstruction error itself (monotone in the anomaly) plus the trend's logit gain above its bias.
    const raw = err + (trendLogit === Number.NEGATIVE_INFINITY ? 0 : trendLogit - TREND_BIAS);
    return observedScore(v, this.name, { risk, timeToFailureS, explanation: contributions, up: true, rawScore: raw });
  }

  /** Whether evidence `kind` has lasted longer than `persistMs` as of window `v`. */
  private held(since: ReadonlyMap<string, number>, v: FeatureVector, kind: string, persistMs: number): boolean {
    const t = since.get(kind);
    return t !== undefined && v.windowEnd - t > persistMs;
  }

  /** Own and peer z (own alone without peers) of a level signal at LEVEL_Z or more, measured in this window. */
  private standsOut(f: Readonly<Record<string, number>>, rowAt: number, level: string, peersOk: boolean): boolean {
    const slots = this.levelSlotsOf(level);
    // A latency carried through a window without measurements is not a level that stands out. (Only then does the
    // row hold the centre instead of the z-scores: autoencoder/missing-mask.ts masks a latency's columns when its count is 0.)
    if (slots.count !== null && !(this.read(f, rowAt, slots.count) > 0)) return false;
    const own = this.read(f, rowAt, slots.self);
    const peer = peersOk ? this.read(f, rowAt, slots.peer) : own;
    return Math.min(own, peer) >= LEVEL_Z;
  }

  /** Top features by squared error, found without sorting the whole row; weights in anomaly-risk units. */
  private explainCells(cells: Float32Array, at: number, anomaly: number): ScoreContribution[] {
    const cols = this.features.length;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += cells[at + c]!;
    if (!(sum > 0) || !(anomaly > 0)) return [];
    const top: number[] = [];
    for (let c = 0; c < cols; c++) {
      const e = cells[at + c]!;
      if (top.length < this.explainTop || e > cells[at + top[top.length - 1]!]!) {
        let pos = top.length;
        while (pos > 0 && e > cells[at + top[pos - 1]!]!) pos--;
        top.splice(pos, 0, c);
        if (top.length > this.explainTop) top.pop();
      }
    }
    const out: ScoreContribution[] = [];
    for (const c of top) {
      const weight = (cells[at + c]! / sum) * anomaly;
      if (weight > 0 && Number.isFinite(weight)) {
        out.push({ feature: this.features[c]!, weight, value: this.raw[at + c]! });
      }
    }
    return out;
  }

  /** Each node's persistence runs as of its newest window, for a checkpoint. */
  exportStates(include: (nodeId: string) => boolean = () => true): ScorerNodeState[] {
    const out: ScorerNodeState[] = [];
    for (const [nodeId, p] of this.nodes) {
      if (!include(nodeId) || !Number.isFinite(p.ts)) continue;
      out.push({
        scorer: this.name,
        nodeId,
        windowEnd: p.ts,
        state: { since: [...p.since], sinceBefore: [...p.sinceBefore] },
      });
    }
    return out;
  }

  /** Takes a node's persistence runs over unless this scorer already saw a later window of it. */
  importState(s: ScorerNodeState): StateImport {
    const foreign = foreignState(s, this.name);
    if (foreign !== null) return { ok: false, reason: foreign };
    const st = s.state as { since?: unknown; sinceBefore?: unknown } | null;
    const runs = (v: unknown): Map<string, number> | null =>
      Array.isArray(v) &&
      v.every((e) => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number' && Number.isFinite(e[1]))
        ? new Map(v as [string, number][])
        : null;
    const since = runs(st?.since);
    const sinceBefore = runs(st?.sinceBefore);
    if (since === null || sinceBefore === null) return { ok: false, reason: 'runs missing or not finite' };
    const mine = this.nodes.get(s.nodeId);
    if (mine !== undefined && mine.ts >= s.windowEnd) return { ok: false, reason: 'already holds a later window' };
    const p = new Persistence();
    p.ts = s.windowEnd;
    p.since = since.size > 0 ? since : NO_RUNS;
    p.sinceBefore = sinceBefore.size > 0 ? sinceBefore : NO_RUNS;
    this.nodes.set(s.nodeId, p);
    return { ok: true };
  }

  /**
   * Records which evidence kinds are active in this window and returns, for each, the end of the first window of its
   * unbroken run of active windows (a gap of more than MAX_GAP_WINDOWS unobserved windows breaks a run).
   */
  private track(v: FeatureVector, active: readonly string[]): ReadonlyMap<string, number> {
    const windowMs = Math.max(1, v.windowEnd - v.windowStart);
    let state = this.nodes.get(v.nodeId);
    if (state === undefined) {
      if (this.nodes.size >= MAX_TRACKED_NODES) {
        const oldest = this.nodes.keys().next().value;
        if (oldest !== undefined) this.nodes.delete(oldest);
      }
      state = new Persistence();
      this.nodes.set(v.nodeId, state);
    }
    let prior: Map<string, number>;
    if (v.windowEnd === state.ts) prior = state.sinceBefore;
    else if (v.windowEnd > state.ts) {
      prior = v.windowEnd - state.ts > MAX_GAP_WINDOWS * windowMs ? NO_RUNS : state.since;
    } else prior = NO_RUNS;

    let now: Map<string, number> = NO_RUNS;
    if (active.length > 0) {
      now = new Map();
      // From the end of the first window: a 60 s stall touches up to 7 windows of 10 s, 60 s apart end to end.
      for (const kind of active) now.set(kind, prior.get(kind) ?? v.windowEnd);
    }
    if (v.windowEnd >= state.ts) {
      if (v.windowEnd > state.ts) state.sinceBefore = state.since;
      state.since = now;
      state.ts = v.windowEnd;
    }
    return now;
  }
}

/**
 * Reads one vector's features into `out` at `at` in `names` order, non-finite or missing as 0. Vectors from the
 * feature extractor (and decoded from the bus) list their features in exactly that order, so one for-in pass with a
 * key check reads them several times faster than a lookup per name (the objects are hash tables: >100 keys); any
 * other order falls back to lookups.
 */
function readRow(f: Readonly<Record<string, number>>, names: readonly string[], out: Float64Array, at: number): void {
  const cols = names.length;
  let c = 0;
  for (const key in f) {
    if (c >= cols || key !== names[c]) {
      c = -1;
      break;
    }
    const v = f[key];
    out[at + c] = typeof v === 'number' && Number.isFinite(v) ? v : 0;
    c++;
  }
  if (c === cols) return;
  for (c = 0; c < cols; c++) {
    const v = f[names[c]!];
    out[at + c] = typeof v === 'number' && Number.isFinite(v) ? v : 0;
  }
}

/** Inverse of riskFromError: ln(err) = ln(threshold) + logit(risk) / steepness. */
function errorAtRisk(risk: number, threshold: number, steepness: number): number {
  return threshold * Math.exp(Math.log(risk / (1 - risk)) / steepness);
}

/** Smallest error at which `errorPercentile` reaches `p` (linear between table points, as errorPercentile reads). */
function errorAtPercentile(p: number, ps: readonly number[], errors: readonly number[]): number {
  for (let i = 1; i < ps.length; i++) {
    if (ps[i]! >= p) {
      const span = ps[i]! - ps[i - 1]!;
      return span > 0 ? errors[i - 1]! + ((errors[i]! - errors[i - 1]!) * (p - ps[i - 1]!)) / span : errors[i]!;
    }
  }
  return errors[errors.length - 1] ?? Number.POSITIVE_INFINITY;
}
