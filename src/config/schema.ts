import { type Static, Type as T } from '@sinclair/typebox';
import { DEFAULT_GUARDRAILS as G } from '../core/guardrails.js';
import { DEFAULT_LIFECYCLE_POLICY as L } from '../core/lifecycle.js';
import { DEFAULT_FALSE_ALARM_STEP, DEFAULT_TRUE_ALARM_STEP } from '../core/thresholds.js';

/** Reads a secret from the environment variable or file named here; the value itself never sits in the config file. */
const SecretRef = T.Object(
  {
    env: T.Optional(T.String({ minLength: 1, description: 'environment variable holding the secret' })),
    file: T.Optional(T.String({ minLength: 1, description: 'file holding the secret (trailing newline ignored)' })),
    value: T.Optional(T.String({ description: 'inline secret; for local tests only' })),
  },
  { additionalProperties: false },
);

const AmiTarget = T.Object(
  {
    host: T.String({ default: '127.0.0.1' }),
    port: T.Integer({ minimum: 1, maximum: 65535, default: 5038 }),
    username: T.String({ minLength: 1 }),
    secret: SecretRef,
  },
  { additionalProperties: false },
);

const DbTarget = T.Object(
  {
    kind: T.Union([T.Literal('postgres'), T.Literal('mysql')]),
    /** Connection URL without the password, e.g. postgres://asterisk@127.0.0.1:5432/asterisk. */
    url: T.String({ minLength: 1 }),
    password: T.Optional(SecretRef),
    query: T.String({ default: 'SELECT 1' }),
    timeoutMs: T.Integer({ minimum: 1, default: 2000 }),
  },
  { additionalProperties: false },
);

export const NodeConfig = T.Object(
  {
    id: T.String({ minLength: 1, pattern: '^[A-Za-z0-9_.-]+$' }),
    setId: T.Integer({ minimum: 0, default: 1 }),
    /** Dispatcher destination URI exactly as in Kamailio's dispatcher list. */
    uri: T.String({ pattern: '^sips?:' }),
    ami: T.Optional(AmiTarget),
    db: T.Optional(DbTarget),
    metricsUrl: T.Optional(T.String({ pattern: '^https?://' })),
    /** Which exporter serves metricsUrl: per-process series (process-exporter, Asterisk's own) or node-level ones. */
    metricsProfile: T.Optional(
      T.Union([T.Literal('process-exporter'), T.Literal('node-exporter'), T.Literal('process')], {
        default: 'process-exporter',
      }),
    ),
  },
  { additionalProperties: false },
);

/** Where a node's resources run out (src/models/scorers/trend.ts TrendLimits); each value optional. */
const LimitValues = T.Object(
  {
    memoryLimitMb: T.Optional(T.Number({ exclusiveMinimum: 0 })),
    queueLimit: T.Optional(T.Number({ exclusiveMinimum: 0 })),
    dbQueryLimitMs: T.Optional(T.Number({ exclusiveMinimum: 0 })),
    inviteSetupLimitMs: T.Optional(T.Number({ exclusiveMinimum: 0 })),
  },
  { additionalProperties: false },
);

/** Defaults come from the decision core (src/core/), the one place they are set; docs/lifecycle.md lists them. */
const Guardrails = T.Object(
  {
    riskThreshold: T.Number({ minimum: 0, maximum: 1, default: L.riskThreshold }),
    recoverThreshold: T.Number({ minimum: 0, maximum: 1, default: L.recoverThreshold }),
    hysteresisWindows: T.Integer({ minimum: 1, default: L.consecutiveWindows }),
    maxOutOfService: T.Integer({ minimum: 0, default: G.maxOutOfServicePerSet }),
    maxOutOfServicePct: T.Number({ minimum: 0, maximum: 100, default: G.maxOutOfServicePercent }),
    minActive: T.Integer({ minimum: 0, default: G.minActivePerSet }),
    cooldownMs: T.Integer({ minimum: 0, default: G.cooldownMs }),
    maxDrainsPerHour: T.Integer({ minimum: 0, default: G.maxDrainsPerHour }),
    /** Restarts of one node per rolling hour; beyond it the node is quarantined for an operator. */
    maxRestartsPerHour: T.Integer({ minimum: 0, default: L.maxRestartsPerHour }),
    /** More than this share of a set's observed nodes at high risk at once is a shared fault: alert, drain nothing. */
    sharedFaultShare: T.Number({ exclusiveMinimum: 0, maximum: 1, default: L.sharedFaultShare }),
    /** Cron expressions (UTC) during which automatic actions are suspended, each with a duration. */
    maintenanceWindows: T.Array(
      T.Object(
        { cron: T.String({ minLength: 1 }), durationMs: T.Integer({ minimum: 1 }) },
        { additionalProperties: false },
      ),
      { default: [] },
    ),
  },
  { additionalProperties: false },
);

