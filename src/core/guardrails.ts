/**
 * Guardrails: pure checks that decide whether one drain may proceed, in the spirit of a Kubernetes
 * PodDisruptionBudget, evaluated per dispatcher set. No I/O and no clock: the caller passes `now` and the
 * current view of the cluster, so the same inputs always give the same verdict (and property tests can replay them).
 */
import { Cron } from 'croner';
import { ForesightError } from '../errors.js';
import type { NodeLifecycleState } from '../messages.js';

/** Every reason a drain can be refused; audit records and `explain()` name one of these. */
export type GuardrailName =
  | 'unknown_node'
  | 'not_in_service'
  | 'manual_override'
  | 'pinned'
  | 'maintenance_window'
  | 'unobserved'
  | 'risk_recovered'
  | 'cooldown'
  | 'rate_limit'
  | 'max_out_of_service'
  | 'max_out_of_service_percent'
  | 'min_active'
  /** Many nodes of the set look bad at once: the cause is shared (database, upstream link), draining would not help. */
  | 'shared_fault';

/** A maintenance window, either recurring (cron, croner syntax) with a length, or one fixed interval. */
export type MaintenanceWindowSpec =
  | { name?: string; cron: string; durationMs: number; timezone?: string }
  | { name?: string; start: number; end: number };

export interface GuardrailConfig {
  /** Most nodes of one set that may be out of service at once (draining, restarting, recovering or down). */
  maxOutOfServicePerSet: number;
  /**
   * Same cap as a share of the set, 0–100. The allowed count is floor(total × pct / 100) but at least 1, so that a
   * small set can still lose one node; `minActivePerSet` is the guard that keeps small sets alive.
   */
  maxOutOfServicePercent: number;
  /** Healthy (in rotation and observed) nodes that must remain in each set after a drain. */
  minActivePerSet: number;
  /** Minimum time between two drains of one node, ms. */
  cooldownMs: number;
  /** Automatic drains started per rolling hour, all sets together. */
  maxDrainsPerHour: number;
  /** While one is open, automation is suspended (manual operations still work). */
  maintenanceWindows: MaintenanceWindowSpec[];
}

export const DEFAULT_GUARDRAILS: GuardrailConfig = {
  maxOutOfServicePerSet: 1,
  maxOutOfServicePercent: 34,
  minActivePerSet: 2,
  cooldownMs: 30 * 60_000,
  maxDrainsPerHour: 6,
  maintenanceWindows: [],
};

/** What the guardrails need to know about one node. */
export interface NodeView {
  nodeId: string;
  setId: number;
  state: NodeLifecycleState;
  /** Taking new calls now: lifecycle `active` and the dispatcher has it neither disabled nor inactive. */
  inService: boolean;
  /** The node's last score was observed. A node with no score yet is unobserved. */
  observed: boolean;
  /**
   * False when the node's own telemetry says it is down (AMI session lost, not FullyBooted): it sends data but takes
   * no calls, so it is no capacity to vouch for. Absent means up.
   */
  up?: boolean;
  /** Latest risk, null when no score arrived yet. */
  risk: number | null;
  pinned: boolean;
  manualOverride: string | null;
  lastDrainAt: number | null;
}

/** Capacity of one dispatcher set, counted from NodeViews. */
export interface SetSummary {
  setId: number;
  total: number;
  outOfService: number;
  /** In service and observed: the only capacity Foresight can vouch for. */
  healthy: number;
}

export interface DrainRequest {
  nodeId: string;
  /** `auto` for the model loop; anything else is an operator. */
  actor: string;
  /** Operator's explicit force: also bypasses the capacity caps and the minimum active. Ignored for `auto`. */
  force?: boolean;
  /** What an automatic drain rests on; one resting on the node's failing probes does not need a high model risk. */
  cause?: 'risk' | 'probes';
}

export interface GuardrailContext {
  config: GuardrailConfig;
  now: number;
  /** Risk at or above which an automatic drain is wanted; re-checked right before the drain acts. */
  riskThreshold: number;
  /** Start times of recent drains (any actor), for the rate limit. */
  recentDrains: readonly number[];
  /** Name of the open maintenance window, or null. */
  maintenance: string | null;
}

export type GuardrailVerdict =
  | { allowed: true; bypassed: GuardrailName[] }
  | { allowed: false; guardrail: GuardrailName; detail: string; details: Record<string, unknown> };

export function isAuto(actor: string): boolean {
  return actor === 'auto';
}

export function summarizeSets(nodes: Iterable<NodeView>): Map<number, SetSummary> {
  const sets = new Map<number, SetSummary>();
  for (const n of nodes) {
    let s = sets.get(n.setId);
    if (!s) {
      s = { setId: n.setId, total: 0, outOfService: 0, healthy: 0 };
      sets.set(n.setId, s);
    }
    s.total++;
    if (!n.inService) s.outOfService++;
    else if (n.observed && n.up !== false) s.healthy++;
  }
  return sets;
}

/** Out-of-service nodes the percent cap allows in a set of `total` nodes. */
export function percentCap(total: number, percent: number): number {
  return Math.max(1, Math.floor((total * percent) / 100));
}

export function drainsInLastHour(recentDrains: readonly number[], now: number): number {
  let n = 0;
  for (const t of recentDrains) if (t > now - 3_600_000 && t <= now) n++;
  return n;
}

function refuse(guardrail: GuardrailName, detail: string, details: Record<string, unknown> = {}): GuardrailVerdict {
  return { allowed: false, guardrail, detail, details };
}

/**
 * Decides one drain. Automatic drains pass every check; an operator's drain skips the automation-only checks
 * (pinned, maintenance, unobserved, risk, cooldown, rate limit) but keeps the capacity checks unless `force` is set.
 */
