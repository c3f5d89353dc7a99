import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FEATURE_NAMES } from '../src/features/names.js';
import { SimulatedCluster } from '../src/ingest/simulator/index.js';
import type { FeatureVector } from '../src/messages.js';
import { loadModelArtefact } from '../src/models/artefact.js';
import { scoreCsvFile } from '../src/models/csv-score.js';
import { TfjsScorer } from '../src/models/tfjs-scorer.js';
import {
  collectFromSimulator,
  spansFromLabels,
  splitHeldOut,
  trainModel,
  WindowCollector,
} from '../src/models/train.js';

type Figure = { name: string; value: number; unit: string };

/** p99 of scoring 1000 nodes' windows in one call with the shipped model (after warm-up). */
async function scoreThousand(): Promise<Figure> {
  const artefact = await loadModelArtefact(path.join(import.meta.dirname, '../models/default'));
  const scorer = new TfjsScorer(artefact);
  const sim = new SimulatedCluster({ seed: 99, nodes: 10 });
  const c = new WindowCollector({
    keepVectors: true,
    extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) },
  });
  collectFromSimulator(sim, 30 * 60_000, c);
  const pool = c.vectors.filter((v) => v.observed);
  const batch: FeatureVector[] = Array.from({ length: 1000 }, (_, i) => ({
    ...pool[i % pool.length]!,
    nodeId: `n${i}`,
  }));
  for (let i = 0; i < 20; i++) scorer.score(batch);
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < 300 && performance.now() - t0 < 10_000) {
    const s = performance.now();
    scorer.score(batch);
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  return { name: 'model.score_1000_nodes.ms_p99', value: times[Math.floor(0.99 * (times.length - 1))]!, unit: 'ms' };
}

/** Training wall time on a fixed small simulator dataset (4 nodes, 3 h, 10 epochs), data preparation excluded. */
async function trainSmall(): Promise<Figure> {
  const sim = new SimulatedCluster({ seed: 5, nodes: 4 });
  const c = new WindowCollector({ extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) } });
  const labels = collectFromSimulator(sim, 3 * 3_600_000, c);
  const { train, held } = splitHeldOut(c.split(spansFromLabels(labels)).healthy, FEATURE_NAMES.length);
  const t0 = performance.now();
  const trained = await trainModel({
    train,
    calibration: held,
    name: 'bench',
    source: 'bench',
    dataDigest: '',
    initSeed: 1,
    shuffleSeed: 2,
    spec: { epochs: 10 },
  });
  const s = (performance.now() - t0) / 1000;
  trained.model.dispose();
  return { name: 'model.train.s', value: s, unit: 's' };
}

/** Rows per second of `foresight score` on a 50 000-row, 4-column CSV, online mode, file to file. */
async function scoreCsv(): Promise<Figure> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-csv-'));
  try {
    const rows = 50_000;
    const lines = ['timestamp,cpu,mem,rtt,queue'];
    for (let i = 0; i < rows; i++) {
      lines.push(
        `${1_700_000_000 + i * 10},${(40 + 10 * Math.sin(i / 50)).toFixed(2)},${800 + (i % 97)},${(20 + (i % 13) * 0.7).toFixed(1)},${i % 5}`,
      );
    }
    writeFileSync(path.join(dir, 'in.csv'), `${lines.join('\n')}\n`);
    const t0 = performance.now();
    await scoreCsvFile({ input: path.join(dir, 'in.csv'), output: path.join(dir, 'out.csv') });
    return {
      name: 'score_csv.rows_per_s',
      value: Math.round(rows / ((performance.now() - t0) / 1000)),
      unit: 'rows/s',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Figure[]> {
  return [await scoreThousand(), await trainSmall(), await scoreCsv()];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(`${r.name} ${r.value} ${r.unit}`);
}
