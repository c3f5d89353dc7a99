import type { ForesightConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { enforceScoreContract, type Scorer } from './scorer.js';
import { StatScorer } from './stat-scorer.js';

/** Builds the configured scorer behind the score contract (risk in [0, 1], enforced). */
export async function createScorer(config: Readonly<ForesightConfig>, logger: Logger): Promise<Scorer> {
  if (config.model.kind === 'tfjs') {
    const { createTfjsScorer } = await import('./tfjs-factory.js');
    return enforceScoreContract(await createTfjsScorer(config.model.path, logger));
  }
  return enforceScoreContract(new StatScorer());
}
