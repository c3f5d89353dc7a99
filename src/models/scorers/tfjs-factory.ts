import type { Logger } from '../../log.js';
import { loadModelArtefact, type ModelManifest } from '../artefact/format.js';
import type { Scorer } from './scorer.js';
import { TfjsScorer, type TfjsScorerOptions } from './tfjs-scorer.js';

/**
 * Loads the TensorFlow.js scorer from a model artefact directory; a model that does not match the feature pipeline is
 * refused here, at start-up. Kept apart so the statistical scorer never loads TensorFlow.js.
 */
export async function loadTfjsScorer(
  path: string,
  logger: Logger,
  options: TfjsScorerOptions = {},
): Promise<{ scorer: Scorer; manifest: ModelManifest; backend: string }> {
  const artefact = await loadModelArtefact(path, { logger });
  return { scorer: new TfjsScorer(artefact, options), manifest: artefact.manifest, backend: artefact.backend };
}
