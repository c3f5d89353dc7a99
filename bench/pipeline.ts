/**
 * pipeline.inprocess.*: simulator → in-process bus → features → scorer → action engine, on one core, as fast as the
 * CPU allows. Counts telemetry events through the whole loop (every sample is consumed by the feature stage and
 * every window reaches the action engine before the clock moves on).
 */
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { EmbeddedRuntime } from '../src/pipeline/embedded.js';
import type { Figure } from './run.js';

export async function run(): Promise<Figure[]> {
  const nodes = 20;
  const config = parseConfig({
    simulator: { nodes, seed: 11, incidentsPerNodeDay: 1 },
    actions: { guardrails: { minActive: 2 } },
  });
  const runtime = await EmbeddedRuntime.create({ config, logger: silentLogger(), storePath: ':memory:' });
  const start = runtime.cluster.now();
  // Warm-up: JIT and the feature baselines.
  await runtime.advanceTo(start + 10 * 60_000);
  const before = runtime.samplesPublished;
  const t0 = performance.now();
  let peakRss = process.memoryUsage().rss;
  const simulatedMs = 4 * 3_600_000;
  for (let t = runtime.cluster.now(); t < start + simulatedMs; t += 600_000) {
    await runtime.advanceTo(t + 600_000);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const seconds = (performance.now() - t0) / 1000;
  const events = runtime.samplesPublished - before;
  await runtime.close();
  return [
    { name: 'pipeline.inprocess.events_per_s', value: Math.round(events / seconds), unit: 'events/s' },
    { name: 'pipeline.inprocess.rss_mb', value: Math.round(peakRss / 1048576), unit: 'MiB' },
    { name: 'pipeline.inprocess.nodes', value: nodes, unit: 'nodes' },
    {
      name: 'pipeline.inprocess.speedup_vs_realtime',
      value: Math.round((simulatedMs - 600_000) / 1000 / seconds),
      unit: 'x',
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of await run()) console.log(f.name, f.value, f.unit);
}
