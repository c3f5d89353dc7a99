import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SimulatedDispatcher } from '../actions/dispatcher/simulated.js';
import { DryRunDispatcher, DryRunRestarter } from '../actions/dry-run.js';
import { ActionEngine } from '../actions/engine.js';
import type { Dispatcher, Restarter } from '../actions/ports.js';
import { SimulatedRestarter } from '../actions/restarter/simulated.js';
import { SqliteStore } from '../actions/store/sqlite.js';
import { ClusterView } from '../api/cluster-view.js';
import type { ApiActions } from '../api/deps.js';
import { MemoryBus } from '../bus/memory.js';
import type { ForesightConfig } from '../config/schema.js';
import { FeatureExtractor } from '../features/extractor.js';
import { SimulatedCluster } from '../ingest/simulator/cluster.js';
import type { IncidentPlan, SimulatedClusterInput } from '../ingest/simulator/options.js';
import type { Logger } from '../log.js';
import type { AuditRecord, TelemetrySample } from '../messages.js';
import { createScorerWithInfo, type ScorerInfo } from '../models/factory.js';
import { apiActionsFor } from './api-actions.js';
import { engineSettings } from './engine-settings.js';
import { ActionStage, auditPublisher, FeatureStage, ScoreStage } from './stages.js';

export interface EmbeddedRuntimeOptions {
  config: Readonly<ForesightConfig>;
  logger: Logger;
  /** Overrides for the simulator (seed, start time, incident plan...). */
  simulator?: SimulatedClusterInput;
  /** `:memory:` for headless runs that need no durable state. */
  storePath?: string;
  /** Called with every audit record after it is stored (the demo prints them in plain words). */
  onAudit?: (record: AuditRecord) => void;
}

/**
 * The whole loop on embedded parts: simulated cluster → in-process bus → features → scorer → action engine →
 * simulated dispatcher/restarter, SQLite store, and the view the dashboard reads. Time is the simulator's virtual
 * clock; `advanceTo` moves it and waits until every stage has caught up, so a run is deterministic by seed.
 */
export class EmbeddedRuntime {
  readonly cluster: SimulatedCluster;
  readonly bus: MemoryBus;
  readonly view: ClusterView;
  readonly engine: ActionEngine;
  readonly store: SqliteStore;
  readonly featureStage: FeatureStage;
  readonly scoreStage: ScoreStage;
  readonly actionStage: ActionStage;
  readonly scorerName: string;
  readonly scorerInfo: ScorerInfo;
  /** Telemetry samples published so far. */
  samplesPublished = 0;
  private readonly windowMs: number;
  private readonly buffer: TelemetrySample[] = [];

  private constructor(parts: {
    cluster: SimulatedCluster;
    bus: MemoryBus;
    view: ClusterView;
    engine: ActionEngine;
    store: SqliteStore;
    featureStage: FeatureStage;
    scoreStage: ScoreStage;
    actionStage: ActionStage;
    scorerName: string;
    scorerInfo: ScorerInfo;
    windowMs: number;
  }) {
    this.cluster = parts.cluster;
    this.bus = parts.bus;
    this.view = parts.view;
    this.engine = parts.engine;
    this.store = parts.store;
    this.featureStage = parts.featureStage;
    this.scoreStage = parts.scoreStage;
    this.actionStage = parts.actionStage;
    this.scorerName = parts.scorerName;
    this.scorerInfo = parts.scorerInfo;
    this.windowMs = parts.windowMs;
  }

