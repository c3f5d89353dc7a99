import { ForesightError, isRetriable } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { Dispatcher, DispatcherDestination, ProxyDestinationState } from '../ports.js';
import { type DispatcherEndpointConfig, proxyEndpoints } from './endpoints.js';
import { checkTarget, KamailioDispatcher } from './kamailio.js';

/**
 * Several Kamailio proxies (an HA pair, a fleet) in front of the same Asterisk nodes, seen by the engine as one
 * Dispatcher. Every operation goes to every proxy in parallel, each bounded by `proxyTimeoutMs`.
 *
 * - list(): a destination counts as disabled only when every reachable proxy shows it disabled; otherwise it takes
 *   the state of the first reachable proxy that does not. So a proxy that lost a drain (restarted, reloaded) makes the
 *   node look enabled and the engine's reconcile re-applies the drain. `proxies` carries each proxy's own view.
 * - drain()/activate(): applied on every reachable proxy; success only when each of them confirmed. A proxy that does
 *   not answer is skipped (a drain reaches it through the engine's reconcile once it is back); none reachable throws.
 * - Reset marker: armResetMarker() arms each reachable proxy; resetSinceArmed() is true when an armed proxy lost its
 *   marker, or when a proxy that was not armed or missed a change is reachable again: nobody knows what it holds, so
 *   the engine re-arms and reconciles. The engine has no step that re-activates, so activations a proxy missed are
 *   replayed here when it is re-armed.
 *
 * A hand change on some proxies only: a drain lifted by hand on one proxy shows the node enabled (the engine records a
 * manual override, the marker being intact); a destination disabled by hand on some proxies only is not "disabled"
 * in the combined view, so it is shown per proxy but not recorded as an override (and not reverted either).
 */

export interface FleetProxy {
  /** Shown per destination and in logs, e.g. `proxy1`, `kam-a`. */
  name: string;
  dispatcher: Dispatcher;
}

export interface ProxyFleetOptions {
  proxies: readonly FleetProxy[];
  /**
   * Budget per proxy and operation; a proxy that has not answered by then is unreachable for that call. Keep it
   * below the engine's dispatcher call timeout, so one silent proxy is skipped instead of failing the whole call.
   */
  proxyTimeoutMs?: number;
  name?: string;
  logger?: Logger;
}

type Op = 'drain' | 'activate';

interface ResetAware {
  armResetMarker(): Promise<void>;
  resetSinceArmed(): Promise<boolean>;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown; unreachable: boolean };

function resetAware(d: Dispatcher): (Dispatcher & ResetAware) | null {
  const r = d as Dispatcher & Partial<ResetAware>;
  return typeof r.armResetMarker === 'function' && typeof r.resetSinceArmed === 'function'
    ? (r as Dispatcher & ResetAware)
    : null;
}

function keyOf(setId: number, uri: string): string {
  return `${setId}|${uri.toLowerCase()}`;
}

/** No answer at all (refused, reset, timeout): the proxy is down or cut off. A refusal or NOT_FOUND is an answer. */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof ForesightError)) return isRetriable(err);
  if (err.code === 'FORESIGHT_ERR_TIMEOUT') return true;
  return err.code === 'FORESIGHT_ERR_DISPATCHER' && err.details.rpcCode === undefined;
}

export class ProxyFleetDispatcher implements Dispatcher {
  readonly name: string;
  private readonly proxies: readonly FleetProxy[];
  private readonly proxyTimeoutMs: number;
  private readonly log: Logger;
  /** Proxies whose state nobody vouches for: not armed yet, unreachable at arming, or skipped by a change. */
  private readonly unsynced = new Set<string>();
  /** Per proxy: activations it missed, by destination, replayed when it is re-armed. */
  private readonly missedActivations = new Map<string, Map<string, { setId: number; uri: string }>>();

