/**
 * Polls Kamailio's own counters over JSON-RPC on HTTP (domain README A.5, A.8, B): `stats.get_statistics ["all"]` for
 * global health proxies and `dispatcher.list` for per-destination ping latency (ds_ping_latency_stats=1) and the
 * cumulative ping TIMEOUT count. Kamailio 5.6 has no per-destination retransmission counter: that comes from HEP.
 */
import { type Clock, systemClock } from '../../clock.js';
import { errorMessage, ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { TelemetrySample } from '../../messages.js';
import type { SampleSink } from './collector.js';
import { dispatcherEndpoint } from './tracker.js';

export interface DispatcherLatency {
  avgMs: number;
  stdMs: number;
  estMs: number;
  maxMs: number;
  /** Cumulative pings that ended in a local 408 (fr_timer). */
  timeouts: number;
}

export interface DispatcherTarget {
  setId: number;
  uri: string;
  /** e.g. `AP` (active + probing), `IP`, `DX`. */
  flags: string;
  duid: string | null;
  latency: DispatcherLatency | null;
}

export interface KamailioSnapshot {
  ts: number;
  /** `group:name` -> value, e.g. `tmx:5xx_transactions`. */
  statistics: Record<string, number>;
  targets: DispatcherTarget[];
}

/** Minimal JSON-RPC 2.0 client over HTTP POST with a timeout per call. */
export class KamailioRpcClient {
  private nextId = 1;
  constructor(
    private readonly url: string,
    private readonly timeoutMs = 2000,
  ) {}

  async call(method: string, params: unknown[] = []): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', method, params, id: this.nextId++ }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      const timedOut = (cause as { name?: string } | null)?.name === 'TimeoutError';
      throw new ForesightError(
        timedOut ? 'FORESIGHT_ERR_TIMEOUT' : 'FORESIGHT_ERR_DISPATCHER',
        `Kamailio RPC ${method}: ${timedOut ? `no answer within ${this.timeoutMs} ms` : errorMessage(cause)}`,
        { cause },
      );
    }
    let body: { result?: unknown; error?: { code?: number; message?: string } };
    try {
      body = (await res.json()) as typeof body;
    } catch (cause) {
      throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `Kamailio RPC ${method}: HTTP ${res.status}, not JSON`, {
        cause,
      });
    }
    if (body.error) {
      throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `Kamailio RPC ${method}: ${body.error.message ?? 'error'}`, {
        details: { code: body.error.code },
      });
    }
    return body.result;
  }
}

/** Parses `["tmx:active_transactions = 0", ...]`; lines that are not `name = number` are skipped. */
export function parseStatistics(result: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!Array.isArray(result)) return out;
  for (const line of result) {
    if (typeof line !== 'string') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const name = line.slice(0, eq).trim();
    const value = Number(line.slice(eq + 1).trim());
    if (name && Number.isFinite(value)) out[name] = value;
  }
  return out;
}

function num(v: unknown): number {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}

function obj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Parses the `dispatcher.list` result (full or short form). Unexpected shapes yield fewer targets, not errors. */
export function parseDispatcherList(result: unknown): DispatcherTarget[] {
  const out: DispatcherTarget[] = [];
  const records = obj(result)?.RECORDS;
  if (!Array.isArray(records)) return out;
  for (const rec of records) {
    const set = obj(obj(rec)?.SET);
    if (!set) continue;
    const setId = num(set.ID);
    const targets = Array.isArray(set.TARGETS) ? set.TARGETS : [];
    for (const t of targets) {
      const dest = obj(obj(t)?.DEST);
      if (!dest || typeof dest.URI !== 'string') continue;
      const attrs = obj(dest.ATTRS);
      const lat = obj(dest.LATENCY);
      out.push({
        setId,
        uri: dest.URI,
        flags: typeof dest.FLAGS === 'string' ? dest.FLAGS : '',
        duid: typeof attrs?.DUID === 'string' ? attrs.DUID : null,
        latency: lat
          ? {
              avgMs: num(lat.AVG),
              stdMs: num(lat.STD),
              estMs: num(lat.EST),
              maxMs: num(lat.MAX),
              timeouts: num(lat.TIMEOUT),
            }
          : null,
      });
    }
  }
  return out;
}

