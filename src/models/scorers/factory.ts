import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ForesightConfig } from '../../config/schema.js';
import { ForesightError } from '../../errors.js';
import { DEFAULT_WINDOW_MS } from '../../features/extractor.js';
import { FEATURE_NAMES } from '../../features/names.js';
import type { Logger } from '../../log.js';
import { type LimitOverrides, NodeLimits } from './limits.js';
import { enforceScoreContract, type Scorer, stateMethodsOf } from './scorer.js';
import { StatScorer } from './stat-scorer.js';
import { DEFAULT_TREND_LIMITS, MEMORY_LEVEL_FEATURE, type TrendLimits } from './trend.js';

/** What GET /api/model shows: which scorer decides, on what evidence it was judged. */
export interface ScorerInfo {
  name: string;
  version: string;
  kind: 'stat' | 'tfjs';
  threshold: number;
  trainedAt: string | null;
  /** Held-out figures: the tfjs manifest's, or the last `npm run evaluate` report for this scorer when present. */
  evaluation?: Record<string, unknown>;
  backend?: string;
  features?: number;
}

/** Builds the configured scorer behind the score contract (risk in [0, 1], enforced), with what the API shows of it. */
export async function createScorerWithInfo(
  config: Readonly<ForesightConfig>,
  logger: Logger,
): Promise<{ scorer: Scorer; info: ScorerInfo }> {
  const threshold = config.actions.guardrails.riskThreshold;
  const limits = trendLimitsOf(config);
  const limitOverrides = limitOverridesOf(config);
  if (config.model.kind === 'tfjs') {
    const { loadTfjsScorer } = await import('./tfjs-factory.js');
    const path = resolveModelPath(config.model.path);
    const { scorer, manifest, backend } = await loadTfjsScorer(path, logger, { limits, limitOverrides });
    const trainedWindowMs = manifest.windowMs ?? DEFAULT_WINDOW_MS;
    if (trainedWindowMs !== config.features.windowMs) {
      throw new ForesightError(
        'FORESIGHT_ERR_MODEL',
        `model ${path} was trained on ${trainedWindowMs / 1000} s feature windows, but features.windowMs is ` +
          `${config.features.windowMs}: its counts and rates would not mean what they meant in training. Set ` +
          `features.windowMs to ${trainedWindowMs}, or use model.kind: stat`,
        { details: { path, trainedWindowMs, windowMs: config.features.windowMs } },
      );
    }
    if (config.mode === 'sidecar' && manifest.training.source.startsWith('simulator')) {
      // Measured on the real-stack test cluster: every healthy node at risk 0.97 within a minute (docs/model.md).
      logger.warn(
        { path, source: manifest.training.source },
        'this model was trained on simulated telemetry and will not fit a real cluster: train one on this ' +
          "cluster's recorded telemetry (foresight train) and check it with foresight replay before it drains anything",
      );
    }
    return {
      scorer: watchLimits(
        enforceScoreContract(scorer),
        config,
        new NodeLimits({ ...manifest.trend.limits, ...limits }, limitOverrides),
        logger,
      ),
      info: {
        name: manifest.name,
        version: manifest.scorer,
        kind: 'tfjs',
        threshold,
        trainedAt: manifest.createdAt,
        evaluation: manifest.evaluation ?? undefined,
        backend,
        features: manifest.features.length,
      },
    };
  }
  const unknown = config.model.metrics.filter((m) => !FEATURE_NAMES.includes(m));
  if (unknown.length > 0) {
    throw new ForesightError(
      'FORESIGHT_ERR_CONFIG',
      `model.metrics names features the extractor does not produce: ${unknown.join(', ')} (see src/features/names.ts)`,
      { details: { unknown } },
    );
  }
  const scorer = new StatScorer({
    windowMs: config.features.windowMs,
    limits,
    limitOverrides,
    metrics: config.model.metrics,
  });
  return {
    scorer: watchLimits(
      enforceScoreContract(scorer),
      config,
      new NodeLimits({ ...DEFAULT_TREND_LIMITS, ...limits }, limitOverrides),
      logger,
    ),
    info: {
      name: 'statistical',
      version: scorer.name,
      kind: 'stat',
      threshold,
      trainedAt: null,
      evaluation: readEvaluation('stat'),
    },
  };
}

