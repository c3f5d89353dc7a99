/**
 * Runs the database probes for every configured node on an interval and emits db.query_ms (one sample per successful
 * step: connect, SELECT 1, representative query), db.probe_failures (failed or timed-out steps in the cycle) and
 * db.pool_waiting (probes waiting for a pooled connection: saturation).
 */
import { type Clock, systemClock } from '../../clock.js';
import { errorMessage } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { TelemetrySample } from '../../messages.js';
import { MysqlDriver } from './mysql.js';
import { PostgresDriver } from './postgres.js';
import {
  type DbDriver,
  type DbProbeResult,
  type DbProbeTarget,
  describeTarget,
  parseDbUrl,
  type StepResult,
  safeError,
} from './probe.js';

export type SampleSink = (samples: TelemetrySample[]) => Promise<void> | void;

export interface DbCollectorOptions {
  targets: DbProbeTarget[];
  sink: SampleSink;
  /** Default 5000 ms. */
  intervalMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** One node's probe: a driver plus the step logic. Usable on its own (see probe()). */
export class DbProber {
  private readonly driver: DbDriver;
  private readonly timeoutMs: number;
  private readonly sql: string;
  private readonly password: string | undefined;

  constructor(
    readonly target: DbProbeTarget,
    private readonly clock: Clock = systemClock,
  ) {
    const params = parseDbUrl(target.kind, target.url, target.password);
    this.timeoutMs = target.timeoutMs ?? 2000;
    this.sql = target.query ?? 'SELECT 1';
    this.password = target.password;
    const poolSize = target.poolSize ?? 2;
    this.driver =
      target.kind === 'postgres'
        ? new PostgresDriver(params, poolSize, this.timeoutMs)
        : new MysqlDriver(params, poolSize, this.timeoutMs);
  }

  private async step(run: () => Promise<void>): Promise<StepResult> {
    const t0 = performance.now();
    try {
      await run();
      return { ok: true, ms: performance.now() - t0 };
    } catch (err) {
      const timedOut = (err as { code?: unknown } | null)?.code === 'FORESIGHT_ERR_TIMEOUT';
      return { ok: false, ms: performance.now() - t0, error: safeError(err, this.password), timedOut };
    }
  }

  /** Runs the three steps one after the other. Never rejects. */
  async probe(): Promise<DbProbeResult> {
    const ts = this.clock.now();
    const connect = await this.step(() => this.driver.connectOnce(this.timeoutMs));
    const select1 = await this.step(() => this.driver.query('SELECT 1', this.timeoutMs));
    const query = await this.step(() => this.driver.query(this.sql, this.timeoutMs));
    return {
      nodeId: this.target.nodeId,
      ts,
      connect,
      select1,
      query,
      pool: this.driver.poolStats(),
      up: connect.ok || select1.ok || query.ok,
    };
  }

  /** Runs only the representative query (e.g. several at once, to see pool saturation). */
  async representativeQuery(): Promise<StepResult> {
    return this.step(() => this.driver.query(this.sql, this.timeoutMs));
  }

  poolStats() {
    return this.driver.poolStats();
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

/** Turns one probe result into telemetry. */
export function probeSamples(r: DbProbeResult): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  let failures = 0;
  for (const s of [r.connect, r.select1, r.query]) {
    if (s.ok) out.push({ nodeId: r.nodeId, ts: r.ts, metric: 'db.query_ms', value: s.ms, source: 'db' });
    else failures++;
  }
  out.push({ nodeId: r.nodeId, ts: r.ts, metric: 'db.probe_failures', value: failures, source: 'db' });
  // A probe waiting for a pooled connection means the pool is saturated: the node's own queries queue the same way.
  out.push({ nodeId: r.nodeId, ts: r.ts, metric: 'db.pool_waiting', value: r.pool.waiting, source: 'db' });
  return out;
}

export class DbCollector {
  private readonly probers: DbProber[];
  private readonly busy = new Set<string>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly last = new Map<string, DbProbeResult>();
  private skipped = 0;

  constructor(private readonly options: DbCollectorOptions) {
    const clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger()).child({ component: 'db-collector' });
    this.probers = options.targets.map((t) => new DbProber(t, clock));
  }

  start(): void {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.options.intervalMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all(this.inFlight);
    await Promise.all(this.probers.map((p) => p.close()));
  }

  /** Probes every target once, concurrently, emits the samples and returns the results. */
  async probeAll(): Promise<DbProbeResult[]> {
    const results = await Promise.all(this.probers.map((p) => this.runOne(p)));
    return results.filter((r): r is DbProbeResult => r !== null);
  }

  lastResults(): DbProbeResult[] {
    return [...this.last.values()];
  }

  /** Cycles skipped because the previous probe of the node had not finished (itself a sign of a slow database). */
  skippedCycles(): number {
    return this.skipped;
  }

  private tick(): void {
    for (const p of this.probers) {
      const run = this.runOne(p).then(() => undefined);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  private async runOne(p: DbProber): Promise<DbProbeResult | null> {
    const nodeId = p.target.nodeId;
    if (this.busy.has(nodeId)) {
      this.skipped++;
      return null;
    }
    this.busy.add(nodeId);
    try {
      const r = await p.probe();
      this.last.set(nodeId, r);
      if (!r.up) this.log.warn({ nodeId, target: describeTarget(p.target), error: r.connect.error }, 'database down');
      try {
        await this.options.sink(probeSamples(r));
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'telemetry sink failed; samples dropped');
      }
      return r;
    } finally {
      this.busy.delete(nodeId);
    }
  }
}
