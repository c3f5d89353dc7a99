import { ForesightError } from '../../errors.js';
import type { FeatureVector, NodeScore, StateImport, WindowEvidence } from '../../messages.js';

export type { StateImport };

/**
 * Every model sits behind this contract. A scorer sees a batch of vectors (any mix of nodes and windows) and returns
 * one NodeScore per vector, in the same order. Scorers may keep per-node state; they must not throw on odd values.
 */
export interface Scorer {
  /** Name and version, e.g. `stat-v1`; copied into NodeScore.scorer. */
  readonly name: string;
  score(vectors: readonly FeatureVector[]): NodeScore[];
  /** Learns from windows the user says were normal, before scoring (`foresight score --train`). Optional. */
  fit?(vectors: readonly FeatureVector[]): void | Promise<void>;
  /**
   * What the scorer has learnt per node (persistence runs, streaks), for a checkpoint; `include` picks the nodes.
   * Optional: a scorer without it starts cold on a replica that takes its nodes over.
   */
  exportStates?(include?: (nodeId: string) => boolean): ScorerNodeState[];
  /** Takes one node's state over; refused (with the reason) when it is another scorer's or does not check. */
  importState?(state: ScorerNodeState): StateImport;
}

/** One node's learnt state in a scorer, as of the end of window `windowEnd`; `scorer` names who can read `state`. */
export interface ScorerNodeState {
  scorer: string;
  nodeId: string;
  windowEnd: number;
  state: unknown;
}

/** A state this scorer cannot take: another scorer's, or not its own newer knowledge. */
export function foreignState(s: ScorerNodeState, name: string): string | null {
  if (typeof s !== 'object' || s === null) return 'not an object';
  if (s.scorer !== name) return `state of ${String(s.scorer)}, not of ${name}`;
  if (typeof s.nodeId !== 'string' || s.nodeId.length === 0 || !Number.isFinite(s.windowEnd)) {
    return 'no node id or window end';
  }
  return null;
}

/** Feature every scorer reads: whether the node answered at window end. */
export const UP_FEATURE = 'node.up.last';

/**
 * The calls a window counted and who counted them, plus the window's evidence, as every score carries them. A window
 * in which nobody counted the calls gives null: the decision core waits on unknown, it never reads it as zero.
 */
export function evidenceFieldsOf(v: FeatureVector): Pick<NodeScore, 'activeCalls' | 'activeCallsSource' | 'evidence'> {
  const evidence: WindowEvidence = v.evidence ?? { calls: null, upReported: null, probe: null };
  return {
    activeCalls: evidence.calls?.count ?? null,
    activeCallsSource: evidence.calls?.source ?? null,
    evidence,
  };
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
    ...evidenceFieldsOf(v),
    up: false,
  };
}

/**
 * The score of an observed window, the fields every scorer fills alike. A risk that is not finite (arithmetic gone
 * wrong on odd input) reads as 0: a scorer's own fault must never drain a node.
 */
export function observedScore(
  v: FeatureVector,
  scorer: string,
  s: Pick<NodeScore, 'risk' | 'timeToFailureS' | 'explanation' | 'up' | 'rawScore' | 'warmup'>,
): NodeScore {
  const extra: Pick<NodeScore, 'rawScore' | 'warmup'> = {};
  if (s.rawScore !== undefined) extra.rawScore = Number.isFinite(s.rawScore) ? s.rawScore : 0;
  if (s.warmup) extra.warmup = true;
  return {
    nodeId: v.nodeId,
    setId: v.setId,
    ts: v.windowEnd,
    risk: Number.isFinite(s.risk) ? Math.min(1, Math.max(0, s.risk)) : 0,
    timeToFailureS: s.timeToFailureS,
    explanation: s.explanation,
    scorer,
    observed: true,
    ...evidenceFieldsOf(v),
    up: s.up,
    ...extra,
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
    if (s.rawScore !== undefined && !(Number.isFinite(s.rawScore) && s.rawScore >= 0)) {
      throw violation(scorer, s, `rawScore ${s.rawScore} is not a finite number >= 0`);
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

/** A wrapper's pass-through of the wrapped scorer's checkpoint methods, where it has them. */
export function stateMethodsOf(scorer: Scorer): Pick<Scorer, 'exportStates' | 'importState'> {
  return {
    ...(scorer.exportStates
      ? { exportStates: (include?: (nodeId: string) => boolean) => scorer.exportStates!(include) }
      : {}),
    ...(scorer.importState ? { importState: (state: ScorerNodeState) => scorer.importState!(state) } : {}),
  };
}

/** Wraps a scorer so that a NaN or out-of-range risk fails loudly at the boundary instead of driving drains. */
export function enforceScoreContract(scorer: Scorer): Scorer {
  return {
    name: scorer.name,
    ...(scorer.fit ? { fit: (vectors: readonly FeatureVector[]) => scorer.fit!(vectors) } : {}),
    ...stateMethodsOf(scorer),
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
