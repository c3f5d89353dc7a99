import type { PublicDataset } from './datasets.js';

/**
 * What the public evaluation runs over a data set: every row gets a raw score (higher = more anomalous, full precision,
 * the ranking AP reads) and, for scorers that have one, the calibrated risk in [0, 1] that would drive drains.
 * Detectors are causal: a row's scores depend on that row and earlier rows only (and, for a detector that is trained
 * first, on the rows before `evalStart`, which no metric counts).
 */
export interface DetectorScores {
  raw: Float64Array;
  /** Calibrated risk, or null for a baseline that has none. */
  risk: Float64Array | null;
  /** The risk at which the scorer acts (drain threshold), or null. */
  operatingThreshold: number | null;
}

export interface PublicDetector {
  readonly name: string;
  /** One line: what it is and how it was set up (shown under the table). */
  readonly description: string;
  score(ds: PublicDataset): Promise<DetectorScores>;
}
