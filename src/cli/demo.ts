import { rmSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { ForesightConfig } from '../config/schema.js';
import { summarizeRun } from '../eval/summary.js';
import { createLogger } from '../log.js';
import type { AuditRecord } from '../messages.js';
import { demoIncidentPlan, EmbeddedRuntime } from '../pipeline/embedded.js';

export interface DemoOptions {
  config?: string;
  headless?: boolean;
  speed?: number | 'max';
  duration?: number;
  seed?: number;
  nodes?: number;
  port?: number;
  summaryJson?: string;
  dryRun?: boolean;
}

/** A fixed start keeps headless runs reproducible: same seed and duration, same summary. */
const HEADLESS_START = Date.UTC(2024, 0, 1, 0, 0, 0);
const DEMO_STORE = 'var/demo.db';

function time(ts: number): string {
  return new Date(ts).toISOString().slice(11, 19);
}

/** One decision in plain words for the terminal. */
export function describeAudit(r: AuditRecord): string {
  const who = r.actor === 'auto' ? 'Foresight' : r.actor;
  const risk = typeof r.details.risk === 'number' ? ` (risk ${(r.details.risk as number).toFixed(2)})` : '';
  const dry = r.dryRun ? ' [dry-run]' : '';
  const text: Partial<Record<AuditRecord['kind'], string>> = {
    DrainStarting: `${who} is draining ${r.nodeId}${risk}: ${r.reason}`,
    DrainSucceeded: `${r.nodeId} takes no new calls; its active calls are finishing`,
    DrainFailed: `draining ${r.nodeId} FAILED: ${r.reason}`,
    DrainRefused: `${who} did not drain ${r.nodeId}: ${r.reason}`,
    RestartStarting: `restarting ${r.nodeId}: ${r.reason}`,
    RestartSucceeded: `${r.nodeId} is up again after the restart`,
    RestartFailed: `restart of ${r.nodeId} FAILED: ${r.reason}`,
    RecoveryStarted: `${r.nodeId} is recovering; waiting for a normal risk score`,
    NodeReturned: `${r.nodeId} is back in rotation`,
    UndrainSucceeded: `${who} put ${r.nodeId} back in rotation: ${r.reason}`,
  };
  return `${time(r.ts)} ${text[r.kind] ?? `${r.nodeId} ${r.kind}: ${r.reason}`}${dry}`;
}

function demoConfig(options: DemoOptions): Readonly<ForesightConfig> {
  const base = loadConfig(options.config);
  const raw = structuredClone(base) as ForesightConfig;
  if (options.seed !== undefined) raw.simulator.seed = options.seed;
  if (options.nodes !== undefined) raw.simulator.nodes = options.nodes;
  if (options.port !== undefined) raw.api.port = options.port;
  if (options.dryRun) raw.actions.dryRun = true;
  // The demo serves only the loopback interface, so it may run without tokens.
  if (!options.config && raw.api.tokens.length === 0) raw.api.openLocalMode = true;
  return raw;
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const config = demoConfig(options);
  if (options.headless) await runHeadless(config, options);
  else await runLive(config, options);
}

async function runHeadless(config: Readonly<ForesightConfig>, options: DemoOptions): Promise<void> {
  const logger = createLogger(process.env.FORESIGHT_LOG_LEVEL ?? 'warn');
  const durationMs = options.duration ?? 6 * 3_600_000;
  const runtime = await EmbeddedRuntime.create({
    config,
    logger,
    storePath: ':memory:',
    simulator: { startAt: HEADLESS_START },
    onAudit: (r) => {
      if (r.kind !== 'DrainRefused') console.log(describeAudit(r));
    },
  });
  const end = HEADLESS_START + durationMs;
  const speed = options.speed ?? 'max';
  const wallStart = Date.now();
  // Real-time pacing only when a speed is given; otherwise one window after another as fast as the CPU allows.
  while (runtime.cluster.now() < end) {
    const next = Math.min(end, runtime.cluster.now() + 3_600_000);
    if (speed === 'max') {
      await runtime.advanceTo(next);
    } else {
      while (runtime.cluster.now() < next) {
        const target = Math.min(next, HEADLESS_START + (Date.now() - wallStart) * speed);
        await runtime.advanceTo(target);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  const stats = runtime.cluster.stats();
  const audit = await runtime.store.queryAudit({ limit: 1_000_000 });
  const summary = summarizeRun({
    seed: config.simulator.seed,
    simulatedMs: durationMs,
    nodes: config.simulator.nodes,
    scorer: runtime.scorerName,
    incidents: stats.incidents.map((i) => ({
      label: i.label,
      outcome: i.outcome,
      droppedAtCrash: i.droppedAtCrash,
      callsDropped: i.callsDropped,
      callsFailed: i.callsFailed,
      endedAt: i.endedAt,
    })),
    audit,
    callsCompleted: stats.callsCompleted,
    callsDropped: stats.callsDropped,
    callsFailed: stats.callsFailed,
  });
  const wallS = (Date.now() - wallStart) / 1000;
  await runtime.close();
  if (options.summaryJson) writeFileSync(options.summaryJson, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(
    `\n${summary.simulatedHours} simulated hours on ${summary.nodes} nodes in ${wallS.toFixed(1)} s ` +
      `(${Math.round(runtime.samplesPublished / wallS).toLocaleString('en')} telemetry events/s)`,
  );
  for (const i of summary.incidents) {
    const drained = i.leadSeconds !== null ? `drained ${i.leadSeconds} s before the failure` : 'not drained in time';
    const note = i.predictable ? '' : ' (no precursor: unpredictable)';
    console.log(`  ${i.node} ${i.mode}${note}: ${drained}, ${i.outcome}, ${i.callsDropped} calls dropped`);
  }
  console.log(
    `  false drains: ${summary.falseDrains}; calls completed ${summary.callsCompleted}, dropped ${summary.callsDropped} ` +
      `(${summary.callsDroppedOnPredictable} on incidents with a precursor)`,
  );
}

async function runLive(config: Readonly<ForesightConfig>, options: DemoOptions): Promise<void> {
  const logger = createLogger(process.env.FORESIGHT_LOG_LEVEL ?? 'warn');
  rmSync(DEMO_STORE, { force: true });
  rmSync(`${DEMO_STORE}-wal`, { force: true });
  rmSync(`${DEMO_STORE}-shm`, { force: true });
  const startAt = Date.now();
  const speed = options.speed === 'max' || options.speed === undefined ? config.simulator.speed : options.speed;
  const runtime = await EmbeddedRuntime.create({
    config,
    logger,
    storePath: DEMO_STORE,
    simulator: {
      startAt,
      incidents: demoIncidentPlan(startAt, `ast${Math.min(3, config.simulator.nodes)}`),
      randomIncidents: { warmupMs: 45 * 60_000 },
    },
    onAudit: (r) => {
      if (r.kind !== 'DrainRefused') console.log(describeAudit(r));
    },
    api: true,
  });
  await runtime.loop.app?.listen({ host: config.api.host, port: config.api.port });
  console.log(
    `Foresight demo: ${config.simulator.nodes} simulated Asterisk nodes at ${speed}x real time.\n` +
      `Dashboard: http://${config.api.host}:${config.api.port}/   (Ctrl-C to stop)\n`,
  );
  const wallStart = Date.now();
  const end = options.duration ? startAt + options.duration : Number.POSITIVE_INFINITY;
  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  while (!stopping && runtime.cluster.now() < end) {
    const target = Math.min(end, startAt + (Date.now() - wallStart) * speed);
    await runtime.advanceTo(target);
    await new Promise((r) => setTimeout(r, 200));
  }
  await runtime.close();
}
