import type { Hash } from 'node:crypto';
import { ForesightError } from '../errors.js';
import { DEFAULT_WINDOW_MS, FeatureExtractor, type FeatureExtractorOptions } from '../features/extractor.js';
import { FEATURE_NAMES } from '../features/names.js';
import type { SimulatedCluster } from '../ingest/simulator/cluster.js';
import { type Logger, silentLogger } from '../log.js';
import type { AuditRecord, FeatureVector, IncidentLabel, TelemetrySample } from '../messages.js';
import { MANIFEST_FORMAT, type ModelManifest } from './artefact.js';
import {
  buildAutoencoder,
  DEFAULT_HIDDEN,
  permutation,
  reconstructionErrorsBatched,
  seededRandom,
  type TrainSpec,
  trainAutoencoder,
} from './autoencoder.js';
import { contextColumns, fitNormalisation, normaliseRows } from './autoencoder-norm.js';
import { buildCalibration, type CalibrationOptions } from './calibration.js';
import { centreValues, keptRowMeans, maskMissing, missingGroups } from './missing-mask.js';
import { isUp } from './scorer.js';
import { loadTf, type Tf, type TfBackendName } from './tf-backend.js';
import { TfjsScorer } from './tfjs-scorer.js';
import { DEFAULT_TREND_LIMITS, type TrendLimits } from './trend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

export const AUTOENCODER_SCORER = 'tfjs-ae-v1';

/** A node's time span that must not be taught as healthy (an incident, a confirmed drain) or that is a known false alarm. */
export interface NodeSpan {
  nodeId: string;
  from: number;
  to: number;
}

/** After a crash the node restarts and its baselines settle: not healthy behaviour to learn. ms */
export const DEFAULT_RECOVERY_MS = 15 * 60_000;
/** Before a confirmed drain, this much is treated as the precursor. ms */
export const DEFAULT_VERDICT_LOOKBACK_MS = 60 * 60_000;
/** Before a false drain, this much is what made the model fire: healthy, and the threshold must stay above it. ms */
export const DEFAULT_FALSE_DRAIN_SPAN_MS = 10 * 60_000;

/** Incidents are excluded from [onsetAt, crashAt + recoveryMs]. */
export function spansFromLabels(labels: readonly IncidentLabel[], recoveryMs = DEFAULT_RECOVERY_MS): NodeSpan[] {
  return labels.map((l) => ({ nodeId: l.nodeId, from: l.onsetAt, to: l.crashAt + recoveryMs }));
}

export interface VerdictSpans {
  /** Drains operators confirmed as needed: excluded from healthy. */
  confirmed: NodeSpan[];
  /** Drains operators marked as false: healthy examples, and they raise the threshold. */
  false: NodeSpan[];
  /** Verdicts whose drain could not be placed (no nodeId or time). */
  unplaced: number;
}

/**
 * Reads operators' verdicts from audit records: kind 'Verdict' with details { decisionId, confirmed }. The drain's
 * time is the earliest other record of the same decision (DrainStarting...), else the verdict's own time.
 */
export function spansFromVerdicts(
  records: readonly AuditRecord[],
  options: { lookbackMs?: number; recoveryMs?: number; falseSpanMs?: number } = {},
): VerdictSpans {
  const lookback = options.lookbackMs ?? DEFAULT_VERDICT_LOOKBACK_MS;
  const recovery = options.recoveryMs ?? DEFAULT_RECOVERY_MS;
  const falseSpan = options.falseSpanMs ?? DEFAULT_FALSE_DRAIN_SPAN_MS;
  const firstSeen = new Map<string, AuditRecord>();
  for (const r of records) {
    if (r.kind === 'Verdict' || !r.decisionId) continue;
    const prev = firstSeen.get(r.decisionId);
    if (!prev || r.ts < prev.ts) firstSeen.set(r.decisionId, r);
  }
  const out: VerdictSpans = { confirmed: [], false: [], unplaced: 0 };
  const seen = new Set<string>();
  for (const r of records) {
    if (r.kind !== 'Verdict') continue;
    const d = (r.details ?? {}) as { decisionId?: unknown; confirmed?: unknown };
    const decisionId = typeof d.decisionId === 'string' ? d.decisionId : r.decisionId;
    if (typeof d.confirmed !== 'boolean') {
      out.unplaced++;
      continue;
    }
    // The latest verdict on a decision wins; records come in seq order.
    const key = decisionId ?? `${r.nodeId}@${r.ts}`;
    if (seen.has(key)) {
      out.confirmed = out.confirmed.filter((s) => (s as NodeSpan & { key?: string }).key !== key);
      out.false = out.false.filter((s) => (s as NodeSpan & { key?: string }).key !== key);
    }
    seen.add(key);
    const drain = decisionId ? firstSeen.get(decisionId) : undefined;
    const nodeId = drain?.nodeId ?? r.nodeId;
    const at = drain?.ts ?? r.ts;
    if (!nodeId || !Number.isFinite(at)) {
      out.unplaced++;
      continue;
    }
    const span = d.confirmed
      ? { nodeId, from: at - lookback, to: at + recovery, key }
      : { nodeId, from: at - falseSpan, to: at, key };
    (d.confirmed ? out.confirmed : out.false).push(span);
  }
  const strip = (s: NodeSpan): NodeSpan => ({ nodeId: s.nodeId, from: s.from, to: s.to });
  return { confirmed: out.confirmed.map(strip), false: out.false.map(strip), unplaced: out.unplaced };
}

