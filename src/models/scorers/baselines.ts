import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { FeatureVector, NodeScore } from '../../messages.js';
import { evidenceFieldsOf, isUp, type Scorer, unobservedScore } from './scorer.js';

function baselineScore(v: FeatureVector, scorer: string, risk: number): NodeScore {
  if (!v.observed) return unobservedScore(v, scorer);
  return {
    nodeId: v.nodeId,
    setId: v.setId,
    ts: v.windowEnd,
    risk,
    timeToFailureS: null,
    explanation: [],
    scorer,
    observed: true,
    ...evidenceFieldsOf(v),
    up: isUp(v),
  };
}

/** Never predicts a failure: the zero point of every evaluation (no drains, every failure missed). */
export class NullScorer implements Scorer {
  readonly name = 'null-v1';

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    return vectors.map((v) => baselineScore(v, this.name, 0));
  }
}

/** Uniform random risk from a seeded generator: what a model must clearly beat. Same seed, same sequence. */
export class RandomScorer implements Scorer {
  readonly name = 'random-v1';
  private readonly rng;

  constructor(seed = 42) {
    this.rng = xoroshiro128plus(seed | 0);
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    return vectors.map((v) => baselineScore(v, this.name, v.observed ? uniformFloat64(this.rng) : 0));
  }
}
