import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ForesightError } from '../../errors.js';
import { FEATURE_NAMES } from '../../features/names.js';
import { type Logger, silentLogger } from '../../log.js';
import { type Calibration, calibrationProblem } from '../autoencoder/calibration.js';
import type { AutoencoderSpec, TrainSpec } from '../autoencoder/network.js';
import type { NormalisationStats } from '../autoencoder/normalisation.js';
import { loadTf, type Tf, type TfBackendName } from '../autoencoder/tf-backend.js';
import type { TrendLimits } from '../scorers/trend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type ModelArtifacts = import('@tensorflow/tfjs').io.ModelArtifacts;

/**
 * Version 2: latency features of windows without measurements are masked (autoencoder/missing-mask.ts) in training, calibration
 * and scoring, so a version 1 model's calibration does not fit the scorer any more.
 */
export const MANIFEST_FORMAT = 'foresight-model/2';
export const MODEL_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
export const MANIFEST_FILE = 'manifest.json';

/** Everything the scorer needs besides the weights, plus provenance. Written as models/<name>/manifest.json. */
export interface ModelManifest {
  format: typeof MANIFEST_FORMAT;
  /** Scorer name and version copied into NodeScore.scorer. */
  scorer: string;
  name: string;
  /** Must equal FEATURE_NAMES, in order. */
  features: string[];
  /**
   * Feature window length the model was trained on, ms: counts, rates and percentiles of a 1 s window are not those of
   * a 10 s one, so a scorer refuses a model whose window differs from the pipeline's. Absent in artefacts from before
   * it was recorded; those were all trained on DEFAULT_WINDOW_MS.
   */
  windowMs?: number;
  architecture: AutoencoderSpec & { activation: 'tanh' };
  normalisation: NormalisationStats;
  calibration: Calibration;
  /** How trend forecasts join the risk. */
  trend: { limits: TrendLimits; horizonS: number; maxTimeToFailureS: number };
  training: {
    /** sha256 of the training input (the telemetry files, or the simulator's samples, in order). */
    dataDigest: string;
    /** sha256 of weights.bin. */
    weightsDigest: string;
    seeds: Record<string, number | number[]>;
    /** Where the data came from, in words (files, simulator seeds). */
    source: string;
    trainWindows: number;
    calibrationWindows: number;
    excludedWindows: number;
    falseDrainWindows: number;
    spec: TrainSpec;
    finalLoss: number;
    backend: TfBackendName;
    /** Operators' verdicts used as labels: confirmed drains (excluded) and false drains (healthy, threshold). */
    verdicts: { confirmed: number; false: number };
  };
  /** Figures on held-out data; null when the trainer had no labelled held-out data. */
  evaluation: Record<string, unknown> | null;
  createdAt: string;
}

