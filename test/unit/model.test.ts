import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ForesightError } from '../../src/errors.js';
import { FEATURE_NAMES } from '../../src/features/names.js';
import { silentLogger } from '../../src/log.js';
import type { FeatureVector } from '../../src/messages.js';
import {
  loadModelArtefact,
  type ModelArtefact,
  sha256Hex,
  validateManifest,
} from '../../src/models/artefact/format.js';
import { buildCalibration, riskFromError } from '../../src/models/autoencoder/calibration.js';
import { buildAutoencoder, trainAutoencoder } from '../../src/models/autoencoder/network.js';
import { loadTf } from '../../src/models/autoencoder/tf-backend.js';
import { createScorerWithInfo } from '../../src/models/scorers/factory.js';
import { enforceScoreContract } from '../../src/models/scorers/scorer.js';
import { TfjsScorer } from '../../src/models/scorers/tfjs-scorer.js';
import { collectFromSimulator } from '../../src/models/training/drills.js';
import { spansFromVerdicts } from '../../src/models/training/labels.js';
import { WindowCollector } from '../../src/models/training/windows.js';
import { SimulatedCluster } from '../../src/sim/index.js';

const DEFAULT_MODEL = path.join(import.meta.dirname, '../../models/default');

describe('TensorFlow.js backend', () => {
  it('loads wasm (or tfjs-node when installed), not the cpu fallback', async () => {
    const { backend, tf } = await loadTf();
    expect(['wasm', 'tensorflow']).toContain(backend);
    expect(tf.getBackend()).toBe(backend);
  });

  it('loads the SIMD build of the wasm backend (Node 20 supports it; the plain build is several times slower)', async () => {
    const { backend, simd } = await loadTf();
    if (backend === 'wasm') expect(simd).toBe(true);
    else expect(backend).toBe('tensorflow');
  });

  it('trains a tiny model reproducibly: same seeds, same weights', async () => {
    const { tf } = await loadTf();
    const cols = 6;
    const rows = new Float32Array(200 * cols).map((_, i) => Math.sin(i * 0.37) + ((i * 7919) % 13) / 13);
    const digest = async (initSeed: number, shuffleSeed: number) => {
      const model = buildAutoencoder(tf, { inputSize: cols, hidden: [4, 2], seed: initSeed });
      await trainAutoencoder(tf, model, rows, cols, { epochs: 2, batchSize: 32, learningRate: 0.01, shuffleSeed });
      const bytes = model.getWeights().flatMap((w) => Array.from(w.dataSync()));
      model.dispose();
      return sha256Hex(new Uint8Array(Float32Array.from(bytes).buffer));
    };
    const a = await digest(1, 2);
    expect(await digest(1, 2)).toBe(a);
    expect(await digest(3, 2)).not.toBe(a);
    expect(await digest(1, 4)).not.toBe(a);
  });
});

describe('calibration', () => {
  it('maps errors monotonically into [0, 1], 0.5 at the threshold', () => {
    const healthy = Array.from({ length: 1000 }, (_, i) => 0.05 + (i % 100) / 1000);
    const cal = buildCalibration(healthy);
    expect(riskFromError(cal.threshold, cal)).toBeCloseTo(0.5, 6);
    expect(riskFromError(0.1, cal)).toBeLessThan(0.05);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        (a, b) => {
          const [lo, hi] = a < b ? [a, b] : [b, a];
          const rl = riskFromError(lo, cal);
          const rh = riskFromError(hi, cal);
          expect(rl >= 0 && rh <= 1 && rl <= rh).toBe(true);
        },
      ),
    );
  });

  it('raises the threshold above windows operators marked as false drains', () => {
    const healthy = Array.from({ length: 1000 }, (_, i) => 0.05 + (i % 100) / 1000);
    const plain = buildCalibration(healthy);
    const withFalse = buildCalibration(healthy, { falseDrainErrors: [5, 6, 7] });
    expect(withFalse.threshold).toBeGreaterThan(7);
    expect(riskFromError(6, withFalse)).toBeLessThan(0.5);
    expect(riskFromError(6, plain)).toBeGreaterThan(0.5);
  });
});