export interface KamailioStatsPollerOptions {
  /** e.g. `http://127.0.0.1:5080/RPC`. */
  url: string;
  /** Node id -> dispatcher destination URI. */
  nodes: Record<string, string>;
  sink: SampleSink;
  intervalMs?: number;
  timeoutMs?: number;
  /**
   * Also emit the dispatcher's smoothed ping latency (LATENCY.EST) as sip.options_rtt_ms. Off by default: with HEP
   * every ping is measured individually, and an EWMA would double-count.
   */
  emitPingLatency?: boolean;
  clock?: Clock;
  logger?: Logger;
}

/**
 * Every interval: reads both RPCs and emits, per configured node, the increase of the dispatcher's ping TIMEOUT count
 * as sip.replies_408 (these local 408s are never sent, so HEP cannot see them). A failed poll is logged and counted.
 */
export class KamailioStatsPoller {
  private readonly client: KamailioRpcClient;
  private readonly nodeByEndpoint = new Map<string, string>();
  private readonly lastTimeouts = new Map<string, number>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private last: KamailioSnapshot | null = null;
  private failures = 0;

  constructor(private readonly options: KamailioStatsPollerOptions) {
    this.client = new KamailioRpcClient(options.url, options.timeoutMs ?? 2000);
    for (const [nodeId, uri] of Object.entries(options.nodes)) this.nodeByEndpoint.set(dispatcherEndpoint(uri), nodeId);
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger()).child({ component: 'kamailio-stats' });
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running = this.running.then(() => this.pollOnce().then(() => undefined));
    };
    tick();
    this.timer = setInterval(tick, this.options.intervalMs ?? 10_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One poll; resolves to the snapshot, or null when Kamailio did not answer (never rejects). */
  async pollOnce(): Promise<KamailioSnapshot | null> {
    let snapshot: KamailioSnapshot;
    try {
      const [stats, list] = await Promise.all([
        this.client.call('stats.get_statistics', ['all']),
        this.client.call('dispatcher.list', []),
      ]);
      snapshot = { ts: this.clock.now(), statistics: parseStatistics(stats), targets: parseDispatcherList(list) };
    } catch (err) {
      this.failures++;
      this.log.warn({ err: errorMessage(err), failures: this.failures }, 'Kamailio stats poll failed');
      return null;
    }
    this.last = snapshot;
    const samples = this.toSamples(snapshot);
    if (samples.length > 0) {
      try {
        await this.options.sink(samples);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'telemetry sink failed; samples dropped');
      }
    }
    return snapshot;
  }

  lastSnapshot(): KamailioSnapshot | null {
    return this.last;
  }

  pollFailures(): number {
    return this.failures;
  }

  private toSamples(s: KamailioSnapshot): TelemetrySample[] {
    const out: TelemetrySample[] = [];
    for (const t of s.targets) {
      let ep: string;
      try {
        ep = dispatcherEndpoint(t.uri);
      } catch {
        continue;
      }
      const nodeId = this.nodeByEndpoint.get(ep);
      if (nodeId === undefined || t.latency === null) continue;
      const prev = this.lastTimeouts.get(nodeId);
      this.lastTimeouts.set(nodeId, t.latency.timeouts);
      // The first poll only sets the baseline; a decrease means Kamailio restarted or reloaded.
      if (prev !== undefined) {
        const delta = t.latency.timeouts >= prev ? t.latency.timeouts - prev : t.latency.timeouts;
        out.push({ nodeId, ts: s.ts, metric: 'sip.replies_408', value: delta, source: 'sip' });
      }
      if (this.options.emitPingLatency && t.latency.estMs > 0) {
        out.push({ nodeId, ts: s.ts, metric: 'sip.options_rtt_ms', value: t.latency.estMs, source: 'sip' });
      }
    }
    return out;
  }
}
