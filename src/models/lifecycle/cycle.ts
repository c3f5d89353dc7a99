/**
 * One retraining cycle's work, apart from when it runs: a recording of telemetry → windows through the pipeline's own
 * feature extractor → a candidate trained on the older part → both scorers judged on the most recent, held-back part.
 */
import { createHash } from 'node:crypto';
import type { FeatureExtractorOptions } from '../../features/extractor.js';
import { FEATURE_NAMES } from '../../features/names.js';
import type { Logger } from '../../log.js';
import type { FeatureVector, NodeScore, TelemetrySample } from '../../messages.js';
import { isUp, type Scorer } from '../scorers/scorer.js';
import type { TrendLimits } from '../scorers/trend.js';
import { splitHeldOut, type TrainedModel, trainModel } from '../training/fit.js';
import { bySpanNode, type NodeSpan, overlaps } from '../training/labels.js';
import { RowBuffer, WindowCollector } from '../training/windows.js';
import type { ScorerValidation } from './rule.js';

/** Every window of a recorded time range, in time order, with what identifies the data. */
export interface Recording {
  fromTs: number;
  toTs: number;
  samples: number;
  vectors: FeatureVector[];
  /** sha256 over the samples in the order read. */
  digest: string;
  source: string;
}

/** Feeds recorded telemetry (slices in time order) through the feature extractor. */
export async function recordWindows(
  slices: AsyncIterable<readonly TelemetrySample[]>,
  options: { fromTs: number; toTs: number; source: string; extractor: FeatureExtractorOptions },
): Promise<Recording> {
  const collector = new WindowCollector({ keepVectors: true, extractor: options.extractor });
  const hash = createHash('sha256');
  let samples = 0;
  for await (const slice of slices) {
    for (const s of slice) hash.update(`${s.ts},${s.nodeId},${s.metric},${s.value}\n`);
    samples += slice.length;
    collector.add(slice);
  }
  collector.finish(options.toTs);
  return {
    fromTs: options.fromTs,
    toTs: options.toTs,
    samples,
    vectors: collector.vectors.filter((v) => v.windowEnd <= options.toTs),
    digest: `sha256:${hash.digest('hex')}`,
    source: options.source,
  };
}

/** Where the held-back part starts: the last `fraction` of the recording's time. */
export function heldBackFrom(recording: Pick<Recording, 'fromTs' | 'toTs'>, fraction: number): number {
  return Math.round(recording.toTs - (recording.toTs - recording.fromTs) * fraction);
}

export interface TrainCandidateOptions {
  heldBackFrom: number;
  /** Spans never taught as healthy (confirmed drains). */
  incidents: readonly NodeSpan[];
  /** Spans of drains operators called false: healthy, and the calibration must stay above them. */
  falseDrains: readonly NodeSpan[];
  windowMs: number;
  name: string;
  epochs: number;
  seed: number;
  limits?: Partial<TrendLimits>;
  logger?: Logger;
}

/** Trains the autoencoder on the healthy windows before the held-back part; none of the held-back part is seen. */
export async function trainCandidate(recording: Recording, o: TrainCandidateOptions): Promise<TrainedModel> {
  const ex = bySpanNode(o.incidents);
  const fd = bySpanNode(o.falseDrains);
  const healthy = new RowBuffer();
  const falseDrain = new RowBuffer();
  let excluded = 0;
  for (const v of recording.vectors) {
    if (v.windowEnd > o.heldBackFrom || !isUp(v)) continue;
    if (overlaps(ex.get(v.nodeId), v.windowStart, v.windowEnd)) {
      excluded++;
      continue;
    }
    healthy.push(v);
    if (overlaps(fd.get(v.nodeId), v.windowStart, v.windowEnd)) falseDrain.push(v);
  }
  const cols = FEATURE_NAMES.length;
  const { train, held } = splitHeldOut(healthy.toArray(), cols);
  return trainModel({
    train,
    calibration: held,
    falseDrain: falseDrain.toArray(),
    name: o.name,
    source: `${recording.source} (before ${new Date(o.heldBackFrom).toISOString()})`,
    dataDigest: recording.digest,
    windowMs: o.windowMs,
    initSeed: o.seed,
    shuffleSeed: o.seed + 1,
    spec: { epochs: o.epochs },
    excludedWindows: excluded,
    ...(o.limits ? { trend: { limits: o.limits } } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
  });
}

/** Scores the whole recording in time order, one window end at a time, as the live loop hands windows over. */
export function scoreRecording(scorer: Scorer, vectors: readonly FeatureVector[]): NodeScore[] {
  const out: NodeScore[] = [];
  let i = 0;
  while (i < vectors.length) {
    let j = i + 1;
    while (j < vectors.length && vectors[j]!.windowEnd === vectors[i]!.windowEnd) j++;
    out.push(...scorer.score(vectors.slice(i, j)));
    i = j;
  }
  return out;
}

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))]!;
}

/**
 * Judges one scorer's scores of a recording: false alarms on the held-back healthy windows (observed, up, outside
 * every incident span) and the peak risk it gave each incident of the whole recording (incidents are never trained on).
 */
export function validateScores(
  scorer: string,
  scores: readonly NodeScore[],
  o: { heldBackFrom: number; incidents: readonly NodeSpan[]; threshold: number },
): ScorerValidation {
  const spans = bySpanNode(o.incidents);
  const healthy: number[] = [];
  const peaks = new Map<NodeSpan, number>();
  for (const s of scores) {
    if (!s.observed || !s.up) continue;
    const own = spans.get(s.nodeId);
    const inside = own?.filter((sp) => s.ts > sp.from && s.ts <= sp.to) ?? [];
    for (const sp of inside) peaks.set(sp, Math.max(peaks.get(sp) ?? 0, s.risk));
    if (inside.length === 0 && s.ts > o.heldBackFrom) healthy.push(s.risk);
  }
  healthy.sort((a, b) => a - b);
  const falseAlarms = healthy.filter((r) => r >= o.threshold).length;
  const peakRisks = [...peaks.values()];
  return {
    scorer,
    windows: healthy.length,
    falseAlarms,
    falseAlarmRate: healthy.length > 0 ? falseAlarms / healthy.length : null,
    p99Risk: quantile(healthy, 0.99),
    incidents: peakRisks.length,
    incidentsDetected: peakRisks.filter((r) => r >= o.threshold).length,
    meanIncidentPeakRisk: peakRisks.length > 0 ? peakRisks.reduce((a, b) => a + b, 0) / peakRisks.length : null,
  };
}
