import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FEATURE_NAMES } from '../src/features/names.js';
import { silentLogger } from '../src/log.js';
import type { FeatureVector } from '../src/messages.js';
import { loadModelArtefact } from '../src/models/artefact/format.js';
import { scoreCsvFile } from '../src/models/csv/score.js';
import { ModelLifecycle } from '../src/models/lifecycle/manager.js';
import { memoryState } from '../src/models/lifecycle/state.js';
import type { Scorer } from '../src/models/scorers/scorer.js';
import { StatScorer } from '../src/models/scorers/stat-scorer.js';
import { TfjsScorer } from '../src/models/scorers/tfjs-scorer.js';
import { collectFromSimulator } from '../src/models/training/drills.js';
import { splitHeldOut, trainModel } from '../src/models/training/fit.js';
import { spansFromLabels } from '../src/models/training/labels.js';
import { WindowCollector } from '../src/models/training/windows.js';
import { SimulatedCluster } from '../src/sim/index.js';

type Figure = { name: string; value: number; unit: string };

/** 1000 nodes' windows (observed windows of a 10-node simulation, renamed), as one batch of the live loop. */
function thousandWindows(): FeatureVector[] {
  const sim = new SimulatedCluster({ seed: 99, nodes: 10 });
  const c = new WindowCollector({
    keepVectors: true,
    extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) },
  });
  collectFromSimulator(sim, 30 * 60_000, c);
  const pool = c.vectors.filter((v) => v.observed);
  return Array.from({ length: 1000 }, (_, i) => ({ ...pool[i % pool.length]!, nodeId: `n${i}` }));
}

/** p99 of one `score` call on the batch, after warm-up: 300 calls or 10 s, whichever ends first. */
function p99Of(scorer: Scorer, batch: readonly FeatureVector[]): number {
  for (let i = 0; i < 20; i++) scorer.score(batch);
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < 300 && performance.now() - t0 < 10_000) {
    const s = performance.now();
    scorer.score(batch);
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(0.99 * (times.length - 1))]!;
}

/**
 * p99 of scoring 1000 nodes' windows in one call with the shipped TF.js model (wasm backend here), and with the model
 * lifecycle's scorer once a model is in charge: the model and `stat` (kept warm for a rollback) both score every batch.
 */
async function scoreThousand(): Promise<Figure[]> {
  const artefact = await loadModelArtefact(path.join(import.meta.dirname, '../models/default'));
  const batch = thousandWindows();
  const alone = p99Of(new TfjsScorer(artefact), batch);
  const ref = { kind: 'tfjs' as const, name: 'default', path: 'models/default' };
  const lifecycle = await ModelLifecycle.start(
    {
      stat: new StatScorer({ windowMs: 10_000 }),
      freshStat: () => new StatScorer({ windowMs: 10_000 }),
      record: () => Promise.reject(new Error('not in the bench')),
      labels: async () => ({ incidents: [], falseDrains: [] }),
      train: () => Promise.reject(new Error('not in the bench')),
      load: async () => new TfjsScorer(artefact),
      audit: async (r) => ({ ...r, seq: 1 }),
      state: memoryState({ inCharge: { scorer: ref, since: 0, why: 'bench' }, previous: null }),
      logger: silentLogger(),
    },
    {
      recordMs: 365 * 86_400_000,
      heldBackFraction: 0.25,
      shadowMs: 0,
      shadowMinWindows: 0,
      schedule: '0 3 * * *',
      threshold: 0.8,
      rule: { minWindows: 360 },
    },
    0,
  );
  const inCharge = p99Of(lifecycle, batch);
  await lifecycle.stop();
  return [
    { name: 'model.score_1000_nodes.ms_p99', value: alone, unit: 'ms' },
    { name: 'model.lifecycle_score_1000_nodes.ms_p99', value: inCharge, unit: 'ms' },
  ];
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

/**
 * `foresight score` end to end (parse -> default scorer -> write), file to file, on a generated 100 000-row,
 * 40-metric CSV at 1 min cadence: daily seasonal gauges, correlated pairs, counters, a mostly-zero column. Target:
 * under 10 s (issue 18).
 */
export async function scoreCsv(): Promise<Figure[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-csv-'));
  try {
    const rows = 100_000;
    const cols = 40;
    const names = Array.from({ length: cols }, (_, c) => `m${c}`);
    const lines = [`timestamp,${names.join(',')}`];
    let seed = 7;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const totals = new Float64Array(cols);
    for (let i = 0; i < rows; i++) {
      const ts = 1_700_000_000 + i * 60;
      const day = Math.sin((2 * Math.PI * i) / 1440);
      const load = rand() - 0.5;
      const cells: string[] = [];
      for (let c = 0; c < cols; c++) {
        let v: number;
        if (c % 10 === 9)
          v = totals[c]! += 100 + 50 * rand(); // counter
        else if (c % 10 === 8)
          v = rand() < 0.03 ? 1 : 0; // sparse
        else v = 100 * (1 + (c % 3)) + 40 * day + 20 * load * (c % 2 === 0 ? 1 : -1) + 5 * rand();
        cells.push(Number.isInteger(v) ? String(v) : v.toFixed(3));
      }
      lines.push(`${ts},${cells.join(',')}`);
    }
    writeFileSync(path.join(dir, 'in.csv'), `${lines.join('\n')}\n`);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const summary = await scoreCsvFile({ input: path.join(dir, 'in.csv'), output: path.join(dir, 'out.csv') });
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return [
      { name: 'score_csv.100k_rows_40_cols.s', value: s, unit: 's' },
      // CPU time too: on a shared machine the wall time counts other processes' turns.
      { name: 'score_csv.100k_rows_40_cols.cpu_s', value: (cpu.user + cpu.system) / 1e6, unit: 's' },
      { name: 'score_csv.rows_per_s', value: Math.round(rows / s), unit: 'rows/s' },
      { name: 'score_csv.at_risk_rows', value: summary.atRiskRows, unit: 'rows' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Figure[]> {
  return [...(await scoreThousand()), await trainSmall(), ...(await scoreCsv())];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(`${r.name} ${r.value} ${r.unit}`);
}