export interface ModelArtefact {
  dir: string;
  manifest: ModelManifest;
  model: LayersModel;
  tf: Tf;
  backend: TfBackendName;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function modelError(dir: string, what: string, details: Record<string, unknown> = {}): ForesightError {
  return new ForesightError('FORESIGHT_ERR_MODEL', `model ${dir}: ${what}`, { details: { dir, ...details } });
}

/** Names the first difference between the artefact's feature list and the pipeline's, or null when they match. */
export function featureListDifference(expected: readonly string[], actual: readonly string[]): string | null {
  const missing = expected.filter((f) => !actual.includes(f));
  const extra = actual.filter((f) => !expected.includes(f));
  if (missing.length > 0 || extra.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0)
      parts.push(
        `missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5} more)` : ''}`,
      );
    if (extra.length > 0)
      parts.push(`unknown ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` (+${extra.length - 5} more)` : ''}`);
    return parts.join('; ');
  }
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] !== actual[i]) {
      return `order differs at position ${i}: pipeline has ${expected[i]}, model has ${actual[i]}`;
    }
  }
  return null;
}

/** Structural checks of a manifest against the running feature pipeline; throws FORESIGHT_ERR_MODEL naming the problem. */
export function validateManifest(dir: string, m: unknown, features: readonly string[] = FEATURE_NAMES): ModelManifest {
  const man = m as Partial<ModelManifest> | null;
  if (typeof man !== 'object' || man === null) throw modelError(dir, 'manifest.json is not an object');
  if (man.format !== MANIFEST_FORMAT)
    throw modelError(
      dir,
      `unsupported manifest format ${String(man.format)}, expected ${MANIFEST_FORMAT}: retrain it with \`foresight train\``,
    );
  if (!Array.isArray(man.features) || !man.features.every((f) => typeof f === 'string'))
    throw modelError(dir, 'manifest has no feature list');
  const diff = featureListDifference(features, man.features);
  if (diff !== null) {
    throw modelError(dir, `feature list does not match the feature pipeline (FEATURE_NAMES): ${diff}`, {
      difference: diff,
    });
  }
  const n = features.length;
  const norm = man.normalisation;
  if (
    !norm ||
    !Array.isArray(norm.center) ||
    !Array.isArray(norm.scale) ||
    norm.center.length !== n ||
    norm.scale.length !== n ||
    !norm.center.every(Number.isFinite) ||
    !norm.scale.every((s) => Number.isFinite(s) && s > 0) ||
    !(norm.clip > 0)
  ) {
    throw modelError(dir, `normalisation statistics must hold ${n} finite centres and positive scales`);
  }
  const calProblem = calibrationProblem(man.calibration);
  if (calProblem) throw modelError(dir, calProblem);
  if (man.architecture?.inputSize !== n)
    throw modelError(dir, `architecture input size ${man.architecture?.inputSize} is not ${n}`);
  if (typeof man.scorer !== 'string' || man.scorer.length === 0) throw modelError(dir, 'manifest has no scorer name');
  if (man.windowMs !== undefined && !(Number.isInteger(man.windowMs) && man.windowMs > 0))
    throw modelError(dir, `windowMs ${String(man.windowMs)} is not a positive integer`);
  if (
    !man.trend ||
    !(man.trend.horizonS > 0) ||
    !(man.trend.maxTimeToFailureS > 0) ||
    typeof man.trend.limits !== 'object'
  )
    throw modelError(dir, 'manifest trend settings missing');
  return man as ModelManifest;
}

/** A tfjs IOHandler that writes model.json + weights.bin into `dir` (no network, no tfjs-node needed). */
function fileSaveHandler(tf: Tf, dir: string): import('@tensorflow/tfjs').io.IOHandler {
  return tf.io.withSaveHandler(async (artifacts: ModelArtifacts) => {
    const weights = artifacts.weightData
      ? new Uint8Array(
          tf.io.concatenateArrayBuffers(
            Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData],
          ),
        )
      : new Uint8Array(0);
    writeFileSync(path.join(dir, WEIGHTS_FILE), weights);
    const modelJson = {
      format: artifacts.format ?? 'layers-model',
      generatedBy: artifacts.generatedBy,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
    };
    writeFileSync(path.join(dir, MODEL_FILE), `${JSON.stringify(modelJson)}\n`);
    return {
      modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength },
    };
  });
}

function fileLoadHandler(tf: Tf, dir: string): import('@tensorflow/tfjs').io.IOHandler {
  return tf.io.fromMemory(readModelArtifacts(dir));
}

