import { ForesightError } from '../../errors.js';
import type { DestinationState, DispatcherDestination } from '../ports.js';

/** Per-destination OPTIONS statistics (present with `ds_ping_latency_stats=1`). ms, except `timeouts`. */
export interface KamailioLatency {
  avgMs: number;
  stdMs: number;
  estMs: number;
  maxMs: number;
  /** Cumulative count of pings that ended in a local 408. */
  timeouts: number;
}

/** A destination with the extra fields Kamailio reports; still a plain DispatcherDestination for the port. */
export interface KamailioDestination extends DispatcherDestination {
  priority: number;
  /** `duid` attribute, Kamailio's name for the node (e.g. `ast2`), when set in the list. */
  duid: string | null;
  /** Raw attribute string from the list file (`duid=ast2;weight=50`), when reported (`full` listing). */
  attrs: string | null;
  latency: KamailioLatency | null;
}

/**
 * First flag letter (dispatcher `ds_print_*`): `I` when the inactive bit is set, else `D` disabled, else `T` trying,
 * else `A`. The second letter is `P` when the probing bit is set, else `X`.
 */
export function parseFlags(flags: string): { state: DestinationState; probing: boolean } | null {
  const match = /^([AIDT])([PX])$/i.exec(flags.trim());
  if (!match) return null;
  const letter = (match[1] ?? '').toUpperCase();
  const state: DestinationState =
    letter === 'I' ? 'inactive' : letter === 'D' ? 'disabled' : letter === 'T' ? 'trying' : 'active';
  return { state, probing: (match[2] ?? '').toUpperCase() === 'P' };
}

function bad(reason: string, details: Record<string, unknown> = {}): ForesightError {
  return new ForesightError('FORESIGHT_ERR_DISPATCHER', `dispatcher.list: ${reason}`, { details });
}

function asObject(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

/** Kamailio's RPC structs print a one-element array as the element itself in some versions; accept both. */
function asList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function finiteNumber(value: unknown): number | null {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}

function parseLatency(value: unknown): KamailioLatency | null {
  const o = asObject(value);
  if (!o) return null;
  const avg = finiteNumber(o.AVG);
  if (avg === null) return null;
  return {
    avgMs: avg,
    stdMs: finiteNumber(o.STD) ?? 0,
    estMs: finiteNumber(o.EST) ?? avg,
    maxMs: finiteNumber(o.MAX) ?? avg,
    timeouts: finiteNumber(o.TIMEOUT) ?? 0,
  };
}

/**
 * Parses the `result` of `dispatcher.list` (full or short). Throws a dispatcher error naming the first malformed part
 * rather than returning a partial list, so a caller never acts on half a picture.
 */
export function parseDispatcherList(result: unknown): KamailioDestination[] {
  const root = asObject(result);
  if (!root) throw bad('result is not an object');
  const destinations: KamailioDestination[] = [];
  for (const record of asList(root.RECORDS)) {
    const set = asObject(asObject(record)?.SET);
    if (!set) throw bad('record without SET');
    const setId = finiteNumber(set.ID);
    if (setId === null || !Number.isInteger(setId)) throw bad('set without an integer ID', { set: set.ID });
    for (const target of asList(set.TARGETS)) {
      const dest = asObject(asObject(target)?.DEST);
      if (!dest) throw bad('target without DEST', { setId });
      const uri = dest.URI;
      if (typeof uri !== 'string' || uri.length === 0) throw bad('destination without URI', { setId });
      const flags = typeof dest.FLAGS === 'string' ? dest.FLAGS : '';
      const parsed = parseFlags(flags);
      if (!parsed) throw bad(`unknown FLAGS "${flags}"`, { setId, uri });
      const attrs = asObject(dest.ATTRS);
      const duid = typeof attrs?.DUID === 'string' && attrs.DUID.length > 0 ? attrs.DUID : null;
      const latency = parseLatency(dest.LATENCY);
      destinations.push({
        setId,
        uri,
        state: parsed.state,
        probing: parsed.probing,
        flags: flags.toUpperCase(),
        latencyAvgMs: latency ? latency.avgMs : null,
        priority: finiteNumber(dest.PRIORITY) ?? 0,
        duid,
        attrs: typeof attrs?.BODY === 'string' ? attrs.BODY : null,
        latency,
      });
    }
  }
  return destinations;
}

/** Kamailio matches addresses case-insensitively on the whole string (params included). */
export function sameUri(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}
