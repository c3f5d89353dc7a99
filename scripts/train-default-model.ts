/**
 * Trains the shipped default model (models/default/) from simulator data, reproducibly:
 *   npx tsx scripts/train-default-model.ts [--out models/default] [--quick]
 * Training, calibration and evaluation use disjoint simulator seeds; evaluation also draws precursor magnitudes
 * from a wider range and a different incident rate than training, so the recorded figures are on unseen data.
 * Incidents are excluded from training and calibration ([onsetAt, crashAt + 15 min] of every label).
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FEATURE_NAMES } from '../src/features/names.js';
import { createLogger } from '../src/log.js';
import type { IncidentLabel, NodeScore } from '../src/messages.js';
import { type ModelManifest, saveModelArtefact } from '../src/models/artefact/format.js';
import { collectFromSimulator, DEFAULT_DRILLS } from '../src/models/training/drills.js';
import { evaluateScores } from '../src/models/training/evaluate.js';
import { trainModel } from '../src/models/training/fit.js';
import { spansFromLabels } from '../src/models/training/labels.js';
import { WindowCollector } from '../src/models/training/windows.js';
import { KEEPS_CALLS } from '../src/sim/incidents.js';
import { SimulatedCluster, type SimulatedClusterInput } from '../src/sim/index.js';

const HOUR = 3_600_000;

export interface Recipe {
  nodes: number;
  trainSeeds: number[];
  trainHours: number;
  calibrationSeeds: number[];
  calibrationHours: number;
  evalSeeds: number[];
  evalHours: number;
  initSeed: number;
  shuffleSeed: number;
  epochs: number;
  /** Quantile of held-out healthy errors the calibration threshold is set at (see calibration.ts). */
  thresholdQuantile: number;
}

export const DEFAULT_RECIPE: Recipe = {
  nodes: 8,
  trainSeeds: [101, 102],
  trainHours: 24,
  calibrationSeeds: [201],
  calibrationHours: 24,
  evalSeeds: [301, 302],
  evalHours: 24,
  initSeed: 7,
  shuffleSeed: 11,
  epochs: 20,
  thresholdQuantile: 0.998,
};

const TRAIN_SIM: SimulatedClusterInput = { randomIncidents: { perNodeDay: 1, magnitude: [0.6, 1.6] } };
const EVAL_SIM: SimulatedClusterInput = { randomIncidents: { perNodeDay: 1.5, magnitude: [0.4, 2.2] } };

function simulate(
  seed: number,
  nodes: number,
  hours: number,
  input: SimulatedClusterInput,
  keepVectors: boolean,
  hash?: ReturnType<typeof createHash>,
  drills = false,
) {
  const sim = new SimulatedCluster({ ...input, seed, nodes });
  const collector = new WindowCollector({
    keepVectors,
    extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: sim.options.setId })) },
  });
  const labels = collectFromSimulator(sim, hours * HOUR, collector, hash, drills ? DEFAULT_DRILLS : undefined);
  return { collector, labels, end: sim.now() };
}

/**
 * Windows left out of training and calibration: each incident from its onset. A node whose failure keeps it up
 * (DB, storm) goes on failing for a while after crashAt, so 15 min more (spansFromLabels); a crashed node comes back as
 * a fresh process after 1–2 min down (its down windows are never used), and a freshly booted node refilling with
 * calls is exactly what the model must know as healthy, or it drains every node that comes back from a crash.
 */
function trainingExclusions(labels: readonly IncidentLabel[]) {
  const crashed = labels.filter((l) => !KEEPS_CALLS[l.mode]);
  return [...spansFromLabels(labels.filter((l) => KEEPS_CALLS[l.mode])), ...spansFromLabels(crashed, CRASH_SETTLE_MS)];
}

const CRASH_SETTLE_MS = 3 * 60_000;

