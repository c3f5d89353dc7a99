import type { Bus } from '../bus/port.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';
import { DiskSpool, type SpoolLimits } from './spool.js';

export interface OutboxStats {
  published: number;
  /** Waiting for the bus to come back (in memory and on disk). */
  queued: number;
  /** Of those, on disk. */
  spooled: number;
  spooledBytes: number;
  /** Could not be kept: pushed out of a full queue, older than the longest outage kept, or damaged on disk. */
  dropped: number;
  /** Of `dropped`, older than maxOutageMs when their turn came. */
  expired: number;
  failedPublishes: number;
  /** Event time of the oldest sample waiting; null when nothing waits. */
  oldestQueuedTs: number | null;
}

export interface OutboxOptions {
  /** Samples kept in memory while the bus answers (and in all when there is no spool). Default 100 000. */
  maxQueued?: number;
  /**
   * Where samples wait while the bus is unreachable (a broker outage): a folder for the spool file. Absent, they wait
   * in memory only (the in-process bus never fails).
   */
  spoolDir?: string;
  spoolLimits?: SpoolLimits;
  /** Samples older than this (event time against the clock) when their turn comes are dropped and counted. */
  maxOutageMs?: number;
  now?: () => number;
}

const BATCH = 5000;

/**
 * Collector output on its way to the bus. While the bus answers, samples pass through a bounded memory queue. When a
 * publish fails (a broker restart), what is queued moves to a spool file and everything offered after it goes there
 * too, so each node's samples keep their order; once the bus answers again the spool is sent first, oldest first, then
 * the memory queue. The spool is bounded in bytes and records and by the longest outage worth keeping: what does not
 * fit, or is older than that, is dropped and counted, never silently. Collectors never block on the bus.
 */
export class TelemetryOutbox {
  private queue: TelemetrySample[] = [];
  private flushing: Promise<void> | null = null;
  private readonly counters = { published: 0, dropped: 0, expired: 0, failedPublishes: 0 };
  private readonly spool: DiskSpool | null;
  private readonly maxQueued: number;
  private readonly maxOutageMs: number;
  private readonly now: () => number;
  /** The last publish failed: what waits in memory is held back by the bus, not merely on its way. */
  private publishFailing = false;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    options: OutboxOptions | number = {},
  ) {
    const o = typeof options === 'number' ? { maxQueued: options } : options;
    this.maxQueued = o.maxQueued ?? 100_000;
    this.maxOutageMs = o.maxOutageMs ?? Number.POSITIVE_INFINITY;
    this.now = o.now ?? Date.now;
    this.spool = o.spoolDir
      ? new DiskSpool(o.spoolDir, o.spoolLimits ?? { maxBytes: 64 * 2 ** 20, maxRecords: 500_000 })
      : null;
    if (this.spool && this.spool.records > 0) {
      this.logger.info({ spooled: this.spool.records }, 'telemetry spooled before a restart will be sent');
    }
  }

  /** Queues samples and starts a flush; returns at once. */
  offer(samples: readonly TelemetrySample[]): void {
    if (this.spool && this.spool.records > 0) {
      // Behind what waits on disk, so a node's samples stay in order.
      this.spoolSamples(samples);
    } else {
      for (const s of samples) this.queue.push(s);
      const excess = this.queue.length - this.maxQueued;
      if (excess > 0) {
        this.queue.splice(0, excess);
        this.counters.dropped += excess;
      }
    }
    void this.flush(); // failures are counted and retried on the next offer or tick
  }

  /** Sends what is queued; one flush at a time. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.queue.length === 0 && (this.spool?.records ?? 0) === 0) return Promise.resolve();
    this.flushing = this.send().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private spoolSamples(samples: readonly TelemetrySample[]): void {
    const spool = this.spool!;
    const before = spool.stats().overflowed;
    spool.append(samples);
    this.counters.dropped += spool.stats().overflowed - before;
  }

  private async send(): Promise<void> {
    const spool = this.spool;
    while (spool && spool.records > 0) {
      const expired = spool.removeOlderThan(this.now() - this.maxOutageMs);
      this.counters.expired += expired;
      this.counters.dropped += expired;
      const read = spool.peek(BATCH);
      if (read.length === 0) break;
      const batch = read.filter((s): s is TelemetrySample => s !== null);
      this.counters.dropped += read.length - batch.length;
      if (!(await this.publish(batch))) return;
      spool.remove(read.length);
    }
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, BATCH);
      if (!(await this.publish(batch))) {
        if (spool) {
          // The bus is down: what waits in memory goes to disk, and new samples follow it there.
          this.spoolSamples(this.queue.splice(0));
        }
        return;
      }
      // Only now: a sample is removed from the queue once the bus has taken it.
      this.queue.splice(0, batch.length);
    }
  }

  /** Publishes one batch; false when the bus did not take it. */
  private async publish(batch: TelemetrySample[]): Promise<boolean> {
    if (batch.length === 0) return true;
    try {
      await this.bus.publish(
        'telemetry',
        batch.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
      );
      this.counters.published += batch.length;
      this.publishFailing = false;
      return true;
    } catch (err) {
      this.counters.failedPublishes++;
      this.publishFailing = true;
      if (this.counters.failedPublishes % 50 === 1) {
        this.logger.warn(
          { err: errorMessage(err), queued: this.queue.length + (this.spool?.records ?? 0) },
          'bus unavailable; telemetry queued',
        );
      }
      return false;
    }
  }

  /**
   * Event time of the oldest sample the bus has not taken because it could not (spooled, or queued since a publish
   * failed); null while samples flow. Consumers hold their windows open for it (FeatureStage `upstreamBacklogTs`).
   */
  backlogOldestTs(): number | null {
    const spooled = this.spool?.oldestTs() ?? null;
    if (spooled !== null) return spooled;
    return this.publishFailing ? (this.queue[0]?.ts ?? null) : null;
  }

  stats(): OutboxStats {
    const spooled = this.spool?.stats() ?? { records: 0, bytes: 0, overflowed: 0 };
    const oldest = this.spool?.oldestTs() ?? this.queue[0]?.ts ?? null;
    return {
      ...this.counters,
      queued: this.queue.length + spooled.records,
      spooled: spooled.records,
      spooledBytes: spooled.bytes,
      oldestQueuedTs: oldest,
    };
  }

  /**
   * With a spool, what still waits in memory goes to disk for the next start (a batch being published right now may
   * then be sent twice: telemetry consumers tolerate duplicates, never gaps).
   */
  close(): void {
    if (!this.spool) return;
    if (this.queue.length > 0) this.spoolSamples(this.queue.splice(0));
    this.spool.close();
  }
}
