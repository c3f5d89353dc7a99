/**
 * Metrics of the public-data evaluation (docs/evaluation.md, "Public, real, labelled data"): point-wise average
 * precision over the rows of labelled anomaly windows, and a NAB-style early-detection score. Both read a score per
 * row and the labelled windows as inclusive row ranges; rows before `evalStart` (the probation period every detector
 * learns in) count for neither.
 */

/** A labelled anomaly window: rows start..end, both inclusive. */
export interface RowWindow {
  start: number;
  end: number;
}

/** A score that is not a finite number ranks below every finite score (a detector that says nothing claims nothing). */
function rankable(x: number): number {
  return Number.isFinite(x) ? x : Number.NEGATIVE_INFINITY;
}

/**
 * Average precision of `scores` against `positive` over rows evalStart.. : the sum over distinct score levels, highest
 * first, of (recall gained at that level) x (precision at that level). Rows with equal scores enter together, so a
 * detector that gives every row the same score gets the positive rate, not a lucky order. Null without positives.
 */
export function averagePrecision(
  scores: ArrayLike<number>,
  positive: ArrayLike<boolean>,
  evalStart = 0,
): number | null {
  if (scores.length !== positive.length) throw new Error('scores and labels differ in length');
  const idx: number[] = [];
  let positives = 0;
  for (let i = Math.max(0, evalStart); i < scores.length; i++) {
    idx.push(i);
    if (positive[i]) positives++;
  }
  if (positives === 0) return null;
  idx.sort((a, b) => rankable(scores[b]!) - rankable(scores[a]!) || a - b);
  let ap = 0;
  let tp = 0;
  let seen = 0;
  for (let k = 0; k < idx.length; ) {
    const level = rankable(scores[idx[k]!]!);
    let gained = 0;
    while (k < idx.length && rankable(scores[idx[k]!]!) === level) {
      if (positive[idx[k]!]) gained++;
      seen++;
      k++;
    }
    tp += gained;
    if (gained > 0) ap += (gained / positives) * (tp / seen);
  }
  return ap;
}

/** Inside-window labels per row, from windows. */
export function rowLabels(length: number, windows: readonly RowWindow[]): boolean[] {
  const out = new Array<boolean>(length).fill(false);
  for (const w of windows) for (let i = Math.max(0, w.start); i <= Math.min(length - 1, w.end); i++) out[i] = true;
  return out;
}

/** NAB's standard-profile weights: a found window earns up to A_TP, a missed one costs A_FN, a false alarm A_FP. */
export interface DetectionWeights {
  tp: number;
  fn: number;
  fp: number;
}
export const NAB_STANDARD: DetectionWeights = Object.freeze({ tp: 1, fn: 1, fp: 0.11 });

/**
 * Reward of a first alarm at relative position y in its window: y = -1 at the window's first row, 0 at its last
 * (NAB's scaled sigmoid, 2 / (1 + e^(5y)) - 1: ~0.987 at the start, 0 at the end). Earlier is better.
 */
export function positionReward(y: number): number {
  return 2 / (1 + Math.exp(5 * y)) - 1;
}

export interface EarlyDetection {
  threshold: number;
  /** Alarms: rows evalStart.. where the score reaches the threshold and the row before did not. */
  alarms: number;
  falseAlarms: number;
  windows: number;
  detected: number;
  /** Per window: rows from the window's start to its first alarm, or null when missed. */
  delays: (number | null)[];
  /** Raw score: sum of rewards of found windows - A_FN x missed - A_FP x false alarms. */
  raw: number;
  /** 100 (raw - never alarming) / (perfect - never alarming): 100 = an alarm on every window's first row and no
   * false alarm, 0 = no better than never alarming, negative = worse. */
  normalised: number;
}