function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function trainDefault(recipe: Recipe, outDir: string | null, log: (msg: string) => void) {
  const t0 = performance.now();
  const hash = createHash('sha256');
  const train: Float64Array[] = [];
  let excluded = 0;
  for (const seed of recipe.trainSeeds) {
    const { collector, labels } = simulate(seed, recipe.nodes, recipe.trainHours, TRAIN_SIM, false, hash, true);
    const split = collector.split(trainingExclusions(labels));
    train.push(split.healthy);
    excluded += split.excluded;
    log(
      `train seed ${seed}: ${labels.length} incidents, ${split.healthy.length / FEATURE_NAMES.length} healthy windows`,
    );
  }
  const cal: Float64Array[] = [];
  for (const seed of recipe.calibrationSeeds) {
    const { collector, labels } = simulate(
      seed,
      recipe.nodes,
      recipe.calibrationHours,
      TRAIN_SIM,
      false,
      undefined,
      true,
    );
    cal.push(collector.split(trainingExclusions(labels)).healthy);
    log(`calibration seed ${seed}: ${labels.length} incidents`);
  }
  const trained = await trainModel({
    train: concat(train),
    calibration: concat(cal),
    name: 'default',
    source: `simulator: ${recipe.nodes} nodes, train seeds ${recipe.trainSeeds.join(',')} x ${recipe.trainHours} h, calibration seeds ${recipe.calibrationSeeds.join(',')} x ${recipe.calibrationHours} h`,
    dataDigest: `sha256:${hash.digest('hex')}`,
    initSeed: recipe.initSeed,
    shuffleSeed: recipe.shuffleSeed,
    seeds: { trainSim: recipe.trainSeeds, calibrationSim: recipe.calibrationSeeds, evalSim: recipe.evalSeeds },
    spec: { epochs: recipe.epochs },
    calibrationOptions: { thresholdQuantile: recipe.thresholdQuantile },
    excludedWindows: excluded,
    onEpoch: (e, n, loss) => {
      if (e === n - 1 || e % 5 === 0) log(`epoch ${e + 1}/${n} loss ${loss.toFixed(4)}`);
    },
  });
  const trainS = (performance.now() - t0) / 1000;

  const scores: NodeScore[] = [];
  const labels: IncidentLabel[] = [];
  let nodeDays = 0;
  for (const seed of recipe.evalSeeds) {
    const run = simulate(seed, recipe.nodes, recipe.evalHours, EVAL_SIM, true);
    for (let i = 0; i < run.collector.vectors.length; i += 4096) {
      scores.push(...trained.scorer.score(run.collector.vectors.slice(i, i + 4096)));
    }
    // Labels are per seed; node ids repeat across seeds, so offset times keep them apart.
    const shift = labels.length === 0 ? 0 : seed * 1e10;
    if (shift)
      for (let i = scores.length - run.collector.vectors.length; i < scores.length; i++) scores[i]!.ts += shift;
    labels.push(
      ...run.labels
        .filter((l) => l.crashAt <= run.end)
        .map((l) => ({ ...l, onsetAt: l.onsetAt + shift, crashAt: l.crashAt + shift })),
    );
    nodeDays += (recipe.nodes * recipe.evalHours) / 24;
    log(`eval seed ${seed}: ${run.labels.length} incidents`);
  }
  const evaluation = {
    heldOut: `simulator seeds ${recipe.evalSeeds.join(',')}, ${recipe.nodes} nodes x ${recipe.evalHours} h, ${EVAL_SIM.randomIncidents?.perNodeDay} incidents/node-day, magnitudes ${EVAL_SIM.randomIncidents?.magnitude?.join('..')}`,
    alarm: 'one window with risk >= threshold while the node is up; no action layer (see foresight replay)',
    ...evaluateScores(scores, labels, { nodeDays }),
    trainSeconds: Math.round(trainS),
  };
  const manifest = { ...trained.manifest, evaluation };
  let saved: ModelManifest = manifest;
  if (outDir) saved = await saveModelArtefact(trained.tf, outDir, trained.model, manifest);
  return { manifest: saved, trainS, trained };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { out: { type: 'string', default: 'models/default' }, quick: { type: 'boolean' } },
  });
  const recipe: Recipe = values.quick
    ? { ...DEFAULT_RECIPE, trainHours: 2, calibrationHours: 2, evalHours: 2, epochs: 5 }
    : DEFAULT_RECIPE;
  const logger = createLogger(process.env.FORESIGHT_LOG_LEVEL ?? 'warn');
  const t0 = performance.now();
  const { manifest } = await trainDefault(recipe, values.out ?? 'models/default', (m) =>
    console.error(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${m}`),
  );
  void logger;
  console.log(
    JSON.stringify(
      {
        out: values.out,
        weightsDigest: manifest.training.weightsDigest,
        dataDigest: manifest.training.dataDigest,
        calibration: { threshold: manifest.calibration.threshold },
        evaluation: manifest.evaluation,
      },
      null,
      2,
    ),
  );
}
