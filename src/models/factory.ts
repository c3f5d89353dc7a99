import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ForesightConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { enforceScoreContract, type Scorer } from './scorer.js';
import { StatScorer } from './stat-scorer.js';

/** Builds the configured scorer behind the score contract (risk in [0, 1], enforced). */
export async function createScorer(config: Readonly<ForesightConfig>, logger: Logger): Promise<Scorer> {
  if (config.model.kind === 'tfjs') {
    const { createTfjsScorer } = await import('./tfjs-factory.js');
    return enforceScoreContract(await createTfjsScorer(resolveModelPath(config.model.path), logger));
  }
  return enforceScoreContract(new StatScorer());
}

/** The package root (two levels above this module, in src/ and in dist/ alike). */
const PACKAGE_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

/**
 * A relative model path means the working directory when it exists there (an operator's own model), else the
 * shipped models/ of the installed package, so a global install run by systemd finds its default model.
 */
export function resolveModelPath(path: string): string {
  if (isAbsolute(path) || existsSync(path)) return resolve(path);
  return resolve(PACKAGE_ROOT, path);
}
