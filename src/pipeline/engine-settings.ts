import type { ActionEngineOptions } from '../actions/engine.js';
import type { ForesightConfig } from '../config/schema.js';
import { resolveFeedback, type ThresholdFeedback } from '../core/thresholds.js';

/** The action engine's guardrails, lifecycle and timeouts as the config names them; one mapping for every runtime. */
export function engineSettings(
  config: Readonly<ForesightConfig>,
): Pick<ActionEngineOptions, 'dryRun' | 'guardrails' | 'lifecycle' | 'timeouts' | 'policy' | 'feedback'> {
  const g = config.actions.guardrails;
  const t = config.actions.timeouts;
  const e = config.actions.evidence;
  return {
    dryRun: config.actions.dryRun,
    guardrails: {
      maxOutOfServicePerSet: g.maxOutOfService,
      maxOutOfServicePercent: g.maxOutOfServicePct,
      minActivePerSet: g.minActive,
      cooldownMs: g.cooldownMs,
      maxDrainsPerHour: g.maxDrainsPerHour,
      maintenanceWindows: [...g.maintenanceWindows],
    },
    lifecycle: {
      riskThreshold: g.riskThreshold,
      consecutiveWindows: g.hysteresisWindows,
      recoverThreshold: g.recoverThreshold,
      recoverWindows: e.healthyProbeWindows,
    },
    policy: {
      maxRestartsPerHour: g.maxRestartsPerHour,
      sharedFaultShare: g.sharedFaultShare,
      probationMs: t.probationMs,
      probeMaxLossPct: e.probeMaxLossPct,
      probeLossMarginPct: e.probeLossMarginPct,
      probeRttFactor: e.probeRttFactor,
      probeRttMarginMs: e.probeRttMarginMs,
      probeFailDrainMs: e.probeFailDrainMs,
    },
    feedback: thresholdFeedbackOf(config),
    timeouts: {
      drainMs: t.drainTimeoutMs,
      restartMs: t.restartTimeoutMs,
      recoverMs: t.recoveryTimeoutMs,
      dispatcherCallMs: config.actions.dispatcher.timeoutMs,
    },
  };
}

/** The verdict feedback with its bound resolved (config min/max, else the default bound around riskThreshold). */
export function thresholdFeedbackOf(config: Readonly<ForesightConfig>): ThresholdFeedback {
  const g = config.actions.guardrails;
  return resolveFeedback(config.actions.thresholdFeedback, g.riskThreshold, g.recoverThreshold);
}