/** The cluster-wide limits the config sets (the rest stay the scorer's or the model's). */
export function trendLimitsOf(config: Readonly<ForesightConfig>): Partial<TrendLimits> {
  const { sets: _sets, nodes: _nodes, ...cluster } = config.model.limits;
  return Object.fromEntries(Object.entries(cluster).filter(([, v]) => v !== undefined));
}

/** Per-set and per-node limits over the cluster-wide ones (model.limits.sets / .nodes). */
export function limitOverridesOf(config: Readonly<ForesightConfig>): LimitOverrides {
  return { sets: config.model.limits.sets, nodes: config.model.limits.nodes };
}

/**
 * Warns once per node, in sidecar mode, when a node reports more memory in use than the memory limit the forecasts
 * use: every memory forecast of that node then reads "exhausted now". The usual cause is configuration, not a leak:
 * the node-exporter profile reports the whole host's used memory, which passes the simulator's 2048 MiB on most hosts.
 */
function watchLimits(scorer: Scorer, config: Readonly<ForesightConfig>, limits: NodeLimits, logger: Logger): Scorer {
  if (config.mode !== 'sidecar') return scorer;
  const warned = new Set<string>();
  return {
    name: scorer.name,
    ...stateMethodsOf(scorer),
    score(vectors) {
      for (const v of vectors) {
        const used = v.features?.[MEMORY_LEVEL_FEATURE];
        const limitMb = limits.of(v.nodeId, v.setId).memoryLimitMb;
        if (used === undefined || !(used > limitMb) || warned.has(v.nodeId)) continue;
        warned.add(v.nodeId);
        const source = limits.sourceOf(v.nodeId, v.setId, 'memoryLimitMb');
        const configured = source !== 'cluster' || config.model.limits.memoryLimitMb !== undefined;
        logger.warn(
          { nodeId: v.nodeId, usedMb: Math.round(used), memoryLimitMb: limitMb, configured, source },
          `node ${v.nodeId} reports ${Math.round(used)} MiB of memory in use, above the ${limitMb} MiB ` +
            `the memory forecasts take as its limit${configured ? '' : ' (the simulator default)'}: they read ` +
            '"exhausted now". Set model.limits.memoryLimitMb (or model.limits.nodes.<id> / .sets.<id> for hosts ' +
            "that differ) to where the node runs out (the host's RAM with the node-exporter profile)",
        );
      }
      return scorer.score(vectors);
    },
  };
}

export async function createScorer(config: Readonly<ForesightConfig>, logger: Logger): Promise<Scorer> {
  return (await createScorerWithInfo(config, logger)).scorer;
}

/** The summary of the last held-out evaluation, if `npm run evaluate` has been run here. */
function readEvaluation(scorer: string): Record<string, unknown> | undefined {
  const file = resolve(PACKAGE_ROOT, 'var/evaluation', `${scorer}.json`);
  if (!existsSync(file)) return undefined;
  try {
    const report = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return (report.model as Record<string, unknown> | undefined) ?? { file };
  } catch {
    return undefined;
  }
}

/** The package root (three levels above this module, in src/ and in dist/ alike). */
const PACKAGE_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

/**
 * A relative model path means the working directory when it exists there (an operator's own model), else the
 * shipped models/ of the installed package, so a global install run by systemd finds its default model.
 */
export function resolveModelPath(path: string): string {
  if (isAbsolute(path) || existsSync(path)) return resolve(path);
  return resolve(PACKAGE_ROOT, path);
}