  static async create(options: EmbeddedRuntimeOptions): Promise<EmbeddedRuntime> {
    const { config, logger } = options;
    const cluster = new SimulatedCluster({
      seed: config.simulator.seed,
      nodes: config.simulator.nodes,
      randomIncidents: { perNodeDay: config.simulator.incidentsPerNodeDay },
      ...options.simulator,
    });
    const nodes = cluster.nodes().map((n) => ({ nodeId: n.nodeId, setId: n.setId, uri: n.uri }));

    const bus = new MemoryBus({ partitions: config.bus.partitions, logger });
    const storePath = options.storePath ?? config.store.path;
    if (storePath !== ':memory:') mkdirSync(dirname(storePath), { recursive: true });
    const store = new SqliteStore({ path: storePath });
    await store.init();

    let dispatcher: Dispatcher = new SimulatedDispatcher(cluster, { logger });
    let restarter: Restarter = new SimulatedRestarter(cluster, { logger });
    if (config.actions.dryRun) {
      // The simulated dispatcher is only read (list), so dry-run drains are judged against the real destinations.
      dispatcher = new DryRunDispatcher({ inner: dispatcher, logger, now: () => cluster.now() });
      restarter = new DryRunRestarter({ logger, now: () => cluster.now() });
    }

    const g = config.actions.guardrails;
    const view = new ClusterView({ threshold: g.riskThreshold, historyLimit: 4320 });
    const publishAudit = auditPublisher(bus, logger);
    const engine = new ActionEngine({
      dispatcher,
      restarter,
      store,
      nodes,
      clock: cluster,
      logger,
      ...engineSettings(config),
      onAudit: (record) => {
        view.applyAudit(record);
        publishAudit(record);
        options.onAudit?.(record);
      },
    });
    await engine.init();
    view.setNodeRecords(engine.nodeRecords());

    const { scorer, info: scorerInfo } = await createScorerWithInfo(config, logger);
    let featureStage: FeatureStage | null = null;
    const extractor = new FeatureExtractor({
      nodes: nodes.map((n) => ({ nodeId: n.nodeId, setId: n.setId })),
      windowMs: config.features.windowMs,
      allowedLatenessMs: config.features.allowedLatenessMs,
      onRejected: (sample, reason) => featureStage?.reject(sample, reason),
      logger,
    });
    featureStage = new FeatureStage({ bus, groupId: 'foresight', logger, extractor });
    const scoreStage = new ScoreStage({ bus, groupId: 'foresight', logger, scorer });
    const actionStage = new ActionStage({
      bus,
      groupId: 'foresight',
      logger,
      engine,
      observers: [(scores) => view.applyScores(scores)],
    });
    await bus.subscribe('features', async (batch) => view.applyFeatures(batch.map((r) => r.value)), {
      groupId: 'foresight.view',
      fromBeginning: true,
    });
    await featureStage.start();
    await scoreStage.start();
    await actionStage.start();

    return new EmbeddedRuntime({
      cluster,
      bus,
      view,
      engine,
      store,
      featureStage,
      scoreStage,
      actionStage,
      scorerName: scorer.name,
      scorerInfo,
      windowMs: config.features.windowMs,
    });
  }

  /**
   * Runs simulated time up to `ts`, one window at a time: publish the window's telemetry, let every stage catch up,
   * close windows by time, then let the action engine move its lifecycles.
   */
  async advanceTo(ts: number): Promise<void> {
    // The simulator moves in whole ticks: stop at the last tick boundary at or before ts.
    const tickMs = this.cluster.options.tickMs;
    while (this.cluster.now() + tickMs <= ts) {
      const next = Math.min(ts, this.cluster.now() + this.windowMs);
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
      await this.featureStage.tick(this.cluster.now());
      await this.bus.idle();
      await this.engine.tick(this.cluster.now());
      await this.engine.idle();
      this.view.setNodeRecords(this.engine.nodeRecords());
    }
  }

  /** The engine as the API's manual-override port. */
  engineActions(): ApiActions {
    return apiActionsFor(this.engine, this.store);
  }

  async close(): Promise<void> {
    await this.featureStage.stop();
    await this.scoreStage.stop();
    await this.actionStage.stop();
    await this.engine.idle();
    await this.bus.close();
    await this.store.close();
  }
}

/** The scripted incident that `npm start` shows within its first minute, on top of the random ones. */
export function demoIncidentPlan(startAt: number, nodeId: string): IncidentPlan[] {
  return [{ nodeId, mode: 'taskprocessor_backlog', onsetAt: startAt + 6 * 60_000, crashAt: startAt + 20 * 60_000 }];
}
