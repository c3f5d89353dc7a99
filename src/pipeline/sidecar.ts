import { KamailioDispatcher } from '../actions/dispatcher/kamailio.js';
import { DryRunDispatcher, DryRunRestarter } from '../actions/dry-run.js';
import { ActionEngine } from '../actions/engine.js';
import type { Dispatcher, Restarter, Store } from '../actions/ports.js';
import { AmiRestarter } from '../actions/restarter/ami.js';
import { CommandRestarter } from '../actions/restarter/command.js';
import { WebhookRestarter } from '../actions/restarter/webhook.js';
import { PostgresStore } from '../actions/store/postgres.js';
import { SqliteStore } from '../actions/store/sqlite.js';
import { buildApp } from '../api/app.js';
import { ClusterView } from '../api/cluster-view.js';
import type { ApiActions } from '../api/deps.js';
import { validate } from '../bus/codec.js';
import { createBus } from '../bus/factory.js';
import type { Bus } from '../bus/port.js';
import { redactConfig, resolveSecret } from '../config/load.js';
import type { ForesightConfig } from '../config/schema.js';
import { errorMessage, ForesightError } from '../errors.js';
import { InfluxExporter } from '../exporters/influx.js';
import { FeatureExtractor } from '../features/extractor.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';
import { createScorerWithInfo } from '../models/factory.js';
import { apiActionsFor } from './api-actions.js';
import { createCollectors, type HealthCheck, startAll, type TelemetrySource } from './collectors.js';
import { engineSettings } from './engine-settings.js';
import { TelemetryOutbox } from './outbox.js';
import { ActionStage, auditPublisher, deadLetter, FeatureStage, ScoreStage } from './stages.js';

function createStore(config: Readonly<ForesightConfig>): Store {
  if (config.store.kind === 'postgres') {
    const url = new URL(config.store.url!);
    if (config.store.password) url.password = resolveSecret(config.store.password);
    return new PostgresStore({ connectionString: url.toString(), schema: config.store.schema });
  }
  return new SqliteStore({ path: config.store.path });
}

function createDispatcher(config: Readonly<ForesightConfig>, logger: Logger): Dispatcher {
  const d = config.actions.dispatcher;
  const real = new KamailioDispatcher({ url: d.rpcUrl, timeoutMs: d.timeoutMs, logger });
  // Dry-run swaps the actuator; the decision logic is the same code path.
  return config.actions.dryRun ? new DryRunDispatcher({ inner: real, logger }) : real;
}

function createRestarter(config: Readonly<ForesightConfig>, logger: Logger): Restarter {
  if (config.actions.dryRun) return new DryRunRestarter({ logger });
  const r = config.actions.restarter;
  switch (r.kind) {
    case 'ami': {
      const byId = new Map(config.nodes.map((n) => [n.id, n.ami]));
      return new AmiRestarter({
        endpoint: (nodeId) => {
          const ami = byId.get(nodeId);
          return ami
            ? { host: ami.host, port: ami.port, username: ami.username, secret: resolveSecret(ami.secret) }
            : undefined;
        },
        mode: r.amiMode,
        logger,
      });
    }
    case 'command':
      return new CommandRestarter({ command: r.command! });
    case 'webhook':
      return new WebhookRestarter({ url: r.url! });
    case 'simulated':
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'the simulated restarter exists only in embedded mode');
  }
}

/**
 * Foresight as a sidecar next to Kamailio: real collectors → bus → features → scorer → action engine → Kamailio,
 * with the API and dashboard. Time is wall time; a one-second tick closes windows and moves lifecycles even when
 * no telemetry arrives (a silent cluster must show as unobserved, not as healthy).
 */
export class SidecarRuntime {
  private timer: NodeJS.Timeout | null = null;
  private closing = false;

  private constructor(
    readonly bus: Bus,
    readonly store: Store,
    readonly view: ClusterView,
    readonly sources: TelemetrySource[],
    readonly stages: { feature: FeatureStage; score: ScoreStage },
    readonly leadership: Leadership,
    readonly app: ReturnType<typeof buildApp>,
    private readonly logger: Logger,
    readonly exporter: InfluxExporter | null,
  ) {}

