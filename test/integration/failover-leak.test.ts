import { readFileSync } from 'node:fs';
import { AssignerProtocol, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, partitionForKey } from '../../src/bus/port.js';
import type { AuditRecord, NodeScore, TelemetrySample } from '../../src/messages.js';
import {
  collectTopic,
  createScratchDatabase,
  freePort,
  KAFKA_BROKER,
  NODE_IDS,
  openBus,
  publishTelemetry,
  type ScratchDatabase,
  SidecarProcess,
  sample,
  sidecarConfig,
  sleep,
  uriOf,
  waitFor,
} from '../chaos/env.js';
import { kafkaService } from './kafka-support.js';
import { type KamailioLab, startKamailioLab } from './kamailio-env.js';

/**
 * Issue #19, "failover without amnesia", on the real stack: Kafka, Kamailio with its sipp backends, a PostgreSQL
 * store, and two `foresight run` replicas in one group with the nodes spread over three partitions. One node leaks
 * memory at a steady rate, its peers stay healthy. Run B kills (SIGKILL) the replica that both leads and holds the
 * leaking node's partition, mid-leak; run A is the same without the kill. What users feel is compared: the node is
 * drained in Kamailio in both runs, and run B's drain comes no later than run A's by more than the failover
 * detection time measured in run B (the survivor's data consumers and its leadership both wait for the dead
 * member's Kafka session to expire).
 *
 * Takes about six minutes (two runs of a minute of warm-up and a leak that drains after about 80 s). Shares Kamailio
 * and Kafka with the other real-stack tests: run it alone under `flock /tmp/foresight-realstack.lock`.
 *
 * Before the extractor and scorer checkpoints it failed: run B drained about 62 s late against about 10 s of
 * detection (the survivor rebuilt the node's windows with cold slopes, so the stat scorer's persistence started over).
 * With them the drain comes at the same window; docs/reliability.md has the figures.
 */

const WINDOW_MS = 1000;
/** Healthy telemetry first, so every node's baselines and slopes settle before the leak. */
const WARMUP_MS = 60_000;
/**
 * Evidence shows about 20 s into the leak and must persist a minute (stat scorer), so the drain comes at about 80 s.
 * The kill lands 50 s in: the dead replica had counted some 30 windows of persistence (a kill soon after the evidence
 * began would cost little even with that count lost), and the takeover (~11 s) is done well before the drain.
 */
const KILL_AFTER_LEAK_MS = 50_000;
/** MiB per minute on top of ~300 MiB: a steady leak the memory forecast turns into a drain within two minutes. */
const LEAK_MB_PER_MIN = 120;
/** Three partitions: with the FNV key hash each of ast1..ast3 has a partition of its own, so two replicas split them. */
const PARTITIONS = 3;
/** K > 1 (the product default), so a streak of high-risk windows the engine counted before the kill matters. */
const K = 3;
const RISK_THRESHOLD = 0.8;
/** Run-to-run jitter allowed on top of the detection time: two windows (tick and poll granularity). */
const JITTER_MS = 2 * WINDOW_MS;

let lab: KamailioLab | null = null;
let db: ScratchDatabase | null = null;

beforeAll(async () => {
  await kafkaService('start');
  lab = await startKamailioLab();
}, 300_000);

afterAll(async () => {
  await lab?.activateAll().catch(() => undefined);
  await lab?.stop();
  await db?.drop().catch(() => undefined);
});

/** Deterministic noise in [0, 1) from a window index and a node, the same in both runs. */
function noise(w: number, n: number): number {
  const x = Math.sin(w * 12.9898 + n * 78.233) * 43758.5453;
  return x - Math.floor(x);
}

/** The samples of window `w` (counted from the run's start): four per node, the leaker leaking from WARMUP_MS on. */
function windowSamples(start: number, w: number, leaker: string): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  NODE_IDS.forEach((nodeId, n) => {
    for (let i = 0; i < 4; i++) {
      const ts = start + w * WINDOW_MS + i * 250 + 5;
      const leakMin = Math.max(0, ts - start - WARMUP_MS) / 60_000;
      const rss = 300 + n * 10 + noise(w * 4 + i, n) * 3 + (nodeId === leaker ? leakMin * LEAK_MB_PER_MIN : 0);
      out.push(
        sample(nodeId, 'node.up', 1, ts),
        sample(nodeId, 'channels.active', 4 + Math.floor(noise(w, n + 7) * 3), ts),
        sample(nodeId, 'calls.started', 1, ts),
        sample(nodeId, 'calls.completed', 1, ts),
        sample(nodeId, 'host.memory_rss_mb', rss, ts),
      );
    }
  });
  return out;
}

