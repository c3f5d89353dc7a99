/**
 * The path the README gives an operator from the statistical scorer to a model of their own cluster, on the real
 * stack (Kamailio, sipp calls, recorded AMI, PostgreSQL probes, node_exporter, HEP, Kafka): run the sidecar with
 * `stat` while it publishes telemetry, `foresight train --kafka` on a range of that topic, `foresight replay --kafka`
 * on a later range the model never saw, then run the sidecar with the trained model against live traffic.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReplay } from '../../src/cli/replay.js';
import { runTrain } from '../../src/cli/train.js';
import { silentLogger } from '../../src/log.js';
import { freePort, KAFKA_BROKER, NODE_IDS, SidecarProcess, sidecarConfig, sleep, waitFor } from '../chaos/env.js';
import { type SippRun, startUac } from '../helpers/sipp.js';
import { deleteTestTopics, uniquePrefix } from './kafka-support.js';
import { type RealStack, startRealStack } from './real-stack.js';

const RECORD_MS = 150_000;
const HOST_LIMITS = { memoryLimitMb: Math.floor(totalmem() / 2 ** 20) };
const LIVE_MS = 75_000;

let stack: RealStack;
let sidecar: SidecarProcess | undefined;
let uac: SippRun | undefined;
const topicPrefix = uniquePrefix('bootstrap');
const dir = mkdtempSync(join(tmpdir(), 'bootstrap-'));

beforeAll(async () => {
  stack = await startRealStack('bootstrap');
}, 180_000);

afterAll(async () => {
  await uac?.stop();
  await sidecar?.stop();
  await stack?.close();
  await deleteTestTopics().catch(() => undefined);
});

async function startSidecar(name: string, model?: Record<string, unknown>): Promise<SidecarProcess> {
  const config = sidecarConfig({
    name,
    storeUrl: stack.db.url,
    apiPort: await freePort(),
    topicPrefix,
    inputs: stack.inputs,
    hep: true,
    kamailioStats: true,
    // node_exporter reports the whole host's used memory: its limit is the host's RAM, as an operator would set it.
    model: { ...model, limits: HOST_LIMITS },
  });
  const started = await SidecarProcess.start(config, name);
  await waitFor('every node observed', async () => (await started.nodes()).every((n) => n.observed), 30_000);
  return started;
}

/** Steady traffic through Kamailio to every backend for `ms`: 4 calls/s of 2 s each. */
function traffic(ms: number, port: number): SippRun {
  return startUac({
    dir: stack.lab.dir,
    port,
    calls: Math.ceil((ms / 1000) * 4),
    rate: 4,
    durationMs: 2000,
    timeoutS: 30,
  });
}

const drainKinds = (kinds: string[]) => kinds.filter((k) => k.startsWith('Drain') || k.startsWith('Restart'));