const Timeouts = T.Object(
  {
    /** Calls last minutes (mean ~3 min, a busy-hour tail past 15): a drain waits this long before the restart. */
    drainTimeoutMs: T.Integer({ minimum: 1, default: L.drainMs }),
    restartTimeoutMs: T.Integer({ minimum: 1, default: L.restartMs }),
    /** After a restart, healthy probes must come within this long, or the node is quarantined. */
    recoveryTimeoutMs: T.Integer({ minimum: 1, default: L.recoverMs }),
    /** A returned node is on probation this long: renewed high risk re-drains it whatever the cooldown. */
    probationMs: T.Integer({ minimum: 0, default: L.probationMs }),
  },
  { additionalProperties: false },
);

/** What brings a drained node back: windows of Foresight's own OPTIONS probes judged against the set's peers. */
const Evidence = T.Object(
  {
    healthyProbeWindows: T.Integer({ minimum: 1, default: L.healthyProbeWindows }),
    probeMaxLossPct: T.Number({ minimum: 0, maximum: 100, default: L.probeMaxLossPct }),
    probeLossMarginPct: T.Number({ minimum: 0, maximum: 100, default: L.probeLossMarginPct }),
    probeRttFactor: T.Number({ minimum: 1, default: L.probeRttFactor }),
    probeRttMarginMs: T.Number({ minimum: 0, default: L.probeRttMarginMs }),
    /** An active node whose probes fail against its peers for this long is drained on that evidence (0: never). */
    probeFailDrainMs: T.Integer({ minimum: 0, default: L.probeFailDrainMs }),
  },
  { additionalProperties: false },
);

/**
 * Operators' verdicts on automatic drains move the drain threshold of the scorer that raised the drain, inside
 * [min, max] (src/core/thresholds.ts; docs/lifecycle.md). Unset min/max: riskThreshold - 0.1 (not below
 * recoverThreshold) and riskThreshold + 0.15 (not above 0.99).
 */
const ThresholdFeedbackConfig = T.Object(
  {
    enabled: T.Boolean({ default: true }),
    min: T.Optional(T.Number({ minimum: 0, maximum: 1 })),
    max: T.Optional(T.Number({ minimum: 0, maximum: 1 })),
    falseAlarmStep: T.Number({ minimum: 0, maximum: 0.5, default: DEFAULT_FALSE_ALARM_STEP }),
    trueAlarmStep: T.Number({ minimum: 0, maximum: 0.5, default: DEFAULT_TRUE_ALARM_STEP }),
  },
  { additionalProperties: false },
);

