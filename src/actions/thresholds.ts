/**
 * The effective drain threshold of each scorer, as operators' verdicts have moved it: the provider the action engine
 * reads its riskThreshold from. The rule is the decision core's (src/core/thresholds.ts); this keeps the values,
 * loads them from the store at the start of a leadership term and writes each move back before it counts.
 */
import {
  clampThreshold,
  moveThreshold,
  type ThresholdFeedback,
  type VerdictKind,
  validateFeedback,
} from '../core/thresholds.js';
import type { AuditRecord } from '../messages.js';
import type { Store, ThresholdRecord } from './ports.js';

/** What a verdict did to a threshold; stored in the Verdict's and ThresholdMoved's audit details. */
export interface ThresholdMove {
  moved: boolean;
  /** The scorer whose drain was judged, or null when the drain was not a scorer's. */
  scorer: string | null;
  verdict: VerdictKind;
  from: number | null;
  to: number | null;
  /** Why it moved this far, or why it did not move. */
  why: string;
}

export interface ThresholdsView {
  /** The scorer whose scores the engine decides on now (the latest scores' scorer), or null before any score. */
  inCharge: string | null;
  /** The threshold the engine uses now. */
  effective: number;
  configured: number;
  feedback: ThresholdFeedback;
  scorers: (ThresholdRecord & { inCharge: boolean })[];
}

export class EffectiveThresholds {
  private readonly records = new Map<string, ThresholdRecord>();
  private scorer: string | null;

  constructor(
    readonly configured: number,
    readonly feedback: ThresholdFeedback,
    recoverThreshold: number,
    inCharge: string | null = null,
  ) {
    validateFeedback(feedback, configured, recoverThreshold);
    this.scorer = inCharge;
  }

  /** Reads the stored thresholds; values from before a change of the bound are brought inside it. */
  async load(store: Store): Promise<void> {
    this.records.clear();
    for (const r of await store.listThresholds()) {
      this.records.set(r.scorer, { ...r, threshold: clampThreshold(r.threshold, this.feedback) });
    }
  }

  get inCharge(): string | null {
    return this.scorer;
  }

  /** Follows the scorer that scores come from (a promoted model takes over); true when the threshold changed. */
  follow(scorer: string): boolean {
    if (scorer === this.scorer) return false;
    const before = this.current();
    this.scorer = scorer;
    return this.current() !== before;
  }

  /** The threshold of the scorer in charge; the configured one until verdicts moved it (or with feedback off). */
  current(): number {
    return this.of(this.scorer);
  }

  of(scorer: string | null): number {
    if (!this.feedback.enabled || scorer === null) return this.configured;
    return this.records.get(scorer)?.threshold ?? this.configured;
  }

  /**
   * What a verdict on a drain does. `drain` is the decision's DrainStarting record; `previous` what the latest
   * earlier verdict on the same decision did (null if none). Nothing is stored here.
   */
  judge(drain: AuditRecord | null, previous: ThresholdMove | null, verdict: VerdictKind): ThresholdMove {
    const none = (why: string, scorer: string | null = null): ThresholdMove => ({
      moved: false,
      scorer,
      verdict,
      from: null,
      to: null,
      why,
    });
    if (!this.feedback.enabled) return none('threshold feedback is off (actions.thresholdFeedback.enabled)');
    if (drain === null) return none('the decision is not a drain');
    const scorer = typeof drain.details.scorer === 'string' ? drain.details.scorer : null;
    if (drain.actor !== 'auto') return none('an operator drain is not a scorer alarm');
    if (scorer === null) return none('the drain was not raised by a scorer (probes) or did not record one');
    const counted = previous !== null && isCounted(previous) && previous.scorer === scorer ? previous : null;
    if (counted?.verdict === verdict) return none('this decision is already counted with the same verdict', scorer);
    const undo = counted ? counted.to - counted.from : 0;
    const from = this.of(scorer);
    const to = moveThreshold(from, verdict, this.feedback, Number.isFinite(undo) ? undo : 0);
    const bounded = to === this.feedback.min || to === this.feedback.max;
    const why = counted
      ? `verdict changed from ${counted.verdict} to ${verdict}: the earlier move is taken back`
      : verdict === 'false_alarm'
        ? `false alarm: threshold raised by up to ${this.feedback.falseAlarmStep}`
        : `confirmed drain: threshold lowered by up to ${this.feedback.trueAlarmStep}`;
    return {
      moved: to !== from,
      scorer,
      verdict,
      from,
      to,
      why: bounded ? `${why}; held at the bound [${this.feedback.min}, ${this.feedback.max}]` : why,
    };
  }

  /** Stores the move (and counts the verdict) before it takes effect, so a restart keeps it. */
  async commit(store: Store, move: ThresholdMove, previous: ThresholdMove | null, now: number): Promise<void> {
    if (!isCounted(move)) return;
    const old = this.records.get(move.scorer) ?? {
      scorer: move.scorer,
      threshold: this.configured,
      falseAlarms: 0,
      trueAlarms: 0,
      updatedAt: now,
    };
    const count = (v: VerdictKind | undefined, kind: VerdictKind) => (v === kind ? 1 : 0);
    const prev =
      previous !== null && isCounted(previous) && previous.scorer === move.scorer ? previous.verdict : undefined;
    const next: ThresholdRecord = {
      scorer: move.scorer,
      threshold: move.to,
      falseAlarms: Math.max(0, old.falseAlarms + count(move.verdict, 'false_alarm') - count(prev, 'false_alarm')),
      trueAlarms: Math.max(0, old.trueAlarms + count(move.verdict, 'true_alarm') - count(prev, 'true_alarm')),
      updatedAt: now,
    };
    await store.putThreshold(next);
    this.records.set(move.scorer, next);
  }

  view(): ThresholdsView {
    const scorers = [...this.records.values()].map((r) => ({ ...r, inCharge: r.scorer === this.scorer }));
    if (this.scorer !== null && !this.records.has(this.scorer)) {
      scorers.push({
        scorer: this.scorer,
        threshold: this.configured,
        falseAlarms: 0,
        trueAlarms: 0,
        updatedAt: 0,
        inCharge: true,
      });
    }
    return {
      inCharge: this.scorer,
      effective: this.current(),
      configured: this.configured,
      feedback: { ...this.feedback },
      scorers: scorers.sort((a, b) => a.scorer.localeCompare(b.scorer)),
    };
  }
}

/** A verdict counted toward a scorer's threshold (moved or held at the bound), as opposed to one that was not. */
export function isCounted(m: ThresholdMove): m is ThresholdMove & { scorer: string; from: number; to: number } {
  return m.scorer !== null && m.from !== null && m.to !== null;
}

/** The move an earlier Verdict audit record made, if it recorded one. */
export function moveOf(record: AuditRecord | undefined): ThresholdMove | null {
  const t = record?.details.threshold as Partial<ThresholdMove> | undefined;
  if (!t || typeof t !== 'object' || (t.verdict !== 'true_alarm' && t.verdict !== 'false_alarm')) return null;
  return {
    moved: t.moved === true,
    scorer: typeof t.scorer === 'string' ? t.scorer : null,
    verdict: t.verdict,
    from: typeof t.from === 'number' ? t.from : null,
    to: typeof t.to === 'number' ? t.to : null,
    why: String(t.why ?? ''),
  };
}
