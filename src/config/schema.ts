import { type Static, Type as T } from '@sinclair/typebox';

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

const Guardrails = T.Object(
  {
    riskThreshold: T.Number({ minimum: 0, maximum: 1, default: 0.8 }),
    recoverThreshold: T.Number({ minimum: 0, maximum: 1, default: 0.4 }),
    hysteresisWindows: T.Integer({ minimum: 1, default: 3 }),
    maxOutOfService: T.Integer({ minimum: 0, default: 1 }),
    maxOutOfServicePct: T.Number({ minimum: 0, maximum: 100, default: 50 }),
    minActive: T.Integer({ minimum: 0, default: 2 }),
    cooldownMs: T.Integer({ minimum: 0, default: 600_000 }),
    maxDrainsPerHour: T.Integer({ minimum: 0, default: 6 }),
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
    drainTimeoutMs: T.Integer({ minimum: 1, default: 1_800_000 }),
    restartTimeoutMs: T.Integer({ minimum: 1, default: 180_000 }),
    recoveryTimeoutMs: T.Integer({ minimum: 1, default: 600_000 }),
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
      },
      { additionalProperties: false, default: {} },
    ),
    features: T.Object(
      {
        windowMs: T.Integer({ minimum: 1000, default: 10_000 }),
        allowedLatenessMs: T.Integer({ minimum: 0, default: 2000 }),
        /** After a rebalance: how far back to look for the windows the previous owner emitted. */
        recoveryLookbackMs: T.Integer({ minimum: 0, default: 120_000 }),
        /** After a rebalance: extra history re-read to warm the moved nodes' baselines (0: they start cold). */
        recoveryWarmupMs: T.Integer({ minimum: 0, default: 0 }),
      },
      { additionalProperties: false, default: {} },
    ),
    model: T.Object(
      {
        kind: T.Union([T.Literal('stat'), T.Literal('tfjs')], { default: 'stat' }),
        /** Directory of a model artefact (models/default by default). */
        path: T.String({ default: 'models/default' }),
        /**
         * Where the nodes' resources run out, for the time-to-exhaustion forecasts of both scorers. Unset: the
         * simulator's (2048 MiB, 500 tasks, 1000 ms, 3000 ms), or a tfjs model's own. Set memoryLimitMb to what the
         * host collector measures against: the Asterisk process's limit for process profiles, the host's RAM for
         * node-exporter (which reports used memory of the whole host).
         */
        limits: T.Object(
          {
            memoryLimitMb: T.Optional(T.Number({ exclusiveMinimum: 0 })),
            queueLimit: T.Optional(T.Number({ exclusiveMinimum: 0 })),
            dbQueryLimitMs: T.Optional(T.Number({ exclusiveMinimum: 0 })),
            inviteSetupLimitMs: T.Optional(T.Number({ exclusiveMinimum: 0 })),
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
            rpcUrl: T.String({ default: 'http://127.0.0.1:5080/RPC' }),
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
