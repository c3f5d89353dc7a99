import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FeatureExtractor } from '../../src/features/extractor.js';
import { FEATURE_NAMES } from '../../src/features/names.js';
import type { FeatureVector, NodeScore, TelemetrySample } from '../../src/messages.js';
import { loadModelArtefact, type ModelArtefact } from '../../src/models/artefact/format.js';
import { buildAutoencoder, reconstructionErrors, rowMeans } from '../../src/models/autoencoder/network.js';
import {
  CONTEXT_FEATURES,
  fitNormalisation,
  NEUTRAL_SCALE,
  normaliseRows,
} from '../../src/models/autoencoder/normalisation.js';
import { AutoencoderRunner } from '../../src/models/autoencoder/runner.js';
import { loadTf } from '../../src/models/autoencoder/tf-backend.js';
import { TfjsScorer, type TfjsScorerOptions, UNSUSTAINED_CAP } from '../../src/models/scorers/tfjs-scorer.js';
import { SimulatedCluster } from '../../src/sim/index.js';
import type { IncidentPlan } from '../../src/sim/options.js';

const DEFAULT_MODEL = path.join(import.meta.dirname, '../../models/default');
const START = Date.UTC(2024, 3, 8, 10);
const MIN = 60_000;
const QUIET = { dbBlipsPerDay: 0, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 };

interface Run {
  vectors: FeatureVector[];
  crashAt: number | null;
}

/** Simulates a quiet 4-node cluster (optionally with one scripted incident) and extracts its feature vectors. */
function simulate(minutes: number, incident?: IncidentPlan, edit?: (s: TelemetrySample) => void): Run {
  const sim = new SimulatedCluster({
    seed: 6060,
    nodes: 4,
    startAt: START,
    randomIncidents: { perNodeDay: 0 },
    disturbances: QUIET,
    incidents: incident ? [incident] : [],
  });
  const extractor = new FeatureExtractor({ nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) });
  const vectors: FeatureVector[] = [];
  const batch: TelemetrySample[] = [];
  const end = START + minutes * MIN;
  while (sim.now() < end) {
    batch.length = 0;
    sim.step(Math.min(end, sim.now() + MIN), batch);
    if (edit) for (const s of batch) edit(s);
    vectors.push(...extractor.ingest(batch.slice()));
  }
  vectors.push(...extractor.advance(end + 60_000));
  const label = sim.labels()[0];
  return { vectors, crashAt: label ? label.crashAt : null };
}

/** Scores vectors window by window (as the live pipeline does) with a fresh scorer. */
function scoreRun(
  artefact: ModelArtefact,
  vectors: readonly FeatureVector[],
  options?: TfjsScorerOptions,
): NodeScore[] {
  const scorer = new TfjsScorer(artefact, options);
  const out: NodeScore[] = [];
  let i = 0;
  while (i < vectors.length) {
    let j = i;
    while (j < vectors.length && vectors[j]!.windowEnd === vectors[i]!.windowEnd) j++;
    out.push(...scorer.score(vectors.slice(i, j)));
    i = j;
  }
  return out;
}

/** First time the action layer's rule (3 consecutive windows at or above 0.8) fires for `nodeId`, or null. */
function firstDrain(scores: readonly NodeScore[], nodeId: string, from = 0, to = Number.POSITIVE_INFINITY) {
  let streak = 0;
  for (const s of scores) {
    if (s.nodeId !== nodeId || s.ts <= from || s.ts > to) continue;
    streak = s.observed && s.risk >= 0.8 ? streak + 1 : 0;
    if (streak >= 3) return s.ts;
  }
  return null;
}

/** A taskprocessor stall on one node, as strong as the simulator's strongest hiccup: queue, setup, CPU and RTT up. */
function stall(nodeId: string, from: number, durationMs: number) {
  return (s: TelemetrySample) => {
    if (s.nodeId !== nodeId || s.ts < from || s.ts >= from + durationMs) return;
    if (s.metric === 'taskprocessor.max_queue') s.value += 300;
    else if (s.metric === 'sip.invite_setup_ms') s.value += 240;
    else if (s.metric === 'host.cpu_pct') s.value = Math.min(100, s.value + 24);
    else if (s.metric === 'sip.options_rtt_ms') s.value += 18;
  };
}