/** Publishes one window of samples every window, in real time (as collectors would), until stopped. */
function leakPump(bus: Bus, start: number, leaker: string): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    for (let w = 0; !stopped; w++) {
      const due = start + w * WINDOW_MS;
      if (due > Date.now()) await sleep(due - Date.now());
      // The broker may be busy with the rebalance; a lost window shows as unobserved, as a collector's would.
      await publishTelemetry(bus, windowSamples(start, w, leaker)).catch(() => undefined);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Which telemetry / features partitions each replica's consumers hold now, by the replica's Kafka client id. */
async function assignments(groupId: string, topic: string): Promise<Map<string, number[]>> {
  const admin = new Kafka({ clientId: 'failover-probe', brokers: [KAFKA_BROKER], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    const out = new Map<string, number[]>();
    const group = groups[0];
    if (group?.state !== 'Stable') return out;
    for (const m of group.members) {
      const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
      // Topic names carry the run's prefix.
      const entry = Object.entries(decoded?.assignment ?? {}).find(([name]) => name.endsWith(`.${topic}`));
      out.set(m.clientId, entry?.[1] ?? []);
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

async function isLeader(sidecar: SidecarProcess): Promise<boolean> {
  // A standby answers the engine's account of a node with a conflict; the leader with the account.
  const res = await fetch(`${sidecar.baseUrl}/api/nodes/${NODE_IDS[0]}/why`).catch(() => null);
  return res?.status === 200;
}

/** The first time (epoch ms, from the log) at or after `since` that a line with this message was logged. */
function loggedAt(
  sidecar: SidecarProcess,
  msg: string,
  since: number,
  match?: (e: Record<string, unknown>) => boolean,
) {
  for (const line of readFileSync(sidecar.logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as Record<string, unknown>;
      if (e.msg === msg && typeof e.time === 'number' && e.time >= since && (!match || match(e))) return e.time;
    } catch {
      // not a log record
    }
  }
  return null;
}

interface Replica {
  sidecar: SidecarProcess;
  clientId: string;
}

interface RunResult {
  leaker: string;
  /** Event time of the window that decided the drain, ms after the leak's start. */
  decisionAfterLeakMs: number;
  /** Wall time of DrainStarting, ms after the leak's start. */
  drainAfterLeakMs: number;
  /** The leaker's risk per window (index from the leak's start), the last score of each window. */
  risks: Map<number, number>;
  drainsOfLeaker: number;
  disabledInKamailio: boolean;
  /** Run B only: what the kill cost before the survivor took over. */
  failover: {
    victimOwnedScores: boolean;
    leaderAfterMs: number | null;
    partitionAfterMs: number | null;
    engineAfterMs: number | null;
  } | null;
}

/** Whether, as Kamailio sees it, the leaker's destination is out of rotation. */
async function disabled(nodeId: string): Promise<boolean> {
  const list = await lab!.dispatcher.list();
  return list.some((d) => d.setId === 1 && d.uri === uriOf(nodeId) && d.state === 'disabled');
}

/**
 * Starts two replicas and waits until they share the partitions and one leads. Returns them with the node whose
 * partitions (telemetry for the extractor, features for the scorer) the leader holds, preferring both.
 */
async function startPair(name: string, config: (clientId: string, port: number) => Record<string, unknown>) {
  const replicas: Replica[] = [];
  for (const tag of ['a', 'b']) {
    const clientId = `foresight-${name}-${tag}`;
    replicas.push({ clientId, sidecar: await SidecarProcess.start(config(clientId, await freePort()), clientId) });
  }
  const groupId = `foresight-${name}`;
  return { replicas, groupId };
}

async function settle(replicas: Replica[], groupId: string) {
  return waitFor(
    'two replicas sharing the partitions, one of them leading',
    async () => {
      const telemetry = await assignments(`${groupId}.features`, 'telemetry');
      const features = await assignments(`${groupId}.scores`, 'features');
      const leaders: Replica[] = [];
      for (const r of replicas) if (await isLeader(r.sidecar)) leaders.push(r);
      const covered = (m: Map<string, number[]>) => m.size === 2 && [...m.values()].flat().length === PARTITIONS;
      if (leaders.length !== 1 || !covered(telemetry) || !covered(features)) {
        // Thrown, so a timeout reports the last observation.
        const seen = { leaders: leaders.map((r) => r.clientId), telemetry: [...telemetry], features: [...features] };
        throw new Error(JSON.stringify(seen));
      }
      return { leader: leaders[0]!, telemetry, features };
    },
    60_000,
    500,
  );
}

async function runOnce(name: string, kill: boolean, wantedLeaker: string | null): Promise<RunResult> {
  db = await createScratchDatabase(name.replaceAll('-', '_'));
  const base = sidecarConfig({
    name,
    storeUrl: db.url,
    apiPort: 0,
    actions: {
      guardrails: {
        riskThreshold: RISK_THRESHOLD,
        recoverThreshold: 0.4,
        hysteresisWindows: K,
        maxOutOfService: 1,
        maxOutOfServicePct: 50,
        minActive: 2,
        cooldownMs: 0,
        maxDrainsPerHour: 100,
      },
    },
  });
  const bus0 = base.bus as { kafka: Record<string, unknown> };
  const config = (clientId: string, port: number) => ({
    ...base,
    bus: { ...bus0, partitions: PARTITIONS, kafka: { ...bus0.kafka, clientId } },
    api: { host: '127.0.0.1', port, openLocalMode: true },
  });
  const { bus } = await openBus(config(`foresight-${name}-test`, 0));
  const scores = await collectTopic(bus, 'scores', name);
  const audits = await collectTopic(bus, 'actions', name);
  const { replicas, groupId } = await startPair(name, config);
  let pump: { stop(): Promise<void> } | null = null;
  try {
    const settled = await settle(replicas, groupId);
    const ownedBy = (m: Map<string, number[]>, r: Replica, node: string) =>
      (m.get(r.clientId) ?? []).includes(partitionForKey(node, PARTITIONS));
    const leaderNodes = NODE_IDS.filter((n) => ownedBy(settled.telemetry, settled.leader, n));
    const leaker =
      wantedLeaker ?? leaderNodes.find((n) => ownedBy(settled.features, settled.leader, n)) ?? leaderNodes[0]!;
    // Windows aligned to the second, so both runs see the same windows relative to their start.
    const start = Math.ceil((Date.now() + 2000) / WINDOW_MS) * WINDOW_MS;
    const leakAt = start + WARMUP_MS;
    pump = leakPump(bus, start, leaker);
    let failover: RunResult['failover'] = null;
    if (kill) {
      await sleep(leakAt + KILL_AFTER_LEAK_MS - Date.now());
      // The scenario is the worst case: the replica killed both leads and holds the leaking node's window state.
      const now = await settle(replicas, groupId);
      const victim = now.leader;
      expect(ownedBy(now.telemetry, victim, leaker), 'the leader holds the leaking node at the kill').toBe(true);
      const survivor = replicas.find((r) => r !== victim)!;
      const killedAt = Date.now();
      await victim.sidecar.kill9();
      const partition = partitionForKey(leaker, PARTITIONS);
      const after = (t: number | null) => (t === null ? null : t - killedAt);
      await waitFor('the survivor to lead', () => isLeader(survivor.sidecar), 60_000);
      await waitFor(
        "the survivor to take the leaker's partition over",
        () =>
          loggedAt(survivor.sidecar, 'feature state rebuilt after rebalance', killedAt, (e) =>
            ((e.owned as number[] | undefined) ?? []).includes(partition),
          ) !== null,
        60_000,
      );
      failover = {
        victimOwnedScores: ownedBy(now.features, victim, leaker),
        leaderAfterMs: after(loggedAt(survivor.sidecar, 'became leader', killedAt)),
        partitionAfterMs: after(
          loggedAt(survivor.sidecar, 'feature state rebuilt after rebalance', killedAt, (e) =>
            ((e.owned as number[] | undefined) ?? []).includes(partition),
          ),
        ),
        engineAfterMs: after(loggedAt(survivor.sidecar, 'this replica now executes actions', killedAt)),
      };
    }
    const isDrain = (r: AuditRecord) => r.kind === 'DrainStarting' && r.nodeId === leaker;
    const drain = await waitFor(
      `DrainStarting for ${leaker}`,
      () => audits.records.find(isDrain),
      leakAt + 240_000 - Date.now(),
      250,
    );
    const inKamailio = await waitFor(`${leaker} disabled in Kamailio`, () => disabled(leaker), 20_000, 250);
    // A few more windows, so both runs have the risks around the drain.
    await sleep(3000);
    const windowTs = (drain.details as { evidence?: { windowTs?: number } }).evidence?.windowTs;
    expect(typeof windowTs).toBe('number');
    const risks = new Map<number, number>();
    for (const s of scores.records.filter((x: NodeScore) => x.nodeId === leaker && x.observed)) {
      risks.set(Math.round((s.ts - leakAt) / WINDOW_MS), s.risk);
    }
    return {
      leaker,
      decisionAfterLeakMs: windowTs! - leakAt,
      drainAfterLeakMs: drain.ts - leakAt,
      risks,
      drainsOfLeaker: audits.records.filter(isDrain).length,
      disabledInKamailio: inKamailio,
      failover,
    };
  } finally {
    await pump?.stop();
    await scores.stop();
    await audits.stop();
    for (const r of replicas) await r.sidecar.stop();
    await bus.close();
    await lab!.activateAll().catch(() => undefined);
    await db.drop();
    db = null;
  }
}

/** The leaker's risk every ten windows from the leak's start up to the drain, for the console. */
function trajectory(risks: Map<number, number>, untilMs: number): string {
  const out: string[] = [];
  for (let w = -10; w * WINDOW_MS <= untilMs + 5 * WINDOW_MS; w += 5) {
    const r = risks.get(w);
    out.push(`${w}s:${r === undefined ? '-' : r.toFixed(2)}`);
  }
  return out.join(' ');
}

describe('leader killed mid-leak (real Kafka, Kamailio, PostgreSQL; two foresight run replicas)', () => {
  it('drains the leaking node no later than without the kill, but for the failover detection time', async () => {
    // Run B first: it picks the leaking node the leader holds; run A then leaks the same node.
    const killed = await runOnce('failover-leak-kill', true, null);
    const calm = await runOnce('failover-leak-calm', false, killed.leaker);
    const f = killed.failover!;
    // Detection: the survivor can act on the leaker only once it both leads and holds its partition.
    const detectionMs = Math.max(f.leaderAfterMs ?? Number.POSITIVE_INFINITY, f.partitionAfterMs ?? 0);
    const lateMs = killed.drainAfterLeakMs - calm.drainAfterLeakMs;
    const lateWindowMs = killed.decisionAfterLeakMs - calm.decisionAfterLeakMs;
    console.log(
      [
        `failover-leak: leaker ${killed.leaker}; K=${K}, threshold ${RISK_THRESHOLD}, ${WINDOW_MS} ms windows`,
        `  run A (no kill): deciding window ${calm.decisionAfterLeakMs} ms after leak start, DrainStarting at ${calm.drainAfterLeakMs} ms`,
        `  run B (kill -9 of leader+owner at ${KILL_AFTER_LEAK_MS} ms): deciding window ${killed.decisionAfterLeakMs} ms, DrainStarting at ${killed.drainAfterLeakMs} ms`,
        `  failover: survivor led after ${f.leaderAfterMs} ms, held the leaker's partition after ${f.partitionAfterMs} ms, engine up after ${f.engineAfterMs} ms; victim also held the scorer's partition: ${f.victimOwnedScores}`,
        `  B - A: drain ${lateMs} ms later (wall), deciding window ${lateWindowMs} ms later (event time); allowed: detection ${detectionMs} ms + ${JITTER_MS} ms`,
        `  risk A: ${trajectory(calm.risks, calm.decisionAfterLeakMs)}`,
        `  risk B: ${trajectory(killed.risks, killed.decisionAfterLeakMs)}`,
      ].join('\n'),
    );
    // What users feel: the node is out of rotation in Kamailio in both runs, by one automatic drain.
    expect(calm.disabledInKamailio).toBe(true);
    expect(killed.disabledInKamailio).toBe(true);
    expect(calm.drainsOfLeaker).toBe(1);
    expect(killed.drainsOfLeaker).toBe(1);
    // The comparison the issue asks for: the failover costs at most the time it takes to notice it.
    expect(lateMs, 'run B drains later than run A by more than the failover detection time').toBeLessThanOrEqual(
      detectionMs + JITTER_MS,
    );
    expect(
      lateWindowMs,
      'run B decides on a later window than run A by more than the detection time',
    ).toBeLessThanOrEqual(detectionMs + JITTER_MS);
  }, 900_000);
});
