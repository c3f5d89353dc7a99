/** Fitting: normalisation, the autoencoder and its calibration, from rows of healthy windows, into a manifest. */
import { ForesightError } from '../../errors.js';
import { DEFAULT_WINDOW_MS } from '../../features/extractor.js';
import { FEATURE_NAMES } from '../../features/names.js';
import { type Logger, silentLogger } from '../../log.js';
import { MANIFEST_FORMAT, type ModelManifest } from '../artefact/format.js';
import { buildCalibration, type CalibrationOptions } from '../autoencoder/calibration.js';
import { centreValues, keptRowMeans, maskMissing, missingGroups } from '../autoencoder/missing-mask.js';
import {
  buildAutoencoder,
  DEFAULT_HIDDEN,
  permutation,
  reconstructionErrorsBatched,
  seededRandom,
  type TrainSpec,
  trainAutoencoder,
} from '../autoencoder/network.js';
import { contextColumns, fitNormalisation, normaliseRows } from '../autoencoder/normalisation.js';
import { loadTf, type Tf, type TfBackendName } from '../autoencoder/tf-backend.js';
import { TfjsScorer } from '../scorers/tfjs-scorer.js';
import { DEFAULT_TREND_LIMITS, type TrendLimits } from '../scorers/trend.js';
import { pickRows } from './windows.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

export const AUTOENCODER_SCORER = 'tfjs-ae-v1';

export interface TrainModelInput {
  /** Healthy raw rows to learn from (`features` order). */
  train: Float64Array;
  /** The rows' columns. Default FEATURE_NAMES (the feature extractor's); any named metrics otherwise (CSV columns). */
  features?: readonly string[];
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
  return pickRows(rows, cols, keep);
}

/** Fits normalisation, trains the autoencoder, calibrates on held-out rows. Same input and seeds, same weights. */
export async function trainModel(input: TrainModelInput): Promise<TrainedModel> {
  const logger = (input.logger ?? silentLogger()).child({ component: 'train' });
  const features = input.features ?? FEATURE_NAMES;
  const cols = features.length;
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
  const normalisation = fitNormalisation(trainRaw, cols, undefined, contextColumns(features));
  // Masked as the scorer masks them (autoencoder/missing-mask.ts): the network learns the centre for unmeasured latencies.
  const missing = missingGroups(features);
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
    features: [...features],
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
  return { train: pickRows(rows, cols, train), held: pickRows(rows, cols, held) };
}
