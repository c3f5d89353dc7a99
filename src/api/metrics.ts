import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LIFECYCLE_STATES } from '../messages.js';
import type { ClusterEvent, ClusterView } from './cluster-view.js';

/** Drain outcomes counted on `foresight_drains_total{result}`, taken from the audit kinds. */
const DRAIN_RESULTS: Record<string, string> = {
  DrainSucceeded: 'succeeded',
  DrainFailed: 'failed',
  DrainRefused: 'refused',
};

/**
 * The Prometheus metrics Foresight exposes. Node risk, node state and drains follow the ClusterView by themselves
 * (see `follow`); the wiring updates pipeline lag, events/s and model latency.
 */
export class ApiMetrics {
  readonly registry: Registry;
  private readonly nodeRisk: Gauge;
  private readonly nodeState: Gauge;
  private readonly drains: Counter;
  private readonly pipelineLag: Gauge;
  private readonly eventsPerSecond: Gauge;
  private readonly modelLatency: Histogram;
  private readonly outboxQueued: Gauge;
  private readonly telemetryDropped: Counter;
  private readonly checkpoints: Gauge;
  private droppedSoFar = 0;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.nodeRisk = new Gauge({
      name: 'foresight_node_risk',
      help: 'Latest risk score of the node, 0 to 1',
      labelNames: ['node'],
      registers,
    });
    this.nodeState = new Gauge({
      name: 'foresight_node_state',
      help: 'Lifecycle state of the node: 1 for the current state, 0 for the others',
      labelNames: ['node', 'state'],
      registers,
    });
    this.drains = new Counter({
      name: 'foresight_drains_total',
      help: 'Drains by result (succeeded, failed, refused)',
      labelNames: ['result'],
      registers,
    });
    this.pipelineLag = new Gauge({
      name: 'foresight_pipeline_lag_seconds',
      help: 'Wall time between a telemetry event and its score',
      registers,
    });
    this.eventsPerSecond = new Gauge({
      name: 'foresight_events_per_second',
      help: 'Telemetry events processed per second',
      registers,
    });
    this.modelLatency = new Histogram({
      name: 'foresight_model_latency_seconds',
      help: 'Time the scorer takes for one feature vector',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5],
      registers,
    });
    this.outboxQueued = new Gauge({
      name: 'foresight_telemetry_outbox_queued',
      help: "Collectors' samples waiting for the bus, in memory or spooled to disk",
      labelNames: ['where'],
      registers,
    });
    this.telemetryDropped = new Counter({
      name: 'foresight_telemetry_dropped_total',
      help: "Collectors' samples the outbox could not keep during a bus outage (full, or older than maxOutageMs)",
      registers,
    });
    this.checkpoints = new Gauge({
      name: 'foresight_state_checkpoints',
      help: 'Per-node state checkpoints since start, by stage and result (written, write_failed, restored, refused)',
      labelNames: ['stage', 'result'],
      registers,
    });
  }

  /** What a stage's checkpoints did since start (counts only grow). */
  setCheckpoints(
    stage: 'features' | 'scorer',
    c: { written: number; writeFailures: number; restored: number; refused: number },
  ): void {
    this.checkpoints.set({ stage, result: 'written' }, c.written);
    this.checkpoints.set({ stage, result: 'write_failed' }, c.writeFailures);
    this.checkpoints.set({ stage, result: 'restored' }, c.restored);
    this.checkpoints.set({ stage, result: 'refused' }, c.refused);
  }

  /** The collectors' samples waiting for the bus, and those it could not keep. */
  setOutbox(stats: { queued: number; spooled: number; dropped: number }): void {
    this.outboxQueued.set({ where: 'memory' }, stats.queued - stats.spooled);
    this.outboxQueued.set({ where: 'disk' }, stats.spooled);
    if (stats.dropped > this.droppedSoFar) this.telemetryDropped.inc(stats.dropped - this.droppedSoFar);
    this.droppedSoFar = Math.max(this.droppedSoFar, stats.dropped);
  }

  setNodeRisk(nodeId: string, risk: number): void {
    this.nodeRisk.set({ node: nodeId }, risk);
  }

  setNodeState(nodeId: string, state: string): void {
    for (const s of LIFECYCLE_STATES) this.nodeState.set({ node: nodeId, state: s }, s === state ? 1 : 0);
  }

  countDrain(result: string): void {
    this.drains.inc({ result });
  }

  setPipelineLag(seconds: number): void {
    this.pipelineLag.set(seconds);
  }

  setEventsPerSecond(rate: number): void {
    this.eventsPerSecond.set(rate);
  }

  observeModelLatency(seconds: number): void {
    this.modelLatency.observe(seconds);
  }

  /** Keeps node risk, node state and drain counts in step with the view. Returns the unsubscribe function. */
  follow(cluster: ClusterView): () => void {
    for (const node of cluster.list()) {
      if (node.risk !== null) this.setNodeRisk(node.nodeId, node.risk);
      if (node.state !== 'unknown') this.setNodeState(node.nodeId, node.state);
    }
    return cluster.subscribe((event: ClusterEvent) => {
      if (event.type === 'scores') {
        for (const point of event.data) this.setNodeRisk(point.nodeId, cluster.get(point.nodeId)?.risk ?? point.risk);
      } else if (event.type === 'node') {
        if (event.data.state !== 'unknown') this.setNodeState(event.data.nodeId, event.data.state);
      } else {
        const result = DRAIN_RESULTS[event.data.kind];
        if (result) this.countDrain(result);
      }
    });
  }
}
