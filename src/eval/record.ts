/**
 * Records an unperturbed simulator run (no Foresight acting on it) as telemetry plus incident labels: the raw material
 * of `foresight replay` and of the evaluation.
 */
import { writeFile } from 'node:fs/promises';
import { ForesightError } from '../errors.js';
import { FAILURE_MODES, type FailureMode, type TelemetrySample } from '../messages.js';
import { SimulatedCluster } from '../sim/cluster.js';
import type { IncidentPlan, SimulatedClusterInput } from '../sim/options.js';
import type { EvalLabel } from './labels.js';
import { TelemetryWriter } from './telemetry-io.js';

export interface RecordOptions {
  seed: number;
  durationMs: number;
  nodes: number;
  /** Random incidents per node per day (simulator default when absent). */
  incidentsPerNodeDay?: number;
  /** Scripted incidents on top of the random ones. */
  incidents?: IncidentPlan[];
  startAt?: number;
  /** Further simulator overrides (magnitudes, disturbances...). */
  simulator?: SimulatedClusterInput;
  out: string;
  labels?: string;
  onProgress?: (doneMs: number, totalMs: number) => void;
}

export interface RecordResult {
  samples: number;
  labels: EvalLabel[];
  startAt: number;
  endAt: number;
}

/** Simulated time per step; small enough to keep memory flat, large enough to write efficiently. */
const STEP_MS = 60_000;

export function createRecordingCluster(o: Omit<RecordOptions, 'out' | 'labels' | 'onProgress' | 'durationMs'>) {
  return new SimulatedCluster({
    ...o.simulator,
    seed: o.seed,
    nodes: o.nodes,
    ...(o.startAt !== undefined ? { startAt: o.startAt } : {}),
    incidents: o.incidents ?? [],
    randomIncidents: {
      ...o.simulator?.randomIncidents,
      ...(o.incidentsPerNodeDay !== undefined ? { perNodeDay: o.incidentsPerNodeDay } : {}),
    },
  });
}

/**
 * The cluster's labels with, for failures that kept the node up, when it stopped failing calls (`endedAt`; null while
 * it still fails). A drain in that period is a late drain of the incident, not a false one.
 */
export function recordedLabels(cluster: SimulatedCluster): EvalLabel[] {
  return cluster.stats().incidents.map((i): EvalLabel => {
    const label: EvalLabel = { ...i.label };
    if (i.outcome === 'failed') label.endedAt = i.endedAt;
    return label;
  });
}

/** Labels of incidents whose onset lies within the recording (crashes after its end are kept: replay censors them). */
export async function recordSimulation(o: RecordOptions): Promise<RecordResult> {
  const cluster = createRecordingCluster(o);
  const startAt = cluster.now();
  const endAt = startAt + o.durationMs;
  const writer = new TelemetryWriter(o.out);
  const buffer: TelemetrySample[] = [];
  try {
    while (cluster.now() < endAt) {
      buffer.length = 0;
      cluster.step(Math.min(endAt, cluster.now() + STEP_MS), buffer);
      await writer.write(buffer);
      o.onProgress?.(cluster.now() - startAt, o.durationMs);
    }
  } finally {
    await writer.close();
  }
  const labels = recordedLabels(cluster);
  if (o.labels) await writeFile(o.labels, `${JSON.stringify(labels, null, 1)}\n`);
  return { samples: writer.samples, labels, startAt, endAt };
}

/**
 * `MODE:NODE:ONSET[:CRASH]` with offsets from the start as durations parsed by `parseOffset`, e.g.
 * `taskprocessor_backlog:ast2:20m:35m`. The crash is drawn from the mode's range when omitted.
 */
export function parseIncidentSpec(spec: string, startAt: number, parseOffset: (s: string) => number): IncidentPlan {
  const [mode, nodeId, onset, crash, extra] = spec.split(':');
  if (!mode || !nodeId || !onset || extra !== undefined || !FAILURE_MODES.includes(mode as FailureMode)) {
    throw new ForesightError(
      'FORESIGHT_ERR_BAD_REQUEST',
      `incident "${spec}": want MODE:NODE:ONSET[:CRASH], MODE one of ${FAILURE_MODES.join(', ')}`,
    );
  }
  const plan: IncidentPlan = { nodeId, mode: mode as FailureMode, onsetAt: startAt + parseOffset(onset) };
  if (crash) plan.crashAt = startAt + parseOffset(crash);
  return plan;
}