describe('verdicts as labels', () => {
  it('places confirmed and false drains at the drain time of their decision', () => {
    const base = { seq: 0, actor: 'ops', reason: '', dryRun: false };
    const spans = spansFromVerdicts([
      { ...base, ts: 1000, nodeId: 'ast1', kind: 'DrainStarting', decisionId: 'd1', details: {} },
      { ...base, ts: 5000, nodeId: 'ast2', kind: 'DrainStarting', decisionId: 'd2', details: {} },
      { ...base, ts: 9000, nodeId: 'ast1', kind: 'Verdict', decisionId: 'd1', details: { confirmed: true } },
      { ...base, ts: 9500, nodeId: 'ast2', kind: 'Verdict', decisionId: 'd2', details: { confirmed: false } },
      { ...base, ts: 9600, nodeId: 'ast3', kind: 'Verdict', decisionId: 'd3', details: {} },
    ]);
    expect(spans.confirmed).toEqual([{ nodeId: 'ast1', from: 1000 - 3_600_000, to: 1000 + 900_000 }]);
    expect(spans.false).toEqual([{ nodeId: 'ast2', from: 5000 - 600_000, to: 5000 }]);
    expect(spans.unplaced).toBe(1);
  });
});

describe('model artefact', () => {
  it('ships a default model that loads and matches FEATURE_NAMES', async () => {
    const a = await loadModelArtefact(DEFAULT_MODEL);
    expect(a.manifest.features).toEqual([...FEATURE_NAMES]);
    expect(a.manifest.training.dataDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a.manifest.evaluation).not.toBeNull();
  });

  it('loads the shipped model for model.kind tfjs from any working directory, and scores with it', async () => {
    const config = loadConfig(undefined, { FORESIGHT_MODEL__KIND: 'tfjs' });
    const elsewhere = process.cwd();
    process.chdir(tmpdir());
    try {
      const { scorer, info } = await createScorerWithInfo(config, silentLogger());
      expect(info.kind).toBe('tfjs');
      expect(info.features).toBe(FEATURE_NAMES.length);
      const sim = new SimulatedCluster({ seed: 4, nodes: 3 });
      const c = new WindowCollector({
        keepVectors: true,
        extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) },
      });
      collectFromSimulator(sim, 5 * 60_000, c);
      const scores = await scorer.score(c.vectors.slice(-3));
      expect(scores.map((s) => s.scorer)).toEqual(Array(3).fill(info.version));
    } finally {
      process.chdir(elsewhere);
    }
  });

  it('warns a sidecar that the shipped model was trained on simulated telemetry, and the demo does not', async () => {
    const warnings = async (mode: 'sidecar' | 'embedded') => {
      const lines: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
      const config = { ...loadConfig(undefined, { FORESIGHT_MODEL__KIND: 'tfjs' }), mode };
      await createScorerWithInfo(config, logger);
      return lines.map((l) => JSON.parse(l) as { msg: string; source?: string });
    };
    const sidecar = await warnings('sidecar');
    expect(sidecar).toHaveLength(1);
    expect(sidecar[0]!.msg).toMatch(/trained on simulated telemetry.*foresight train/);
    expect(sidecar[0]!.source).toMatch(/^simulator/);
    expect(await warnings('embedded')).toEqual([]);
  });

  it('refuses a model trained on other feature windows than the pipeline uses, naming both', async () => {
    const config = loadConfig(undefined, { FORESIGHT_MODEL__KIND: 'tfjs', FORESIGHT_FEATURES__WINDOW_MS: '1000' });
    const err = await createScorerWithInfo(config, silentLogger()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_MODEL');
    expect((err as Error).message).toMatch(/trained on 10 s feature windows, but features.windowMs is 1000/);
    const shipped = await loadModelArtefact(DEFAULT_MODEL);
    expect(shipped.manifest.windowMs).toBe(10_000);
  });

  it.each(['stat', 'tfjs'])(
    "%s: the config's resource limits replace the simulator's in the exhaustion forecasts",
    async (kind) => {
      const sim = new SimulatedCluster({ seed: 4, nodes: 3 });
      const c = new WindowCollector({
        keepVectors: true,
        extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) },
      });
      collectFromSimulator(sim, 15 * 60_000, c);
      const healthy = c.vectors.filter((v) => v.observed).at(-1)!;
      // A host at 2100 MiB used and rising 50 MiB/min faster than its peers: past the simulator's 2048 MiB limit.
      const growing: FeatureVector = {
        ...healthy,
        features: {
          ...healthy.features,
          'host.memory_rss_mb.last': 2100,
          'slope.memory_rss_mb_per_min': 50,
          'z.peer.memory_slope': 6,
          'z.self.memory_slope': 6,
        },
      };
      const score = async (env: Record<string, string>) => {
        const config = loadConfig(undefined, { FORESIGHT_MODEL__KIND: kind, ...env });
        const { scorer } = await createScorerWithInfo(config, silentLogger());
        return (await scorer.score([growing]))[0]!;
      };
      const simulatorLimits = await score({});
      expect(simulatorLimits.timeToFailureS).toBe(0);
      expect(simulatorLimits.explanation[0]?.feature).toBe('forecast.memory_s');
      // 24 GB of RAM: (24000 - 2100) / 50 min is beyond the forecast horizon, so no forecast at all.
      const hostLimits = await score({ FORESIGHT_MODEL__LIMITS__MEMORY_LIMIT_MB: '24000' });
      expect(hostLimits.timeToFailureS).toBeNull();
      expect(hostLimits.explanation.map((e) => e.feature)).not.toContain('forecast.memory_s');
      expect(hostLimits.risk).toBeLessThan(simulatorLimits.risk);
    },
  );

  it("a sidecar warns once per node whose memory in use is above the forecasts' limit, naming the setting", async () => {
    const vector = (nodeId: string, usedMb: number): FeatureVector => ({
      nodeId,
      setId: 1,
      windowStart: 0,
      windowEnd: 10_000,
      sampleCount: 1,
      observed: true,

      features: { 'node.up.last': 1, 'host.memory_rss_mb.last': usedMb },

      evidence: { calls: null, upReported: null, probe: null },
    });
    const warnings = async (mode: 'sidecar' | 'embedded', env: Record<string, string> = {}) => {
      const lines: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
      const config = { ...loadConfig(undefined, env), mode };
      const { scorer } = await createScorerWithInfo(config, logger);
      for (let i = 0; i < 3; i++)
        await scorer.score([vector('ast1', 3100), vector('ast2', 1500), vector('ast3', 2500)]);
      return lines.map((l) => JSON.parse(l) as { msg: string; nodeId: string });
    };
    const out = await warnings('sidecar');
    expect(out.map((w) => w.nodeId)).toEqual(['ast1', 'ast3']);
    expect(out[0]!.msg).toMatch(/3100 MiB.*above the 2048 MiB.*simulator default.*model\.limits\.memoryLimitMb/);
    expect(await warnings('sidecar', { FORESIGHT_MODEL__LIMITS__MEMORY_LIMIT_MB: '24000' })).toEqual([]);
    expect(await warnings('embedded')).toEqual([]);
  });

  it('refuses a manifest whose feature list differs, naming the difference', async () => {
    const manifest = JSON.parse(readFileSync(path.join(DEFAULT_MODEL, 'manifest.json'), 'utf8'));
    const swapped = [...manifest.features];
    [swapped[0], swapped[1]] = [swapped[1], swapped[0]];
    expect(() => validateManifest('m', { ...manifest, features: swapped })).toThrow(/order differs at position 0/);
    const renamed = [...manifest.features.slice(0, -1), 'bogus.feature'];
    const dir = mkdtempSync(path.join(tmpdir(), 'model-'));
    cpSync(DEFAULT_MODEL, dir, { recursive: true });
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, features: renamed }));
    const err = await loadModelArtefact(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_MODEL');
    expect((err as Error).message).toContain('peers.observed');
    expect((err as Error).message).toContain('bogus.feature');
  });

  it('refuses weights that do not match their digest', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'model-'));
    cpSync(DEFAULT_MODEL, dir, { recursive: true });
    const w = readFileSync(path.join(dir, 'weights.bin'));
    w[0] = (w[0]! + 1) % 256;
    writeFileSync(path.join(dir, 'weights.bin'), w);
    await expect(loadModelArtefact(dir)).rejects.toThrow(/digest/);
  });
});

