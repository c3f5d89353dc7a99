/** `foresight simulate`: records an unperturbed simulator run as telemetry (JSONL, .gz to gzip) and incident labels. */
import cliProgress from 'cli-progress';
import { parseIncidentSpec, recordSimulation } from '../eval/record.js';
import { DEFAULT_START_AT } from '../sim/options.js';
import { parseDuration } from './duration.js';

export interface SimulateOptions {
  seed?: number;
  /** ms */
  duration?: number;
  nodes?: number;
  out: string;
  labels?: string;
  incidentsPerNodeDay?: number;
  /** Scripted incidents, `MODE:NODE:ONSET[:CRASH]` with offsets from the start (e.g. `memory_leak:ast2:2h:3h`). */
  incident?: string[];
  /** Start of the recording, ISO 8601 (default 2024-01-01T00:00:00Z). */
  start?: string;
}

export async function runSimulate(opts: SimulateOptions): Promise<void> {
  const startAt = opts.start ? Date.parse(opts.start) : DEFAULT_START_AT;
  if (!Number.isFinite(startAt)) throw new Error(`--start "${opts.start}" is not an ISO 8601 time`);
  const durationMs = opts.duration ?? 86_400_000;
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: 'simulate [{bar}] {percentage}% | {value}/{total} simulated min',
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(Math.ceil(durationMs / 60_000), 0);
  const result = await recordSimulation({
    seed: opts.seed ?? 1,
    durationMs,
    nodes: opts.nodes ?? 4,
    ...(opts.incidentsPerNodeDay !== undefined ? { incidentsPerNodeDay: opts.incidentsPerNodeDay } : {}),
    incidents: (opts.incident ?? []).map((s) => parseIncidentSpec(s, startAt, parseDuration)),
    startAt,
    out: opts.out,
    ...(opts.labels ? { labels: opts.labels } : {}),
    onProgress: (done) => bar?.update(Math.floor(done / 60_000)),
  });
  bar?.stop();
  const predictable = result.labels.filter((l) => l.predictable).length;
  console.error(
    `simulate: ${result.samples} samples to ${opts.out}; ${result.labels.length} incidents ` +
      `(${predictable} with a precursor, ${result.labels.length - predictable} sudden)` +
      (opts.labels ? ` to ${opts.labels}` : ''),
  );
}
