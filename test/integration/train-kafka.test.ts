import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { runTrain } from '../../src/cli/train.js';
import { silentLogger } from '../../src/log.js';
import type { TelemetrySample } from '../../src/messages.js';
import { loadModelArtefact } from '../../src/models/artefact/format.js';
import { SimulatedCluster } from '../../src/sim/index.js';
import { deleteTestTopics, KAFKA_BROKERS, kafkaService, uniquePrefix } from './kafka-support.js';

/**
 * `foresight train --kafka TOPIC@FROM..TO` on a real broker: the telemetry a sidecar published, read back by time
 * range, trains the same model as the same samples exported to a file.
 */
describe('foresight train --kafka', () => {
  let dir: string;
  let prefix: string;
  let samples: TelemetrySample[];
  let from: number;
  let to: number;

  beforeAll(async () => {
    await kafkaService('start');
    dir = mkdtempSync(path.join(tmpdir(), 'train-kafka-'));
    prefix = uniquePrefix('train');
    // 40 simulated minutes ending an hour ago, 3 nodes, every 5 s; the range cuts 5 minutes off each end.
    const startAt = Math.floor((Date.now() - 100 * 60_000) / 60_000) * 60_000;
    const sim = new SimulatedCluster({
      seed: 91,
      nodes: 3,
      tickMs: 5000,
      startAt,
      randomIncidents: { perNodeDay: 0 },
    });
    samples = sim.step(startAt + 40 * 60_000);
    from = startAt + 5 * 60_000;
    to = startAt + 35 * 60_000;
    const bus = new KafkajsBus({ brokers: KAFKA_BROKERS, topicPrefix: prefix, partitions: 3, logger: silentLogger() });
    try {
      await bus.ensureTopics();
      await bus.publish(
        'telemetry',
        samples.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
      );
    } finally {
      await bus.close();
    }
  }, 180_000);

  afterAll(async () => {
    await deleteTestTopics();
  });

  it('trains on exactly the samples of the range, the same model as from a file of them', async () => {
    const inRange = samples.filter((s) => s.ts >= from && s.ts < to);
    expect(inRange.length).toBeGreaterThan(1000);
    expect(inRange.length).toBeLessThan(samples.length);
    const file = path.join(dir, 'range.jsonl');
    writeFileSync(file, `${inRange.map((s) => JSON.stringify(s)).join('\n')}\n`);
    const common = { epochs: 2, quiet: true, logger: silentLogger() };

    const iso = (ms: number) => new Date(ms).toISOString();
    const fromKafka = await runTrain({
      ...common,
      kafka: `${prefix}.telemetry@${iso(from)}..${iso(to)}`,
      brokers: KAFKA_BROKERS,
      out: path.join(dir, 'kafka'),
    });
    const fromFile = await runTrain({ ...common, input: [file], out: path.join(dir, 'file') });
    expect(fromKafka.samples).toBe(inRange.length);
    expect(fromKafka.healthyWindows).toBe(fromFile.healthyWindows);
    expect(fromKafka.weightsDigest).toBe(fromFile.weightsDigest);

    const manifest = (await loadModelArtefact(path.join(dir, 'kafka'))).manifest;
    expect(manifest.training.source).toBe(`kafka ${prefix}.telemetry@${iso(from)}..${iso(to)}`);
    expect(manifest.training.dataDigest).toBe(fromKafka.dataDigest);

    // The other client, epoch-ms bounds: the same samples in the same order, so the same data digest and model.
    const again = await runTrain({
      ...common,
      kafka: `${prefix}.telemetry@${from}..${to}`,
      brokers: KAFKA_BROKERS,
      config: writeConfig('kafkajs'),
      out: path.join(dir, 'kafka2'),
    });
    expect(again.dataDigest).toBe(fromKafka.dataDigest);
    expect(again.weightsDigest).toBe(fromKafka.weightsDigest);
  }, 180_000);

  it('says so when the range holds no telemetry, or the topic is not a telemetry topic', async () => {
    const common = { epochs: 2, quiet: true, logger: silentLogger(), brokers: KAFKA_BROKERS };
    const later = `${prefix}.telemetry@${to + 3_600_000}..now`;
    await expect(runTrain({ ...common, kafka: later, out: path.join(dir, 'none') })).rejects.toThrow(
      /no telemetry samples/,
    );
    await expect(
      runTrain({ ...common, kafka: `${prefix}.scores@${from}..${to}`, out: path.join(dir, 'none') }),
    ).rejects.toThrow(/<prefix>\.telemetry/);
  }, 60_000);

  function writeConfig(client: 'kafkajs' | 'platformatic'): string {
    const file = path.join(dir, `config-${client}.json`);
    writeFileSync(file, JSON.stringify({ bus: { kind: 'kafka', kafka: { client, brokers: KAFKA_BROKERS } } }));
    return file;
  }
});