describe('from stat to a model trained on this cluster', () => {
  const modelDir = join(dir, 'model');
  let recordedFrom = 0;
  let trainTo = 0;
  let recordedTo = 0;

  it('records telemetry with the stat scorer, trains on a range of it, and the replay of a later range drains nothing', async () => {
    sidecar = await startSidecar('bootstrap-record');
    recordedFrom = Date.now();
    uac = traffic(RECORD_MS, 5096);
    await sleep(RECORD_MS);
    recordedTo = Date.now() - 2000;
    await uac.exited.catch(() => undefined);
    uac = undefined;
    const recordAudit = await sidecar.audit();
    expect(drainKinds(recordAudit.map((r) => r.kind)), JSON.stringify(recordAudit.slice(0, 3))).toEqual([]);
    await sidecar.stop();
    sidecar = undefined;

    // Two thirds to train on, the rest held out for the replay.
    trainTo = recordedFrom + Math.round(((recordedTo - recordedFrom) * 2) / 3);
    const trained = await runTrain({
      kafka: `${topicPrefix}.telemetry@${recordedFrom}..${trainTo}`,
      brokers: [KAFKA_BROKER],
      windowMs: 1000,
      out: modelDir,
      quiet: true,
      logger: silentLogger(),
    });
    // Three nodes, about a window a second each.
    expect(trained.healthyWindows).toBeGreaterThan(200);

    const config = join(dir, 'replay.json');
    writeFileSync(
      config,
      JSON.stringify({
        features: { windowMs: 1000 },
        model: { kind: 'tfjs', path: modelDir, limits: HOST_LIMITS },
        bus: { kind: 'kafka', kafka: { brokers: [KAFKA_BROKER] } },
      }),
    );
    const report = await runReplay({ kafka: `${topicPrefix}.telemetry@${trainTo}..${recordedTo}`, config });
    expect(report.scorer).toMatch(/^tfjs/);
    expect(report.span.nodes.sort()).toEqual([...NODE_IDS]);
    expect(report.input?.samples).toBeGreaterThan(1000);
    expect(report.model.falseDrains).toBe(0);
    const peak = Math.max(...(report.series?.nodes ?? []).flatMap((n) => n.risk));
    console.log(`bootstrap: ${trained.healthyWindows} windows trained, replay peak risk ${peak.toFixed(3)}`);
  }, 420_000);

  it('the sidecar runs the trained model on live traffic without draining a healthy node', async () => {
    expect(recordedTo).toBeGreaterThan(0);
    sidecar = await startSidecar('bootstrap-live', { kind: 'tfjs', path: modelDir });
    const model = await sidecar.get<{ name: string; scorer?: string }>('/api/model');
    expect(model.name).toBe('model');
    uac = traffic(LIVE_MS, 5097);
    const maxRisk = new Map<string, number>();
    const trace: number[] = [];
    // Risks once the first 10 s (collectors connecting, the first partial windows) are behind.
    const settled: number[] = [];
    const settledFrom = Date.now() + 10_000;
    const until = Date.now() + LIVE_MS;
    while (Date.now() < until) {
      for (const n of await sidecar.nodes()) {
        if (n.risk !== null) maxRisk.set(n.nodeId, Math.max(maxRisk.get(n.nodeId) ?? 0, n.risk));
        if (n.nodeId === 'ast1') trace.push(Math.round((n.risk ?? -1) * 100));
        if (n.risk !== null && Date.now() > settledFrom) settled.push(n.risk);
        // Before the action engine's first score of a node the API says 'unknown'; out of rotation is what counts.
        expect(['draining', 'restarting', 'recovering'], `${n.nodeId} at risk ${n.risk}`).not.toContain(n.state);
      }
      await sleep(1000);
    }
    await uac.exited.catch(() => undefined);
    uac = undefined;
    expect([...maxRisk.keys()].sort()).toEqual([...NODE_IDS]);
    expect((await sidecar.nodes()).map((n) => n.state)).toEqual(NODE_IDS.map(() => 'active'));
    console.log(`bootstrap live: peak risk ${JSON.stringify(Object.fromEntries(maxRisk))} ast1 ${trace.join(' ')}`);
    for (const [node, risk] of maxRisk) expect(risk, node).toBeLessThan(0.8);
    // What tells a fitting model from one that does not is the drain: the live phase outlasts the 60 s persistence, so
    // a model whose error stays above its calibrated threshold (the simulator-trained one on this stack: 0.97 on every
    // node) drains a node here. How far below it sits varies with the host (node_exporter reports the whole machine
    // for all three nodes, and two and a half minutes of training cannot cover its variety): over runs the settled
    // median was 0.05-0.65 and the p90 0.11-0.70, so neither is asserted; they are printed.
    settled.sort((a, b) => a - b);
    const at = (q: number) => settled[Math.floor(settled.length * q)]!;
    console.log(`bootstrap live: settled risk p50 ${at(0.5).toFixed(3)} p90 ${at(0.9).toFixed(3)}`);
    expect(settled.length).toBeGreaterThan(100);
    expect(drainKinds((await sidecar.audit()).map((r) => r.kind))).toEqual([]);
  }, 240_000);
});
