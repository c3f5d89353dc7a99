import { linearRegression, median, medianAbsoluteDeviation } from 'simple-statistics';
import { Z_LIMIT } from './names.js';

/** Fixed-capacity ring of numbers: memory stays bounded however long a node lives. */
export class Ring {
  private readonly data: Float64Array;
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.data = new Float64Array(Math.max(1, capacity));
  }

  get size(): number {
    return this.count;
  }

  push(value: number): void {
    const cap = this.data.length;
    if (this.count < cap) {
      this.data[(this.start + this.count) % cap] = value;
      this.count++;
    } else {
      this.data[this.start] = value;
      this.start = (this.start + 1) % cap;
    }
  }

  clear(): void {
    this.start = 0;
    this.count = 0;
  }

  /** i = 0 is the oldest element. */
  at(i: number): number {
    return this.data[(this.start + i) % this.data.length]!;
  }

  toArray(): number[] {
    const out = new Array<number>(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.at(i);
    return out;
  }
}

/** 1.4826 · MAD estimates the standard deviation of normal data. */
const MAD_TO_SIGMA = 1.4826;

export function clampZ(z: number): number {
  if (!Number.isFinite(z)) return z > 0 ? Z_LIMIT : z < 0 ? -Z_LIMIT : 0;
  return Math.min(Z_LIMIT, Math.max(-Z_LIMIT, z));
}

/**
 * Robust z of `x` against `reference` (median/MAD). The scale never drops below `scaleFloor` or `relFloor`·|median|,
 * so a flat reference does not turn noise into huge z. Returns 0 when the reference has fewer than `minCount` values.
 */
export function robustZ(x: number, reference: number[], scaleFloor: number, relFloor: number, minCount = 2): number {
  if (reference.length < minCount) return 0;
  const med = median(reference);
  const mad = medianAbsoluteDeviation(reference);
  const scale = Math.max(MAD_TO_SIGMA * mad, scaleFloor, relFloor * Math.abs(med), Number.MIN_VALUE);
  return clampZ((x - med) / scale);
}

/** Whole windows of `windowMs` covering `ms`, at least `min`: how lengths that are times are counted at any window. */
export function windowsCovering(ms: number, windowMs: number, min = 1): number {
  // The epsilon keeps 60 000 / 1000 from becoming 61 through rounding error.
  return Math.max(min, Math.ceil(ms / windowMs - 1e-9));
}

/** Least-squares slope of (t ms, v) pairs, in units per minute; 0 with fewer than 3 points or a degenerate fit. */
export function slopePerMinute(times: Ring, values: Ring, minPoints = 3): number {
  const n = Math.min(times.size, values.size);
  if (n < Math.max(3, minPoints)) return 0;
  const t0 = times.at(n - 1);
  const pairs = new Array<number[]>(n);
  for (let i = 0; i < n; i++) pairs[i] = [(times.at(i) - t0) / 60_000, values.at(i)];
  const { m } = linearRegression(pairs);
  return Number.isFinite(m) ? m : 0;
}
