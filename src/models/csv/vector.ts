import type { FeatureVector } from '../../messages.js';
import type { ParsedRow } from './table.js';

/**
 * How a CSV row reaches a scorer: as a FeatureVector of one node whose features are the row's metric columns, by
 * their own names. A missing value is an absent feature (never 0), a row without any value an unobserved window; the
 * window ends at the row's timestamp. The scorers' logic stays theirs: `stat` baselines the named metrics itself
 * (metric-model.ts), the autoencoder reads them as its input columns.
 */
export const CSV_NODE = 'csv';

const NO_EVIDENCE = Object.freeze({ calls: null, upReported: null, probe: null });

/**
 * Maps rows to windows, one after another. Window ends must rise for the scorers' persistence: a row without a valid
 * timestamp, or one not later than the previous row's, ends 1 ms after the previous window (it is still scored, in
 * file order).
 */
export class RowMapper {
  private lastEnd = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly names: readonly string[],
    /** For each metric of `names`, its index among the row's values. */
    private readonly index: readonly number[],
    private readonly cadenceMs: number,
  ) {}

  vector(row: Pick<ParsedRow, 'values' | 'ts'>): FeatureVector {
    const features: Record<string, number> = {};
    let count = 0;
    for (let i = 0; i < this.names.length; i++) {
      const x = row.values[this.index[i]!];
      if (x === null || x === undefined || !Number.isFinite(x)) continue;
      features[this.names[i]!] = x;
      count++;
    }
    let end: number;
    if (row.ts !== null && row.ts > this.lastEnd) end = row.ts;
    else if (Number.isFinite(this.lastEnd)) end = this.lastEnd + 1;
    else end = 0;
    this.lastEnd = end;
    return {
      nodeId: CSV_NODE,
      setId: 0,
      windowStart: end - this.cadenceMs,
      windowEnd: end,
      sampleCount: count,
      observed: count > 0,
      features,
      evidence: NO_EVIDENCE,
    };
  }
}

/** The usual step between timestamps (median of the positive steps), or `fallbackMs` when there are none. */
export function cadenceOf(timestamps: ReadonlyArray<number | null>, fallbackMs = 60_000): number {
  const steps: number[] = [];
  let prev: number | null = null;
  for (const t of timestamps) {
    if (t === null) continue;
    if (prev !== null && t > prev) steps.push(t - prev);
    prev = t;
  }
  if (steps.length === 0) return fallbackMs;
  steps.sort((a, b) => a - b);
  return steps[steps.length >> 1]!;
}