export function evaluateDrain(
  req: DrainRequest,
  node: NodeView | undefined,
  set: SetSummary | undefined,
  ctx: GuardrailContext,
): GuardrailVerdict {
  if (!node || !set) return refuse('unknown_node', `node ${req.nodeId} is not configured`);
  const auto = isAuto(req.actor);
  const force = !auto && req.force === true;
  const bypassed: GuardrailName[] = [];
  const { config, now } = ctx;

  if (node.state !== 'active') {
    return refuse('not_in_service', `node is already ${node.state}`, { state: node.state });
  }
  if (node.manualOverride !== null) {
    if (!force) {
      return refuse('manual_override', `a person changed the node by hand: ${node.manualOverride}`, {
        manualOverride: node.manualOverride,
      });
    }
    bypassed.push('manual_override');
  }

  if (auto) {
    if (node.pinned) return refuse('pinned', 'node is pinned by an operator');
    if (ctx.maintenance !== null) {
      return refuse('maintenance_window', `automation suspended by maintenance window ${ctx.maintenance}`, {
        window: ctx.maintenance,
      });
    }
    if (!node.observed) return refuse('unobserved', 'no telemetry in the last window: not drained on blindness');
    if (req.cause !== 'probes' && (node.risk === null || node.risk < ctx.riskThreshold)) {
      return refuse('risk_recovered', 'risk fell below the threshold before the drain could act', {
        risk: node.risk,
        threshold: ctx.riskThreshold,
      });
    }
    if (node.lastDrainAt !== null && now - node.lastDrainAt < config.cooldownMs) {
      return refuse('cooldown', 'node was drained recently', {
        lastDrainAt: node.lastDrainAt,
        cooldownMs: config.cooldownMs,
        remainingMs: config.cooldownMs - (now - node.lastDrainAt),
      });
    }
    const lastHour = drainsInLastHour(ctx.recentDrains, now);
    if (lastHour >= config.maxDrainsPerHour) {
      return refuse('rate_limit', `${lastHour} drains in the last hour`, {
        drainsLastHour: lastHour,
        maxDrainsPerHour: config.maxDrainsPerHour,
      });
    }
  }

  const outAfter = set.outOfService + 1;
  const healthyAfter = set.healthy - (node.inService && node.observed && node.up !== false ? 1 : 0);
  const capacity = { setId: set.setId, total: set.total, outOfService: set.outOfService, healthy: set.healthy };
  const checks: [GuardrailName, boolean, string][] = [
    [
      'max_out_of_service',
      outAfter > config.maxOutOfServicePerSet,
      `set ${set.setId} would have ${outAfter} nodes out (max ${config.maxOutOfServicePerSet})`,
    ],
    [
      'max_out_of_service_percent',
      outAfter > percentCap(set.total, config.maxOutOfServicePercent),
      `set ${set.setId} would have ${outAfter} of ${set.total} nodes out (max ${config.maxOutOfServicePercent}%)`,
    ],
    [
      'min_active',
      healthyAfter < config.minActivePerSet,
      `set ${set.setId} would keep ${healthyAfter} healthy nodes (min ${config.minActivePerSet})`,
    ],
  ];
  for (const [name, violated, detail] of checks) {
    if (!violated) continue;
    if (!force) return refuse(name, detail, capacity);
    bypassed.push(name);
  }
  return { allowed: true, bypassed };
}

/** Compiles maintenance windows once; the returned function tells which window (if any) is open at `now`. */
export function compileMaintenanceWindows(specs: readonly MaintenanceWindowSpec[]): (now: number) => string | null {
  const compiled = specs.map((spec, i) => {
    const name = spec.name ?? `window-${i}`;
    if ('cron' in spec) {
      if (!(spec.durationMs > 0)) {
        throw new ForesightError('FORESIGHT_ERR_CONFIG', `maintenance window ${name}: durationMs must be > 0`);
      }
      let cron: Cron;
      try {
        cron = new Cron(spec.cron, { paused: true, ...(spec.timezone ? { timezone: spec.timezone } : {}) });
      } catch (err) {
        throw new ForesightError('FORESIGHT_ERR_CONFIG', `maintenance window ${name}: bad cron ${spec.cron}`, {
          cause: err,
        });
      }
      // Open iff some occurrence t satisfies now - duration < t <= now, i.e. the first run after now - duration.
      return (now: number) => {
        const next = cron.nextRun(new Date(now - spec.durationMs));
        return next !== null && next.getTime() <= now ? name : null;
      };
    }
    if (!(spec.end > spec.start)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `maintenance window ${name}: end must be after start`);
    }
    return (now: number) => (now >= spec.start && now < spec.end ? name : null);
  });
  return (now) => {
    for (const open of compiled) {
      const name = open(now);
      if (name !== null) return name;
    }
    return null;
  };
}

export function validateGuardrails(config: GuardrailConfig): void {
  const bad: string[] = [];
  const nonNegInt = (k: keyof GuardrailConfig) => {
    const v = config[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) bad.push(`${k} must be a non-negative integer`);
  };
  nonNegInt('maxOutOfServicePerSet');
  nonNegInt('minActivePerSet');
  nonNegInt('maxDrainsPerHour');
  if (!(config.cooldownMs >= 0)) bad.push('cooldownMs must be >= 0');
  if (!(config.maxOutOfServicePercent >= 0 && config.maxOutOfServicePercent <= 100)) {
    bad.push('maxOutOfServicePercent must be within 0..100');
  }
  if (bad.length > 0) throw new ForesightError('FORESIGHT_ERR_CONFIG', `guardrails: ${bad.join('; ')}`);
}
