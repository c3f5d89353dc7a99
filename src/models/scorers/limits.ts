/**
 * Where each node's resources run out, for the time-to-exhaustion forecasts. Nodes differ (memory, size), so the
 * cluster-wide `model.limits` is the default and a dispatcher set or a single node may override any of its values:
 * node over set over cluster over the scorer's own (the simulator's, or what a model was trained with).
 */
import { DEFAULT_TREND_LIMITS, type TrendLimits } from './trend.js';

export interface LimitOverrides {
  /** By dispatcher set id (as a string: JSON object keys). */
  sets?: Readonly<Record<string, Partial<TrendLimits>>>;
  /** By node id. */
  nodes?: Readonly<Record<string, Partial<TrendLimits>>>;
}

/** Only the values given: an absent or undefined field leaves the level below in place. */
function defined(p: Partial<TrendLimits> | undefined): Partial<TrendLimits> {
  if (!p) return {};
  const out: Partial<TrendLimits> = {};
  for (const [k, v] of Object.entries(p) as [keyof TrendLimits, number | undefined][]) if (v !== undefined) out[k] = v;
  return out;
}

export class NodeLimits {
  readonly base: Readonly<TrendLimits>;
  private readonly overrides: LimitOverrides;
  /** Resolved per node: a forecast reads them every window. */
  private readonly cache = new Map<string, Readonly<TrendLimits>>();

  constructor(base: Readonly<TrendLimits> = DEFAULT_TREND_LIMITS, overrides: LimitOverrides = {}) {
    this.base = base;
    this.overrides = overrides;
  }

  /** Whether any set or node has limits of its own. */
  get overridden(): boolean {
    return Object.keys(this.overrides.sets ?? {}).length + Object.keys(this.overrides.nodes ?? {}).length > 0;
  }

  /** The limits of one node of one set. */
  of(nodeId: string, setId: number): Readonly<TrendLimits> {
    const key = `${setId}|${nodeId}`;
    let limits = this.cache.get(key);
    if (!limits) {
      limits = Object.freeze({
        ...this.base,
        ...defined(this.overrides.sets?.[String(setId)]),
        ...defined(this.overrides.nodes?.[nodeId]),
      });
      this.cache.set(key, limits);
    }
    return limits;
  }

  /** Which level set a node's value: for the warning that names what to change. */
  sourceOf(nodeId: string, setId: number, key: keyof TrendLimits): 'node' | 'set' | 'cluster' {
    if (this.overrides.nodes?.[nodeId]?.[key] !== undefined) return 'node';
    if (this.overrides.sets?.[String(setId)]?.[key] !== undefined) return 'set';
    return 'cluster';
  }
}