function readModelArtifacts(dir: string): ModelArtifacts {
  const file = path.join(dir, MODEL_FILE);
  let json: {
    modelTopology?: unknown;
    weightsManifest?: Array<{ paths: string[]; weights: unknown[] }>;
    format?: string;
  };
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw modelError(dir, `cannot read ${MODEL_FILE}: ${(err as Error).message}`);
  }
  const groups = json.weightsManifest;
  if (!json.modelTopology || !Array.isArray(groups)) throw modelError(dir, `${MODEL_FILE} is not a tfjs layers model`);
  const buffers: Uint8Array[] = [];
  const specs: unknown[] = [];
  for (const g of groups) {
    for (const p of g.paths) {
      if (p.includes('/') || p.includes('\\') || p.startsWith('.'))
        throw modelError(dir, `weights path ${p} leaves the model folder`);
      try {
        buffers.push(readFileSync(path.join(dir, p)));
      } catch (err) {
        throw modelError(dir, `cannot read weights ${p}: ${(err as Error).message}`);
      }
    }
    specs.push(...g.weights);
  }
  const total = buffers.reduce((s, b) => s + b.byteLength, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    data.set(b, at);
    at += b.byteLength;
  }
  return {
    modelTopology: json.modelTopology as ModelArtifacts['modelTopology'],
    weightSpecs: specs as ModelArtifacts['weightSpecs'],
    weightData: data.buffer,
    format: json.format,
  };
}

/** Writes the model, its weights and the manifest (with the weights digest filled in). Returns the manifest written. */
export async function saveModelArtefact(
  tf: Tf,
  dir: string,
  model: LayersModel,
  manifest: ModelManifest,
): Promise<ModelManifest> {
  mkdirSync(dir, { recursive: true });
  await model.save(fileSaveHandler(tf, dir));
  const weightsDigest = sha256Hex(readFileSync(path.join(dir, WEIGHTS_FILE)));
  const full: ModelManifest = { ...manifest, training: { ...manifest.training, weightsDigest } };
  writeFileSync(path.join(dir, MANIFEST_FILE), `${JSON.stringify(full, null, 2)}\n`);
  return full;
}

export interface LoadModelOptions {
  logger?: Logger;
  /** Feature list the running pipeline produces. Default FEATURE_NAMES. */
  features?: readonly string[];
}

/**
 * Loads and validates models/<name>/ at start-up: the manifest must match the feature pipeline, the weights must
 * match their digest and the layer shapes the manifest. Any problem is a FORESIGHT_ERR_MODEL naming it.
 */
export async function loadModelArtefact(dir: string, options: LoadModelOptions = {}): Promise<ModelArtefact> {
  const logger = (options.logger ?? silentLogger()).child({ component: 'model' });
  const manifestFile = path.join(dir, MANIFEST_FILE);
  if (!existsSync(manifestFile)) throw modelError(dir, `${MANIFEST_FILE} not found`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(manifestFile, 'utf8'));
  } catch (err) {
    throw modelError(dir, `${MANIFEST_FILE} is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = validateManifest(dir, raw, options.features ?? FEATURE_NAMES);
  const weightsFile = path.join(dir, WEIGHTS_FILE);
  if (!existsSync(weightsFile)) throw modelError(dir, `${WEIGHTS_FILE} not found`);
  const digest = sha256Hex(readFileSync(weightsFile));
  if (manifest.training?.weightsDigest && digest !== manifest.training.weightsDigest) {
    throw modelError(
      dir,
      `${WEIGHTS_FILE} digest ${digest} does not match the manifest's ${manifest.training.weightsDigest}`,
    );
  }
  const { tf, backend } = await loadTf({ logger });
  let model: LayersModel;
  try {
    model = await tf.loadLayersModel(fileLoadHandler(tf, dir));
  } catch (err) {
    if (err instanceof ForesightError) throw err;
    throw modelError(dir, `weights do not load: ${(err as Error).message}`);
  }
  const inShape = (model.inputs[0]?.shape ?? []) as Array<number | null>;
  const outShape = (model.outputs[0]?.shape ?? []) as Array<number | null>;
  const n = manifest.features.length;
  if (inShape[1] !== n || outShape[1] !== n) {
    model.dispose();
    throw modelError(
      dir,
      `network maps ${inShape[1]} inputs to ${outShape[1]} outputs, the manifest lists ${n} features`,
    );
  }
  logger.info({ dir, scorer: manifest.scorer, backend, dataDigest: manifest.training.dataDigest }, 'model loaded');
  return { dir, manifest, model, tf, backend };
}
