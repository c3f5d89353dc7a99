/**
 * A real precursor on a real node: ast3's realtime database (PostgreSQL, through res_config_pgsql, which PJSIP reads
 * its endpoint from on every request) turns slow while calls keep coming through Kamailio. The node's PJSIP
 * taskprocessors back up (AMI `core show taskprocessors`), Foresight's probe of that database slows, and the `stat`
 * scorer of `foresight run` ranks ast3 above its healthy peers, naming those signals. Measured figures: docs/asterisk.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createScratchDatabase,
  freePort,
  type NodeViewDto,
  type ScratchDatabase,
  SidecarProcess,
  sleep,
  waitFor,
} from '../chaos/env.js';
import { RawAmi } from '../helpers/ami-raw.js';
import { type SippRun, startUac } from '../helpers/sipp.js';
import { ASTERISK_START_TIMEOUT_MS, type AsteriskNode, startAsteriskNodes } from './asterisk-env.js';
import {
  AST_PROXY,
  type AsteriskProxy,
  asteriskSidecarConfig,
  type RealtimeDb,
  restoreLabConfig,
  startAsteriskProxy,
  useRealtimeEndpoints,
} from './asterisk-stack.js';
import { kafkaService } from './kafka-support.js';

const DELAY_MS = 200;
const OBSERVE_MS = 30_000;
const FIXTURES = resolve(import.meta.dirname, '../fixtures/ami');
// The test's own flag: the sidecar inherits this environment and would read any FORESIGHT_* name as its config.
const CAPTURE = process.env.FORESIGHT_CAPTURE_AMI === '1';
delete process.env.FORESIGHT_CAPTURE_AMI;

let nodes: AsteriskNode[];
const realtime = new Map<string, RealtimeDb>();
let proxy: AsteriskProxy;
let store: ScratchDatabase;
let sidecar: SidecarProcess;
let dir: string;
let traffic: SippRun | undefined;

beforeAll(async () => {
  nodes = await startAsteriskNodes(3);
  await kafkaService('start');
  for (const n of nodes) realtime.set(n.id, await useRealtimeEndpoints(n));
  proxy = await startAsteriskProxy(nodes);
  store = await createScratchDatabase('astprec');
  const config = asteriskSidecarConfig({
    name: 'asterisk-precursor',
    storeUrl: store.url,
    apiPort: await freePort(),
    nodes,
    db: Object.fromEntries([...realtime].map(([id, rt]) => [id, { url: rt.db.url, query: rt.probeQuery }] as const)),
    // Observed, not acted on: the precursor is what is under test here, not the drain (asterisk-fullstack.test.ts).
    actions: { guardrails: { maxOutOfService: 0 } },
  });
  sidecar = await SidecarProcess.start(config, 'asterisk-precursor');
  dir = mkdtempSync(join(tmpdir(), 'foresight-astprec-'));
}, ASTERISK_START_TIMEOUT_MS);

afterAll(async () => {
  await traffic?.stop();
  await sidecar?.stop();
  await proxy?.close();
  // Back to the lab config (endpoint from pjsip.conf), each node restarted onto it, as asterisk.sh start leaves them.
  for (const n of nodes ?? []) {
    if (realtime.has(n.id)) await restoreLabConfig(n);
  }
  for (const rt of realtime.values()) await rt.db.drop().catch(() => undefined);
  await store?.drop().catch(() => undefined);
  if (dir && !process.env.FORESIGHT_KEEP_SIPP_LOGS) rmSync(dir, { recursive: true, force: true });
}, 120_000);

type Explained = NodeViewDto & { explanation?: { feature: string; weight: number; value: number }[] };

const feature = (n: NodeViewDto | undefined, name: string) => n?.features?.[name] ?? null;

describe('a slow realtime database on a real Asterisk node', () => {
  it('backs up its PJSIP taskprocessors; the collectors see it and the scorer ranks the node above its peers', async () => {
    await waitFor(
      'every node observed, up, its realtime database probed',
      async () => {
        const view = await sidecar.nodes();
        return (
          view.length === 3 &&
          view.every((n) => n.observed && n.up === true && (feature(n, 'db.query_ms.count') ?? 0) > 0)
        );
      },
      60_000,
      500,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${sidecar.logTail()}`);
    });
    traffic = startUac({
      dir,
      port: 5395,
      target: `127.0.0.1:${AST_PROXY.sipPort}`,
      service: 'hold',
      calls: 1000,
      rate: 8,
      durationMs: 2000,
      timeoutS: 300,
      name: 'uac-load',
    });
    // A baseline of healthy windows under load on every node (the scorer's own baseline needs 6).
    await sleep(20_000);
    const before = await sidecar.nodes();
    for (const n of before) expect(n.risk ?? 1, `${n.nodeId} healthy before the fault`).toBeLessThan(0.2);

    await realtime.get('ast3')?.setDelayMs(DELAY_MS);
    const faultAt = Date.now();
    // What each node's windows show, polled through the fault; the peaks are compared, not one moment.
    const series: { t: number; id: string; risk: number | null; queue: number | null; dbP95: number | null }[] = [];
    let explanation: string[] = [];
    const failedAtFault = traffic.stats()['FailedCall(C)'] ?? 0;
    while (Date.now() - faultAt < OBSERVE_MS) {
      const t = Math.round((Date.now() - faultAt) / 100) / 10;
      for (const n of (await sidecar.nodes()) as Explained[]) {
        series.push({
          t,
          id: n.nodeId,
          risk: n.risk,
          queue: feature(n, 'taskprocessor.max_queue.max'),
          dbP95: feature(n, 'db.query_ms.p95'),
        });
        const peakSoFar = Math.max(...series.filter((x) => x.id === 'ast3').map((x) => x.risk ?? 0));
        if (n.nodeId === 'ast3' && n.risk === peakSoFar) explanation = (n.explanation ?? []).map((c) => c.feature);
      }
      await sleep(250);
    }
    // FORESIGHT_CAPTURE_AMI=1: the node's table with its backlog becomes the replay server's fixture.
    if (CAPTURE) {
      const ast3 = nodes[2] as AsteriskNode;
      const ami = await RawAmi.open(ast3.amiPort);
      try {
        await ami.send({
          Action: 'Login',
          ActionID: 'l1',
          Username: ast3.amiUser,
          Secret: ast3.amiSecret,
          Events: 'off',
        });
        const tp = { Action: 'Command', ActionID: 'tp-1', Command: 'core show taskprocessors' };
        writeFileSync(join(FIXTURES, 'command-taskprocessors.ami'), await ami.send(tp));
      } finally {
        ami.close();
      }
    }
    const stats = traffic.stats();
    const peak = (id: string, key: 'queue' | 'dbP95' | 'risk') =>
      Math.max(...series.filter((x) => x.id === id).map((x) => x[key] ?? 0));
    const median = (id: string, key: 'dbP95') => {
      const v = series.filter((x) => x.id === id && x[key] !== null).map((x) => x[key] as number);
      return v.sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? 0;
    };
    const firstAbove = series.find((x) => x.id === 'ast3' && (x.risk ?? 0) >= 0.3)?.t ?? null;
    const report = {
      firstRiskAbove03S: firstAbove,
      explanation,
      peak: Object.fromEntries(
        ['ast1', 'ast2', 'ast3'].map((id) => [
          id,
          {
            risk: peak(id, 'risk'),
            queue: peak(id, 'queue'),
            dbP95: peak(id, 'dbP95'),
            dbP95Median: median(id, 'dbP95'),
          },
        ]),
      ),
      callsFailedDuringFault: (stats['FailedCall(C)'] ?? 0) - failedAtFault,
      before: before.map((n) => [n.nodeId, n.risk]),
      callsOk: stats['SuccessfulCall(C)'],
    };
    const ast3Series = series.filter((x) => x.id === 'ast3').map((x) => [x.t, x.risk, x.queue, x.dbP95]);
    console.log(
      `precursor measured: ${JSON.stringify(report)}\nast3 [t, risk, queue, dbP95]: ${JSON.stringify(ast3Series)}`,
    );
    // The database probe sees the delay on ast3 only; the node's PJSIP taskprocessors back up, its peers' do not.
    expect(median('ast3', 'dbP95')).toBeGreaterThanOrEqual(DELAY_MS);
    for (const id of ['ast1', 'ast2']) {
      expect(median(id, 'dbP95'), id).toBeLessThan(DELAY_MS / 2);
      expect(peak('ast3', 'queue'), `ast3's queue against ${id}'s`).toBeGreaterThan(peak(id, 'queue') + 2);
      // The scorer ranks it first: its peak risk at least twice its peers' (the bias alone gives every node 0.018).
      expect(peak('ast3', 'risk'), `ast3's risk against ${id}'s`).toBeGreaterThan(2 * peak(id, 'risk'));
    }
    expect(explanation.join(' ')).toMatch(/db_query|max_queue/);
    await realtime.get('ast3')?.setDelayMs(0);
  });
});
