/**
 * Runs telemetry through the live feature pipeline and one or more scorers on a virtual clock (event time only), and
 * keeps what evaluation needs per node and window: risk per scorer, observed, up, active calls. Scoring does not depend
 * on actions (the scorer never sees them), so the risk series is computed once and every action policy and threshold
 * is replayed on it afterwards.
 */
import { FeatureExtractor, type FeatureExtractorOptions, type RejectReason } from '../features/index.js';
import type { FeatureVector, NodeScore, TelemetrySample } from '../messages.js';

/** Anything that scores vectors: the Scorer contract, sync or async (BatchScorer). */
export interface AnyScorer {
  readonly name: string;
  score(vectors: FeatureVector[]): NodeScore[] | Promise<NodeScore[]>;
}

/** Scored windows in emission order (window by window, node by node). Column arrays keep memory small. */
export interface ScoredSeries {
  nodes: string[];
  scorers: string[];
  ts: number[];
  node: number[];
  observed: Uint8Array | number[];
  up: Uint8Array | number[];
  activeCalls: number[];
  /** risk[scorerIndex][row] */
  risk: number[][];
  /** Sum of active calls and of call starts per second over observed, up windows (for Little's law). */
  sumActive: number;
  sumStartRate: number;
  windowMs: number;
}

export interface CollectStats {
  samples: number;
  vectors: number;
  rejected: Record<RejectReason, number>;
  firstTs: number | null;
  lastTs: number | null;
}

export class SeriesCollector {
  readonly series: ScoredSeries;
  readonly stats: CollectStats = {
    samples: 0,
    vectors: 0,
    rejected: { late: 0, future: 0, non_finite: 0, unknown_metric: 0, malformed: 0, too_many_nodes: 0 },
    firstTs: null,
    lastTs: null,
  };
  private readonly extractor: FeatureExtractor;
  private readonly nodeIndex = new Map<string, number>();
  private readonly windowMs: number;
  private readonly latenessMs: number;

  constructor(
    private readonly scorers: readonly AnyScorer[],
    options: Pick<FeatureExtractorOptions, 'windowMs' | 'allowedLatenessMs' | 'nodes'> = {},
  ) {
    this.windowMs = options.windowMs ?? 10_000;
    this.latenessMs = options.allowedLatenessMs ?? 2000;
    this.extractor = new FeatureExtractor({
      ...options,
      // Rejects are counted by the extractor's stats; the samples themselves are not kept.
      onRejected: () => {},
    });
    this.series = {
      nodes: [],
      scorers: scorers.map((s) => s.name),
      ts: [],
      node: [],
      observed: [],
      up: [],
      activeCalls: [],
      risk: scorers.map(() => []),
      sumActive: 0,
      sumStartRate: 0,
      windowMs: this.windowMs,
    };
  }

  async push(samples: TelemetrySample[]): Promise<void> {
    if (samples.length === 0) return;
    this.stats.samples += samples.length;
    for (const s of samples) {
      if (this.stats.firstTs === null || s.ts < this.stats.firstTs) this.stats.firstTs = s.ts;
      if (this.stats.lastTs === null || s.ts > this.stats.lastTs) this.stats.lastTs = s.ts;
    }
    await this.absorb(this.extractor.ingest(samples));
  }

  /** Closes every window up to the last sample (plus lateness) and returns the series. */
  async finish(): Promise<ScoredSeries> {
    if (this.stats.lastTs !== null) {
      await this.absorb(this.extractor.advance(this.stats.lastTs + this.latenessMs + 1));
    }
    this.stats.rejected = this.extractor.stats().rejected;
    return this.series;
  }

  private async absorb(vectors: FeatureVector[]): Promise<void> {
    if (vectors.length === 0) return;
    this.stats.vectors += vectors.length;
    const results: NodeScore[][] = [];
    for (const scorer of this.scorers) results.push(await scorer.score(vectors));
    const s = this.series;
    for (let i = 0; i < vectors.length; i++) {
      const v = vectors[i]!;
      let idx = this.nodeIndex.get(v.nodeId);
      if (idx === undefined) {
        idx = s.nodes.length;
        s.nodes.push(v.nodeId);
        this.nodeIndex.set(v.nodeId, idx);
      }
      const active = v.features['channels.active.last'] ?? 0;
      const up = v.observed && (v.features['node.up.last'] ?? 0) >= 0.5;
      s.ts.push(v.windowEnd);
      s.node.push(idx);
      (s.observed as number[]).push(v.observed ? 1 : 0);
      (s.up as number[]).push(up ? 1 : 0);
      s.activeCalls.push(Number.isFinite(active) && active > 0 ? active : 0);
      if (up) {
        s.sumActive += Number.isFinite(active) ? active : 0;
        const rate = v.features['calls.started.rate'] ?? 0;
        s.sumStartRate += Number.isFinite(rate) ? rate : 0;
      }
      for (let k = 0; k < results.length; k++) s.risk[k]!.push(results[k]![i]?.risk ?? 0);
    }
  }
}

/** Mean call duration by Little's law (mean active calls / mean call starts per second), or the fallback. s */
export function meanCallSeconds(series: ScoredSeries, fallbackS = 180): number {
  if (series.sumStartRate <= 0 || series.sumActive <= 0) return fallbackS;
  return series.sumActive / series.sumStartRate;
}
