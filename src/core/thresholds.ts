/**
 * Operators' verdicts on automatic drains move the drain threshold of the scorer that raised them: a false alarm
 * raises it (the scorer cried wolf at this level), a confirmed one lowers it a little (it could have spoken
 * earlier). Pure functions; the action engine keeps one effective threshold per scorer in the store.
 */
import { ForesightError } from '../errors.js';

export type VerdictKind = 'true_alarm' | 'false_alarm';

export interface ThresholdFeedback {
  enabled: boolean;
  /** The effective threshold never goes below this. [0, 1] */
  min: number;
  /** The effective threshold never goes above this. [0, 1] */
  max: number;
  /** Added to the threshold per false-alarm verdict. */
  falseAlarmStep: number;
  /** Taken from the threshold per confirmed (true-alarm) verdict. */
  trueAlarmStep: number;
}

/** Steps: a false drain costs a call migration and a restart, so it moves the threshold twice as far as a hit. */
export const DEFAULT_FALSE_ALARM_STEP = 0.02;
export const DEFAULT_TRUE_ALARM_STEP = 0.01;
/** Default bound around the configured threshold when min/max are not set. */
export const DEFAULT_BOUND_BELOW = 0.1;
export const DEFAULT_BOUND_ABOVE = 0.15;

/**
 * The bound when the config leaves it open: below by DEFAULT_BOUND_BELOW (never under the recover threshold, so a
 * node can still be calm below it), above by DEFAULT_BOUND_ABOVE (never past 0.99, so a drain stays possible).
 */
export function defaultBound(riskThreshold: number, recoverThreshold: number): { min: number; max: number } {
  return {
    min: round6(Math.max(recoverThreshold, riskThreshold - DEFAULT_BOUND_BELOW)),
    max: round6(Math.max(riskThreshold, Math.min(0.99, riskThreshold + DEFAULT_BOUND_ABOVE))),
  };
}

/** The feedback with its bound resolved: as configured, else the default bound around riskThreshold. */
export function resolveFeedback(
  f: Omit<ThresholdFeedback, 'min' | 'max'> & { min?: number | undefined; max?: number | undefined },
  riskThreshold: number,
  recoverThreshold: number,
): ThresholdFeedback {
  const bound = defaultBound(riskThreshold, recoverThreshold);
  return {
    enabled: f.enabled,
    min: f.min ?? bound.min,
    max: f.max ?? bound.max,
    falseAlarmStep: f.falseAlarmStep,
    trueAlarmStep: f.trueAlarmStep,
  };
}

/** Problems with a feedback setting against the thresholds it moves; empty when it is sound. */
export function feedbackIssues(f: ThresholdFeedback, riskThreshold: number, recoverThreshold: number): string[] {
  const issues: string[] = [];
  if (!(f.min <= riskThreshold && riskThreshold <= f.max)) {
    issues.push(`min ${f.min} and max ${f.max} must hold the configured riskThreshold ${riskThreshold}`);
  }
  if (!(f.min >= recoverThreshold)) {
    issues.push(
      `min ${f.min} must not be below recoverThreshold ${recoverThreshold}, or a node at risk would count as calm`,
    );
  }
  if (!(f.falseAlarmStep >= 0 && f.trueAlarmStep >= 0)) issues.push('steps must not be negative');
  return issues;
}

export function validateFeedback(f: ThresholdFeedback, riskThreshold: number, recoverThreshold: number): void {
  const issues = feedbackIssues(f, riskThreshold, recoverThreshold);
  if (issues.length > 0) throw new ForesightError('FORESIGHT_ERR_CONFIG', `threshold feedback: ${issues.join('; ')}`);
}

/** Keeps a threshold inside the bound (a stored value from before a config change included). */
export function clampThreshold(value: number, f: Pick<ThresholdFeedback, 'min' | 'max'>): number {
  if (!Number.isFinite(value)) return f.min;
  return Math.min(f.max, Math.max(f.min, value));
}

/** Signed step of one verdict. */
export function verdictStep(verdict: VerdictKind, f: ThresholdFeedback): number {
  return verdict === 'false_alarm' ? f.falseAlarmStep : -f.trueAlarmStep;
}

/**
 * The threshold after a verdict. `undo` is the move an earlier verdict on the same decision made (an operator who
 * changes their mind): it is taken back first, so one decision counts once. Rounded to 6 decimals so repeated
 * steps do not drift in binary fractions; always inside [min, max].
 */
export function moveThreshold(current: number, verdict: VerdictKind, f: ThresholdFeedback, undo = 0): number {
  return clampThreshold(round6(current - undo + verdictStep(verdict, f)), f);
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