describe('AutoencoderRunner', () => {
  it('matches model.predict on random input, row errors and the cells it reads back', async () => {
    const { tf } = await loadTf();
    const cols = 9;
    const model = buildAutoencoder(tf, { inputSize: cols, hidden: [6, 3], seed: 3 });
    const runner = new AutoencoderRunner(tf, model);
    expect(runner.fast).toBe(true);
    const n = 37;
    const x = new Float32Array(n * cols).map((_, i) => Math.sin(i * 1.7) * 3);
    const cells = reconstructionErrors(tf, model, x, cols);
    const expected = rowMeans(cells, cols);
    const pick = Int32Array.from([0, 5, 36]);
    const got = runner.errors(x, n, cols, () => pick);
    for (let r = 0; r < n; r++) expect(got.rowError[r]).toBeCloseTo(expected[r]!, 4);
    expect(Array.from(got.rows)).toEqual([0, 5, 36]);
    for (const r of pick) {
      for (let c = 0; c < cols; c++) expect(got.cells[r * cols + c]).toBeCloseTo(cells[r * cols + c]!, 4);
    }
    runner.dispose();
    model.dispose();
  });

  it('normalises raw rows on the backend exactly as training does in JavaScript', async () => {
    const { tf } = await loadTf();
    const cols = 6;
    const model = buildAutoencoder(tf, { inputSize: cols, hidden: [4, 2], seed: 5 });
    const values = [0, 1, -1, 3.5, -250, 1e7, 42, 0.001, -0.5, 1e-9];
    const raw = new Float64Array(40 * cols).map((_, i) => values[(i * 7) % values.length]! * (1 + (i % 3)));
    const stats = fitNormalisation(raw.subarray(0, 20 * cols), cols, 3);
    const runner = new AutoencoderRunner(tf, model, stats);
    const expected = runner.errors(normaliseRows(stats, raw, cols), 40, cols);
    const got = runner.errorsFromRaw(Float32Array.from(raw), 40, cols);
    for (let r = 0; r < 40; r++) expect(got.rowError[r]).toBeCloseTo(expected.rowError[r]!, 4);
    runner.dispose();
    model.dispose();
  });

  it('matches model.predict for a network ending in tanh and layers without bias (sigmoid rewrite)', async () => {
    const { tf } = await loadTf();
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 3, activation: 'tanh', useBias: false, inputShape: [5] }));
    model.add(tf.layers.dense({ units: 4, activation: 'tanh', biasInitializer: 'ones' }));
    model.add(tf.layers.dense({ units: 5, activation: 'tanh', biasInitializer: 'ones' }));
    const runner = new AutoencoderRunner(tf, model);
    expect(runner.fast).toBe(true);
    const x = new Float32Array(30).map((_, i) => Math.cos(i) * 4);
    const expected = rowMeans(reconstructionErrors(tf, model, x, 5), 5);
    const got = runner.errors(x, 6, 5);
    for (let r = 0; r < 6; r++) expect(got.rowError[r]).toBeCloseTo(expected[r]!, 4);
    runner.dispose();
    model.dispose();
  });

  it('falls back to model.predict for layers it does not know, with the same errors', async () => {
    const { tf } = await loadTf();
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 4, activation: 'relu', inputShape: [5] }));
    model.add(tf.layers.dense({ units: 5 }));
    const runner = new AutoencoderRunner(tf, model);
    expect(runner.fast).toBe(false);
    const x = new Float32Array(20).map((_, i) => i / 7 - 1);
    const expected = rowMeans(reconstructionErrors(tf, model, x, 5), 5);
    const got = runner.errors(x, 4, 5);
    for (let r = 0; r < 4; r++) expect(got.rowError[r]).toBeCloseTo(expected[r]!, 5);
    model.dispose();
  });
});

describe('normalisation of context features', () => {
  it('neutralises peers.observed so cluster size does not look like an anomaly', () => {
    const cols = FEATURE_NAMES.length;
    const at = FEATURE_NAMES.indexOf(CONTEXT_FEATURES[0]!);
    const raw = new Float64Array(50 * cols).map((_, i) => (i % cols === at ? 7 : (i % 13) + 1));
    const stats = fitNormalisation(raw, cols, undefined, new Set([at]));
    expect(stats.scale[at]).toBe(NEUTRAL_SCALE);
    expect(stats.center[at]).toBe(0);
    const plain = fitNormalisation(raw, cols);
    expect(plain.scale[at]).toBeLessThan(1);
  });

  it('ships a model that neutralises them', async () => {
    const a = await loadModelArtefact(DEFAULT_MODEL);
    for (const f of CONTEXT_FEATURES)
      expect(a.manifest.normalisation.scale[FEATURE_NAMES.indexOf(f)]).toBe(NEUTRAL_SCALE);
  });
});

