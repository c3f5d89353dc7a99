import { HttpError, InfluxDB, type WriteApi } from '@influxdata/influxdb-client';
import { errorMessage } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { AuditRecord, FeatureVector, NodeScore } from '../messages.js';
import { auditLine, featureLine, INFLUX_PRECISION, scoreLine } from './influx-schema.js';
import { LineQueue } from './line-queue.js';

export interface InfluxExporterOptions {
  /** Base URL of a server speaking the InfluxDB v2 write API (InfluxDB 2.x/3.x, 1.8+, victoria-metrics). */
  url: string;
  org: string;
  bucket: string;
  /** API token, sent as `Authorization: Token ...`; omit for servers without auth. */
  token?: string;
  /** Most lines held while the target is slow or down; beyond it the oldest are dropped (and counted). */
  maxBufferLines: number;
  /** A partial batch is sent at least this often. */
  flushIntervalMs: number;
  logger?: Logger;
  /** Lines per write request; clamped to half the buffer so a batch in flight never crowds out new points. */
  batchSize?: number;
  /** Timeout of one write request. */
  requestTimeoutMs?: number;
  /** First retry delay after a failed write; doubles per consecutive failure up to `maxRetryDelayMs`. */
  minRetryDelayMs?: number;
  maxRetryDelayMs?: number;
}

export interface InfluxExporterStats {
  /** Lines the server acknowledged. */
  written: number;
  /** Lines given up on: pushed out of a full buffer, refused by the server (4xx), or unsent at close. */
  dropped: number;
  /** Of `dropped`, lines the server refused as malformed or unauthorised (never retried). */
  rejected: number;
  /** Write requests that failed (each retry counts). */
  failedWrites: number;
  /** Lines waiting to be sent, including a batch in flight. Never above maxBufferLines. */
  buffered: number;
  /** Messages that could not be turned into a point (no finite value, bad timestamp). */
  invalid: number;
}

/**
 * Exports features, scores and audit records to InfluxDB. The export methods only append a line to a bounded queue:
 * they never throw and never wait for the network. A single sender drains the queue in batches, one request at a time,
 * and backs off exponentially while the target fails, so an outage costs at most `maxBufferLines` lines of memory.
 *
 * The client's own retry buffer is bypassed (maxRetries 0): it lets failed batches pile up in parallel requests while a
 * server hangs, whereas here the in-flight batch counts against the same bound as the queue.
 */
export class InfluxExporter {
  private readonly log: Logger;
  private readonly writeApi: WriteApi;
  private readonly queue: LineQueue;
  private readonly batchSize: number;
  private readonly minRetryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly timer: NodeJS.Timeout;
  private retryTimer: NodeJS.Timeout | undefined;
  private sendScheduled = false;
  private sending: Promise<void> | null = null;
  private inFlight = 0;
  private consecutiveFailures = 0;
  private retryAt = 0;
  private closing = false;
  private closed = false;
  private readonly counters = { written: 0, dropped: 0, rejected: 0, failedWrites: 0, invalid: 0 };

  constructor(opts: InfluxExporterOptions) {
    this.log = (opts.logger ?? silentLogger()).child({ component: 'influx-exporter' });
    const maxLines = Math.max(2, Math.floor(opts.maxBufferLines));
    this.queue = new LineQueue(maxLines);
    this.batchSize = Math.max(1, Math.min(Math.floor(opts.batchSize ?? 5000), Math.floor(maxLines / 2)));
    this.minRetryDelayMs = Math.max(1, opts.minRetryDelayMs ?? 1000);
    this.maxRetryDelayMs = Math.max(this.minRetryDelayMs, opts.maxRetryDelayMs ?? 30_000);
    this.writeApi = new InfluxDB({
      url: opts.url,
      token: opts.token,
      timeout: opts.requestTimeoutMs ?? 10_000,
    }).getWriteApi(opts.org, opts.bucket, INFLUX_PRECISION, {
      // This class does batching, timing and retries; the client only encodes and sends what flush() hands it.
      // One more than our batch, so writeRecords() never sends on its own (the client preallocates this many slots).
      batchSize: this.batchSize + 1,
      maxBatchBytes: Number.POSITIVE_INFINITY,
      flushInterval: 0,
      maxRetries: 0,
      // Returning the rejection makes flush() fail with it, without the client logging to the console.
      writeFailed: (error) => Promise.reject(error),
    });
    this.timer = setInterval(() => this.kick(true), Math.max(10, opts.flushIntervalMs));
    this.timer.unref();
  }

  exportFeatures(v: FeatureVector): void {
    this.enqueue(() => featureLine(v));
  }

  exportScores(s: NodeScore | readonly NodeScore[]): void {
    for (const one of Array.isArray(s) ? s : [s as NodeScore]) this.enqueue(() => scoreLine(one));
  }

  exportAudit(a: AuditRecord): void {
    this.enqueue(() => auditLine(a));
  }

  stats(): InfluxExporterStats {
    return { ...this.counters, buffered: this.queue.size + this.inFlight };
  }

