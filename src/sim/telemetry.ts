import type { TelemetrySample } from '../messages.js';
import type { SimNode } from './node.js';

const SOURCE = 'sim' as const;
const DB_SAMPLES_PER_TICK = 2;

/** Cluster-wide constants the emitter needs. */
export interface TelemetryContext {
  /** Tick length. s */
  tickS: number;
  /** Active calls of one node at the busy hour: the load that healthy latencies and queues are scaled by. */
  nominalActive: number;
  memoryLimitMb: number;
}

/** Appends one tick of samples for the node and resets its tick counters. */
export function emitNode(node: SimNode, t: number, ctx: TelemetryContext, out: TelemetrySample[]): void {
  const id = node.id;
  const up = node.status === 'up';
  out.push({ nodeId: id, ts: t, metric: 'node.up', value: up ? 1 : 0, source: SOURCE });
  out.push({ nodeId: id, ts: t, metric: 'channels.active', value: node.active, source: SOURCE });
  out.push({ nodeId: id, ts: t, metric: 'calls.started', value: node.started, source: SOURCE });
  out.push({ nodeId: id, ts: t, metric: 'calls.completed', value: node.completed, source: SOURCE });
  out.push({ nodeId: id, ts: t, metric: 'calls.failed', value: node.failed, source: SOURCE });
  out.push({ nodeId: id, ts: t, metric: 'calls.dropped', value: node.dropped, source: SOURCE });
  // Foresight's own OPTIONS probe of the node, one per tick: answered while the process runs. No random draw, so the
  // simulator's other series (and every model trained on them) stay as they were.
  out.push({ nodeId: id, ts: t, metric: 'probe.options_sent', value: 1, source: 'probe' });
  if (up) {
    out.push({
      nodeId: id,
      ts: t,
      metric: 'probe.options_rtt_ms',
      value: node.pingRtt >= 0 ? node.pingRtt : 2,
      source: 'probe',
    });
  } else {
    out.push({ nodeId: id, ts: t, metric: 'probe.options_lost', value: 1, source: 'probe' });
  }
  if (up) emitHealth(node, t, ctx, out);
  else {
    // A dead process reports nothing itself; what remains is what Kamailio sees of it.
    out.push({ nodeId: id, ts: t, metric: 'sip.retransmissions', value: node.retrans, source: SOURCE });
    out.push({ nodeId: id, ts: t, metric: 'sip.replies_408', value: node.r408, source: SOURCE });
  }
  node.started = 0;
  node.completed = 0;
  node.failed = 0;
  node.dropped = 0;
  node.abnormal = 0;
  node.retrans = 0;
  node.r5xx = 0;
  node.r408 = 0;
  node.pingRtt = -1;
  node.inviteCount = 0;
}

/** What a running Asterisk reports about itself (AMI, host) plus what Kamailio sees of it. */
function emitHealth(node: SimNode, t: number, ctx: TelemetryContext, out: TelemetrySample[]): void {
  const id = node.id;
  const e = node.effects;
  const rng = node.rng;
  const load = node.active / ctx.nominalActive;
  const busy = load * load;

  out.push({ nodeId: id, ts: t, metric: 'hangup.abnormal', value: node.abnormal, source: SOURCE });
  const retrans =
    node.retrans + rng.poisson(node.started * (0.01 + e.retransPerCall) + e.retransPerS * ctx.tickS + 0.002);
  out.push({ nodeId: id, ts: t, metric: 'sip.retransmissions', value: retrans, source: SOURCE });
  const r5xx = node.r5xx + (node.started > 0 && rng.uniform() < 0.001 * node.started ? 1 : 0);
  out.push({ nodeId: id, ts: t, metric: 'sip.replies_5xx', value: r5xx, source: SOURCE });
  out.push({ nodeId: id, ts: t, metric: 'sip.replies_408', value: node.r408, source: SOURCE });
  if (node.pingRtt >= 0)
    out.push({ nodeId: id, ts: t, metric: 'sip.options_rtt_ms', value: node.pingRtt, source: SOURCE });
  for (let k = 0; k < node.inviteCount; k++) {
    out.push({ nodeId: id, ts: t, metric: 'sip.invite_setup_ms', value: node.inviteMs[k]!, source: SOURCE });
  }
  for (let k = 0; k < DB_SAMPLES_PER_TICK; k++) {
    const q = rng.logNormal(3, 0.35) * e.dbMult;
    out.push({ nodeId: id, ts: t, metric: 'db.query_ms', value: q, source: SOURCE });
  }
  out.push({
    nodeId: id,
    ts: t,
    metric: 'db.probe_failures',
    value: rng.poisson(e.probeFailPerS * ctx.tickS),
    source: SOURCE,
  });
  const queue = rng.poisson(1 + 12 * busy) + Math.round(e.queueAdd * rng.range(0.85, 1.15));
  out.push({ nodeId: id, ts: t, metric: 'taskprocessor.max_queue', value: queue, source: SOURCE });
  const healthyRss = node.baseRssMb + 0.6 * node.active + 1.5 * rng.normal();
  const rss = e.leakFraction > 0 ? healthyRss + (ctx.memoryLimitMb - healthyRss) * e.leakFraction : healthyRss;
  out.push({ nodeId: id, ts: t, metric: 'host.memory_rss_mb', value: rss, source: SOURCE });
  const cpu = Math.max(0, node.baseCpu + 0.3 * node.active * (1 + 0.3 * busy) + 1.2 * rng.normal() + e.cpuAdd);
  out.push({ nodeId: id, ts: t, metric: 'host.cpu_pct', value: cpu, source: SOURCE });
  const fds = Math.max(0, Math.round(node.baseFds + 2 * node.active + 2 * rng.normal()));
  out.push({ nodeId: id, ts: t, metric: 'host.open_fds', value: fds, source: SOURCE });
  if (node.active > 0) {
    const jitter = rng.logNormal(2.5, 0.4) + e.jitterAddMs * rng.range(0.6, 1.4);
    out.push({ nodeId: id, ts: t, metric: 'rtcp.jitter_ms', value: jitter, source: SOURCE });
    const loss = Math.min(100, rng.logNormal(0.08, 0.6) + e.lossAdd * rng.range(0.8, 1.2));
    out.push({ nodeId: id, ts: t, metric: 'rtcp.loss_pct', value: loss, source: SOURCE });
  }
}