  static async create(config: Readonly<ForesightConfig>, logger: Logger): Promise<SidecarRuntime> {
    const nodes = config.nodes.map((n) => ({ nodeId: n.id, setId: n.setId, uri: n.uri }));
    const bus = await createBus(config, logger);
    await bus.ensureTopics();
    const store = createStore(config);
    await store.init();
    const dispatcher = createDispatcher(config, logger.child({ component: 'dispatcher' }));
    const restarter = createRestarter(config, logger.child({ component: 'restarter' }));
    const g = config.actions.guardrails;
    const view = new ClusterView({ threshold: g.riskThreshold, historyLimit: 8640 });
    const publishAudit = auditPublisher(bus, logger);
    const influx = config.exporters.influx;
    // The exporter only queues; a slow or dead InfluxDB never blocks the pipeline.
    const exporter = influx
      ? new InfluxExporter({
          url: influx.url,
          org: influx.org,
          bucket: influx.bucket,
          token: influx.token ? resolveSecret(influx.token) : undefined,
          maxBufferLines: influx.maxBufferLines,
          flushIntervalMs: influx.flushIntervalMs,
          logger: logger.child({ component: 'influx' }),
        })
      : null;
    const newEngine = () =>
      new ActionEngine({
        dispatcher,
        restarter,
        store,
        nodes,
        logger: logger.child({ component: 'actions' }),
        ...engineSettings(config),
        onAudit: (record) => {
          view.applyAudit(record);
          publishAudit(record);
        },
      });

    const { scorer, info: scorerInfo } = await createScorerWithInfo(config, logger);
    let featureStage: FeatureStage | null = null;
    const newExtractor = () =>
      new FeatureExtractor({
        nodes: nodes.map((n) => ({ nodeId: n.nodeId, setId: n.setId })),
        windowMs: config.features.windowMs,
        allowedLatenessMs: config.features.allowedLatenessMs,
        onRejected: (sample, reason) => featureStage?.reject(sample, reason),
        logger,
      });
    const groupId = config.bus.kafka.groupId;
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
    });
    const scoreStage = new ScoreStage({ bus, groupId, logger, scorer });
    const leadership = new Leadership(newEngine, (engine) => new ActionStage({ bus, groupId, logger, engine }), logger);
    // Every replica shows every node's scores on its dashboard; only the leader acts on them.
    await bus.subscribe(
      'scores',
      async (batch) => {
        const scores = batch.map((r) => r.value);
        view.applyScores(scores);
        exporter?.exportScores(scores);
      },
      { groupId: `${groupId}.view.${process.pid}` },
    );
    await bus.subscribe(
      'features',
      async (batch) => {
        const vectors = batch.map((r) => r.value);
        view.applyFeatures(vectors);
        if (exporter) for (const v of vectors) exporter.exportFeatures(v);
      },
      { groupId: `${groupId}.view-features.${process.pid}` },
    );

    const outbox = new TelemetryOutbox(bus, logger.child({ component: 'outbox' }));
    // Collector output is checked before it is published: a bad sample is dead-lettered with the reason, the rest flows.
    const sink = (samples: TelemetrySample[]) => {
      if (samples.length === 0) return;
      const good: TelemetrySample[] = [];
      const bad: { sample: TelemetrySample; reason: string }[] = [];
      for (const s of samples) {
        const problem = validate('telemetry', s);
        if (problem) bad.push({ sample: s, reason: problem });
        else good.push(s);
      }
      if (bad.length > 0) {
        const rejected = bad.map(({ sample, reason }) => ({
          sample,
          reason: `collector produced an invalid sample: ${reason}`,
        }));
        deadLetter(bus, 'telemetry', rejected, Date.now()).catch((err: unknown) =>
          logger.error({ err: errorMessage(err) }, 'cannot dead-letter invalid telemetry'),
        );
      }
      if (good.length > 0) outbox.offer(good);
    };
    const sources = createCollectors(config, sink, logger);

    const health = async (): Promise<HealthCheck[]> => {
      const checks: HealthCheck[] = [];
      try {
        const lag = await bus.lag('telemetry', `${groupId}.features`);
        const o = outbox.stats();
        checks.push({
          name: 'bus',
          ok: o.queued === 0,
          detail: `telemetry lag ${lag}; outbox queued ${o.queued}, dropped ${o.dropped}`,
        });
      } catch (err) {
        checks.push({ name: 'bus', ok: false, detail: errorMessage(err) });
      }
      try {
        const list = await dispatcher.list();
        checks.push({ name: 'dispatcher', ok: true, detail: `${dispatcher.name}: ${list.length} destinations` });
      } catch (err) {
        checks.push({ name: 'dispatcher', ok: false, detail: errorMessage(err) });
      }
      for (const s of sources) checks.push(...s.health());
      if (exporter) {
        const st = exporter.stats();
        // A dead InfluxDB is worth seeing but must not make Foresight unready: it only loses history.
        checks.push({
          name: 'influx',
          ok: true,
          detail: `written ${st.written}, dropped ${st.dropped}, buffered ${st.buffered}`,
        });
      }
      return checks;
    };
    const tokens = config.api.tokens.map((t) => ({ name: t.name, role: t.role, token: resolveSecret(t.token) }));
    const app = buildApp(
      {
        cluster: view,
        actions: leadership.apiActions(store),
        explain: (nodeId) => leadership.explain(nodeId),
        audit: { query: (q) => store.queryAudit(q) },
        model: { info: () => ({ ...scorerInfo }) },
        config: () => redactConfig(config) as Record<string, unknown>,
        health,
      },
      { tokens, openLocalMode: config.api.openLocalMode, logger },
    );

    const runtime = new SidecarRuntime(
      bus,
      store,
      view,
      sources,
      { feature: featureStage, score: scoreStage },
      leadership,
      app,
      logger,
      exporter,
    );
    return runtime;
  }

  async start(host: string, port: number, election?: LeaderElection): Promise<void> {
    await this.stages.feature.start();
    await this.stages.score.start();
    if (election) await this.leadership.follow(election);
    else await this.leadership.gain();
    await startAll(this.sources, this.logger);
    this.timer = setInterval(() => {
      void this.tick(); // errors are logged inside tick
    }, 1000);
    await this.app.listen({ host, port });
  }

  private lastEventsIn = 0;
  private lastMetricsAt = Date.now();
  private latestScoreTs = 0;

  /** Pipeline figures for /metrics: events/s into the feature stage, how far scores trail real time, model latency. */
  private updateMetrics(now: number): void {
    const metrics = this.app.foresight.metrics;
    const eventsIn = this.stages.feature.counters.in;
    const seconds = (now - this.lastMetricsAt) / 1000;
    if (seconds >= 5) {
      metrics.setEventsPerSecond((eventsIn - this.lastEventsIn) / seconds);
      this.lastEventsIn = eventsIn;
      this.lastMetricsAt = now;
    }
    for (const ms of this.stages.score.latenciesMs.splice(0)) metrics.observeModelLatency(ms / 1000);
    for (const node of this.view.list()) this.latestScoreTs = Math.max(this.latestScoreTs, node.scoreTs ?? 0);
    if (this.latestScoreTs > 0) metrics.setPipelineLag(Math.max(0, (now - this.latestScoreTs) / 1000));
  }

  private async tick(): Promise<void> {
    if (this.closing) return;
    const now = Date.now();
    this.updateMetrics(now);
    try {
      await this.stages.feature.tick(now);
      const engine = this.leadership.engine;
      if (engine) {
        await engine.tick(now);
        this.view.setNodeRecords(engine.nodeRecords());
      }
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'tick failed');
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await this.app.close();
    for (const s of this.sources) await s.stop().catch(() => undefined);
    await this.stages.feature.stop();
    await this.stages.score.stop();
    await this.leadership.lose();
    await this.bus.close();
    await this.exporter?.close(5000);
    await this.store.close();
  }
}

