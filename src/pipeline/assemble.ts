import { hostname } from 'node:os';
import { ActionEngine, type EngineNode } from '../actions/engine.js';
import type { Dispatcher, Restarter, Store } from '../actions/ports.js';
import { EffectiveThresholds, type ThresholdsView } from '../actions/thresholds.js';
import { buildApp } from '../api/app.js';
import { ClusterView } from '../api/cluster-view.js';
import type { ApiModel, HealthCheck } from '../api/deps.js';
import { validate } from '../bus/codec.js';
import type { Bus } from '../bus/port.js';
import type { Clock } from '../clock.js';
import { redactConfig } from '../config/load.js';
import type { ForesightConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { InfluxExporter } from '../exporters/influx.js';
import { FeatureExtractor } from '../features/extractor.js';
import { PeerBoard } from '../features/peer-board.js';
import type { Logger } from '../log.js';
import type { AuditRecord, TelemetrySample } from '../messages.js';
import type { ScorerInfo } from '../models/scorers/factory.js';
import type { Scorer } from '../models/scorers/scorer.js';
import { busCheckpoints, type CheckpointLog, storeCheckpoints } from './checkpoints.js';
import { type SampleSink, startAll, type TelemetrySource } from './collectors.js';
import { engineSettings, thresholdFeedbackOf } from './engine-settings.js';
import { loopHealth } from './health.js';
import { type LeaderElection, Leadership, warmFromScores } from './leadership.js';
import { TelemetryOutbox } from './outbox.js';
import { ActionStage, auditPublisher, deadLetter, FeatureStage, ScoreStage } from './stages.js';

/** Loops built by this process: two replicas in one process (tests) must not share a peers consumer group. */
let loopsBuilt = 0;

/** Everything the loop is built from. `foresight run` and `foresight demo` differ only in what they put here. */
export interface LoopParts {
  config: Readonly<ForesightConfig>;
  logger: Logger;
  /** The nodes the action engine drives, with their dispatcher set and destination URI. */
  nodes: readonly EngineNode[];
  bus: Bus;
  store: Store;
  dispatcher: Dispatcher;
  restarter: Restarter;
  scorer: Scorer;
  scorerInfo: ScorerInfo;
  /** What /api/model serves when the scorer in charge can change (model lifecycle); else scorerInfo, fixed. */
  model?: ApiModel & {
    close?: () => Promise<void>;
    /** Hands over the sink of the audit records it writes itself (model promotions and rollbacks). */
    follow?: (sink: (record: AuditRecord) => void) => void;
  };
  /**
   * The telemetry sources that push samples into the loop (the collectors); each sample is checked before it is
   * published. The simulator is not one: its driver steps it and publishes on the bus directly.
   */
  sources?: (sink: SampleSink) => TelemetrySource[];
  /** Event time for the action engine: the simulator's virtual clock; wall time when absent. */
  clock?: Clock;
  exporter?: InfluxExporter | null;
  /** Score points per node the dashboard view keeps. */
  historyLimit: number;
  /** Called with every audit record after it is stored (the demo prints them in plain words). */
  onAudit?: (record: AuditRecord) => void;
  /** Serves the API and dashboard with these tokens; absent, the loop runs without an API (headless, tests). */
  api?: { tokens: { name: string; role: 'viewer' | 'operator'; token: string }[]; openLocalMode: boolean };
  /** Readiness lines for inputs that are not sources (the simulator). */
  extraHealth?: () => HealthCheck[];
}

export interface LoopStartOptions {
  /** Acts only while this election says so (Kafka); without one this replica acts from the start. */
  election?: LeaderElection;
  /**
   * Closes windows and moves lifecycles on wall time this often, even when no telemetry arrives (a silent cluster
   * must show as unobserved, not as healthy). Absent: the owner calls tick() (the demo's virtual clock).
   */
  tickEveryMs?: number;
  /** Where the API listens, once everything else runs. */
  listen?: { host: string; port: number };
}

/**
 * The loop, built from its parts: sources → bus `telemetry` → FeatureStage → `features` → ScoreStage → `scores` →
 * ActionStage → action engine → dispatcher and restarter, with the store, the dashboard view, the exporter and the
 * API around it. Nothing here knows whether the telemetry is real or simulated.
 */
export class Loop {
  readonly view: ClusterView;
  readonly stages: { feature: FeatureStage; score: ScoreStage };
  readonly leadership: Leadership;
  readonly sources: TelemetrySource[];
  readonly app: ReturnType<typeof buildApp> | null;
  private readonly outbox: TelemetryOutbox;
  private timer: NodeJS.Timeout | null = null;
  private closing = false;
  private lastEventsIn = 0;
  private lastMetricsAt = Date.now();
  private latestScoreTs = 0;

  private constructor(readonly parts: LoopParts) {
    const { config, logger, bus, store, dispatcher, restarter, scorer, nodes } = parts;
    const groupId = config.bus.kafka.groupId;
    this.view = new ClusterView({
      threshold: config.actions.guardrails.riskThreshold,
      historyLimit: parts.historyLimit,
    });
    const publishAudit = auditPublisher(bus, logger);
    parts.model?.follow?.((record) => {
      this.view.applyAudit(record);
      publishAudit(record);
      parts.onAudit?.(record);
    });
    const newEngine = () =>
      new ActionEngine({
        dispatcher,
        restarter,
        store,
        nodes: [...nodes],
        clock: parts.clock,
        logger: logger.child({ component: 'actions' }),
        ...engineSettings(config),
        scorer: scorer.name,
        onAudit: (record) => {
          if (record.kind === 'ThresholdMoved' && this.engine) this.view.threshold = this.engine.riskThreshold();
          this.view.applyAudit(record);
          publishAudit(record);
          parts.onAudit?.(record);
        },
      });
    let featureStage: FeatureStage | null = null;
    // What was learnt about a node survives a takeover (Kafka: nodes move between replicas, the `state` topic) and a
    // restart (in-process bus: the store). Not in the demo: its simulated cluster is new at every start.
    const checkpointLog: CheckpointLog | null =
      config.bus.kind === 'kafka' ? busCheckpoints(bus) : config.mode === 'sidecar' ? storeCheckpoints(store) : null;
    const checkpoints =
      checkpointLog && config.features.checkpointIntervalMs > 0
        ? {
            log: checkpointLog,
            everyMs: config.features.checkpointIntervalMs,
            maxAgeMs: config.features.checkpointMaxAgeMs,
          }
        : undefined;
    // With Kafka, replicas split the nodes by partition: peers on other replicas come through the features topic.
    const peerBoard = config.bus.kind === 'kafka' ? new PeerBoard({ windowMs: config.features.windowMs }) : undefined;
    const newExtractor = () =>
      new FeatureExtractor({
        nodes: nodes.map((n) => ({ nodeId: n.nodeId, setId: n.setId })),
        windowMs: config.features.windowMs,
        allowedLatenessMs: config.features.allowedLatenessMs,
        idleSourceMs: config.features.idlePartitionMs,
        remotePeers: peerBoard,
        onRejected: (sample, reason) => featureStage?.reject(sample, reason),
        logger,
      });
    featureStage = new FeatureStage({
      bus,
      groupId,
      logger,
      extractor: newExtractor(),
      partitions: config.bus.partitions,
      // With Kafka, a replica that gains partitions re-reads their recent past so the open window is neither lost
      // nor counted twice; the in-process bus has one consumer and never moves partitions.
      createExtractor: config.bus.kind === 'kafka' ? newExtractor : undefined,
      recoveryLookbackMs: config.features.recoveryLookbackMs,
      recoveryWarmupMs: config.features.recoveryWarmupMs,
      // Kafka delivers partition by partition (one at a time after an outage): a watermark per partition.
      arrivalClock: config.bus.kind === 'kafka' ? () => parts.clock?.now() ?? Date.now() : undefined,
      // What this replica's collectors spooled in an outage is still to come, whatever the group's lag says, and
      // windows wait for it even when another producer has moved its partitions on.
      upstreamBacklogTs: () => this.outbox.backlogOldestTs(),
      outageHoldMs: config.bus.outbox.maxOutageMs,
      checkpoints,
      peers: peerBoard ? { board: peerBoard, replicaId: `${hostname()}-${process.pid}-${++loopsBuilt}` } : undefined,
    });
    this.stages = {
      feature: featureStage,
      score: new ScoreStage({
        bus,
        groupId,
        logger,
        scorer,
        // Which nodes are this replica's, where partitions move (Kafka); one consumer holds them all otherwise.
        partitions: config.bus.kind === 'kafka' ? config.bus.partitions : undefined,
        checkpoints,
      }),
    };
    // A new term re-reads enough recent scores for K windows, past a Kafka session timeout and rebalance.
    const warmLookbackMs = 60_000 + (config.actions.guardrails.hysteresisWindows + 1) * config.features.windowMs;
    this.leadership = new Leadership(
      newEngine,
      (engine) => new ActionStage({ bus, groupId, logger, engine }),
      logger,
      (engine) =>
        warmFromScores(bus, engine, { lookbackMs: warmLookbackMs, now: parts.clock?.now() ?? Date.now(), logger }),
    );
    const spool = config.bus.outbox;
    this.outbox = new TelemetryOutbox(
      bus,
      logger.child({ component: 'outbox' }),
      config.bus.kind === 'kafka'
        ? {
            spoolDir: spool.dir,
            spoolLimits: { maxBytes: spool.maxBytes, maxRecords: spool.maxRecords },
            maxOutageMs: spool.maxOutageMs,
          }
        : {},
    );
    this.sources = parts.sources?.((samples) => this.publishChecked(samples)) ?? [];
    const health = loopHealth({
      bus,
      featureGroupId: `${groupId}.features`,
      outbox: this.outbox,
      dispatcher,
      sources: this.sources,
      exporter: parts.exporter ?? null,
    });
    this.app = parts.api
      ? buildApp(
          {
            cluster: this.view,
            actions: this.leadership.apiActions(store),
            explain: (nodeId) => this.leadership.explain(nodeId),
            audit: { query: (q) => store.queryAudit(q) },
            model: {
              info: async () => ({
                ...(parts.model ? await parts.model.info() : parts.scorerInfo),
                threshold: this.engine?.riskThreshold() ?? this.view.threshold,
              }),
              thresholds: () => this.thresholds(),
              ...(parts.model?.rollback ? { rollback: parts.model.rollback.bind(parts.model) } : {}),
            },
            config: () => redactConfig(config) as Record<string, unknown>,
            health: async () => [...(await health()), ...(parts.extraHealth?.() ?? [])],
          },
          { tokens: parts.api.tokens, openLocalMode: parts.api.openLocalMode, logger },
        )
      : null;
  }

  /** Builds the loop and subscribes the dashboard view; nothing consumes telemetry until start(). */
  static async assemble(parts: LoopParts): Promise<Loop> {
    const loop = new Loop(parts);
    await loop.subscribeView();
    return loop;
  }

  /** The leader's effective thresholds; a standby reads what the leader stored. */
  private async thresholds(): Promise<ThresholdsView> {
    if (this.engine) return this.engine.thresholdsView();
    const g = this.parts.config.actions.guardrails;
    const t = new EffectiveThresholds(
      g.riskThreshold,
      thresholdFeedbackOf(this.parts.config),
      g.recoverThreshold,
      this.parts.scorer.name,
    );
    await this.parts.store.init();
    await t.load(this.parts.store);
    return t.view();
  }

  /** The engine of the current leadership term; null on a standby. */
  get engine(): ActionEngine | null {
    return this.leadership.engine;
  }

  /** Every replica shows every node on its dashboard (consumer groups of its own); only the leader acts. */
  private async subscribeView(): Promise<void> {
    const { bus, exporter } = this.parts;
    const groupId = this.parts.config.bus.kafka.groupId;
    await bus.subscribe(
      'scores',
      async (batch) => {
        const scores = batch.map((r) => r.value);
        this.view.applyScores(scores);
        exporter?.exportScores(scores);
      },
      { groupId: `${groupId}.view.${process.pid}` },
    );
    await bus.subscribe(
      'features',
      async (batch) => {
        const vectors = batch.map((r) => r.value);
        this.view.applyFeatures(vectors);
        if (exporter) for (const v of vectors) exporter.exportFeatures(v);
      },
      { groupId: `${groupId}.view-features.${process.pid}` },
    );
  }

  /** Collector output is checked before it is published: a bad sample is dead-lettered with the reason, the rest flows. */
  private publishChecked(samples: TelemetrySample[]): void {
    if (samples.length === 0) return;
    const good: TelemetrySample[] = [];
    const rejected: { sample: TelemetrySample; reason: string }[] = [];
    for (const s of samples) {
      const problem = validate('telemetry', s);
      if (problem) rejected.push({ sample: s, reason: `collector produced an invalid sample: ${problem}` });
      else good.push(s);
    }
    if (rejected.length > 0) {
      deadLetter(this.parts.bus, 'telemetry', rejected, Date.now()).catch((err: unknown) =>
        this.parts.logger.error({ err: errorMessage(err) }, 'cannot dead-letter invalid telemetry'),
      );
    }
    if (good.length > 0) this.outbox.offer(good);
  }

  async start(options: LoopStartOptions = {}): Promise<void> {
    await this.stages.feature.start();
    await this.stages.score.start();
    if (options.election) await this.leadership.follow(options.election);
    else await this.leadership.gain();
    if (this.engine) {
      this.view.setNodeRecords(this.engine.nodeRecords());
      this.view.threshold = this.engine.riskThreshold();
    }
    await startAll(this.sources, this.parts.logger);
    if (options.tickEveryMs) {
      this.timer = setInterval(() => {
        if (this.closing) return;
        const now = Date.now();
        this.updateMetrics(now);
        void this.tick(now).catch((err: unknown) => {
          this.parts.logger.error({ err: errorMessage(err) }, 'tick failed');
        });
      }, options.tickEveryMs);
    }
    if (options.listen) await this.app?.listen(options.listen);
  }

  /**
   * Closes the windows that end by `now` and moves every lifecycle to `now`. With `settle` (the bus's idle()), waits
   * for the closed windows' scores to reach the engine before it moves, and for its actions to finish: the demo's
   * virtual clock needs every stage caught up before time moves on, so that a run is deterministic by seed.
   */
  async tick(now: number, settle?: () => Promise<void>): Promise<void> {
    if (this.closing) return;
    await this.stages.feature.tick(now);
    await settle?.();
    const engine = this.engine;
    if (!engine) return;
    await engine.tick(now);
    if (settle) await engine.idle();
    this.view.setNodeRecords(engine.nodeRecords());
    this.view.threshold = engine.riskThreshold();
  }

  /** Pipeline figures for /metrics: events/s into the feature stage, how far scores trail real time, model latency. */
  private updateMetrics(now: number): void {
    if (!this.app) return;
    const metrics = this.app.foresight.metrics;
    const eventsIn = this.stages.feature.counters.in;
    const seconds = (now - this.lastMetricsAt) / 1000;
    if (seconds >= 5) {
      metrics.setEventsPerSecond((eventsIn - this.lastEventsIn) / seconds);
      this.lastEventsIn = eventsIn;
      this.lastMetricsAt = now;
    }
    for (const ms of this.stages.score.latenciesMs.splice(0)) metrics.observeModelLatency(ms / 1000);
    metrics.setOutbox(this.outbox.stats());
    metrics.setCheckpoints('features', this.stages.feature.checkpoints);
    metrics.setCheckpoints('scorer', this.stages.score.checkpoints);
    for (const node of this.view.list()) this.latestScoreTs = Math.max(this.latestScoreTs, node.scoreTs ?? 0);
    if (this.latestScoreTs > 0) metrics.setPipelineLag(Math.max(0, (now - this.latestScoreTs) / 1000));
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await this.app?.close();
    for (const s of this.sources) await s.stop().catch(() => undefined);
    await this.stages.feature.stop();
    await this.stages.score.stop();
    await this.parts.model?.close?.();
    await this.leadership.lose();
    this.outbox.close();
    await this.parts.bus.close();
    await this.parts.exporter?.close(5000);
    await this.parts.store.close();
  }
}

/** Builds the loop from its parts; see Loop. */
export function assemble(parts: LoopParts): Promise<Loop> {
  return Loop.assemble(parts);
}
