import { InfluxExporter } from '../src/exporters/influx.js';
import type { NodeScore } from '../src/messages.js';

/**
 * InfluxDB exporter figures:
 * - influx.export_ns_per_point: what exportScores costs the pipeline (encode + enqueue), target down,
 *   over 200k points, so half of them also push the oldest out of a full default-sized buffer.
 * - influx.write_points_per_s: end to end into victoria-metrics on 127.0.0.1:8428, when it runs
 *   (scripts/services/victoria-metrics.sh start); left out otherwise.
 */
function score(i: number, t0: number): NodeScore {
  return {
    nodeId: `bench${i % 100}`,
    setId: 1,
    ts: t0 + i,
    risk: (i % 1000) / 1000,
    timeToFailureS: i % 3 === 0 ? null : 600,
    explanation: [],
    scorer: 'stat-v1',
    observed: true,
    activeCalls: i % 50,
    activeCallsSource: 'ami',
    evidence: { calls: { count: i % 50, source: 'ami' }, upReported: true, probe: null },
    up: true,
  };
}

async function vmUp(): Promise<boolean> {
  try {
    return (await fetch('http://127.0.0.1:8428/health', { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

export async function run(): Promise<{ name: string; value: number; unit: string }[]> {
  const figures: { name: string; value: number; unit: string }[] = [];
  const t0 = Date.now() - 3_600_000;

  const dead = new InfluxExporter({
    url: 'http://127.0.0.1:9',
    org: 'bench',
    bucket: 'bench',
    // The config default: after 100k lines the buffer is full and each export also drops the oldest line.
    maxBufferLines: 100_000,
    flushIntervalMs: 60_000,
    minRetryDelayMs: 60_000,
  });
  const n = 200_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) dead.exportScores(score(i, t0));
  const ns = Number(process.hrtime.bigint() - start);
  figures.push({ name: 'influx.export_ns_per_point', value: Math.round(ns / n), unit: 'ns' });
  await dead.close(0);

  if (await vmUp()) {
    const live = new InfluxExporter({
      url: 'http://127.0.0.1:8428',
      org: 'bench',
      bucket: 'bench',
      maxBufferLines: 200_000,
      flushIntervalMs: 50,
    });
    const total = 100_000;
    const began = performance.now();
    for (let i = 0; i < total; i++) live.exportScores(score(i, t0));
    const deadline = began + 30_000;
    while (live.stats().written < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const written = live.stats().written;
    figures.push({
      name: 'influx.write_points_per_s',
      value: Math.round(written / ((performance.now() - began) / 1000)),
      unit: 'points/s',
    });
    await live.close(1000);
  }
  return figures;
}
