import { ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { Dispatcher } from '../ports.js';
import { HttpJsonRpc, JsonRpcRemoteError, type JsonRpcTransport } from './jsonrpc.js';
import { type KamailioDestination, parseDispatcherList, sameUri } from './kamailio-list.js';

/**
 * Kamailio 5.6 dispatcher over JSON-RPC (jsonrpcs: HTTP through xhttp, or UDP datagrams).
 *
 * Drain = `dispatcher.set_state d`. Not `i`: with keepalive probing on (ds_probing_mode 1), Kamailio pings every
 * destination that is not disabled, and an inactive one that answers OPTIONS is switched back to active after
 * ds_inactive_threshold good pings (seen in the lab: `IX` -> `IP` -> `AP` within ~10 s). A disabled destination is never
 * pinged and keepalive results are ignored for it, so `d` stays until someone changes it. Activate = `ap`: active with
 * the probing bit, so keepalive monitoring resumes (plain `a` would clear the probing bit).
 *
 * Every action re-reads the state first: "already in that state" is success, and a call whose answer was lost is
 * retried safely. RPC state changes do not fire dispatcher event routes, and a reload or restart resets states to the
 * list file; `armResetMarker()` / `resetSinceArmed()` let the action engine notice that and re-apply its drains.
 */

export interface KamailioDispatcherOptions {
  /** JSON-RPC over HTTP endpoint; default `http://127.0.0.1:5080/RPC`. Ignored when `transport` is given. */
  url?: string;
  transport?: JsonRpcTransport;
  name?: string;
  /** Per RPC call. */
  timeoutMs?: number;
  /** Extra attempts after the first one, for transient failures only. */
  retries?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** `activate()` sets `ap` (true, default) or `a` (false: no keepalive for the destination). */
  activateWithProbing?: boolean;
  /** In-memory destination Foresight adds to detect a reload/restart; excluded from `list()`. */
  resetMarker?: { setId: number; uri: string };
  logger?: Logger;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface KamailioUptime {
  uptimeSec: number;
  /** As Kamailio prints it (ctime format, local time). Changes when Kamailio restarts. */
  upSince: string;
}

/** State letters of `dispatcher.set_state` (domain A.5); a `p` suffix sets the probing bit. */
export type KamailioStateLetter = 'a' | 'ap' | 'i' | 'ip' | 't' | 'tp' | 'd';

export const DEFAULT_RESET_MARKER = { setId: 9999, uri: 'sip:127.0.0.1:9;foresight=reset-marker' } as const;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Kamailio rate-limits reload/add/remove (`reload_delta`, 5 s by default) and refuses with this message meanwhile. */
const ONGOING_RELOAD = /ongoing reload/i;
const RELOAD_POLL_MS = 250;
const RELOAD_WAIT_MS = 7000;

export class KamailioDispatcher implements Dispatcher {
  readonly name: string;
  private readonly rpc: JsonRpcTransport;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly activateLetter: KamailioStateLetter;
  private readonly marker: { setId: number; uri: string };
  private readonly log: Logger;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(options: KamailioDispatcherOptions = {}) {
    this.rpc = options.transport ?? new HttpJsonRpc({ url: options.url ?? 'http://127.0.0.1:5080/RPC' });
    this.name = options.name ?? `kamailio-${this.rpc.name}`;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.retries = options.retries ?? 3;
    this.backoffBaseMs = options.backoffBaseMs ?? 50;
    this.backoffMaxMs = options.backoffMaxMs ?? 1000;
    this.activateLetter = (options.activateWithProbing ?? true) ? 'ap' : 'a';
    this.marker = options.resetMarker ?? DEFAULT_RESET_MARKER;
    this.log = (options.logger ?? silentLogger()).child({ component: 'kamailio-dispatcher' });
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    if (!Number.isInteger(this.retries) || this.retries < 0 || !(this.timeoutMs > 0)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'kamailio dispatcher: retries must be >= 0 and timeoutMs > 0');
    }
  }

  async list(): Promise<KamailioDestination[]> {
    const all = await this.withRetry('dispatcher.list', () => this.listOnce());
    return all.filter((d) => !this.isMarker(d));
  }

  async drain(setId: number, uri: string): Promise<void> {
    await this.converge(setId, uri, 'd', (d) => d.state === 'disabled');
  }

  async activate(setId: number, uri: string): Promise<void> {
    const wantProbing = this.activateLetter === 'ap';
    // Trying with probing is still in rotation (selectable) and keepalive decides its fate: leave it alone.
    await this.converge(
      setId,
      uri,
      this.activateLetter,
      (d) => (d.state === 'active' || (d.state === 'trying' && wantProbing)) && d.probing === wantProbing,
    );
  }

  /** Raw `dispatcher.set_state` for an exact address, without the read-first check. */
  async setState(setId: number, uri: string, letter: KamailioStateLetter): Promise<void> {
    checkTarget(setId, uri);
    await this.withRetry('dispatcher.set_state', () => this.call('dispatcher.set_state', [letter, setId, uri]));
  }

  /** `dispatcher.reload`: every destination goes back to its list-file flags. Waits out the reload rate limit. */
  async reload(): Promise<void> {
    await this.withReloadSlot('dispatcher.reload', () => this.call('dispatcher.reload', []));
  }

  /**
   * Adds the reset marker (in memory only, disabled so it is never pinged nor selected). A reload or a restart
   * rebuilds the list from the file and drops it, which `resetSinceArmed()` reports. Arm first, then re-apply drains:
   * a reset that lands in between is then still seen on the next check.
   */
  async armResetMarker(): Promise<void> {
    const all = await this.withRetry('dispatcher.list', () => this.listOnce());
    if (all.some((d) => this.isMarker(d))) return;
    await this.withReloadSlot('dispatcher.add', () =>
      this.call('dispatcher.add', [this.marker.setId, this.marker.uri, 4, 0, 'duid=foresight-reset-marker']),
    );
  }

  /** True when the reset marker is gone: Kamailio reloaded its list or restarted since `armResetMarker()`. */
  async resetSinceArmed(): Promise<boolean> {
    const all = await this.withRetry('dispatcher.list', () => this.listOnce());
    return !all.some((d) => this.isMarker(d));
  }

  async uptime(): Promise<KamailioUptime> {
    const result = await this.withRetry('core.uptime', () => this.call('core.uptime', []));
    const o = (result ?? {}) as { uptime?: unknown; up_since?: unknown };
    if (typeof o.uptime !== 'number' || typeof o.up_since !== 'string') {
      throw new ForesightError('FORESIGHT_ERR_DISPATCHER', 'core.uptime: unexpected answer', { details: { result } });
    }
    return { uptimeSec: o.uptime, upSince: o.up_since };
  }

  /** `stats.fetchn` for groups (`"tmx:"`, `"core:"`) or names; keys like `tmx.active_transactions`. */
  async stats(groups: readonly string[] = ['all']): Promise<Record<string, number>> {
    const result = await this.withRetry('stats.fetchn', () => this.call('stats.fetchn', [...groups]));
    const out: Record<string, number> = {};
    for (const [key, value] of Object.entries((result ?? {}) as Record<string, unknown>)) {
      const n = typeof value === 'number' ? value : Number(value);
      if (Number.isFinite(n)) out[key] = n;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.rpc.close();
  }

  private isMarker(d: KamailioDestination): boolean {
    return d.setId === this.marker.setId && sameUri(d.uri, this.marker.uri);
  }

  private async listOnce(): Promise<KamailioDestination[]> {
    return parseDispatcherList(await this.call('dispatcher.list', []));
  }

  /** Read, and write only when needed; the whole read-then-write is retried, so a lost answer is re-checked. */
  private async converge(
    setId: number,
    uri: string,
    letter: KamailioStateLetter,
    isDone: (d: KamailioDestination) => boolean,
  ): Promise<void> {
    checkTarget(setId, uri);
    await this.withRetry(`dispatcher.set_state ${letter}`, async () => {
      const all = await this.listOnce();
      const current = all.find((d) => d.setId === setId && sameUri(d.uri, uri) && !this.isMarker(d));
      if (!current) {
        const known = all.filter((d) => d.setId === setId && !this.isMarker(d)).map((d) => d.uri);
        throw new ForesightError(
          'FORESIGHT_ERR_NOT_FOUND',
          `dispatcher set ${setId} has no destination ${uri}` +
            (known.length > 0 ? ` (it has ${known.join(', ')})` : ' (no such set)'),
          { details: { setId, uri, known } },
        );
      }
      if (isDone(current)) {
        this.log.debug({ setId, uri, flags: current.flags }, 'already in the wanted state');
        return;
      }
      // Use Kamailio's own spelling of the address: set_state compares the whole string.
      await this.call('dispatcher.set_state', [letter, setId, current.uri]);
      this.log.info({ setId, uri: current.uri, from: current.flags, to: letter }, 'dispatcher state set');
    });
  }

  private async call(method: string, params: readonly unknown[]): Promise<unknown> {
    try {
      return await this.rpc.call(method, params, this.timeoutMs);
    } catch (err) {
      if (err instanceof JsonRpcRemoteError) {
        // Kamailio understood the request and refused it; only the reload rate limit is worth retrying.
        throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `kamailio refused ${err.message}`, {
          cause: err,
          details: {
            method,
            params,
            rpcCode: err.rpcCode,
            rpcMessage: err.rpcMessage,
            transient: ONGOING_RELOAD.test(err.rpcMessage),
          },
        });
      }
      throw err;
    }
  }

  private isTransient(err: unknown): boolean {
    if (!(err instanceof ForesightError)) return false;
    if (err.code === 'FORESIGHT_ERR_TIMEOUT') return true;
    if (err.code !== 'FORESIGHT_ERR_DISPATCHER') return false;
    // Remote refusals carry `transient`; transport failures (refused, reset, non-JSON) have no rpcCode.
    return err.details.rpcCode === undefined || err.details.transient === true;
  }

  private async withRetry<T>(what: string, attempt: () => Promise<T>, retries = this.retries): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (n >= retries || !this.isTransient(err)) {
          if (err instanceof ForesightError && n > 0) err.details.attempts = n + 1;
          throw err;
        }
        // Full jitter: spreads retries of several Foresight instances; capped so an outage is reported quickly.
        const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** n);
        const delay = Math.round(cap / 2 + (this.random() * cap) / 2);
        this.log.warn({ what, attempt: n + 1, delayMs: delay, err: (err as Error).message }, 'kamailio rpc retry');
        await this.sleep(delay);
      }
    }
  }

  /** reload/add share Kamailio's reload_delta limit (default 5 s): wait for the next slot, up to `reloadWaitMs`. */
  private async withReloadSlot<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    return this.withRetry(what, async () => {
      for (let waited = 0; ; waited += RELOAD_POLL_MS) {
        try {
          return await attempt();
        } catch (err) {
          const ongoing = err instanceof ForesightError && ONGOING_RELOAD.test(String(err.details.rpcMessage ?? ''));
          if (!ongoing || waited >= RELOAD_WAIT_MS) throw err;
          await this.sleep(RELOAD_POLL_MS);
        }
      }
    });
  }
}

/** Validates a drain/activate target before anything is sent (shared by the fleet, which validates once). */
export function checkTarget(setId: number, uri: string): void {
  // The set id must reach Kamailio as a JSON number: a string "1" is parsed as set 0.
  if (!Number.isInteger(setId) || setId < 0) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `dispatcher set id must be a non-negative integer: ${setId}`);
  }
  if (typeof uri !== 'string' || !/^sips?:\S+$/i.test(uri.trim())) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `dispatcher destination must be a sip: URI: ${String(uri)}`);
  }
}
