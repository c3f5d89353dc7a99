import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { Bus, TopicMap, TopicName } from '../../src/bus/port.js';
import { parseConfig } from '../../src/config/load.js';
import type { ForesightConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import type { AuditKind, AuditRecord, MetricName, NodeScore, TelemetrySample } from '../../src/messages.js';

/**
 * The full-stack chaos harness: a generated sidecar config, Foresight as a child process (`foresight run`), its API,
 * a throwaway PostgreSQL database as its store, and a Kafka client in the test process that publishes and reads the
 * same topics the sidecar uses. Everything on 127.0.0.1; every process is stopped by its PID.
 */

export const REPO = resolve(import.meta.dirname, '../..');
export const CHAOS_VAR = join(REPO, 'var/chaos');
export const PG_ADMIN_URL = process.env.FORESIGHT_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
export const KAFKA_BROKER = `127.0.0.1:${process.env.FORESIGHT_KAFKA_PORT ?? '19092'}`;
export const NODE_IDS = ['ast1', 'ast2', 'ast3'] as const;
export const BACKEND_PORT: Record<string, number> = { ast1: 5071, ast2: 5072, ast3: 5073 };
export const uriOf = (nodeId: string) => `sip:127.0.0.1:${BACKEND_PORT[nodeId]}`;
/** Nothing listens here: a database, AMI or metrics endpoint that is down, without stopping a shared server. */
export const CLOSED_PORT = 5999;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Polls until `probe` returns a value other than undefined/false, or throws with the last observation. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** A database of its own on the shared PostgreSQL: the sidecar's store creates its schema inside it. */
export interface ScratchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createScratchDatabase(tag: string): Promise<ScratchDatabase> {
  const name = `fs_${tag}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        // A killed sidecar may leave sessions behind for a moment: FORCE ends them.
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export interface NodeInputs {
  /** AMI replay server port; omitted: no AMI collector. */
  amiPort?: number;
  /** PostgreSQL URL probed as the node's realtime database; omitted: no DB probe. */
  dbUrl?: string;
  metricsUrl?: string;
}

export interface SidecarConfigOptions {
  name: string;
  storeUrl: string;
  apiPort: number;
  topicPrefix?: string;
  inputs?: Record<string, NodeInputs>;
  hep?: boolean;
  kamailioStats?: boolean;
  /** Deep-merged over the generated config's `actions`. */
  actions?: Record<string, unknown>;
  features?: { windowMs?: number; allowedLatenessMs?: number };
  /** The config's `model` section (scorer kind, artefact path); omitted: the product default. */
  model?: Record<string, unknown>;
}

/**
 * A sidecar config for ast1..ast3 mapped to the test Kamailio's dispatcher URIs. Windows are 1 s so faults show in
 * seconds; every option not named keeps the product default.
 */
export function sidecarConfig(o: SidecarConfigOptions): Record<string, unknown> {
  const nodes = NODE_IDS.map((id) => {
    const inp = o.inputs?.[id] ?? {};
    const node: Record<string, unknown> = { id, setId: 1, uri: uriOf(id) };
    if (inp.amiPort !== undefined) {
      node.ami = { host: '127.0.0.1', port: inp.amiPort, username: 'foresight', secret: { value: 'good' } };
    }
    if (inp.dbUrl) node.db = { kind: 'postgres', url: inp.dbUrl, query: 'SELECT 1', timeoutMs: 1000 };
    if (inp.metricsUrl) {
      node.metricsUrl = inp.metricsUrl;
      node.metricsProfile = 'node-exporter';
    }
    return node;
  });
  const actions = {
    dispatcher: { kind: 'kamailio', rpcUrl: 'http://127.0.0.1:5080/RPC', timeoutMs: 1500 },
    // `true` stands in for the restart command: the lifecycle, not Asterisk, is under test here.
    restarter: { kind: 'command', command: '/bin/true' },
    guardrails: {
      riskThreshold: 0.8,
      recoverThreshold: 0.4,
      hysteresisWindows: 1,
      maxOutOfService: 1,
      maxOutOfServicePct: 50,
      minActive: 2,
      cooldownMs: 0,
      maxDrainsPerHour: 100,
    },
    ...(o.actions ?? {}),
  };
  return {
    mode: 'sidecar',
    nodes,
    bus: {
      kind: 'kafka',
      partitions: 3,
      kafka: {
        // The sidecar as shipped: the default client unless a run asks for the other one.
        client: (process.env.FORESIGHT_CHAOS_KAFKA_CLIENT as 'kafkajs' | 'platformatic' | undefined) ?? 'platformatic',
        brokers: [KAFKA_BROKER],
        topicPrefix: o.topicPrefix ?? `chaos-${o.name}-${randomBytes(4).toString('hex')}`,
        groupId: `foresight-${o.name}`,
        clientId: `foresight-${o.name}`,
      },
    },
    features: { windowMs: 1000, allowedLatenessMs: 500, ...(o.features ?? {}) },
    ...(o.model ? { model: o.model } : {}),
    actions,
    store: { kind: 'postgres', url: o.storeUrl },
    api: { host: '127.0.0.1', port: o.apiPort, openLocalMode: true },
    collectors: {
      hep: { enabled: o.hep ?? false, host: '127.0.0.1', port: 9060 },
      kamailioStatsIntervalMs: o.kamailioStats ? 1000 : 0,
      dbProbeIntervalMs: 500,
      hostScrapeIntervalMs: 1000,
      amiPollIntervalMs: 500,
    },
  };
}

export interface NodeViewDto {
  nodeId: string;
  state: string;
  risk: number | null;
  observed: boolean;
  up: boolean | null;
  activeCalls: number | null;
  manualOverride: string | null;
  scoreTs: number | null;
  features: Record<string, number> | null;
  featuresWindowEnd: number | null;
}

export interface SidecarExtras {
  /** A module to preload (`--import`), e.g. the soak's loop probe. */
  preload?: string;
  env?: Record<string, string>;
}

/** Foresight as a child process: `tsx src/cli/main.ts run --config FILE`, log to var/chaos/<name>.log. */
export class SidecarProcess {
  private exitCode: number | null | undefined = undefined;
  private exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly baseUrl: string,
    readonly logFile: string,
  ) {
    this.exited = new Promise((r) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        r();
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  describeExit(): string {
    return this.alive ? 'running' : `exited code=${this.exitCode} signal=${this.exitSignal}`;
  }

  /**
   * Starts the sidecar; a start that dies before its API answers (a broker that is itself still starting makes
   * `foresight run` exit) is retried twice, and the log keeps every attempt.
   */
  static async start(
    config: Record<string, unknown>,
    name: string,
    extra: SidecarExtras = {},
  ): Promise<SidecarProcess> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        return await SidecarProcess.startOnce(config, name, extra);
      } catch (err) {
        lastError = err;
        if (!String(err).includes('sidecar exited')) throw err;
        await sleep(2000);
      }
    }
    throw lastError;
  }

  private static async startOnce(
    config: Record<string, unknown>,
    name: string,
    extra: SidecarExtras,
  ): Promise<SidecarProcess> {
    mkdirSync(CHAOS_VAR, { recursive: true });
    const configFile = join(CHAOS_VAR, `${name}.json`);
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const logFile = join(CHAOS_VAR, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const preload = extra.preload ? ['--import', extra.preload] : [];
    const args = ['--import', 'tsx', ...preload, 'src/cli/main.ts', 'run', '--config', configFile];
    const child = spawn(process.execPath, args, {
      cwd: REPO,
      env: { ...process.env, FORESIGHT_LOG_LEVEL: process.env.FORESIGHT_LOG_LEVEL ?? 'info', ...extra.env },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const api = config.api as { port: number };
    const sidecar = new SidecarProcess(child, `http://127.0.0.1:${api.port}`, logFile);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!sidecar.alive) throw new Error(`sidecar ${sidecar.describeExit()}: ${sidecar.logTail()}`);
      const ok = await fetch(`${sidecar.baseUrl}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return sidecar;
      if (Date.now() > deadline) {
        await sidecar.stop();
        throw new Error(`sidecar API not up within 60 s: ${sidecar.logTail()}`);
      }
      await sleep(200);
    }
  }

  logTail(chars = 3000): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-chars);
    } catch {
      return '';
    }
  }

  async get<T>(path: string): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`);
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async post(path: string, body: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed };
  }

  async nodes(): Promise<NodeViewDto[]> {
    return (await this.get<{ nodes: NodeViewDto[] }>('/api/nodes')).nodes;
  }

  async node(id: string): Promise<NodeViewDto> {
    return this.get<NodeViewDto>(`/api/nodes/${id}`);
  }

  /** Every audit record (oldest first), paging through the API. */
  async audit(query: { nodeId?: string; kind?: AuditKind } = {}): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    let before: number | null = null;
    for (let page = 0; page < 50; page++) {
      const q = new URLSearchParams({ limit: '500' });
      if (query.nodeId) q.set('nodeId', query.nodeId);
      if (query.kind) q.set('kind', query.kind);
      if (before !== null) q.set('before', String(before));
      const res: { items: AuditRecord[]; nextBefore: number | null } = await this.get(`/api/audit?${q}`);
      out.push(...res.items);
      if (res.nextBefore === null) break;
      before = res.nextBefore;
    }
    return out.reverse();
  }

  async readyz(): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${this.baseUrl}/readyz`);
    return { status: res.status, body: await res.json().catch(() => null) };
  }

  /** SIGKILL: no shutdown hook runs, as in a crash or an OOM kill. */
  async kill9(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (the sidecar closes cleanly), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 8000);
    await this.exited;
    clearTimeout(killer);
  }
}

/** The Kafka bus the sidecar uses, opened in the test process to inject and read records. */
export async function openBus(
  config: Record<string, unknown>,
): Promise<{ bus: Bus; config: Readonly<ForesightConfig> }> {
  const parsed = parseConfig(config);
  const { createKafkaBus } = await import('../../src/bus/kafka-factory.js');
  const bus = await createKafkaBus(parsed, silentLogger());
  await bus.ensureTopics();
  return { bus, config: parsed };
}

/** Collects every record of a topic from the beginning, under a group of its own. */
export async function collectTopic<K extends TopicName>(
  bus: Bus,
  topic: K,
  tag: string,
): Promise<{ records: TopicMap[K][]; stop(): Promise<void> }> {
  const records: TopicMap[K][] = [];
  const sub = await bus.subscribe(
    topic,
    async (batch) => {
      for (const r of batch) records.push(r.value);
    },
    { groupId: `chaos-reader-${tag}-${randomBytes(3).toString('hex')}`, fromBeginning: true },
  );
  return { records, stop: () => sub.stop() };
}

export function sample(nodeId: string, metric: MetricName, value: number, ts = Date.now()): TelemetrySample {
  return { nodeId, ts, metric, value, source: 'ami' };
}

/** A healthy second of telemetry for one node. */
export function healthySamples(nodeId: string, ts = Date.now()): TelemetrySample[] {
  return [
    sample(nodeId, 'node.up', 1, ts),
    sample(nodeId, 'channels.active', 4, ts),
    sample(nodeId, 'calls.started', 1, ts),
    sample(nodeId, 'calls.completed', 1, ts),
    sample(nodeId, 'host.memory_rss_mb', 300, ts),
  ];
}

export async function publishTelemetry(bus: Bus, samples: TelemetrySample[]): Promise<void> {
  await bus.publish(
    'telemetry',
    samples.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
  );
}

/** A crafted verdict from "the scorer": the action engine cannot tell it from a real one. */
export function craftedScore(
  nodeId: string,
  ts: number,
  risk: number,
  extra: Partial<Pick<NodeScore, 'observed' | 'activeCalls' | 'up'>> = {},
): NodeScore {
  return {
    nodeId,
    setId: 1,
    ts,
    risk,
    timeToFailureS: risk >= 0.8 ? 120 : null,
    explanation: [{ feature: 'chaos.crafted', weight: risk, value: risk }],
    scorer: 'chaos-crafted',
    observed: extra.observed ?? true,
    activeCalls: extra.activeCalls ?? 0,
    activeCallsSource: 'ami',
    // The crafted verdict comes with the evidence a healthy prober would add: answered OPTIONS, calls counted by AMI.
    evidence: {
      calls: { count: extra.activeCalls ?? 0, source: 'ami' },
      upReported: extra.up ?? true,
      probe: { sent: 10, lost: 0, replies5xx: 0, rttMsP50: 3 },
    },
    up: extra.up ?? true,
  };
}

export async function publishScores(bus: Bus, scores: NodeScore[]): Promise<void> {
  await bus.publish(
    'scores',
    scores.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
  );
}

/** Telemetry for every node every `everyMs`, from the test process (an external collector), until stopped. */
export function telemetryPump(
  bus: Bus,
  nodeIds: readonly string[],
  everyMs = 250,
): { published: () => number; stop(): Promise<void> } {
  let published = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const batch = nodeIds.flatMap((id) => healthySamples(id));
      try {
        await publishTelemetry(bus, batch);
        published += batch.length;
      } catch {
        // The broker may be down in a chaos scenario; the pump carries on.
      }
      await sleep(everyMs);
    }
  })();
  return {
    published: () => published,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
