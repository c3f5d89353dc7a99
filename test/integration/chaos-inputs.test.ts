/**
 * Fault scenarios on Foresight's inputs, over the real stack: `foresight run` as a child process with AMI collectors
 * on replay servers of recorded Asterisk traffic, database probes on the local PostgreSQL (one aimed at a closed
 * port), Kafka as the bus and PostgreSQL as the store. The test process injects the faults: AMI connection storms and
 * garbage bytes, a Kafka broker restart, telemetry with jumping and out-of-order clocks, an export target that is down.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../../src/bus/port.js';
import { InfluxExporter } from '../../src/exporters/influx.js';
import type { DeadLetter, FeatureVector, NodeScore, TelemetrySample } from '../../src/messages.js';
import {
  CLOSED_PORT,
  collectTopic,
  createScratchDatabase,
  freePort,
  healthySamples,
  NODE_IDS,
  type NodeInputs,
  openBus,
  PG_ADMIN_URL,
  publishTelemetry,
  type ScratchDatabase,
  SidecarProcess,
  sample,
  sidecarConfig,
  sleep,
  waitFor,
} from '../chaos/env.js';
import { AmiReplayServer } from '../helpers/ami-replay-server.js';
import { kafkaService } from './kafka-support.js';

let db: ScratchDatabase;
let sidecar: SidecarProcess;
let bus: Bus;
let groupId: string;
const ami = new Map<string, AmiReplayServer>();

beforeAll(async () => {
  await kafkaService('start');
  db = await createScratchDatabase('inputs');
  const down = new URL(PG_ADMIN_URL);
  down.port = String(CLOSED_PORT);
  const inputs: Record<string, NodeInputs> = {};
  for (const id of NODE_IDS) {
    const server = await AmiReplayServer.start({ username: 'foresight' });
    ami.set(id, server);
    // ast3's realtime database is down for the whole file: nothing listens on its port.
    inputs[id] = { amiPort: server.port, dbUrl: id === 'ast3' ? down.toString() : PG_ADMIN_URL };
  }
  const config = sidecarConfig({ name: 'inputs', storeUrl: db.url, apiPort: await freePort(), inputs });
  groupId = (config.bus as { kafka: { groupId: string } }).kafka.groupId;
  sidecar = await SidecarProcess.start(config, 'chaos-inputs');
  bus = (await openBus(config)).bus;
  await waitFor(
    'every node up',
    async () => {
      const nodes = await sidecar.nodes();
      return nodes.length === 3 && nodes.every((n) => n.up === true);
    },
    30_000,
  );
});

afterAll(async () => {
  await sidecar?.stop();
  await bus?.close();
  for (const s of ami.values()) await s.close();
  await db?.drop().catch(() => undefined);
});

describe('AMI connection storms and garbage bytes', () => {
  it('reconnects, and shows the node as down (never healthy) while its AMI is unreachable', async () => {
    const server = ami.get('ast1')!;
    const loginsBefore = server.actions('Login').length;
    // A storm: every session dropped 25 times in a row, with garbage and truncated frames in between.
    for (let i = 0; i < 25; i++) {
      server.sendRaw(randomBytes(2048));
      server.sendRaw('Event: Newchannel\r\nChannel: PJSIP/trunk-0000\r\nUniqueid: 17');
      server.sendRaw(Buffer.from([0, 0xff, 0xfe, 13, 10, 13, 10]));
      server.dropAll();
      await sleep(60);
    }
    // Then AMI refuses every connection: Foresight cannot see ast1 through AMI any more.
    server.setRefusing(true);
    server.dropAll();
    const down = await waitFor(
      'ast1 shown as down',
      async () => {
        const n = await sidecar.node('ast1');
        return n.up === false ? n : undefined;
      },
      15_000,
    );
    expect(down.up).toBe(false);
    const ready = await sidecar.readyz();
    const checks = (ready.body as { checks?: { name: string; ok: boolean }[] } | null)?.checks ?? [];
    expect(checks.find((c) => c.name === 'ami:ast1')?.ok).toBe(false);
    // The other nodes are unaffected.
    for (const id of ['ast2', 'ast3']) expect((await sidecar.node(id)).up, id).toBe(true);

    const refusedAt = server.accepted;
    server.setRefusing(false);
    await waitFor('ast1 up again', async () => (await sidecar.node('ast1')).up === true, 20_000);
    // It logged in again during the storm and once more after the refusals ended, and holds a session now.
    expect(server.actions('Login').length).toBeGreaterThan(loginsBefore + 1);
    expect(server.accepted).toBeGreaterThan(refusedAt);
    expect(server.sessions).toBeGreaterThanOrEqual(1);
    expect(sidecar.alive).toBe(true);
  });
});

describe('database down', () => {
  it('turns probe failures into a signal on the node, not a crash', async () => {
    const ast3 = await waitFor(
      'db probe failures on ast3',
      async () => {
        const n = await sidecar.node('ast3');
        return (n.features?.['db.probe_failures.rate'] ?? 0) > 0 ? n : undefined;
      },
      20_000,
    );
    expect(ast3.observed).toBe(true);
    expect(ast3.features?.['db.query_ms.count'] ?? 0).toBe(0);
    const ast1 = await waitFor(
      'db latency on ast1',
      async () => {
        const n = await sidecar.node('ast1');
        return (n.features?.['db.query_ms.count'] ?? 0) > 0 ? n : undefined;
      },
      20_000,
    );
    expect(ast1.features?.['db.probe_failures.rate'] ?? 0).toBe(0);
    const ready = await sidecar.readyz();
    const checks = (ready.body as { checks?: { name: string; ok: boolean }[] } | null)?.checks ?? [];
    expect(checks.find((c) => c.name === 'db:ast3')?.ok).toBe(false);
    expect(checks.find((c) => c.name === 'db:ast1')?.ok).toBe(true);
    expect(sidecar.alive).toBe(true);
  });
});

describe('clock jumps and out-of-order telemetry', () => {
  it('aggregates late-but-allowed samples into their own window and dead-letters jumps without moving windows', async () => {
    const nodeId = `clock-${randomBytes(3).toString('hex')}`;
    const features = await collectTopic(bus, 'features', 'clock-features');
    const dead = await collectTopic(bus, 'deadletter', 'clock-dead');
    try {
      // Start right after a window boundary so the whole scenario fits in the window and its lateness.
      await waitFor('a fresh window', () => Date.now() % 1000 < 60, 2000, 5);
      const w = Math.floor(Date.now() / 1000) * 1000;
      const calls = (ts: number) => sample(nodeId, 'calls.started', 1, ts);
      // Out of order inside the window.
      await publishTelemetry(bus, [calls(w + 40), calls(w + 5), calls(w + 25)]);
      await sleep(300);
      await publishTelemetry(bus, [calls(w + 310), calls(w + 150)]);
      // The next window starts; a sample of the previous one arrives late, within the allowed lateness.
      await waitFor('next window', () => Date.now() >= w + 1100, 2000, 5);
      await publishTelemetry(bus, [calls(w + 1050), calls(w + 900)]);
      // Clock jumps: one sample two hours ahead, one an hour behind.
      const jumpAhead = calls(Date.now() + 2 * 3_600_000);
      const jumpBack = calls(Date.now() - 3_600_000);
      await publishTelemetry(bus, [jumpAhead, jumpBack]);
      // Normal telemetry carries on in the following windows.
      for (let i = 0; i < 4; i++) {
        await sleep(500);
        await publishTelemetry(bus, [calls(Date.now())]);
      }
      const mine = () => features.records.filter((v: FeatureVector) => v.nodeId === nodeId);
      const windowW = await waitFor('the vector of window w', () => mine().find((v) => v.windowStart === w), 15_000);
      expect(windowW.sampleCount).toBe(6);
      expect(windowW.features['calls.started.rate']).toBeCloseTo(6, 6);
      await waitFor('later windows', () => mine().some((v) => v.windowStart >= w + 3000), 15_000);
      // Windows advance one by one: the jump ahead did not close windows early or open one two hours out.
      const starts = mine().map((v) => v.windowStart);
      for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBe(1000);
      expect(Math.max(...starts)).toBeLessThan(Date.now() + 60_000);
      // Both jumps are dead-lettered with their reason, nothing else of this node is.
      const rejects = await waitFor(
        'dead letters for the jumps',
        () => {
          const r = dead.records.filter((d: DeadLetter) => d.payload.includes(nodeId));
          return r.length >= 2 ? r : undefined;
        },
        15_000,
      );
      expect(rejects.map((r) => r.reason).sort()).toEqual(['future', 'late']);
      const rejected = rejects.map((r) => (JSON.parse(r.payload) as TelemetrySample).ts).sort();
      expect(rejected).toEqual([jumpBack.ts, jumpAhead.ts]);
    } finally {
      await features.stop();
      await dead.stop();
    }
  });
});

describe('InfluxDB export target down', () => {
  it('keeps the buffer bounded and never holds up the consumer that feeds it', async () => {
    const exporter = new InfluxExporter({
      url: `http://127.0.0.1:${CLOSED_PORT}`,
      org: 'foresight',
      bucket: 'foresight',
      maxBufferLines: 20,
      flushIntervalMs: 200,
      minRetryDelayMs: 100,
      maxRetryDelayMs: 500,
    });
    let maxBuffered = 0;
    const exportGroup = `chaos-export-${randomBytes(3).toString('hex')}`;
    // The sidecar's real scores, re-exported as an observer would: the handler returns at once.
    const sub = await bus.subscribe(
      'scores',
      async (batch) => {
        exporter.exportScores(batch.map((r) => r.value as NodeScore));
        maxBuffered = Math.max(maxBuffered, exporter.stats().buffered);
      },
      { groupId: exportGroup, fromBeginning: true },
    );
    try {
      await waitFor('the buffer to overflow', () => exporter.stats().dropped > 0, 30_000);
      await sleep(1500);
      expect(maxBuffered).toBeLessThanOrEqual(20);
      expect(exporter.stats().buffered).toBeLessThanOrEqual(20);
      expect(exporter.stats().failedWrites).toBeGreaterThan(0);
      // The consumer keeps up with the live pipeline although every write fails.
      await waitFor('export consumer caught up', async () => (await bus.lag('scores', exportGroup)) <= 9, 10_000);
      // And the pipeline itself keeps scoring.
      const before = (await sidecar.node('ast2')).scoreTs ?? 0;
      await waitFor('new scores', async () => ((await sidecar.node('ast2')).scoreTs ?? 0) > before, 10_000);
    } finally {
      await sub.stop();
      const closed = await exporter.close(1000);
      expect(closed.buffered).toBeLessThanOrEqual(20);
    }
  });
});

describe('Kafka broker restart', () => {
  it('loses no telemetry (every acknowledged sample is in a window or dead-lettered) and the lag recovers', async () => {
    const nodes = ['kafka-a', 'kafka-b', 'kafka-c'].map((n) => `${n}-${randomBytes(2).toString('hex')}`);
    const features = await collectTopic(bus, 'features', 'kafka-features');
    const dead = await collectTopic(bus, 'deadletter', 'kafka-dead');
    let acknowledged = 0;
    let failedPublishes = 0;
    let stop = false;
    const pump = (async () => {
      while (!stop) {
        const batch = nodes.flatMap((id) => healthySamples(id));
        try {
          await publishTelemetry(bus, batch);
          acknowledged += batch.length;
        } catch {
          failedPublishes++;
        }
        await sleep(200);
      }
    })();
    const restartStarted = Date.now();
    try {
      await sleep(2000);
      // Stop, stay down long enough for several windows to close during the outage, start again.
      await kafkaService('stop');
      await sleep(6000);
      await kafkaService('start');
      await sleep(3000);
    } finally {
      stop = true;
      await pump;
    }
    const restartMs = Date.now() - restartStarted;
    // The pipeline catches up: the feature stage's group has consumed everything published.
    const caughtUp = Date.now();
    await waitFor(
      'telemetry lag 0',
      async () => (await bus.lag('telemetry', `${groupId}.features`)) === 0,
      60_000,
      500,
    );
    const lagRecoveryMs = Date.now() - caughtUp;
    // Let the last windows close (1 s + 0.5 s lateness) and reach the topic.
    const accounted = () => {
      const inWindows = features.records
        .filter((v: FeatureVector) => nodes.includes(v.nodeId))
        .reduce((sum, v) => sum + v.sampleCount, 0);
      const deadLettered = dead.records.filter((d: DeadLetter) => nodes.some((n) => d.payload.includes(n))).length;
      return { inWindows, deadLettered, total: inWindows + deadLettered };
    };
    await waitFor('every sample accounted for', () => accounted().total >= acknowledged, 30_000).catch(() => undefined);
    const result = accounted();
    console.log(
      `chaos: kafka restart ${restartMs} ms; acknowledged ${acknowledged} samples (${failedPublishes} publishes failed ` +
        `and were not acknowledged); in windows ${result.inWindows}, dead-lettered ${result.deadLettered}; ` +
        `lag back to 0 ${lagRecoveryMs} ms after the pump stopped`,
    );
    expect(acknowledged).toBeGreaterThan(0);
    expect(result.total).toBeGreaterThanOrEqual(acknowledged);
    expect(sidecar.alive, sidecar.logTail()).toBe(true);
    await features.stop();
    await dead.stop();
  });
});
