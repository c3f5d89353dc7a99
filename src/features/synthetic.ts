import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { MetricName, TelemetrySample } from '../messages.js';

/**
 * A small deterministic telemetry generator for feature and scorer tests and the bench. It is not the cluster
 * simulator (src/sim): it only shapes the signals the features look at, so that tests can state the
 * ground truth exactly (a linear memory ramp, a cluster-wide latency bump).
 */
export type SyntheticPrecursor = 'memory_leak' | 'db_degradation' | 'retransmission_storm' | 'taskprocessor_backlog';

export interface SyntheticIncident {
  nodeId: string;
  kind: SyntheticPrecursor;
  /** Seconds from the start when the precursor begins. */
  onsetS: number;
  /** Seconds from the start when the node fails (stops reporting). */
  crashS: number;
}

export interface SyntheticDisturbance {
  startS: number;
  endS: number;
  /** Latency multiplier on every node. */
  latencyFactor: number;
  /** Extra retransmissions per second on every node. */
  retransPerS: number;
}

export interface SyntheticOptions {
  nodes: string[];
  startMs: number;
  durationS: number;
  seed?: number;
  /** Load multiplier over time (1 = normal); shapes calls, channels, cpu and memory. */
  load?: (tS: number) => number;
  incidents?: SyntheticIncident[];
  disturbances?: SyntheticDisturbance[];
  /** RSS the leak reaches at crashS. MiB. Default 2048 (the simulator default). */
  memoryLimitMb?: number;
  /** Healthy RSS. MiB. Default 1000. */
  baseMemoryMb?: number;
}

/** Yields the samples of each 1 s tick, in event-time order. */
export function* syntheticTicks(o: SyntheticOptions): Generator<TelemetrySample[]> {
  const rng = xoroshiro128plus(o.seed ?? 7);
  const u = () => uniformFloat64(rng);
  const noise = (scale: number) => (u() - 0.5) * 2 * scale;
  const limit = o.memoryLimitMb ?? 2048;
  const baseMem = o.baseMemoryMb ?? 1000;
  const incidents = o.incidents ?? [];
  const disturbances = o.disturbances ?? [];
  for (let t = 0; t < o.durationS; t++) {
    const ts = o.startMs + t * 1000;
    const load = o.load ? o.load(t) : 1;
    const dist = disturbances.find((d) => t >= d.startS && t < d.endS);
    const latFactor = dist?.latencyFactor ?? 1;
    const extraRetrans = dist?.retransPerS ?? 0;
    const out: TelemetrySample[] = [];
    for (const nodeId of o.nodes) {
      const inc = incidents.find((i) => i.nodeId === nodeId && t >= i.onsetS);
      if (inc && t >= inc.crashS) continue;
      // Progress of the precursor, 0 at onset, 1 at the crash.
      const p = inc ? (t - inc.onsetS) / (inc.crashS - inc.onsetS) : 0;
      const push = (metric: MetricName, value: number) => out.push({ nodeId, ts, metric, value, source: 'sim' });
      const calls = Math.max(0, Math.round(5 * load + noise(2)));
      push('calls.started', calls);
      push('calls.completed', Math.max(0, calls - 1 + Math.round(noise(1))));
      push('channels.active', Math.round(100 * load + noise(5)));
      let setupMs = (80 + noise(15)) * latFactor;
      let queue = Math.max(0, Math.round(3 + noise(3)));
      let dbMs = (8 + noise(2)) * latFactor;
      let retrans = Math.max(0, Math.round(0.3 + noise(0.8))) + extraRetrans;
      let loss = Math.max(0, 0.2 + noise(0.15));
      let memory = baseMem + 20 * load + noise(3);
      let failed = 0;
      if (inc?.kind === 'memory_leak') memory += p * (limit - baseMem - 20 * load);
      if (inc?.kind === 'taskprocessor_backlog') {
        queue += Math.round(p * 500);
        setupMs += p * 2500;
        retrans += Math.round(p * 20);
      }
      if (inc?.kind === 'db_degradation') {
        dbMs += p * 1000;
        if (p > 0.7) failed = Math.round(calls * (p - 0.7) * 3);
      }
      if (inc?.kind === 'retransmission_storm') {
        retrans += Math.round(p * 60);
        loss += p * 15;
      }
      for (let k = 0; k < 3; k++) push('sip.invite_setup_ms', Math.max(1, setupMs + noise(10)));
      push('sip.options_rtt_ms', Math.max(0.1, (2 + noise(0.5)) * latFactor));
      for (let k = 0; k < 2; k++) push('db.query_ms', Math.max(0.1, dbMs + noise(2)));
      push('sip.retransmissions', retrans);
      push('calls.failed', failed);
      push('taskprocessor.max_queue', queue);
      push('rtcp.loss_pct', loss);
      push('rtcp.jitter_ms', Math.max(0, 3 + noise(1)));
      push('host.memory_rss_mb', memory);
      push('host.cpu_pct', Math.max(0, 30 * load + noise(5)));
      push('host.open_fds', Math.round(400 + 50 * load + noise(5)));
      push('node.up', 1);
    }
    yield out;
  }
}