/** What the sidecar needs from a leader election (KafkaLeaderElection in production). */
export interface LeaderElection {
  start(): Promise<void>;
  stop(): Promise<void>;
  isLeader(): boolean;
  onChange(listener: (leader: boolean) => void | Promise<void>): void;
}

/**
 * Exactly one replica acts. Each leadership term gets a fresh engine that reloads desired state from the shared
 * store (another leader may have acted meanwhile) and reconciles with the dispatcher; a standby answers manual
 * actions with a conflict that names the reason.
 */
export class Leadership {
  engine: ActionEngine | null = null;
  private stage: ActionStage | null = null;
  private transition: Promise<void> = Promise.resolve();

  constructor(
    private readonly newEngine: () => ActionEngine,
    private readonly newStage: (engine: ActionEngine) => ActionStage,
    private readonly logger: Logger,
  ) {}

  async gain(): Promise<void> {
    if (this.engine) return;
    const engine = this.newEngine();
    await engine.init();
    const stage = this.newStage(engine);
    await stage.start();
    this.engine = engine;
    this.stage = stage;
    this.logger.info('this replica now executes actions');
  }

  async lose(): Promise<void> {
    const engine = this.engine;
    const stage = this.stage;
    this.engine = null;
    this.stage = null;
    await stage?.stop();
    await engine?.idle();
    if (engine) this.logger.warn('this replica no longer executes actions');
  }

  async follow(election: LeaderElection): Promise<void> {
    election.onChange((leader) => {
      this.transition = this.transition
        .then(() => (leader ? this.gain() : this.lose()))
        .catch((err: unknown) => {
          this.logger.error({ err: errorMessage(err) }, 'leadership change failed');
        });
      return this.transition;
    });
    await election.start();
  }

  /** The current term's account of a node; a standby has none. */
  explain(nodeId: string): Record<string, unknown> | null {
    if (!this.engine) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'this replica is a standby: ask the leader');
    if (!this.engine.nodeRecords().some((r) => r.nodeId === nodeId)) return null;
    return this.engine.explain(nodeId) as unknown as Record<string, unknown>;
  }

  apiActions(store: Store): ApiActions {
    const current = (): ApiActions => {
      if (!this.engine) {
        throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'this replica is a standby; send actions to the leader');
      }
      return apiActionsFor(this.engine, store);
    };
    return {
      drain: async (id, ctx) => current().drain(id, ctx),
      undrain: async (id, ctx) => current().undrain(id, ctx),
      restart: async (id, ctx) => current().restart(id, ctx),
      pin: async (id, ctx) => current().pin(id, ctx),
      unpin: async (id, ctx) => current().unpin(id, ctx),
      verdict: async (id, ctx) => current().verdict(id, ctx),
    };
  }
}