describe('TfjsScorer persistence', () => {
  let artefact: ModelArtefact;
  beforeAll(async () => {
    artefact = await loadModelArtefact(DEFAULT_MODEL);
  }, 60_000);

  it('does not push risk to 0.8 for a single-node stall that clears within a minute', () => {
    const at = START + 40 * MIN + 3_000;
    const { vectors } = simulate(50, undefined, stall('ast2', at, 60_000));
    const scores = scoreRun(artefact, vectors);
    const during = scores.filter((s) => s.nodeId === 'ast2' && s.ts > at && s.ts <= at + 5 * MIN);
    const peak = Math.max(...during.map((s) => s.risk));
    expect(peak).toBeLessThan(0.8);
    expect(firstDrain(scores, 'ast2', at, at + 5 * MIN)).toBeNull();
    // The model trained with busy hours, drills and masked latencies barely reacts to a one-minute stall (peak 0.15
    // against 0.14 healthy on this run); the cap on unsustained evidence is checked with a wilder window below.
  }, 60_000);

  it('still raises the risk past 0.8 when the same stall does not clear', () => {
    const at = START + 40 * MIN + 3_000;
    const { vectors } = simulate(50, undefined, stall('ast2', at, 4 * MIN));
    const scores = scoreRun(artefact, vectors);
    const drainAt = firstDrain(scores, 'ast2', at, at + 4 * MIN);
    expect(drainAt).not.toBeNull();
    expect(drainAt! - at).toBeGreaterThan(60_000);
  }, 60_000);

  it('caps an unsustained anomaly below the drain threshold', () => {
    const { vectors } = simulate(30);
    const last = vectors.filter((v) => v.observed).slice(-4);
    const wild: FeatureVector = {
      ...last[0]!,
      windowStart: last[0]!.windowEnd + 600_000,
      windowEnd: last[0]!.windowEnd + 610_000,
      // Everything about packets off the charts; no resource trend (levels and slopes untouched).
      features: Object.fromEntries(
        FEATURE_NAMES.map((n) => [n, /rtcp|retrans|loss|jitter/.test(n) ? 1e6 : last[0]!.features[n]!]),
      ),
    };
    const [s] = new TfjsScorer(artefact).score([wild]);
    expect(s!.risk).toBeGreaterThan(0.5);
    expect(s!.risk).toBeLessThanOrEqual(UNSUSTAINED_CAP + 1e-9);
    expect(s!.explanation.some((e) => /rtcp|retrans/.test(e.feature))).toBe(true);
  }, 60_000);

  it('lets corroborated packet-path evidence act after packetPersistS instead of persistS', () => {
    const { vectors } = simulate(30);
    const base = vectors.filter((v) => v.observed).at(-1)!;
    // Loss, jitter and retransmissions all off the charts, window after window.
    const storm = (i: number): FeatureVector => ({
      ...base,
      windowStart: base.windowEnd + i * 10_000,
      windowEnd: base.windowEnd + (i + 1) * 10_000,
      features: Object.fromEntries(
        FEATURE_NAMES.map((n) => [n, /rtcp|retrans|loss|jitter/.test(n) ? 1e6 : base.features[n]!]),
      ),
    });
    const risks = (options: TfjsScorerOptions) => {
      const scorer = new TfjsScorer(artefact, options);
      return Array.from({ length: 5 }, (_, i) => scorer.score([storm(i)])[0]!.risk);
    };
    const shortcut = risks({});
    const without = risks({ packetPersistS: 60 });
    expect(shortcut[0]).toBeLessThanOrEqual(UNSUSTAINED_CAP + 1e-9);
    // More than 20 s after the first window: the shortcut has acted, the general persistence (60 s) not yet.
    expect(shortcut[3]).toBeGreaterThan(0.8);
    expect(without[3]).toBeLessThanOrEqual(UNSUSTAINED_CAP + 1e-9);
  }, 60_000);

  it('gives the same score when a window is scored twice (a retry), and survives older windows', () => {
    const { vectors } = simulate(30);
    const scorer = new TfjsScorer(artefact);
    const byWindow = new Map<number, FeatureVector[]>();
    for (const v of vectors) byWindow.set(v.windowEnd, [...(byWindow.get(v.windowEnd) ?? []), v]);
    const windows = [...byWindow.values()];
    for (const w of windows.slice(0, -1)) scorer.score(w);
    const lastWindow = windows[windows.length - 1]!;
    const once = scorer.score(lastWindow).map((s) => s.risk);
    const twice = scorer.score(lastWindow).map((s) => s.risk);
    expect(twice).toEqual(once);
    const old = scorer.score(windows[10]!);
    for (const s of old) expect(s.risk >= 0 && s.risk <= 1).toBe(true);
  }, 60_000);

  it('flags a slow memory leak many minutes before the OOM', () => {
    const onsetAt = START + 30 * MIN;
    const crashAt = onsetAt + 90 * MIN;
    const run = simulate(125, { nodeId: 'ast3', mode: 'memory_leak', onsetAt, crashAt, magnitude: 1 });
    const drainAt = firstDrain(scoreRun(artefact, run.vectors), 'ast3', onsetAt, crashAt);
    expect(drainAt).not.toBeNull();
    expect(crashAt - drainAt!).toBeGreaterThan(10 * MIN);
  }, 120_000);

  it('flags a database degradation at least 30 s before the failure', () => {
    const onsetAt = START + 30 * MIN;
    const crashAt = onsetAt + 5 * MIN;
    const run = simulate(40, { nodeId: 'ast1', mode: 'db_degradation', onsetAt, crashAt, magnitude: 1 });
    const drainAt = firstDrain(scoreRun(artefact, run.vectors), 'ast1', onsetAt, crashAt);
    expect(drainAt).not.toBeNull();
    expect(crashAt - drainAt!).toBeGreaterThanOrEqual(30_000);
  }, 60_000);
});