/**
 * The early-detection score at one threshold. An alarm is a rising edge (score >= threshold after a row below it, or
 * on the first scored row): a detector that stays above its threshold raises one alarm, as a drain is one action. The
 * first alarm inside a window scores positionReward; later alarms inside the same window neither earn nor cost;
 * every alarm outside all windows costs A_FP; a window without an alarm costs A_FN. Windows that lie wholly in the
 * probation period are not counted; one that straddles it counts from evalStart.
 */
export function earlyDetection(
  scores: ArrayLike<number>,
  windows: readonly RowWindow[],
  threshold: number,
  evalStart = 0,
  weights: DetectionWeights = NAB_STANDARD,
): EarlyDetection {
  const n = scores.length;
  const counted = windows
    .map((w) => ({ start: Math.max(w.start, evalStart), end: Math.min(w.end, n - 1) }))
    .filter((w) => w.start <= w.end);
  const firstAlarm: (number | null)[] = counted.map(() => null);
  let alarms = 0;
  let falseAlarms = 0;
  let wi = 0;
  let prevAbove = false;
  for (let i = Math.max(0, evalStart); i < n; i++) {
    const above = rankable(scores[i]!) >= threshold;
    if (above && !prevAbove) {
      alarms++;
      while (wi < counted.length && counted[wi]!.end < i) wi++;
      // Windows may overlap in principle: the alarm belongs to every window holding it.
      let inside = false;
      for (let k = wi; k < counted.length && counted[k]!.start <= i; k++) {
        if (i <= counted[k]!.end) {
          inside = true;
          if (firstAlarm[k] === null) firstAlarm[k] = i;
        }
      }
      if (!inside) falseAlarms++;
    }
    prevAbove = above;
  }
  let raw = 0;
  let detected = 0;
  counted.forEach((w, k) => {
    const at = firstAlarm[k];
    if (at === null || at === undefined) {
      raw -= weights.fn;
      return;
    }
    detected++;
    const y = w.end === w.start ? -1 : (at - w.start) / (w.end - w.start) - 1;
    raw += weights.tp * positionReward(y);
  });
  raw -= weights.fp * falseAlarms;
  const none = -weights.fn * counted.length;
  const perfect = weights.tp * positionReward(-1) * counted.length;
  return {
    threshold,
    alarms,
    falseAlarms,
    windows: counted.length,
    detected,
    delays: counted.map((w, k) => (firstAlarm[k] === null ? null : firstAlarm[k]! - w.start)),
    raw,
    normalised: counted.length === 0 ? 0 : (100 * (raw - none)) / (perfect - none),
  };
}

/**
 * The best early-detection score over thresholds: every distinct score among the evaluated rows (at most `maxCandidates`
 * of them, evenly spaced in rank), plus +Infinity (never alarm, normalised 0). The threshold is chosen on the same
 * data, so this is each detector's best case; the same search is run for every detector.
 */
export function bestEarlyDetection(
  scores: ArrayLike<number>,
  windows: readonly RowWindow[],
  evalStart = 0,
  weights: DetectionWeights = NAB_STANDARD,
  maxCandidates = 400,
): EarlyDetection {
  const distinct = new Set<number>();
  for (let i = Math.max(0, evalStart); i < scores.length; i++) {
    const s = scores[i]!;
    if (Number.isFinite(s)) distinct.add(s);
  }
  const sorted = [...distinct].sort((a, b) => a - b);
  const step = Math.max(1, sorted.length / maxCandidates);
  const candidates: number[] = [Number.POSITIVE_INFINITY];
  for (let k = 0; k < sorted.length; k += step) candidates.push(sorted[Math.floor(k)]!);
  if (sorted.length > 0) candidates.push(sorted[sorted.length - 1]!);
  let best = earlyDetection(scores, windows, Number.POSITIVE_INFINITY, evalStart, weights);
  for (const t of candidates) {
    const r = earlyDetection(scores, windows, t, evalStart, weights);
    if (r.normalised > best.normalised) best = r;
  }
  return best;
}
