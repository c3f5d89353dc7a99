import { type Clock, systemClock } from '../../clock.js';
import { errorMessage, ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { MetricName, TelemetrySample } from '../../messages.js';
import { type HostMetricMap, type HostProfile, type HostReadings, profileMetrics, readHostMetrics } from './metrics.js';

export interface HostCollectorOptions {
  nodeId: string;
  /** Prometheus text endpoint, e.g. `http://127.0.0.1:9256/metrics` (process-exporter) or `:9100/metrics`. */
  url: string;
  onSamples: (samples: TelemetrySample[]) => void;
  /** Default `process-exporter`. */
  profile?: HostProfile;
  /** process-exporter group name of the Asterisk process. Default `asterisk`. */
  processGroup?: string;
  /** Overrides the profile's series, entry by entry. */
  metrics?: HostMetricMap;
  /** Default 15 s. */
  intervalMs?: number;
  /** A scrape slower than this counts as a failure. Default 5 s. */
  timeoutMs?: number;
  clock?: Clock;
  logger?: Logger;
}

export interface HostCollectorStats {
  nodeId: string;
  scrapes: number;
  failures: number;
  /** Failures that were timeouts (also counted in failures). */
  timeouts: number;
  lastError: string | null;
  lastScrapeAt: number | null;
  /** Last values read; threads has no metric in the vocabulary yet, so it is only visible here. */
  last: HostReadings;
}

const MIB = 1024 * 1024;

/** Scrapes one node's metrics endpoint and emits host.* samples (source `host`). */
export class HostCollector {
  private readonly map: HostMetricMap;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<unknown> | null = null;
  private prevCpu: { seconds: number; at: number } | null = null;
  private readonly counters: Omit<HostCollectorStats, 'nodeId'> = {
    scrapes: 0,
    failures: 0,
    timeouts: 0,
    lastError: null,
    lastScrapeAt: null,
    last: {},
  };

  constructor(private readonly o: HostCollectorOptions) {
    try {
      new URL(o.url);
    } catch {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `metrics URL for ${o.nodeId} is invalid`);
    }
    this.map = { ...profileMetrics(o.profile ?? 'process-exporter', o.processGroup), ...o.metrics };
    this.clock = o.clock ?? systemClock;
    this.logger = (o.logger ?? silentLogger()).child({ component: 'host', nodeId: o.nodeId });
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      if (!this.inFlight) this.inFlight = this.scrapeOnce().finally(() => (this.inFlight = null));
    };
    tick();
    this.timer = setInterval(tick, this.o.intervalMs ?? 15_000);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inFlight;
  }

  stats(): HostCollectorStats {
    return { nodeId: this.o.nodeId, ...this.counters, last: { ...this.counters.last } };
  }

  /**
   * One scrape: emits and returns the samples. Never throws: a failure (HTTP error, timeout, unparsable text) is
   * counted and logged and yields no samples. CPU needs two scrapes (it is a rate of a counter).
   */
  async scrapeOnce(): Promise<TelemetrySample[]> {
    this.counters.scrapes++;
    let readings: HostReadings;
    try {
      const res = await fetch(this.o.url, { signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      readings = readHostMetrics(await res.text(), this.map);
    } catch (err) {
      this.counters.failures++;
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      if (timedOut) this.counters.timeouts++;
      this.counters.lastError = timedOut ? `scrape timed out after ${this.o.timeoutMs ?? 5000} ms` : errorMessage(err);
      this.logger.warn({ url: this.o.url, err: this.counters.lastError }, 'host metrics scrape failed');
      return [];
    }
    const now = this.clock.now();
    this.counters.lastScrapeAt = now;
    this.counters.last = readings;
    const samples: TelemetrySample[] = [];
    const push = (metric: MetricName, value: number) => {
      if (Number.isFinite(value)) samples.push({ nodeId: this.o.nodeId, ts: now, metric, value, source: 'host' });
    };
    if (readings.rssBytes !== undefined) push('host.memory_rss_mb', readings.rssBytes / MIB);
    if (readings.openFds !== undefined) push('host.open_fds', readings.openFds);
    if (readings.cpuSecondsTotal !== undefined) {
      const prev = this.prevCpu;
      this.prevCpu = { seconds: readings.cpuSecondsTotal, at: now };
      // A counter that went down means the process restarted: start a new baseline instead of a negative rate.
      if (prev && now > prev.at && readings.cpuSecondsTotal >= prev.seconds) {
        push('host.cpu_pct', ((readings.cpuSecondsTotal - prev.seconds) / ((now - prev.at) / 1000)) * 100);
      }
    }
    if (samples.length > 0) {
      try {
        this.o.onSamples(samples);
      } catch (err) {
        this.logger.error({ err: errorMessage(err) }, 'onSamples handler threw');
      }
    }
    return samples;
  }
}