function overlaps(spans: readonly NodeSpan[] | undefined, from: number, to: number): boolean {
  if (!spans) return false;
  for (const s of spans) if (from < s.to && to > s.from) return true;
  return false;
}

function bySpanNode(spans: readonly NodeSpan[]): Map<string, NodeSpan[]> {
  const m = new Map<string, NodeSpan[]>();
  for (const s of spans) {
    let l = m.get(s.nodeId);
    if (!l) {
      l = [];
      m.set(s.nodeId, l);
    }
    l.push(s);
  }
  return m;
}

/** A growable matrix of raw feature rows in FEATURE_NAMES order. */
export class RowBuffer {
  readonly cols = FEATURE_NAMES.length;
  private data = new Float64Array(1024 * FEATURE_NAMES.length);
  rows = 0;

  push(v: FeatureVector): void {
    if ((this.rows + 1) * this.cols > this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    const f = v.features;
    const base = this.rows * this.cols;
    for (let c = 0; c < this.cols; c++) {
      const x = f[FEATURE_NAMES[c]!];
      this.data[base + c] = typeof x === 'number' && Number.isFinite(x) ? x : 0;
    }
    this.rows++;
  }

  toArray(): Float64Array {
    return this.data.slice(0, this.rows * this.cols);
  }
}

export interface WindowCollectorOptions {
  extractor?: FeatureExtractorOptions;
  /** Keep every vector too (for evaluation). Default false. */
  keepVectors?: boolean;
}

export interface WindowSplit {
  /** Observed, up, outside every excluded span. */
  healthy: Float64Array;
  /** Healthy rows that also fall in a false-drain span. */
  falseDrain: Float64Array;
  excluded: number;
}

/**
 * Runs telemetry through the same FeatureExtractor the pipeline uses and keeps every observed window of a node that
 * was up, with its node and time, so that labels known only at the end (the simulator's) can still be applied.
 */
export class WindowCollector {
  readonly rows = new RowBuffer();
  readonly vectors: FeatureVector[] = [];
  unobserved = 0;
  down = 0;
  private readonly nodeOf: string[] = [];
  private readonly startOf: number[] = [];
  private readonly endOf: number[] = [];
  private readonly extractor: FeatureExtractor;
  private readonly keep: boolean;

  constructor(options: WindowCollectorOptions = {}) {
    this.extractor = new FeatureExtractor(options.extractor);
    this.keep = options.keepVectors ?? false;
  }

  add(samples: readonly TelemetrySample[]): void {
    this.take(this.extractor.ingest(samples));
  }

  /** Closes every window up to `ts` (end of the data). */
  finish(ts: number): void {
    this.take(this.extractor.advance(ts));
  }

  rejected(): number {
    const r = this.extractor.stats().rejected;
    return Object.values(r).reduce((a, b) => a + b, 0);
  }

