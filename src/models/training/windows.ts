/** Training data: telemetry through the pipeline's own FeatureExtractor into rows of healthy windows. */
import { FeatureExtractor, type FeatureExtractorOptions } from '../../features/extractor.js';
import { FEATURE_NAMES } from '../../features/names.js';
import type { FeatureVector, TelemetrySample } from '../../messages.js';
import { isUp } from '../scorers/scorer.js';
import { bySpanNode, type NodeSpan, overlaps } from './labels.js';

/** The rows `idx` of a row-major matrix with `cols` columns, in that order. */
export function pickRows(rows: Float64Array, cols: number, idx: readonly number[]): Float64Array {
  const out = new Float64Array(idx.length * cols);
  idx.forEach((r, i) => {
    out.set(rows.subarray(r * cols, (r + 1) * cols), i * cols);
  });
  return out;
}

/** A growable matrix of raw feature rows in FEATURE_NAMES order. */
export class RowBuffer {
  readonly cols = FEATURE_NAMES.length;
  private data = new Float64Array(1024 * FEATURE_NAMES.length);
  rows = 0;

  push(v: FeatureVector): void {
    if ((this.rows + 1) * this.cols > this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    const f = v.features;
    const base = this.rows * this.cols;
    for (let c = 0; c < this.cols; c++) {
      const x = f[FEATURE_NAMES[c]!];
      this.data[base + c] = typeof x === 'number' && Number.isFinite(x) ? x : 0;
    }
    this.rows++;
  }

  toArray(): Float64Array {
    return this.data.slice(0, this.rows * this.cols);
  }
}

export interface WindowCollectorOptions {
  extractor?: FeatureExtractorOptions;
  /** Keep every vector too (for evaluation). Default false. */
  keepVectors?: boolean;
}

export interface WindowSplit {
  /** Observed, up, outside every excluded span. */
  healthy: Float64Array;
  /** Healthy rows that also fall in a false-drain span. */
  falseDrain: Float64Array;
  excluded: number;
}

/**
 * Runs telemetry through the same FeatureExtractor the pipeline uses and keeps every observed window of a node that
 * was up, with its node and time, so that labels known only at the end (the simulator's) can still be applied.
 */
export class WindowCollector {
  readonly rows = new RowBuffer();
  readonly vectors: FeatureVector[] = [];
  unobserved = 0;
  down = 0;
  private readonly nodeOf: string[] = [];
  private readonly startOf: number[] = [];
  private readonly endOf: number[] = [];
  private readonly extractor: FeatureExtractor;
  private readonly keep: boolean;

  constructor(options: WindowCollectorOptions = {}) {
    this.extractor = new FeatureExtractor(options.extractor);
    this.keep = options.keepVectors ?? false;
  }

  add(samples: readonly TelemetrySample[]): void {
    this.take(this.extractor.ingest(samples));
  }

  /** Closes every window up to `ts` (end of the data). */
  finish(ts: number): void {
    this.take(this.extractor.advance(ts));
  }

  rejected(): number {
    const r = this.extractor.stats().rejected;
    return Object.values(r).reduce((a, b) => a + b, 0);
  }

  split(exclude: readonly NodeSpan[] = [], falseDrains: readonly NodeSpan[] = []): WindowSplit {
    const ex = bySpanNode(exclude);
    const fd = bySpanNode(falseDrains);
    const cols = this.rows.cols;
    const all = this.rows.toArray();
    const healthy: number[] = [];
    const falseDrain: number[] = [];
    for (let r = 0; r < this.nodeOf.length; r++) {
      const node = this.nodeOf[r]!;
      if (overlaps(ex.get(node), this.startOf[r]!, this.endOf[r]!)) continue;
      healthy.push(r);
      if (overlaps(fd.get(node), this.startOf[r]!, this.endOf[r]!)) falseDrain.push(r);
    }
    return {
      healthy: pickRows(all, cols, healthy),
      falseDrain: pickRows(all, cols, falseDrain),
      excluded: this.nodeOf.length - healthy.length + this.down,
    };
  }

  private take(vectors: FeatureVector[]): void {
    for (const v of vectors) {
      if (this.keep) this.vectors.push(v);
      if (!v.observed) {
        this.unobserved++;
        continue;
      }
      if (!isUp(v)) {
        this.down++;
        continue;
      }
      this.rows.push(v);
      this.nodeOf.push(v.nodeId);
      this.startOf.push(v.windowStart);
      this.endOf.push(v.windowEnd);
    }
  }
}