describe('TfjsScorer', () => {
  let artefact: ModelArtefact;
  let healthy: FeatureVector[];

  beforeAll(async () => {
    artefact = await loadModelArtefact(DEFAULT_MODEL);
    const sim = new SimulatedCluster({
      seed: 4242,
      nodes: 4,
      randomIncidents: { perNodeDay: 0 },
      disturbances: { dbBlipsPerDay: 0, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 },
    });
    const c = new WindowCollector({
      keepVectors: true,
      extractor: { nodes: sim.nodeIds.map((nodeId) => ({ nodeId, setId: 1 })) },
    });
    collectFromSimulator(sim, 40 * 60_000, c);
    healthy = c.vectors.filter((v) => v.observed).slice(-80);
  }, 60_000);

  it('keeps risk in [0, 1] on any finite vector (contract enforced)', () => {
    const scorer = enforceScoreContract(new TfjsScorer(artefact));
    const value = fc.oneof(fc.double({ min: -1e12, max: 1e12, noNaN: true }), fc.constantFrom(0, 1, -1, 1e300, -1e300));
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.array(value, { minLength: FEATURE_NAMES.length, maxLength: FEATURE_NAMES.length }), fc.boolean()),
          { minLength: 1, maxLength: 8 },
        ),
        (rows) => {
          const vectors: FeatureVector[] = rows.map(([vals, observed], i) => ({
            nodeId: `n${i}`,
            setId: 1,
            windowStart: 0,
            windowEnd: 10_000,
            sampleCount: observed ? 10 : 0,
            observed,
            features: Object.fromEntries(FEATURE_NAMES.map((n, j) => [n, vals[j]!])),
            evidence: { calls: null, upReported: null, probe: null },
          }));
          const scores = scorer.score(vectors);
          for (const s of scores) expect(s.risk >= 0 && s.risk <= 1).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('scores an anomalous window above healthy ones and explains it', () => {
    const scorer = new TfjsScorer(artefact);
    const healthyRisk = Math.max(...scorer.score(healthy).map((s) => s.risk));
    const base = healthy[healthy.length - 1]!;
    const sick: FeatureVector = {
      ...base,
      features: {
        ...base.features,
        'db.query_ms.p95': 900,
        'db.query_ms.p50': 600,
        'db.query_ms.max': 1500,
        'db.probe_failures.rate': 2,
        'z.self.db_query_p95': 40,
        'z.peer.db_query_p95': 40,
        'sip.invite_setup_ms.p95': 2500,
        'z.self.invite_setup_p95': 30,
        'z.peer.invite_setup_p95': 30,
        'sip.retransmissions.rate': 20,
        'z.self.retrans_rate': 30,
        'z.peer.retrans_rate': 30,
        'calls.fail_ratio': 0.5,
      },
    };
    const [score] = scorer.score([sick]);
    expect(healthyRisk).toBeLessThan(0.5);
    expect(score!.risk).toBeGreaterThan(0.4);
    expect(score!.risk).toBeGreaterThan(healthyRisk + 0.2);
    expect(score!.explanation.length).toBeGreaterThan(0);
    expect(
      score!.explanation
        .map((e) => e.feature)
        .some((f) => f.includes('db_query') || f.includes('db.query') || f.includes('invite')),
    ).toBe(true);
  });

  it('claims no risk for a node that reports itself down, however odd its window', () => {
    const scorer = new TfjsScorer(artefact);
    const base = healthy[healthy.length - 1]!;
    const features = Object.fromEntries(Object.keys(base.features).map((k) => [k, 0]));
    const wild = Object.fromEntries(Object.keys(base.features).map((k) => [k, 1e6]));
    const [down] = scorer.score([{ ...base, features: { ...features, 'node.up.last': 0 } }]);
    expect(down).toMatchObject({ risk: 0, up: false, observed: true, explanation: [] });
    // A wild window from a node that is up does score high: the 0 above is the down rule, not a blind model.
    const [odd] = new TfjsScorer(artefact).score([{ ...base, features: { ...wild, 'node.up.last': 1 } }]);
    expect(odd!.risk).toBeGreaterThan(0.5);
  });

  it('gives an unobserved node no risk', () => {
    const scorer = new TfjsScorer(artefact);
    const [s] = scorer.score([{ ...healthy[0]!, observed: false }]);
    expect(s).toMatchObject({ risk: 0, observed: false, explanation: [] });
  });
});
