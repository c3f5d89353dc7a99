/**
 * Feature pipeline throughput: synthetic telemetry of a 20-node cluster (about 22 samples per node per second,
 * counters, gauges and latency measurements mixed as the simulator emits them), pre-generated, then ingested in
 * batches of 1000. Figures: ingest alone, and ingest plus the stat scorer on the vectors it emits; and what a node's
 * checkpoint of the extractor's history costs (JSON bytes, export + serialise, parse + import), per node.
 */
import { FeatureExtractor } from '../src/features/extractor.js';
import { syntheticTicks } from '../src/features/synthetic.js';
import type { TelemetrySample } from '../src/messages.js';
import { StatScorer } from '../src/models/scorers/stat-scorer.js';

interface Figure {
  name: string;
  value: number;
  unit: string;
}

const NODES = Array.from({ length: 20 }, (_, i) => `ast${i + 1}`);
const START = Date.UTC(2024, 0, 1);
const BATCH = 1000;

function generate(durationS: number): TelemetrySample[] {
  const all: TelemetrySample[] = [];
  for (const tick of syntheticTicks({
    nodes: NODES,
    startMs: START,
    durationS,
    incidents: [{ nodeId: 'ast3', kind: 'memory_leak', onsetS: 200, crashS: durationS + 60 }],
  })) {
    for (const s of tick) all.push(s);
  }
  return all;
}

function pass(samples: TelemetrySample[], withScorer: boolean): { perS: number; vectors: number } {
  const fx = new FeatureExtractor({
    nodes: NODES.map((nodeId, i) => ({ nodeId, setId: 1 + (i % 2) })),
  });
  const scorer = new StatScorer();
  let vectors = 0;
  const started = performance.now();
  for (let i = 0; i < samples.length; i += BATCH) {
    const out = fx.ingest(samples.slice(i, i + BATCH));
    vectors += out.length;
    if (withScorer && out.length > 0) scorer.score(out);
  }
  const seconds = (performance.now() - started) / 1000;
  return { perS: samples.length / seconds, vectors };
}

/** Per node: the size of its checkpoint and the time to write and to read one, after 20 min of telemetry. */
function checkpointCost(samples: TelemetrySample[]): Figure[] {
  const fx = new FeatureExtractor({ nodes: NODES.map((nodeId) => ({ nodeId })) });
  for (let i = 0; i < samples.length; i += BATCH) fx.ingest(samples.slice(i, i + BATCH));
  const rounds = 50;
  let texts: string[] = [];
  let started = performance.now();
  for (let r = 0; r < rounds; r++) texts = fx.exportStates().map((s) => JSON.stringify(s));
  const exportUs = ((performance.now() - started) * 1000) / (rounds * texts.length);
  const fresh = new FeatureExtractor({ nodes: NODES.map((nodeId) => ({ nodeId })) });
  started = performance.now();
  for (let r = 0; r < rounds; r++) for (const t of texts) fresh.importState(JSON.parse(t));
  const importUs = ((performance.now() - started) * 1000) / (rounds * texts.length);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / texts.length;
  return [
    { name: 'features.checkpoint.bytes_per_node', value: Math.round(bytes), unit: 'bytes' },
    { name: 'features.checkpoint.export_us_per_node', value: Math.round(exportUs), unit: 'µs' },
    { name: 'features.checkpoint.import_us_per_node', value: Math.round(importUs), unit: 'µs' },
  ];
}

export async function run(): Promise<Figure[]> {
  const samples = generate(1200);
  pass(samples.slice(0, 100_000), true); // warm-up for the JIT
  let ingest = 0;
  let pipeline = 0;
  let vectorsPerS = 0;
  for (let round = 0; round < 3; round++) {
    ingest = Math.max(ingest, pass(samples, false).perS);
    const withScores = pass(samples, true);
    if (withScores.perS > pipeline) {
      pipeline = withScores.perS;
      vectorsPerS = (withScores.vectors / samples.length) * withScores.perS;
    }
  }
  return [
    { name: 'features.ingest.samples_per_s', value: Math.round(ingest), unit: 'samples/s' },
    { name: 'features.ingest_and_score.samples_per_s', value: Math.round(pipeline), unit: 'samples/s' },
    { name: 'features.ingest_and_score.vectors_per_s', value: Math.round(vectorsPerS), unit: 'vectors/s' },
    { name: 'features.bench.samples', value: samples.length, unit: 'samples' },
    ...checkpointCost(samples),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await run());
}