  constructor(options: ProxyFleetOptions) {
    this.proxies = [...options.proxies];
    this.proxyTimeoutMs = options.proxyTimeoutMs ?? 1500;
    const names = this.proxies.map((p) => p.name);
    if (names.length === 0 || new Set(names).size !== names.length || names.some((n) => n.trim() === '')) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'proxy fleet: need at least one proxy, each with its own name');
    }
    if (!(this.proxyTimeoutMs > 0)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'proxy fleet: proxyTimeoutMs must be > 0');
    }
    this.name = options.name ?? `fleet(${names.join(',')})`;
    this.log = (options.logger ?? silentLogger()).child({ component: 'proxy-fleet' });
    for (const n of names) {
      this.unsynced.add(n);
      this.missedActivations.set(n, new Map());
    }
  }

  async list(): Promise<DispatcherDestination[]> {
    const outcomes = await this.onEach('list', (d) => d.list());
    const lists = outcomes.map((o) => (o.ok ? o.value : null));
    if (lists.every((l) => l === null)) throw this.noneReachable('list', outcomes);
    // Union of destinations in the order the proxies list them.
    const keys = new Map<string, { setId: number; uri: string }>();
    for (const l of lists)
      for (const d of l ?? []) if (!keys.has(keyOf(d.setId, d.uri))) keys.set(keyOf(d.setId, d.uri), d);
    const indexed = lists.map((l) => (l === null ? null : new Map(l.map((d) => [keyOf(d.setId, d.uri), d]))));
    const combined: DispatcherDestination[] = [];
    for (const [key, first] of keys) {
      const views = indexed.map((m) => (m === null ? undefined : (m.get(key) ?? null)));
      const present = views.filter((v): v is DispatcherDestination => v != null);
      // A proxy without the destination sends it nothing, so it neither keeps the node in nor drains it.
      const chosen = present.find((v) => v.state !== 'disabled') ?? present[0];
      const proxies: ProxyDestinationState[] = this.proxies.map((p, i) => {
        const v = views[i];
        if (v === undefined) return { proxy: p.name, state: 'unreachable', flags: null };
        if (v === null) return { proxy: p.name, state: 'missing', flags: null };
        return { proxy: p.name, state: v.state, flags: v.flags };
      });
      this.forgetSatisfied(first.setId, first.uri, views);
      if (chosen) combined.push({ ...chosen, proxies });
    }
    return combined;
  }

  drain(setId: number, uri: string): Promise<void> {
    return this.change('drain', setId, uri);
  }

  activate(setId: number, uri: string): Promise<void> {
    return this.change('activate', setId, uri);
  }

  /** Arms the marker on every reachable proxy and replays the activations a returning proxy missed. */
  async armResetMarker(): Promise<void> {
    const outcomes = await this.onEach('arm', async (d, p) => {
      await resetAware(d)?.armResetMarker();
      await this.replayActivations(p);
    });
    outcomes.forEach((o, i) => {
      const name = this.proxies[i]!.name;
      if (o.ok) this.unsynced.delete(name);
      else this.unsynced.add(name);
    });
    if (outcomes.every((o) => !o.ok)) throw this.noneReachable('armResetMarker', outcomes);
  }

  /** True when an armed proxy lost its marker, or an unsynced proxy (see `unsynced`) answers again. */
  async resetSinceArmed(): Promise<boolean> {
    const outcomes = await this.onEach('reset check', async (d, p) => {
      const lost = await (resetAware(d)?.resetSinceArmed() ?? d.list().then(() => false));
      return lost || this.unsynced.has(p.name);
    });
    if (outcomes.every((o) => !o.ok)) throw this.noneReachable('resetSinceArmed', outcomes);
    // A proxy that does not answer now tells nothing; its marker speaks when it is back.
    return outcomes.some((o) => o.ok && o.value);
  }

  /** Changes every reachable proxy; throws unless each one that answered confirmed. */
  private async change(op: Op, setId: number, uri: string): Promise<void> {
    checkTarget(setId, uri);
    const outcomes = await this.onEach(op, (d) => (op === 'drain' ? d.drain(setId, uri) : d.activate(setId, uri)));
    const answered = outcomes.filter((o) => o.ok || !o.unreachable);
    if (answered.length === 0) throw this.noneReachable(`${op} ${uri}`, outcomes);
    const notFound = (o: Outcome<void>) =>
      !o.ok && o.error instanceof ForesightError && o.error.code === 'FORESIGHT_ERR_NOT_FOUND';
    outcomes.forEach((o, i) => {
      const name = this.proxies[i]!.name;
      const missed = this.missedActivations.get(name)!;
      if (o.ok || op === 'drain') missed.delete(keyOf(setId, uri));
      if (!o.ok && o.unreachable) {
        this.unsynced.add(name);
        if (op === 'activate') missed.set(keyOf(setId, uri), { setId, uri });
      }
    });
    const failed = outcomes.flatMap((o, i) => (!o.ok && !o.unreachable && !notFound(o) ? [{ o, i }] : []));
    if (failed.length > 0) {
      const first = failed[0]!.o as { error: unknown };
      // Keep the member's code, so a refusal that is not worth retrying is not retried for the fleet either.
      throw new ForesightError(
        first.error instanceof ForesightError ? first.error.code : 'FORESIGHT_ERR_DISPATCHER',
        `${op} ${uri} failed on ${failed.map(({ i }) => this.proxies[i]!.name).join(', ')}: ${(first.error as Error).message}`,
        { cause: first.error, details: { setId, uri, proxies: this.summary(outcomes) } },
      );
    }
    // Unknown everywhere it could be asked: the caller's mistake, reported as the member said it.
    if (answered.every(notFound)) throw (answered[0] as { error: unknown }).error;
    const skipped = outcomes.flatMap((o, i) => (!o.ok ? [this.proxies[i]!.name] : []));
    if (skipped.length > 0) {
      this.log.warn({ op, setId, uri, skipped, proxies: this.summary(outcomes) }, 'change not applied on every proxy');
    }
  }

  private async replayActivations(p: FleetProxy): Promise<void> {
    const missed = this.missedActivations.get(p.name)!;
    for (const [key, m] of missed) {
      try {
        await p.dispatcher.activate(m.setId, m.uri);
        this.log.info({ proxy: p.name, setId: m.setId, uri: m.uri }, 'missed activation replayed');
      } catch (err) {
        // Gone from that proxy's list: nothing left to activate. Anything else is retried at the next arming.
        if (!(err instanceof ForesightError && err.code === 'FORESIGHT_ERR_NOT_FOUND')) throw err;
      }
      missed.delete(key);
    }
  }

  /** A missed activation is settled once the proxy shows the destination enabled (e.g. from its list file). */
  private forgetSatisfied(setId: number, uri: string, views: (DispatcherDestination | null | undefined)[]): void {
    views.forEach((v, i) => {
      if (v && v.state !== 'disabled') this.missedActivations.get(this.proxies[i]!.name)!.delete(keyOf(setId, uri));
    });
  }

  private onEach<T>(what: string, fn: (d: Dispatcher, p: FleetProxy) => Promise<T>): Promise<Outcome<T>[]> {
    return Promise.all(
      this.proxies.map(async (p): Promise<Outcome<T>> => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new ForesightError(
                  'FORESIGHT_ERR_TIMEOUT',
                  `${p.name}: ${what} gave no answer in ${this.proxyTimeoutMs} ms`,
                ),
              ),
            this.proxyTimeoutMs,
          );
        });
        try {
          return { ok: true, value: await Promise.race([fn(p.dispatcher, p), timeout]) };
        } catch (error) {
          const unreachable = isUnreachable(error);
          if (unreachable) this.log.debug({ proxy: p.name, what, err: (error as Error).message }, 'proxy unreachable');
          return { ok: false, error, unreachable };
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  private summary(outcomes: Outcome<unknown>[]): Record<string, string> {
    return Object.fromEntries(
      outcomes.map((o, i) => [
        this.proxies[i]!.name,
        o.ok ? 'ok' : `${o.unreachable ? 'unreachable' : 'failed'}: ${(o.error as Error)?.message ?? String(o.error)}`,
      ]),
    );
  }

  private noneReachable(what: string, outcomes: Outcome<unknown>[]): ForesightError {
    // Retriable: the engine retries and, for drains, keeps the node draining until a proxy takes it.
    return new ForesightError('FORESIGHT_ERR_DISPATCHER', `${what}: no proxy reachable`, {
      details: { proxies: this.summary(outcomes) },
    });
  }
}

/**
 * One proxy: a KamailioDispatcher, as before. Several: a ProxyFleetDispatcher over one KamailioDispatcher each. The
 * engine bounds each dispatcher call by `timeoutMs`, so every proxy gets three quarters of it: a silent proxy is then
 * skipped as unreachable before the engine gives up on the whole call.
 */
export function createKamailioDispatcher(d: DispatcherEndpointConfig, logger: Logger): Dispatcher {
  const endpoints = proxyEndpoints(d);
  if (endpoints.length === 1) return new KamailioDispatcher({ url: endpoints[0]!.url, timeoutMs: d.timeoutMs, logger });
  const proxyTimeoutMs = Math.max(1, Math.floor(d.timeoutMs * 0.75));
  return new ProxyFleetDispatcher({
    proxies: endpoints.map(({ name, url }) => ({
      name,
      dispatcher: new KamailioDispatcher({
        url,
        name,
        timeoutMs: proxyTimeoutMs,
        logger: logger.child({ proxy: name }),
      }),
    })),
    proxyTimeoutMs,
    logger,
  });
}
