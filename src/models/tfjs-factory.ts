import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Scorer } from './scorer.js';

/** Loads the TensorFlow.js scorer from a model artefact directory. Kept apart so the stat scorer never loads TF.js. */
export async function createTfjsScorer(_path: string, _logger: Logger): Promise<Scorer> {
  throw new ForesightError('FORESIGHT_ERR_MODEL', 'the TensorFlow.js scorer is not wired yet');
}
