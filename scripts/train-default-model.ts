/**
 * Trains the shipped default model (models/default/) from simulator data, reproducibly:
 *   npx tsx scripts/train-default-model.ts [--out models/default] [--quick]
 * Training, calibration and evaluation use disjoint simulator seeds; evaluation also uses precursor magnitudes
 * outside the training range and a different incident rate, so the recorded figures are on unseen data.
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FeatureVector, IncidentLabel, TelemetrySample } from '../src/messages.js';
import { SimulatedCluster, type SimulatedClusterInput } from '../src/ingest/simulator/index.js';
import { createLogger } from '../src/log.js';
import { saveModelArtefact } from '../src/models/artefact.js';
import { evaluateScores } from '../src/models/autoencoder-eval.js';
import { spansFromLabels, trainModel, WindowCollector } from '../src/models/train.js';
