import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTrain } from '../../src/cli/train.js';
import { FEATURE_NAMES } from '../../src/features/names.js';
import { silentLogger } from '../../src/log.js';
import { loadModelArtefact } from '../../src/models/artefact/format.js';
import { SimulatedCluster } from '../../src/sim/index.js';

describe('foresight train', () => {
  let dir: string;
  let jsonl: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'train-cli-'));
    // A small recorded run: 3 nodes, 25 simulated minutes, reporting every 5 s.
    const sim = new SimulatedCluster({ seed: 77, nodes: 3, tickMs: 5000, randomIncidents: { perNodeDay: 0 } });
    const samples = sim.step(sim.now() + 25 * 60_000);
    jsonl = `${samples.map((s) => JSON.stringify(s)).join('\n')}\n`;
    writeFileSync(path.join(dir, 'telemetry.jsonl'), jsonl);
    writeFileSync(path.join(dir, 'telemetry.jsonl.gz'), gzipSync(jsonl));
    const csv = ['ts,nodeId,metric,value', ...samples.map((s) => `${s.ts},${s.nodeId},${s.metric},${s.value}`)];
    writeFileSync(path.join(dir, 'telemetry.csv'), `${csv.join('\n')}\n`);
  });

  it('trains on a JSONL recording and writes a loadable, reproducible artefact', async () => {
    const common = { epochs: 2, quiet: true, logger: silentLogger() };
    const a = await runTrain({ ...common, input: [path.join(dir, 'telemetry.jsonl')], out: path.join(dir, 'm1') });
    expect(a.samples).toBe(jsonl.trimEnd().split('\n').length);
    expect(a.healthyWindows).toBeGreaterThan(100);
    const loaded = await loadModelArtefact(path.join(dir, 'm1'));
    expect(loaded.manifest.features).toEqual([...FEATURE_NAMES]);
    expect(loaded.manifest.training.dataDigest).toBe(a.dataDigest);
    // Same data, same seeds: the same weights, whether the data came gzipped or as CSV.
    const b = await runTrain({ ...common, input: [path.join(dir, 'telemetry.jsonl.gz')], out: path.join(dir, 'm2') });
    expect(b.weightsDigest).toBe(a.weightsDigest);
    const c = await runTrain({ ...common, input: [path.join(dir, 'telemetry.csv')], out: path.join(dir, 'm3') });
    expect(c.weightsDigest).toBe(a.weightsDigest);
    expect(c.dataDigest).not.toBe(a.dataDigest);
  }, 120_000);

  it('streams files given per node and out of order, training the model an in-memory sort of them gives', async () => {
    const samples = jsonl
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { ts: number; nodeId: string });
    // One file per node, each with its samples shuffled within blocks of 20 s of event time (a collector's disorder).
    const nodes = [...new Set(samples.map((s) => s.nodeId))].sort().reverse();
    const files = nodes.map((node, i) => {
      const mine = samples.filter((s) => s.nodeId === node);
      const shuffled = mine
        .map((s, k) => ({ s, key: Math.floor(s.ts / 20_000) * 1e6 + ((k * 7919) % 1000) }))
        .sort((a, b) => a.key - b.key)
        .map((x) => x.s);
      const file = path.join(dir, `node-${i}.jsonl`);
      writeFileSync(file, `${shuffled.map((x) => JSON.stringify(x)).join('\n')}\n`);
      return { file, lines: shuffled };
    });
    // The reference: everything loaded, then stable-sorted by time (what train did before it streamed).
    const all = files.flatMap((f) => f.lines).sort((a, b) => a.ts - b.ts);
    const sorted = path.join(dir, 'sorted.jsonl');
    writeFileSync(sorted, `${all.map((x) => JSON.stringify(x)).join('\n')}\n`);
    const common = { epochs: 2, quiet: true, logger: silentLogger() };
    const ref = await runTrain({ ...common, input: [sorted], out: path.join(dir, 'ref') });
    const streamed = await runTrain({ ...common, input: files.map((f) => f.file), out: path.join(dir, 'stream') });
    expect(streamed.samples).toBe(ref.samples);
    expect(streamed.rejected).toBe(ref.rejected);
    expect(streamed.healthyWindows).toBe(ref.healthyWindows);
    expect(streamed.weightsDigest).toBe(ref.weightsDigest);
    // A file whose first two minutes were appended at its end: 23 minutes out of order, beyond the default bound.
    // They are not lost: fed where they are, the extractor counts them as rejected (late). A bound that covers the
    // disorder puts them right again.
    const cut = all.findIndex((x) => x.ts >= all[0]!.ts + 120_000);
    const moved = path.join(dir, 'moved.jsonl');
    writeFileSync(moved, `${[...all.slice(cut), ...all.slice(0, cut)].map((x) => JSON.stringify(x)).join('\n')}\n`);
    const late = await runTrain({ ...common, input: [moved], out: path.join(dir, 'late') });
    expect(late.samples).toBe(ref.samples);
    expect(late.rejected).toBeGreaterThanOrEqual(ref.rejected + cut);
    const wide = await runTrain({ ...common, input: [moved], out: path.join(dir, 'wide'), maxDisorderMs: 30 * 60_000 });
    expect(wide.rejected).toBe(ref.rejected);
    expect(wide.weightsDigest).toBe(ref.weightsDigest);
  }, 180_000);

  it('excludes labelled incidents and confirmed drains from healthy windows', async () => {
    const start = Number(JSON.parse(jsonl.slice(0, jsonl.indexOf('\n'))).ts);
    writeFileSync(
      path.join(dir, 'labels.json'),
      JSON.stringify([
        {
          nodeId: 'ast1',
          mode: 'memory_leak',
          predictable: true,
          onsetAt: start + 5 * 60_000,
          crashAt: start + 8 * 60_000,
        },
      ]),
    );
    const audit = [
      {
        seq: 1,
        ts: start + 20 * 60_000,
        nodeId: 'ast2',
        kind: 'DrainStarting',
        actor: 'auto',
        reason: '',
        decisionId: 'd1',
        dryRun: false,
        details: {},
      },
      {
        seq: 2,
        ts: start + 21 * 60_000,
        nodeId: 'ast2',
        kind: 'Verdict',
        actor: 'ops',
        reason: '',
        decisionId: 'd1',
        dryRun: false,
        details: { confirmed: true },
      },
    ];
    writeFileSync(path.join(dir, 'audit.jsonl'), audit.map((r) => JSON.stringify(r)).join('\n'));
    const plain = await runTrain({
      epochs: 1,
      quiet: true,
      input: [path.join(dir, 'telemetry.jsonl')],
      out: path.join(dir, 'p'),
    });
    const labelled = await runTrain({
      epochs: 1,
      quiet: true,
      input: [path.join(dir, 'telemetry.jsonl')],
      labels: path.join(dir, 'labels.json'),
      verdicts: path.join(dir, 'audit.jsonl'),
      out: path.join(dir, 'l'),
    });
    // ast1: 3 min incident + 15 min recovery = 108 windows; ast2: from 60 min before the drain to the end = 30 windows.
    expect(labelled.excludedWindows - plain.excludedWindows).toBeGreaterThanOrEqual(108 + 20);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'l', 'manifest.json'), 'utf8'));
    expect(manifest.training.verdicts).toEqual({ confirmed: 1, false: 0 });
    expect(manifest.evaluation.predictableIncidents).toBe(1);
  }, 120_000);

  it("trains on the feature window asked for, or the config's, and records it in the manifest", async () => {
    const common = { epochs: 1, quiet: true, logger: silentLogger(), input: [path.join(dir, 'telemetry.jsonl')] };
    const five = await runTrain({ ...common, windowMs: 5000, out: path.join(dir, 'w5') });
    expect((await loadModelArtefact(path.join(dir, 'w5'))).manifest.windowMs).toBe(5000);
    const ten = await runTrain({ ...common, out: path.join(dir, 'w10') });
    expect((await loadModelArtefact(path.join(dir, 'w10'))).manifest.windowMs).toBe(10_000);
    // Half the window, about twice the windows from the same recording.
    expect(five.healthyWindows / ten.healthyWindows).toBeGreaterThan(1.8);
    const config = path.join(dir, 'w2.json');
    writeFileSync(config, JSON.stringify({ features: { windowMs: 2000 } }));
    await runTrain({ ...common, config, out: path.join(dir, 'w2') });
    expect((await loadModelArtefact(path.join(dir, 'w2'))).manifest.windowMs).toBe(2000);
    await expect(runTrain({ ...common, windowMs: 10.5, out: path.join(dir, 'x') })).rejects.toThrow(/--window-ms/);
  }, 120_000);

  it('rejects unusable input with a clear error', async () => {
    writeFileSync(path.join(dir, 'bad.csv'), 'a,b\n1,2\n');
    await expect(
      runTrain({ quiet: true, input: [path.join(dir, 'bad.csv')], out: path.join(dir, 'x') }),
    ).rejects.toThrow(/ts,nodeId,metric,value/);
    await expect(
      runTrain({ quiet: true, input: [path.join(dir, 'missing.jsonl')], out: path.join(dir, 'x') }),
    ).rejects.toThrow(/cannot read/);
    await expect(runTrain({ quiet: true, input: [], out: path.join(dir, 'x') })).rejects.toThrow(
      /--input FILE\.\.\. or --kafka/,
    );
    await expect(
      runTrain({ quiet: true, kafka: 'telemetry@0..1', input: [], out: path.join(dir, 'x') }),
    ).rejects.toThrow(/<prefix>\.telemetry/);
    expect(existsSync(path.join(dir, 'x'))).toBe(false);
  });
});
