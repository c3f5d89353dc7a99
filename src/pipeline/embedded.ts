import type { ActionEngine } from '../actions/engine.js';
import type { Store } from '../actions/ports.js';
import type { ClusterView } from '../api/cluster-view.js';
import { MemoryBus } from '../bus/memory.js';
import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditRecord, TelemetrySample } from '../messages.js';
import type { ScorerInfo } from '../models/scorers/factory.js';
import { SimulatedCluster } from '../sim/cluster.js';
import { SimulatedDispatcher } from '../sim/dispatcher.js';
import type { IncidentPlan, SimulatedClusterInput } from '../sim/options.js';
import { SimulatedRestarter } from '../sim/restarter.js';
import { apiTokens, createSqliteStore, withDryRun } from './adapters.js';
import { assemble, type Loop } from './assemble.js';
import { lifecycleParts } from './model-lifecycle.js';

export interface EmbeddedRuntimeOptions {
  config: Readonly<ForesightConfig>;
  logger: Logger;
  /** Overrides for the simulator (seed, start time, incident plan...). */
  simulator?: SimulatedClusterInput;
  /** `:memory:` for headless runs that need no durable state. */
  storePath?: string;
  /** Called with every audit record after it is stored (the demo prints them in plain words). */
  onAudit?: (record: AuditRecord) => void;
  /** Builds the API and dashboard too (the live demo serves them with `runtime.loop.app`). */
  api?: boolean;
}

/**
 * The loop on the demo's parts: simulated cluster → in-process bus → features → scorer → action engine → simulated
 * dispatcher/restarter, SQLite store, and the view the dashboard reads. Time is the simulator's virtual clock;
 * `advanceTo` moves it and waits until every stage has caught up, so a run is deterministic by seed.
 */
export class EmbeddedRuntime {
  /** Telemetry samples published so far. */
  samplesPublished = 0;
  private readonly buffer: TelemetrySample[] = [];

  private constructor(
    readonly cluster: SimulatedCluster,
    readonly bus: MemoryBus,
    readonly loop: Loop,
    readonly engine: ActionEngine,
    readonly scorerInfo: ScorerInfo,
    readonly scorerName: string,
  ) {}

  static async create(options: EmbeddedRuntimeOptions): Promise<EmbeddedRuntime> {
    const { config, logger } = options;
    const cluster = new SimulatedCluster({
      seed: config.simulator.seed,
      nodes: config.simulator.nodes,
      randomIncidents: { perNodeDay: config.simulator.incidentsPerNodeDay },
      ...options.simulator,
    });
    const lifecycleOn = config.model.lifecycle.enabled;
    const bus = new MemoryBus({
      partitions: config.bus.partitions,
      logger,
      // The model lifecycle reads its recording back from the bus, as it does from Kafka's retention: keep that much
      // (the simulator emits under 30 samples per node-second).
      ...(lifecycleOn
        ? {
            retainCommitted: Math.ceil(
              ((config.model.lifecycle.recordMs / 1000) * 30 * config.simulator.nodes) / config.bus.partitions,
            ),
          }
        : {}),
    });
    const store = createSqliteStore(options.storePath ?? config.store.path);
    await store.init();
    const nodes = cluster.nodes().map((n) => ({ nodeId: n.nodeId, setId: n.setId, uri: n.uri }));
    const { scorer, scorerInfo, model } = await lifecycleParts({
      config,
      logger,
      bus,
      store,
      nodes,
      startedAt: cluster.now(),
    });
    const loop = await assemble({
      config,
      logger,
      nodes,
      bus,
      store,
      ...withDryRun(
        config,
        {
          dispatcher: new SimulatedDispatcher(cluster, { logger }),
          restarter: () => new SimulatedRestarter(cluster, { logger }),
        },
        logger,
        cluster,
      ),
      scorer,
      scorerInfo,
      ...(model ? { model } : {}),
      clock: cluster,
      historyLimit: 4320,
      onAudit: options.onAudit,
      api: options.api ? { tokens: apiTokens(config), openLocalMode: config.api.openLocalMode } : undefined,
      extraHealth: () => [{ name: 'collectors', ok: true, detail: `simulator, ${config.simulator.nodes} nodes` }],
    });
    await loop.start();
    // No election in the demo: this process leads from the start, with one engine for the whole run.
    const engine = loop.engine;
    if (!engine) throw new ForesightError('FORESIGHT_ERR_INTERNAL', 'the embedded loop has no action engine');
    return new EmbeddedRuntime(cluster, bus, loop, engine, scorerInfo, scorer.name);
  }

  get view(): ClusterView {
    return this.loop.view;
  }

  get store(): Store {
    return this.loop.parts.store;
  }

  /**
   * Runs simulated time up to `ts`, one window at a time: publish the window's telemetry, let every stage catch up,
   * close windows by time, then let the action engine move its lifecycles.
   */
  async advanceTo(ts: number): Promise<void> {
    // The simulator moves in whole ticks: stop at the last tick boundary at or before ts.
    const tickMs = this.cluster.options.tickMs;
    const windowMs = this.loop.parts.config.features.windowMs;
    while (this.cluster.now() + tickMs <= ts) {
      const next = Math.min(ts, this.cluster.now() + windowMs);
      this.buffer.length = 0;
      this.cluster.step(next, this.buffer);
      if (this.buffer.length > 0) {
        const records = new Array(this.buffer.length);
        for (let i = 0; i < this.buffer.length; i++) {
          const s = this.buffer[i]!;
          records[i] = { key: s.nodeId, value: s, timestamp: s.ts };
        }
        this.bus.publishSync('telemetry', records);
        this.samplesPublished += records.length;
      }
      await this.bus.idle();
      await this.loop.tick(this.cluster.now(), () => this.bus.idle());
    }
  }

  async close(): Promise<void> {
    await this.loop.close();
  }
}

/** The scripted incident that `npm start` shows within its first minute, on top of the random ones. */
export function demoIncidentPlan(startAt: number, nodeId: string): IncidentPlan[] {
  return [{ nodeId, mode: 'taskprocessor_backlog', onsetAt: startAt + 6 * 60_000, crashAt: startAt + 20 * 60_000 }];
}