  /**
   * Stops the timers and sends what is buffered, giving up after `timeoutMs`; lines still unsent are counted as
   * dropped. Idempotent.
   */
  async close(timeoutMs = 5000): Promise<InfluxExporterStats> {
    if (this.closed) return this.stats();
    this.closing = true;
    clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryAt = 0;
    let deadline: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      deadline = setTimeout(resolve, Math.max(0, timeoutMs));
    });
    await Promise.race([this.drainOnce(), timedOut]);
    clearTimeout(deadline);
    this.closed = true;
    const unsent = this.queue.shift(this.queue.size).length + this.inFlight;
    this.inFlight = 0;
    if (unsent > 0) {
      this.counters.dropped += unsent;
      this.log.warn({ unsent }, 'closed with unsent InfluxDB lines');
    }
    this.writeApi.dispose();
    return this.stats();
  }

  private enqueue(build: () => string | null): void {
    if (this.closing) return;
    let line: string | null;
    try {
      line = build();
    } catch (err) {
      // A message this exporter cannot encode is a bug or bad data upstream: count it, never break the caller.
      this.log.debug({ err: errorMessage(err) }, 'point not encodable');
      line = null;
    }
    if (line === null) {
      this.counters.invalid++;
      return;
    }
    // The batch in flight holds part of the budget, so queue + in flight never exceeds maxBufferLines.
    if (this.queue.size + this.inFlight >= this.queue.capacity) {
      this.counters.dropped++;
      // Only when the whole budget is in flight is the new line the one to go; otherwise the oldest queued one.
      if (this.queue.size === 0) return;
      this.queue.shift(1);
    }
    this.queue.push(line);
    if (this.queue.size >= this.batchSize) this.kick(false);
  }

  /** Starts the sender outside the caller's stack; `drain` also sends a partial batch. */
  private kick(drain: boolean): void {
    if (this.sending || this.closed || Date.now() < this.retryAt) return;
    if (!drain) {
      if (this.sendScheduled) return;
      this.sendScheduled = true;
      setImmediate(() => {
        this.sendScheduled = false;
        void this.drainOnce(false);
      });
      return;
    }
    void this.drainOnce();
  }

  /** Sends batches until the queue is empty (or, when not draining, below one batch) or a write fails. */
  private drainOnce(drain = true): Promise<void> {
    if (this.sending) return this.sending.then(() => (this.queue.size > 0 ? this.drainOnce(drain) : undefined));
    const run = async (): Promise<void> => {
      while (!this.closed && this.queue.size > 0 && Date.now() >= this.retryAt) {
        if (!drain && this.queue.size < this.batchSize) break;
        if (!(await this.sendBatch(this.queue.shift(this.batchSize)))) break;
      }
    };
    this.sending = run().finally(() => {
      this.sending = null;
    });
    return this.sending;
  }

  /** True when the sender may go on with the next batch. */
  private async sendBatch(batch: string[]): Promise<boolean> {
    this.inFlight = batch.length;
    try {
      this.writeApi.writeRecords(batch);
      await this.writeApi.flush();
      // A batch that outlived close() was counted as dropped there; it made it after all.
      if (this.closed) this.counters.dropped -= batch.length;
      this.counters.written += batch.length;
      if (this.consecutiveFailures > 0)
        this.log.info({ afterFailures: this.consecutiveFailures }, 'InfluxDB writes resumed');
      this.consecutiveFailures = 0;
      this.retryAt = 0;
      return true;
    } catch (err) {
      this.counters.failedWrites++;
      // Counted as dropped by close() already.
      if (this.closed) return false;
      if (!isRetriable(err)) {
        this.counters.dropped += batch.length;
        this.counters.rejected += batch.length;
        this.log.error({ err: errorMessage(err), lines: batch.length }, 'InfluxDB refused a batch; dropped');
        return true;
      }
      this.consecutiveFailures++;
      // Retried first, before newer lines; whatever no longer fits beside them is the oldest, and goes.
      this.inFlight = 0;
      this.counters.dropped += this.queue.unshift(batch);
      const delay = this.backoff();
      if (this.consecutiveFailures === 1)
        this.log.warn({ err: errorMessage(err), retryInMs: delay }, 'InfluxDB write failed');
      this.retryAt = Date.now() + delay;
      if (!this.closing) {
        if (this.retryTimer) clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(true), delay);
        this.retryTimer.unref();
      }
      return false;
    } finally {
      this.inFlight = 0;
    }
  }

  private backoff(): number {
    const exp = Math.min(this.maxRetryDelayMs, this.minRetryDelayMs * 2 ** Math.min(30, this.consecutiveFailures - 1));
    // Jitter in [exp/2, exp] so that several Foresight instances do not retry in lockstep.
    return Math.round(exp / 2 + (Math.random() * exp) / 2);
  }
}

/** Malformed lines, bad credentials and unknown buckets will not succeed later; anything else (5xx, 429, network) may. */
function isRetriable(err: unknown): boolean {
  if (err instanceof HttpError) return err.statusCode >= 500 || err.statusCode === 429 || err.statusCode === 408;
  return true;
}
