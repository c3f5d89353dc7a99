import { ForesightError } from '../errors.js';
import type { FeatureVector, NodeScore } from '../messages.js';

/**
 * Every model sits behind this contract. A scorer sees a batch of vectors (any mix of nodes and windows) and returns
 * one NodeScore per vector, in the same order. Scorers may keep per-node state; they must not throw on odd values.
 */
export interface Scorer {
  /** Name and version, e.g. `stat-v1`; copied into NodeScore.scorer. */
  readonly name: string;
  score(vectors: readonly FeatureVector[]): NodeScore[];
}

/** Features every scorer reads: whether the node answered, and its active channels, at window end. */
export const UP_FEATURE = 'node.up.last';
export const CALLS_FEATURE = 'channels.active.last';

/** Active channels at window end, read from the vector (0 when missing or odd). */
export function activeCallsOf(v: FeatureVector): number {
  const calls = v.features[CALLS_FEATURE];
  return typeof calls === 'number' && Number.isFinite(calls) && calls > 0 ? calls : 0;
}

/** Whether the node answered at window end: only an observed node reporting node.up >= 0.5 counts as up. */
export function isUp(v: FeatureVector): boolean {
  const up = v.features[UP_FEATURE];
  return v.observed && typeof up === 'number' && up >= 0.5;
}

/** The score of a node nobody heard from: no risk claimed, `observed=false` so the action module stays careful. */
export function unobservedScore(v: FeatureVector, scorer: string): NodeScore {
  return {
    nodeId: v.nodeId,
    setId: v.setId,
    ts: v.windowEnd,
    risk: 0,
    timeToFailureS: null,
    explanation: [],
    scorer,
    observed: false,
    activeCalls: 0,
    up: false,
  };
}

function violation(scorer: string, score: NodeScore | undefined, what: string): ForesightError {
  return new ForesightError('FORESIGHT_ERR_MODEL', `scorer ${scorer} broke the score contract: ${what}`, {
    details: { scorer, nodeId: score?.nodeId, risk: score?.risk, timeToFailureS: score?.timeToFailureS },
  });
}

/** Throws FORESIGHT_ERR_MODEL unless `scores` answers `vectors` one to one with valid risks and times. */
export function checkScores(scorer: string, vectors: readonly FeatureVector[], scores: readonly NodeScore[]): void {
  if (!Array.isArray(scores) || scores.length !== vectors.length) {
    throw violation(scorer, undefined, `returned ${scores?.length} scores for ${vectors.length} vectors`);
  }
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (typeof s !== 'object' || s === null) throw violation(scorer, undefined, `score ${i} is not an object`);
    if (typeof s.risk !== 'number' || !Number.isFinite(s.risk) || s.risk < 0 || s.risk > 1) {
      throw violation(scorer, s, `risk ${s.risk} is not in [0, 1]`);
    }
    const ttf = s.timeToFailureS;
    if (ttf !== null && (typeof ttf !== 'number' || !Number.isFinite(ttf) || ttf < 0)) {
      throw violation(scorer, s, `timeToFailureS ${ttf} is neither null nor a finite number >= 0`);
    }
    if (s.nodeId !== vectors[i]!.nodeId) {
      throw violation(scorer, s, `score ${i} is for ${s.nodeId}, vector is for ${vectors[i]!.nodeId}`);
    }
    for (const c of s.explanation ?? []) {
      if (!Number.isFinite(c.weight) || !Number.isFinite(c.value)) {
        throw violation(scorer, s, `explanation of ${c.feature} is not finite`);
      }
    }
  }
}

/** Wraps a scorer so that a NaN or out-of-range risk fails loudly at the boundary instead of driving drains. */
export function enforceScoreContract(scorer: Scorer): Scorer {
  return {
    name: scorer.name,
    score(vectors) {
      let scores: NodeScore[];
      try {
        scores = scorer.score(vectors);
      } catch (err) {
        if (err instanceof ForesightError) throw err;
        throw new ForesightError('FORESIGHT_ERR_MODEL', `scorer ${scorer.name} failed`, { cause: err });
      }
      checkScores(scorer.name, vectors, scores);
      return scores;
    },
  };
}