  split(exclude: readonly NodeSpan[] = [], falseDrains: readonly NodeSpan[] = []): WindowSplit {
    const ex = bySpanNode(exclude);
    const fd = bySpanNode(falseDrains);
    const cols = this.rows.cols;
    const all = this.rows.toArray();
    const healthy: number[] = [];
    const falseDrain: number[] = [];
    for (let r = 0; r < this.nodeOf.length; r++) {
      const node = this.nodeOf[r]!;
      if (overlaps(ex.get(node), this.startOf[r]!, this.endOf[r]!)) continue;
      healthy.push(r);
      if (overlaps(fd.get(node), this.startOf[r]!, this.endOf[r]!)) falseDrain.push(r);
    }
    const pick = (idx: number[]) => {
      const out = new Float64Array(idx.length * cols);
      idx.forEach((r, i) => {
        out.set(all.subarray(r * cols, (r + 1) * cols), i * cols);
      });
      return out;
    };
    return {
      healthy: pick(healthy),
      falseDrain: pick(falseDrain),
      excluded: this.nodeOf.length - healthy.length + this.down,
    };
  }

  private take(vectors: FeatureVector[]): void {
    for (const v of vectors) {
      if (this.keep) this.vectors.push(v);
      if (!v.observed) {
        this.unobserved++;
        continue;
      }
      if (!isUp(v)) {
        this.down++;
        continue;
      }
      this.rows.push(v);
      this.nodeOf.push(v.nodeId);
      this.startOf.push(v.windowStart);
      this.endOf.push(v.windowEnd);
    }
  }
}

/** Interned keys per digest, so a digest never depends on what else the process hashed. */
const keyIdsOf = new WeakMap<Hash, Map<string, number>>();

/**
 * Adds samples to a digest cheaply: time, value and an interned node/metric/source id as float64 triples, plus each
 * new key's text the first time it appears (so the digest still depends on the names).
 */
export function hashSamples(hash: Hash, samples: readonly TelemetrySample[]): void {
  let keyIds = keyIdsOf.get(hash);
  if (!keyIds) {
    keyIds = new Map();
    keyIdsOf.set(hash, keyIds);
  }
  const buf = new Float64Array(samples.length * 3);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const key = `${s.nodeId}\u0000${s.metric}\u0000${s.source}`;
    let id = keyIds.get(key);
    if (id === undefined) {
      id = keyIds.size;
      keyIds.set(key, id);
      hash.update(`${id}=${key}\n`);
    }
    buf[i * 3] = s.ts;
    buf[i * 3 + 1] = s.value;
    buf[i * 3 + 2] = id;
  }
  hash.update(new Uint8Array(buf.buffer));
}

/**
 * Maintenance drills for training data: each node in turn is drained for `drainMs` (no new calls, its calls finish),
 * restarted, and put back `settleMs` after it is up, every `everyMs`. A model trained only on nodes in rotation finds
 * a drained or freshly restarted node odd (no new calls, an empty node at the busy hour), and would keep every node it
 * drained out of rotation after the restart. Nodes with an incident running are skipped.
 */
export interface DrillSchedule {
  everyMs: number;
  drainMs: number;
  settleMs: number;
}

export const DEFAULT_DRILLS: DrillSchedule = { everyMs: 4 * 3_600_000, drainMs: 8 * 60_000, settleMs: 2 * 60_000 };

/** Returns a step function that moves every node's drill along; call it before each simulator step. */
function drillDriver(sim: SimulatedCluster, drills: DrillSchedule, startAt: number): () => void {
  const ids = sim.nodeIds;
  /** Per node: the cycle whose drill was started, and the cycle whose restart was done. */
  const started = new Map<string, number>();
  const restarted = new Map<string, number>();
  return () => {
    const now = sim.now();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      // Staggered so that one node at a time is out.
      const t = now - startAt - (i * drills.everyMs) / ids.length;
      if (t < 0) continue;
      const cycle = Math.floor(t / drills.everyMs);
      const phase = t - cycle * drills.everyMs;
      const view = sim.nodeView(id);
      if (started.get(id) !== cycle) {
        if (phase > 60_000 || !view.up || !view.accepting) continue;
        if (sim.labels().some((l) => l.nodeId === id && l.crashAt > now)) continue;
        started.set(id, cycle);
        sim.setAccepting(id, false);
      } else if (restarted.get(id) !== cycle) {
        if (phase >= drills.drainMs) {
          restarted.set(id, cycle);
          sim.restart(id);
        }
      } else if (!view.accepting && phase >= drills.drainMs + sim.options.restartMs + drills.settleMs) {
        sim.setAccepting(id, true);
      }
    }
  };
}

