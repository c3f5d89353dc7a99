import type { ActionEngineOptions } from '../actions/engine.js';
import type { ForesightConfig } from '../config/schema.js';

/** The action engine's guardrails, lifecycle and timeouts as the config names them; one mapping for every runtime. */
export function engineSettings(
  config: Readonly<ForesightConfig>,
): Pick<ActionEngineOptions, 'dryRun' | 'guardrails' | 'lifecycle' | 'timeouts'> {
  const g = config.actions.guardrails;
  const t = config.actions.timeouts;
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
    },
    timeouts: {
      drainMs: t.drainTimeoutMs,
      restartMs: t.restartTimeoutMs,
      recoverMs: t.recoveryTimeoutMs,
      dispatcherCallMs: config.actions.dispatcher.timeoutMs,
    },
  };
}
