/**
 * Maps a reconstruction error to a risk in [0, 1]. The table is the empirical distribution of errors on held-out
 * healthy windows (never the windows the model was trained on). The threshold is a high quantile of that
 * distribution, raised where operators marked drains as false (their windows must fall below it); risk is a logistic
 * in log error, 0.5 at the threshold and `baseRisk` at the healthy median.
 */
export interface Calibration {
  /** Probabilities of the quantile table, ascending, from 0 to 1. */
  p: number[];
  /** Errors at those probabilities on held-out healthy windows. */
  error: number[];
  /** Error at which risk is 0.5. */
  threshold: number;
  /** Logit units per unit of ln(error). */
  steepness: number;
  /** How the threshold was chosen, for the model card. */
  thresholdSource: { healthyQuantile: number; healthyError: number; falseDrainError: number | null; margin: number };
}

export interface CalibrationOptions {
  /** Quantile of held-out healthy errors used as the threshold. Default 0.9999. */
  thresholdQuantile?: number;
  /** Threshold = margin × the chosen error. Default 1.25. */
  margin?: number;
  /** Risk given to the median healthy window. Default 0.01. */
  baseRisk?: number;
  /** Errors of windows operators marked as false drains: the threshold is raised above their 0.95 quantile. */
  falseDrainErrors?: ArrayLike<number>;
}

const TABLE_P = [
  0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1,
];

function quantile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const TINY = 1e-9;

export function buildCalibration(healthyErrors: ArrayLike<number>, options: CalibrationOptions = {}): Calibration {
  const q = options.thresholdQuantile ?? 0.9999;
  const margin = options.margin ?? 1.25;
  const baseRisk = options.baseRisk ?? 0.01;
  const sorted = Float64Array.from(healthyErrors).filter(Number.isFinite).sort();
  const error = TABLE_P.map((p) => quantile(sorted, p));
  const healthyError = quantile(sorted, q);
  let falseDrainError: number | null = null;
  if (options.falseDrainErrors && options.falseDrainErrors.length > 0) {
    falseDrainError = quantile(Float64Array.from(options.falseDrainErrors).filter(Number.isFinite).sort(), 0.95);
  }
  const threshold = Math.max(healthyError, falseDrainError ?? 0, TINY) * margin;
  const median = Math.max(quantile(sorted, 0.5), TINY);
  const span = Math.log(threshold) - Math.log(median);
  const steepness = span > 0.05 ? Math.log((1 - baseRisk) / baseRisk) / span : 20;
  return {
    p: TABLE_P,
    error,
    threshold,
    steepness,
    thresholdSource: { healthyQuantile: q, healthyError, falseDrainError, margin },
  };
}

/** Risk of one error; 0 for a non-finite error (no evidence), never NaN. */
export function riskFromError(err: number, cal: Calibration): number {
  if (!Number.isFinite(err) || err <= 0) return 0;
  const logit = cal.steepness * (Math.log(err) - Math.log(cal.threshold));
  const r = 1 / (1 + Math.exp(-logit));
  return Number.isFinite(r) ? r : logit > 0 ? 1 : 0;
}

/** Where an error falls among held-out healthy errors, in [0, 1] (linear between table points). */
export function errorPercentile(err: number, cal: Calibration): number {
  const { p, error } = cal;
  if (!(err > error[0]!)) return 0;
  for (let i = 1; i < error.length; i++) {
    if (err <= error[i]!) {
      const span = error[i]! - error[i - 1]!;
      return span > 0 ? p[i - 1]! + ((p[i]! - p[i - 1]!) * (err - error[i - 1]!)) / span : p[i]!;
    }
  }
  return 1;
}

/** Checks a calibration read from a file; returns the problem or null. */
export function calibrationProblem(c: unknown): string | null {
  const cal = c as Partial<Calibration> | null;
  if (typeof cal !== 'object' || cal === null) return 'calibration missing';
  if (!Array.isArray(cal.p) || !Array.isArray(cal.error) || cal.p.length !== cal.error.length || cal.p.length < 2)
    return 'calibration table malformed';
  for (let i = 0; i < cal.p.length; i++) {
    if (!Number.isFinite(cal.p[i]) || !Number.isFinite(cal.error[i])) return 'calibration table not finite';
    if (i > 0 && (cal.p[i]! < cal.p[i - 1]! || cal.error[i]! < cal.error[i - 1]!))
      return 'calibration table not ascending';
  }
  if (!(typeof cal.threshold === 'number' && cal.threshold > 0 && Number.isFinite(cal.threshold)))
    return 'calibration threshold must be a positive number';
  if (!(typeof cal.steepness === 'number' && cal.steepness > 0 && Number.isFinite(cal.steepness)))
    return 'calibration steepness must be a positive number';
  return null;
}