/**
 * Feeds `sim` for `durationMs` into `collector`, hashing every sample into `hash` (the training-data digest); with
 * `drills`, runs maintenance drills (DrillSchedule) on the way.
 */
export function collectFromSimulator(
  sim: SimulatedCluster,
  durationMs: number,
  collector: WindowCollector,
  hash?: Hash,
  drills?: DrillSchedule,
): IncidentLabel[] {
  const startAt = sim.now();
  const end = startAt + durationMs;
  const batch: TelemetrySample[] = [];
  const stepMs = drills ? 10_000 : 600_000;
  const drill = drills ? drillDriver(sim, drills, startAt) : null;
  while (sim.now() < end) {
    batch.length = 0;
    drill?.();
    sim.step(Math.min(end, sim.now() + stepMs), batch);
    if (hash) hashSamples(hash, batch);
    collector.add(batch);
  }
  collector.finish(end);
  return sim.labels();
}

export interface TrainModelInput {
  /** Healthy raw rows to learn from (FEATURE_NAMES order). */
  train: Float64Array;
  /** Held-out healthy raw rows for the calibration table and threshold. */
  calibration: Float64Array;
  /** Raw rows of false drains. */
  falseDrain?: Float64Array;
  name: string;
  source: string;
  dataDigest: string;
  /** Feature window length of the rows, ms. Default DEFAULT_WINDOW_MS (what WindowCollector uses unless told). */
  windowMs?: number;
  initSeed: number;
  shuffleSeed: number;
  /** Extra seeds recorded in the manifest (simulator seeds and such). */
  seeds?: Record<string, number | number[]>;
  spec?: Partial<Omit<TrainSpec, 'shuffleSeed'>>;
  hidden?: number[];
  /** Training rows beyond this are subsampled (seeded), to bound the training time. Default 24000. */
  maxTrainRows?: number;
  calibrationOptions?: Omit<CalibrationOptions, 'falseDrainErrors'>;
  trend?: { limits?: Partial<TrendLimits>; horizonS?: number; maxTimeToFailureS?: number };
  excludedWindows?: number;
  verdicts?: { confirmed: number; false: number };
  logger?: Logger;
  onEpoch?: (epoch: number, epochs: number, loss: number) => void;
}

export interface TrainedModel {
  tf: Tf;
  backend: TfBackendName;
  model: LayersModel;
  /** weightsDigest is filled in by saveModelArtefact. */
  manifest: ModelManifest;
  scorer: TfjsScorer;
}

export const DEFAULT_TRAIN_SPEC: Omit<TrainSpec, 'shuffleSeed'> = { epochs: 20, batchSize: 256, learningRate: 0.003 };

function subsample(rows: Float64Array, cols: number, max: number, seed: number): Float64Array {
  const n = rows.length / cols;
  if (n <= max) return rows;
  const keep = Array.from(permutation(n, seededRandom(seed)).subarray(0, max)).sort((a, b) => a - b);
  const out = new Float64Array(max * cols);
  keep.forEach((r, i) => {
    out.set(rows.subarray(r * cols, (r + 1) * cols), i * cols);
  });
  return out;
}