export const ConfigSchema = T.Object(
  {
    /** `embedded` runs the simulator; `sidecar` runs the real collectors against `nodes`. */
    mode: T.Union([T.Literal('embedded'), T.Literal('sidecar')], { default: 'embedded' }),
    nodes: T.Array(NodeConfig, { default: [] }),
    simulator: T.Object(
      {
        nodes: T.Integer({ minimum: 1, maximum: 1000, default: 4 }),
        seed: T.Integer({ default: 1 }),
        /** Virtual seconds per wall second in the live demo. */
        speed: T.Number({ exclusiveMinimum: 0, default: 30 }),
        incidentsPerNodeDay: T.Number({ minimum: 0, default: 2 }),
      },
      { additionalProperties: false, default: {} },
    ),
    bus: T.Object(
      {
        kind: T.Union([T.Literal('memory'), T.Literal('kafka')], { default: 'memory' }),
        partitions: T.Integer({ minimum: 1, default: 8 }),
        kafka: T.Object(
          {
            /** platformatic by default: maintained, and 1.6x kafkajs end to end on this machine (README). */
            client: T.Union([T.Literal('kafkajs'), T.Literal('platformatic')], { default: 'platformatic' }),
            brokers: T.Array(T.String({ minLength: 1 }), { default: ['127.0.0.1:19092'] }),
            clientId: T.String({ default: 'foresight' }),
            groupId: T.String({ default: 'foresight' }),
            topicPrefix: T.String({ default: 'foresight', pattern: '^[A-Za-z0-9._-]+$' }),
            replicationFactor: T.Integer({ minimum: 1, default: 1 }),
          },
          { additionalProperties: false, default: {} },
        ),
        /**
         * The collectors' samples while Kafka is unreachable: spooled to a file in `dir`, bounded in bytes and
         * records; samples older than maxOutageMs when their turn comes are dropped. Every drop is counted
         * (/metrics foresight_telemetry_dropped_total, /readyz `outbox`). The in-process bus needs none.
         */
        outbox: T.Object(
          {
            dir: T.String({ default: 'var/outbox', minLength: 1 }),
            maxBytes: T.Integer({ minimum: 4096, default: 64 * 1024 * 1024 }),
            maxRecords: T.Integer({ minimum: 1, default: 500_000 }),
            maxOutageMs: T.Integer({ minimum: 1000, default: 600_000 }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    features: T.Object(
      {
        windowMs: T.Integer({ minimum: 1000, default: 10_000 }),
        allowedLatenessMs: T.Integer({ minimum: 0, default: 2000 }),
        /**
         * With Kafka each telemetry partition has its own watermark; a partition that delivered nothing for this long
         * stops holding windows open (the longest broker outage after which no window closed before its samples).
         */
        idlePartitionMs: T.Integer({ minimum: 0, default: 60_000 }),
        /** After a rebalance: how far back to look for the windows the previous owner emitted. */
        recoveryLookbackMs: T.Integer({ minimum: 0, default: 120_000 }),
        /** After a rebalance: extra history re-read to warm the moved nodes' baselines (0: they start cold). */
        recoveryWarmupMs: T.Integer({ minimum: 0, default: 0 }),
        /**
         * With Kafka: how often (in windows' event time) each replica checkpoints the learnt state of the nodes it owns
         * (feature history, scorer streaks) to the compacted `state` topic, restored when a replica takes them over.
         * 0 turns checkpoints off (moved nodes start cold).
         */
        checkpointIntervalMs: T.Integer({ minimum: 0, default: 60_000 }),
        /** Checkpoints older than this are not restored, and telemetry is re-read from a checkpoint at most this far. */
        checkpointMaxAgeMs: T.Integer({ minimum: 0, default: 3_600_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    model: T.Object(
      {
        kind: T.Union([T.Literal('stat'), T.Literal('tfjs')], { default: 'stat' }),
        /** Directory of a model artefact (models/default by default). */
        path: T.String({ default: 'models/default' }),
        /**
         * Features (names from src/features/names.ts) the stat scorer also baselines itself, as it does a CSV's columns
         * (docs/scorer.md, "Named metrics"): daily/weekend profiles, counters as rates, level shifts, a joint term.
         * Their evidence adds to the extractor's z-scores. Default none.
         */
        metrics: T.Array(T.String({ minLength: 1 }), { default: [], uniqueItems: true }),
        /**
         * Where the nodes' resources run out, for the time-to-exhaustion forecasts of both scorers. Unset: the
         * simulator's (2048 MiB, 500 tasks, 1000 ms, 3000 ms), or a tfjs model's own. Set memoryLimitMb to what the
         * host collector measures against: the Asterisk process's limit for process profiles, the host's RAM for
         * node-exporter (which reports used memory of the whole host).
         */
        limits: T.Object(
          {
            ...LimitValues.properties,
            /**
             * Per dispatcher set, by set id ("2": {...}): over the cluster-wide values above. Nodes differ in memory
             * and size; a set of bigger hosts gets its own memoryLimitMb here.
             */
            sets: T.Record(T.String({ pattern: '^[0-9]+$' }), LimitValues, {
              default: {},
              additionalProperties: false,
            }),
            /** Per node, by node id: over its set's and the cluster's values. */
            nodes: T.Record(T.String({ pattern: '^[A-Za-z0-9_.-]+$' }), LimitValues, {
              default: {},
              additionalProperties: false,
            }),
          },
          { additionalProperties: false, default: {} },
        ),
        /**
         * The model lifecycle (docs/model.md): record this cluster's telemetry from the bus, train the autoencoder on
         * it, validate it on the recording's most recent part, run it in shadow beside `stat`, and let it take
         * decisions over only when it beats `stat` by the documented rule. Needs model.kind: stat.
         */
        lifecycle: T.Object(
          {
            enabled: T.Boolean({ default: false }),
            /** Where trained models and state.json (which scorer is in charge, and the previous one) are kept. */
            dir: T.String({ minLength: 1, default: 'var/models' }),
            /** Telemetry each cycle learns from: the last recordMs before it; the first cycle waits this long. */
            recordMs: T.Integer({ minimum: 60_000, default: 86_400_000 }),
            /** Most recent share of the recording held back from training to validate on. */
            heldBackFraction: T.Number({ minimum: 0.05, maximum: 0.5, default: 0.25 }),
            /** How long a validated candidate runs in shadow before it may take over. */
            shadowMs: T.Integer({ minimum: 0, default: 3_600_000 }),
            /** Fewest live node-windows scored side by side in shadow. */
            shadowMinWindows: T.Integer({ minimum: 0, default: 360 }),
            /** Retraining schedule (cron, croner syntax, UTC). */
            schedule: T.String({ minLength: 1, default: '0 3 * * *' }),
            /** Fewest held-back healthy node-windows before the rule judges. */
            minValidationWindows: T.Integer({ minimum: 1, default: 360 }),
            epochs: T.Integer({ minimum: 1, maximum: 500, default: 20 }),
            seed: T.Integer({ default: 7 }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    actions: T.Object(
      {
        dryRun: T.Boolean({ default: false }),
        dispatcher: T.Object(
          {
            kind: T.Union([T.Literal('simulated'), T.Literal('kamailio')], { default: 'simulated' }),
            /** One proxy's JSON-RPC endpoint; with neither this nor rpcUrls, `http://127.0.0.1:5080/RPC`. */
            rpcUrl: T.Optional(T.String({ minLength: 1 })),
            /**
             * Several proxies (an HA pair, a fleet) in front of the same nodes: every drain goes to each of them. An
             * entry is a URL (named proxy1..N by position) or `{ name, url }`. Not together with rpcUrl.
             */
            rpcUrls: T.Optional(
              T.Array(
                T.Union([
                  T.String({ pattern: '^https?://' }),
                  T.Object(
                    { name: T.String({ pattern: '^[A-Za-z0-9_.-]+$' }), url: T.String({ pattern: '^https?://' }) },
                    { additionalProperties: false },
                  ),
                ]),
                { minItems: 1 },
              ),
            ),
            timeoutMs: T.Integer({ minimum: 1, default: 2000 }),
          },
          { additionalProperties: false, default: {} },
        ),
        restarter: T.Object(
          {
            kind: T.Union([T.Literal('simulated'), T.Literal('ami'), T.Literal('command'), T.Literal('webhook')], {
              default: 'simulated',
            }),
            /** For `command`: run with the node id as its last argument. */
            command: T.Optional(T.String({ minLength: 1 })),
            /** For `webhook`: POSTed `{ nodeId }`. */
            url: T.Optional(T.String({ pattern: '^https?://' })),
            amiMode: T.Union([T.Literal('gracefully'), T.Literal('when convenient')], { default: 'gracefully' }),
          },
          { additionalProperties: false, default: {} },
        ),
        guardrails: T.Object(Guardrails.properties, { additionalProperties: false, default: {} }),
        timeouts: T.Object(Timeouts.properties, { additionalProperties: false, default: {} }),
        evidence: T.Object(Evidence.properties, { additionalProperties: false, default: {} }),
        thresholdFeedback: T.Object(ThresholdFeedbackConfig.properties, { additionalProperties: false, default: {} }),
      },
      { additionalProperties: false, default: {} },
    ),
    store: T.Object(
      {
        kind: T.Union([T.Literal('sqlite'), T.Literal('postgres')], { default: 'sqlite' }),
        path: T.String({ default: 'var/foresight.db' }),
        url: T.Optional(T.String({ pattern: '^postgres(ql)?://' })),
        /** PostgreSQL schema holding Foresight's tables (created if missing). */
        schema: T.String({ default: 'foresight', pattern: '^[a-z_][a-z0-9_]*$' }),
        password: T.Optional(SecretRef),
      },
      { additionalProperties: false, default: {} },
    ),
    api: T.Object(
      {
        host: T.String({ default: '127.0.0.1' }),
        port: T.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
        /** Serve without tokens. Only for a local demo; refused on a non-loopback host. */
        openLocalMode: T.Boolean({ default: false }),
        tokens: T.Array(
          T.Object(
            {
              name: T.String({ minLength: 1 }),
              role: T.Union([T.Literal('viewer'), T.Literal('operator')]),
              token: SecretRef,
            },
            { additionalProperties: false },
          ),
          { default: [] },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    collectors: T.Object(
      {
        hep: T.Object(
          {
            enabled: T.Boolean({ default: false }),
            host: T.String({ default: '127.0.0.1' }),
            port: T.Integer({ minimum: 1, maximum: 65535, default: 9060 }),
            /**
             * A call with no in-dialog traffic for this long is taken as ended (no Session-Expires: RFC 4028's
             * default 30 min); it is also how long the dialog count needs after start-up before it can be trusted,
             * since calls set up before then were not seen. Lower it where every call refreshes its session.
             */
            dialogSessionMs: T.Integer({ minimum: 1000, default: 1_800_000 }),
          },
          { additionalProperties: false, default: {} },
        ),
        /** Foresight's own SIP OPTIONS probes to every node's dispatcher URI (src/ingest/probe). */
        probe: T.Object(
          {
            /** Unset: on in sidecar mode (every node has a URI). */
            enabled: T.Optional(T.Boolean()),
            intervalMs: T.Integer({ minimum: 50, default: 1000 }),
            /** A probe without a final reply after this long counts as lost. */
            timeoutMs: T.Integer({ minimum: 10, maximum: 60_000, default: 2000 }),
            /** The prober's socket address, written into Via/From/Contact: a specific IP, not a wildcard or a name. */
            bindHost: T.String({ minLength: 1, default: '127.0.0.1' }),
          },
          { additionalProperties: false, default: {} },
        ),
        kamailioStatsIntervalMs: T.Integer({ minimum: 0, default: 10_000 }),
        dbProbeIntervalMs: T.Integer({ minimum: 100, default: 5000 }),
        hostScrapeIntervalMs: T.Integer({ minimum: 100, default: 10_000 }),
        amiPollIntervalMs: T.Integer({ minimum: 100, default: 5000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    exporters: T.Object(
      {
        influx: T.Optional(
          T.Object(
            {
              url: T.String({ pattern: '^https?://' }),
              org: T.String({ default: 'foresight' }),
              bucket: T.String({ default: 'foresight' }),
              token: T.Optional(SecretRef),
              maxBufferLines: T.Integer({ minimum: 100, default: 100_000 }),
              flushIntervalMs: T.Integer({ minimum: 100, default: 2000 }),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type ForesightConfig = Static<typeof ConfigSchema>;
export type NodeConfigT = Static<typeof NodeConfig>;
export type SecretRefT = Static<typeof SecretRef>;
