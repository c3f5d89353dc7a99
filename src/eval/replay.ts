/**
 * Replay: recorded telemetry → the live feature extractor → the scorer (and the fixed-threshold baseline) on a virtual
 * clock at full speed → the simulated action layer (src/eval/policy.ts) → scored against the labels.
 */

import type { ForesightConfig } from '../config/schema.js';
import { DEFAULT_GUARDRAILS } from '../core/guardrails.js';
import type { TelemetrySample } from '../messages.js';
import { type AnyScorer, type ScoredSeries, SeriesCollector } from './collect.js';
import { FixedThresholdScorer } from './fixed-threshold.js';
import { type EvalLabel, readLabels } from './labels.js';
import {
  buildReport,
  DEFAULT_SWEEP,
  downsampleRisk,
  type EvaluationSettings,
  evaluateSeries,
  type ReplayReport,
} from './report.js';
import { newReadStats, type ReadStats, readTelemetry } from './telemetry-io.js';

export interface PipelineSettings {
  windowMs: number;
  allowedLatenessMs: number;
}

/** Evaluation settings from the config's guardrails and timeouts, as the live engine would use them. */
export function settingsFromConfig(config: Readonly<ForesightConfig> | null, threshold?: number): EvaluationSettings {
  const g = config?.actions.guardrails;
  return {
    threshold: threshold ?? g?.riskThreshold ?? 0.8,
    hysteresisWindows: g?.hysteresisWindows ?? 3,
    guardrails: g
      ? {
          maxOutOfServicePerSet: g.maxOutOfService,
          maxOutOfServicePercent: g.maxOutOfServicePct,
          minActivePerSet: g.minActive,
          cooldownMs: g.cooldownMs,
          maxDrainsPerHour: g.maxDrainsPerHour,
          maintenanceWindows: [],
        }
      : { ...DEFAULT_GUARDRAILS },
    drainTimeoutMs: config?.actions.timeouts.drainTimeoutMs ?? 900_000,
    restartDownMs: 30_000,
    recoverWindows: 3,
    matchSlackMs: 0,
    postCrashGraceMs: 10 * 60_000,
    sweep: DEFAULT_SWEEP,
  };
}

export function pipelineFromConfig(config: Readonly<ForesightConfig> | null): PipelineSettings {
  return {
    windowMs: config?.features.windowMs ?? 10_000,
    allowedLatenessMs: config?.features.allowedLatenessMs ?? 2000,
  };
}

/** Scores batches of samples with the model (column 0) and the fixed-threshold baseline (column 1). */
export async function scoreSamples(
  batches: AsyncIterable<TelemetrySample[]> | Iterable<TelemetrySample[]>,
  scorer: AnyScorer,
  pipeline: PipelineSettings,
  onBatch?: (collector: SeriesCollector) => void,
): Promise<{ series: ScoredSeries; collector: SeriesCollector }> {
  const collector = new SeriesCollector([scorer, new FixedThresholdScorer()], pipeline);
  for await (const batch of batches) {
    await collector.push(batch);
    onBatch?.(collector);
  }
  return { series: await collector.finish(), collector };
}

export interface ReplayFileOptions {
  /** The telemetry file; with `batches`, only the name of where they came from. */
  input: string;
  /** Samples from elsewhere (a Kafka topic's range), in time order: replayed instead of reading `input`. */
  batches?: AsyncIterable<TelemetrySample[]> | Iterable<TelemetrySample[]>;
  labels: string | EvalLabel[];
  scorer: AnyScorer;
  settings: EvaluationSettings;
  pipeline: PipelineSettings;
  /** Keep the downsampled risk series in the report (for plots). Default true. */
  includeSeries?: boolean;
  onProgress?: (samples: number) => void;
}

export async function replayFile(options: ReplayFileOptions): Promise<ReplayReport> {
  const labels = typeof options.labels === 'string' ? await readLabels(options.labels) : options.labels;
  const read: ReadStats = newReadStats();
  const { series, collector } = await scoreSamples(
    options.batches ? counted(options.batches, read) : readTelemetry(options.input, read),
    options.scorer,
    options.pipeline,
    (c) => options.onProgress?.(c.stats.samples),
  );
  const evaluation = evaluateSeries(series, labels, options.settings);
  return buildReport({
    scorer: options.scorer.name,
    evaluation,
    settings: options.settings,
    windowMs: options.pipeline.windowMs,
    input: {
      telemetry: options.input,
      labels: typeof options.labels === 'string' ? options.labels : null,
      samples: read.samples,
      badLines: read.badLines,
      firstBadLines: read.firstBadLines,
      truncated: read.truncated,
      rejected: Object.fromEntries(Object.entries(collector.stats.rejected).filter(([, n]) => n > 0)),
    },
    series: options.includeSeries === false ? null : downsampleRisk(series, 0),
  });
}

async function* counted(
  batches: AsyncIterable<TelemetrySample[]> | Iterable<TelemetrySample[]>,
  read: ReadStats,
): AsyncGenerator<TelemetrySample[]> {
  for await (const batch of batches) {
    read.samples += batch.length;
    yield batch;
  }
}
