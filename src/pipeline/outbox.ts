import type { Bus } from '../bus/port.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';

export interface OutboxStats {
  published: number;
  /** Waiting for the bus to come back. */
  queued: number;
  /** Fell off the front of a full queue during a long outage: counted, never silent. */
  dropped: number;
  failedPublishes: number;
}

/**
 * Collector output on its way to the bus. While the bus is unreachable (a broker restart), samples wait in a bounded
 * queue and go out, oldest first, when it answers again; a full queue drops the oldest and counts them. Collectors
 * never block on the bus.
 */
export class TelemetryOutbox {
  private queue: TelemetrySample[] = [];
  private flushing: Promise<void> | null = null;
  private readonly counters = { published: 0, dropped: 0, failedPublishes: 0 };

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly maxQueued = 100_000,
  ) {}

  /** Queues samples and starts a flush; returns at once. */
  offer(samples: readonly TelemetrySample[]): void {
    for (const s of samples) this.queue.push(s);
    const excess = this.queue.length - this.maxQueued;
    if (excess > 0) {
      this.queue.splice(0, excess);
      this.counters.dropped += excess;
    }
    void this.flush(); // failures are counted and retried on the next offer or tick
  }

  /** Sends what is queued; one flush at a time. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.queue.length === 0) return Promise.resolve();
    this.flushing = this.send().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async send(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, 5000);
      try {
        await this.bus.publish(
          'telemetry',
          batch.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
        );
      } catch (err) {
        this.counters.failedPublishes++;
        if (this.counters.failedPublishes % 50 === 1) {
          this.logger.warn({ err: errorMessage(err), queued: this.queue.length }, 'bus unavailable; telemetry queued');
        }
        return;
      }
      // Only now: a sample is removed from the queue once the bus has taken it.
      this.queue.splice(0, batch.length);
      this.counters.published += batch.length;
    }
  }

  stats(): OutboxStats {
    return { ...this.counters, queued: this.queue.length };
  }
}