/** Fits normalisation, trains the autoencoder, calibrates on held-out rows. Same input and seeds, same weights. */
export async function trainModel(input: TrainModelInput): Promise<TrainedModel> {
  const logger = (input.logger ?? silentLogger()).child({ component: 'train' });
  const cols = FEATURE_NAMES.length;
  const nTrain = input.train.length / cols;
  const nCal = input.calibration.length / cols;
  if (nTrain < 50) {
    throw new ForesightError('FORESIGHT_ERR_INPUT', `only ${nTrain} healthy windows to train on; need at least 50`);
  }
  if (nCal < 20) {
    throw new ForesightError(
      'FORESIGHT_ERR_INPUT',
      `only ${nCal} held-out healthy windows to calibrate on; need at least 20`,
    );
  }
  const { tf, backend } = await loadTf({ logger });
  const spec: TrainSpec = { ...DEFAULT_TRAIN_SPEC, ...input.spec, shuffleSeed: input.shuffleSeed };
  const hidden = input.hidden ?? DEFAULT_HIDDEN;
  const trainRaw = subsample(input.train, cols, input.maxTrainRows ?? 24_000, input.shuffleSeed ^ 0x5eed);
  const normalisation = fitNormalisation(trainRaw, cols, undefined, contextColumns(FEATURE_NAMES));
  // Masked as the scorer masks them (missing-mask.ts): the network learns the centre for unmeasured latencies.
  const missing = missingGroups(FEATURE_NAMES);
  const centre = centreValues(normalisation);
  const masked = (rows: Float64Array) => {
    const copy = Float64Array.from(rows);
    const keep = new Float32Array(copy.length);
    maskMissing(copy, copy.length / cols, cols, missing, centre, keep);
    return { rows: copy, keep };
  };
  const x = normaliseRows(normalisation, masked(trainRaw).rows, cols);
  const architecture = { inputSize: cols, hidden, seed: input.initSeed, activation: 'tanh' as const };
  const model = buildAutoencoder(tf, architecture);
  logger.info({ rows: x.length / cols, backend, epochs: spec.epochs }, 'training autoencoder');
  const losses = await trainAutoencoder(tf, model, x, cols, spec, (e, loss) => input.onEpoch?.(e, spec.epochs, loss));

  const maskedErrors = (rows: Float64Array) => {
    const m = masked(rows);
    const cells = reconstructionErrorsBatched(tf, model, normaliseRows(normalisation, m.rows, cols), cols);
    return keptRowMeans(cells, cols, m.keep);
  };
  const calErrors = maskedErrors(input.calibration);
  let falseErrors: Float64Array | undefined;
  if (input.falseDrain && input.falseDrain.length > 0) falseErrors = maskedErrors(input.falseDrain);
  const calibration = buildCalibration(calErrors, {
    ...input.calibrationOptions,
    ...(falseErrors ? { falseDrainErrors: falseErrors } : {}),
  });
  const manifest: ModelManifest = {
    format: MANIFEST_FORMAT,
    scorer: AUTOENCODER_SCORER,
    name: input.name,
    features: [...FEATURE_NAMES],
    windowMs: input.windowMs ?? DEFAULT_WINDOW_MS,
    architecture,
    normalisation,
    calibration,
    trend: {
      limits: { ...DEFAULT_TREND_LIMITS, ...input.trend?.limits },
      horizonS: input.trend?.horizonS ?? 900,
      maxTimeToFailureS: input.trend?.maxTimeToFailureS ?? 14_400,
    },
    training: {
      dataDigest: input.dataDigest,
      weightsDigest: '',
      seeds: { init: input.initSeed, shuffle: input.shuffleSeed, ...input.seeds },
      source: input.source,
      trainWindows: x.length / cols,
      calibrationWindows: nCal,
      excludedWindows: input.excludedWindows ?? 0,
      falseDrainWindows: input.falseDrain ? input.falseDrain.length / cols : 0,
      spec,
      finalLoss: losses[losses.length - 1] ?? Number.NaN,
      backend,
      verdicts: input.verdicts ?? { confirmed: 0, false: 0 },
    },
    evaluation: null,
    createdAt: new Date(0).toISOString(),
  };
  return { tf, backend, model, manifest, scorer: new TfjsScorer({ manifest, model, tf }) };
}

/** Splits rows into a training part and a held-out calibration part: every `k`-th block of `block` rows is held out. */
export function splitHeldOut(
  rows: Float64Array,
  cols: number,
  k = 5,
  block = 360,
): { train: Float64Array; held: Float64Array } {
  const n = rows.length / cols;
  // Small inputs get smaller blocks, so that every part of the data is represented in both.
  const b = Math.max(1, Math.min(block, Math.floor(n / (k * 4))));
  const train: number[] = [];
  const held: number[] = [];
  for (let r = 0; r < n; r++) (Math.floor(r / b) % k === k - 1 ? held : train).push(r);
  if (held.length === 0 && n > 1) held.push(train.pop()!);
  const pick = (idx: number[]) => {
    const out = new Float64Array(idx.length * cols);
    idx.forEach((r, i) => {
      out.set(rows.subarray(r * cols, (r + 1) * cols), i * cols);
    });
    return out;
  };
  return { train: pick(train), held: pick(held) };
}
