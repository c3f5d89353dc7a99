/** Wires the model lifecycle (src/models/lifecycle/) to the loop's bus, store and config. */
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Store } from '../actions/ports.js';
import type { ApiModel } from '../api/deps.js';
import type { Bus } from '../bus/port.js';
import { telemetrySlices } from '../bus/telemetry-range.js';
import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditRecord } from '../messages.js';
import { saveModelArtefact } from '../models/artefact/format.js';
import { recordWindows, trainCandidate } from '../models/lifecycle/cycle.js';
import { ModelLifecycle } from '../models/lifecycle/manager.js';
import { fileState } from '../models/lifecycle/state.js';
import {
  createScorerWithInfo,
  limitOverridesOf,
  resolveModelPath,
  type ScorerInfo,
  trendLimitsOf,
} from '../models/scorers/factory.js';
import { enforceScoreContract, type Scorer } from '../models/scorers/scorer.js';
import { StatScorer } from '../models/scorers/stat-scorer.js';
import { TfjsScorer } from '../models/scorers/tfjs-scorer.js';
import { spansFromVerdicts } from '../models/training/labels.js';

export interface LifecycleWiring {
  lifecycle: ModelLifecycle;
  /** What the API serves at /api/model and POST /api/model/rollback. */
  model: ApiModel;
}

/** The lifecycle's ports on this loop's parts; `stat` is the configured (live) statistical scorer. */
export async function createModelLifecycle(o: {
  config: Readonly<ForesightConfig>;
  logger: Logger;
  bus: Bus;
  store: Store;
  stat: Scorer;
  statInfo: ScorerInfo;
  nodes: readonly { nodeId: string; setId: number }[];
  startedAt: number;
}): Promise<LifecycleWiring> {
  const { config, bus, store } = o;
  const lc = config.model.lifecycle;
  if (config.model.kind !== 'stat') {
    throw new ForesightError(
      'FORESIGHT_ERR_CONFIG',
      'model.lifecycle.enabled needs model.kind: stat: the lifecycle decides when its own model takes decisions over',
    );
  }
  const logger = o.logger.child({ component: 'model-lifecycle' });
  const windowMs = config.features.windowMs;
  const limits = trendLimitsOf(config);
  const limitOverrides = limitOverridesOf(config);
  const dir = resolveModelPath(lc.dir);
  const { loadTfjsScorer } = await import('../models/scorers/tfjs-factory.js');
  const lifecycle = await ModelLifecycle.start(
    {
      stat: o.stat,
      freshStat: () => new StatScorer({ windowMs, limits, limitOverrides }),
      record: (fromTs, toTs) =>
        recordWindows(telemetrySlices(bus, { fromTs, toTs }, { sliceMs: 600_000, logger }), {
          fromTs,
          toTs,
          source: `bus ${config.bus.kind} telemetry@${new Date(fromTs).toISOString()}..${new Date(toTs).toISOString()}`,
          extractor: {
            nodes: o.nodes.map((n) => ({ nodeId: n.nodeId, setId: n.setId })),
            windowMs,
            allowedLatenessMs: config.features.allowedLatenessMs,
          },
        }),
      labels: async (fromTs, toTs) => {
        const audit = await store.queryAudit({ since: fromTs - 86_400_000, limit: 100_000 });
        const spans = spansFromVerdicts(audit);
        const inRange = (s: { from: number; to: number }) => s.to > fromTs && s.from < toTs;
        return { incidents: spans.confirmed.filter(inRange), falseDrains: spans.false.filter(inRange) };
      },
      train: async (recording, t) => {
        const name = `cluster-${new Date(t.at).toISOString().replace(/[:.]/g, '-')}`;
        const trained = await trainCandidate(recording, {
          ...t,
          windowMs,
          name,
          epochs: lc.epochs,
          seed: lc.seed,
          limits,
          logger,
        });
        const out = path.join(dir, name);
        const manifest = await saveModelArtefact(trained.tf, out, trained.model, {
          ...trained.manifest,
          createdAt: new Date(t.at).toISOString(),
        });
        logger.info({ out, threshold: manifest.calibration.threshold }, 'candidate model trained');
        // Scored as a loaded one would be: with the per-set and per-node limits of the config.
        const scorer = new TfjsScorer({ manifest, model: trained.model, tf: trained.tf }, { limits, limitOverrides });
        return { ref: { kind: 'tfjs', name, path: out }, scorer: enforceScoreContract(scorer) };
      },
      load: async (ref) =>
        enforceScoreContract((await loadTfjsScorer(ref.path, logger, { limits, limitOverrides })).scorer),
      // Refused candidates are never loaded again; only a model in charge or kept for rollback stays on disk.
      discard: (ref) => {
        if (path.dirname(ref.path) === dir) rmSync(ref.path, { recursive: true, force: true });
      },
      audit: (record) => store.appendAudit(record),
      state: fileState(dir),
      logger,
    },
    {
      recordMs: lc.recordMs,
      heldBackFraction: lc.heldBackFraction,
      shadowMs: lc.shadowMs,
      shadowMinWindows: lc.shadowMinWindows,
      schedule: lc.schedule,
      threshold: config.actions.guardrails.riskThreshold,
      rule: { minWindows: lc.minValidationWindows },
    },
    o.startedAt,
  );
  return {
    lifecycle,
    model: {
      info: () => {
        const s = lifecycle.status();
        const kind = s.inCharge.kind;
        return {
          ...o.statInfo,
          name: s.inCharge.name,
          version: kind === 'stat' ? o.statInfo.version : 'tfjs-ae-v1',
          kind,
          trainedAt: kind === 'stat' ? null : s.inCharge.since,
          evaluation: kind === 'stat' ? o.statInfo.evaluation : (s.inCharge.validation ?? undefined),
          ...s,
        };
      },
      rollback: (ctx) => lifecycle.rollback(ctx.actor, ctx.reason),
    },
  };
}

/**
 * The loop's scorer and /api/model: the configured scorer as is, or, with model.lifecycle.enabled, the lifecycle
 * around it (which then is the scorer, and serves who is in charge).
 */
export async function lifecycleParts(
  o: Omit<Parameters<typeof createModelLifecycle>[0], 'stat' | 'statInfo'>,
): Promise<{
  scorer: Scorer;
  /** What the config's own scorer is: the one in charge unless the lifecycle promotes a model. */
  scorerInfo: ScorerInfo;
  model?: ApiModel & { close: () => Promise<void>; follow: (sink: (record: AuditRecord) => void) => void };
  lifecycle?: ModelLifecycle;
}> {
  const { scorer: stat, info: scorerInfo } = await createScorerWithInfo(o.config, o.logger);
  if (!o.config.model.lifecycle.enabled) return { scorer: stat, scorerInfo };
  const { lifecycle, model } = await createModelLifecycle({ ...o, stat, statInfo: scorerInfo });
  return {
    scorer: lifecycle,
    scorerInfo,
    lifecycle,
    model: {
      ...model,
      close: () => lifecycle.stop(),
      follow: (sink) => {
        lifecycle.onAudit = sink;
      },
    },
  };
}
