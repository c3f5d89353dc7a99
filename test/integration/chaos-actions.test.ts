/**
 * Fault scenarios around the action module, over the real stack: Foresight as a `foresight run` child process, Kafka
 * as its bus, PostgreSQL as its store, a real Kamailio with three sipp backends as its dispatcher. The test process
 * plays the collectors and, where a scenario needs a verdict the model would not give on demand, the scorer: crafted
 * NodeScore records on the scores topic are indistinguishable from real ones to the action engine.
 *
 * Crafted scores carry event times a few minutes ahead, increasing, so the sidecar's own scores of the (silent or
 * healthy) windows never interleave with a scenario once it started: the engine ignores scores older than the last.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DispatcherDestination } from '../../src/actions/ports.js';
import type { Bus } from '../../src/bus/port.js';
import type { AuditRecord } from '../../src/messages.js';
import {
  craftedScore,
  createScratchDatabase,
  freePort,
  NODE_IDS,
  openBus,
  publishScores,
  type ScratchDatabase,
  SidecarProcess,
  sidecarConfig,
  sleep,
  telemetryPump,
  uriOf,
  waitFor,
} from '../chaos/env.js';
import { TcpProxy } from '../chaos/tcp-proxy.js';
import { kafkaService } from './kafka-support.js';
import { type KamailioLab, kamailioService, startKamailioLab } from './kamailio-env.js';

let lab: KamailioLab;
let db: ScratchDatabase;
let sidecar: SidecarProcess;
let bus: Bus;
let config: Record<string, unknown>;
let generation = 0;

let craftedTs = 0;
/** Increasing, and always minutes ahead of the wall clock, however long the run took to get here. */
const nextTs = () => {
  craftedTs = Math.max(craftedTs + 1000, Date.now() + 180_000);
  return craftedTs;
};

async function startSidecar(): Promise<SidecarProcess> {
  generation++;
  return SidecarProcess.start(config, `chaos-actions-${generation}`);
}

async function destinations(): Promise<Map<string, DispatcherDestination>> {
  const list = await lab.dispatcher.list();
  const out = new Map<string, DispatcherDestination>();
  for (const id of NODE_IDS) {
    const d = list.find((x) => x.setId === 1 && x.uri === uriOf(id));
    if (d) out.set(id, d);
  }
  return out;
}

async function disabledNodes(): Promise<string[]> {
  return [...(await destinations())].filter(([, d]) => d.state === 'disabled').map(([id]) => id);
}

/** Low-risk, observed scores for every node: the set is healthy and every node is in the guardrails' count. */
/**
 * Low risk on every node, and waits until the action engine itself has taken it in: the dashboard's view reads the
 * scores topic with its own consumer, and under load the engine's consumer can lag it by seconds, long enough for a
 * freed slot to go to a node whose last score the engine still has as 0.99.
 */
async function allHealthy(): Promise<void> {
  const ts = nextTs();
  await publishScores(
    bus,
    NODE_IDS.map((id) => craftedScore(id, ts, 0.05, { activeCalls: 2 })),
  );
  await waitFor(
    'the action engine has the healthy scores',
    async () => {
      for (const id of NODE_IDS) {
        const why = await sidecar.get<{ lastScore: { ts: number } | null }>(`/api/nodes/${id}/why`);
        if (!why.lastScore || why.lastScore.ts < ts) return undefined;
      }
      return true;
    },
    30_000,
  );
}

beforeAll(async () => {
  await kafkaService('start');
  lab = await startKamailioLab();
  db = await createScratchDatabase('actions');
  config = sidecarConfig({ name: 'actions', storeUrl: db.url, apiPort: await freePort() });
  sidecar = await startSidecar();
  bus = (await openBus(config)).bus;
});

afterAll(async () => {
  await sidecar?.stop();
  await bus?.close();
  if (lab) {
    await lab.activateAll().catch(() => undefined);
    await lab.stop();
  }
  await db?.drop().catch(() => undefined);
});

describe('unobserved is not healthy', () => {
  it('flags nodes whose telemetry stopped and never drains the last healthy nodes because its inputs failed', async () => {
    // Telemetry flows: every node becomes observed.
    const pump = telemetryPump(bus, NODE_IDS);
    try {
      await waitFor(
        'every node observed',
        async () => {
          const nodes = await sidecar.nodes();
          return nodes.length === NODE_IDS.length && nodes.every((n) => n.observed);
        },
        40_000,
      );
    } finally {
      await pump.stop();
    }
    // Telemetry stops: within a few 1 s windows every node is flagged unobserved (not healthy, not failing).
    const stoppedAt = Date.now();
    await waitFor(
      'every node unobserved',
      async () => {
        const nodes = await sidecar.nodes();
        return nodes.length === NODE_IDS.length && nodes.every((n) => !n.observed);
      },
      15_000,
    );
    const flaggedAfterMs = Date.now() - stoppedAt;
    expect(flaggedAfterMs).toBeLessThan(15_000);

    // One node now looks terrible while Foresight is blind to the others: draining it would leave no node Foresight
    // can vouch for, so the minimum-active guardrail refuses.
    const ts = nextTs();
    await publishScores(bus, [craftedScore('ast2', ts, 0.99, { activeCalls: 3 })]);
    const refused = await waitFor(
      'a refusal for ast2',
      async () => (await sidecar.audit({ nodeId: 'ast2', kind: 'DrainRefused' })).at(-1),
      20_000,
    );
    expect(refused.details.guardrail).toBe('min_active');
    expect(await sidecar.audit({ kind: 'DrainStarting' })).toEqual([]);
    expect(await disabledNodes()).toEqual([]);
  });
});

describe('a burst of false high risk on every node at once', () => {
  it('drains at most one node and never goes below the minimum active nodes', async () => {
    await allHealthy();
    await waitFor(
      'crafted healthy scores applied',
      async () => (await sidecar.nodes()).every((n) => n.observed),
      20_000,
    );
    // Five bursts, every node at risk 0.99 with calls up (so a drained node waits in `draining`).
    for (let burst = 0; burst < 5; burst++) {
      const ts = nextTs();
      await publishScores(
        bus,
        NODE_IDS.map((id) => craftedScore(id, ts, 0.99, { activeCalls: 5 })),
      );
      await sleep(400);
    }
    const started = await waitFor(
      'the one permitted drain',
      async () => {
        const s = await sidecar.audit({ kind: 'DrainStarting' });
        return s.length > 0 ? s : undefined;
      },
      20_000,
    );
    // Let every burst reach the engine before counting.
    await waitFor(
      'refusals for the other nodes',
      async () => {
        const refusedNodes = new Set((await sidecar.audit({ kind: 'DrainRefused' })).map((r) => r.nodeId));
        const others = NODE_IDS.filter((id) => id !== started[0]?.nodeId);
        return others.every((id) => refusedNodes.has(id));
      },
      20_000,
    );
    await sleep(2000);
    const drains = await sidecar.audit({ kind: 'DrainStarting' });
    expect(drains).toHaveLength(1);
    const drained = drains[0]!.nodeId;
    const refusals = (await sidecar.audit({ kind: 'DrainRefused' })).filter((r) => r.nodeId !== drained);
    for (const r of refusals) {
      expect(['max_out_of_service', 'max_out_of_service_percent', 'min_active']).toContain(r.details.guardrail);
    }
    const dest = await destinations();
    const active = [...dest.values()].filter((d) => d.state === 'active');
    expect(active.length).toBeGreaterThanOrEqual(2);
    expect(await disabledNodes()).toEqual([drained]);

    // The alarm ends (otherwise the next node in line would rightly be drained once a slot frees), then an operator
    // puts the drained node back for the next scenario.
    await allHealthy();
    await waitFor('risk back to low', async () => (await sidecar.nodes()).every((n) => (n.risk ?? 1) < 0.5), 20_000);
    const res = await sidecar.post(`/api/nodes/${drained}/undrain`, { reason: 'chaos: false alarm burst over' });
    expect(res.status).toBeLessThan(300);
    await waitFor('undrained in Kamailio', async () => (await disabledNodes()).length === 0, 10_000);
    await sleep(1500);
    expect(await sidecar.audit({ kind: 'DrainStarting' })).toHaveLength(1);
  });
});

describe('kill -9 Foresight mid-drain', () => {
  it('resumes on the same store, drains nothing twice, and completes the audit trail', async () => {
    await allHealthy();
    await sleep(500);
    const before = new Set((await sidecar.audit({ kind: 'DrainStarting' })).map((r) => r.decisionId));
    // ast2 at risk with calls still up: an automatic drain that then waits for the calls to end.
    await publishScores(bus, [craftedScore('ast2', nextTs(), 0.97, { activeCalls: 3 })]);
    // Kill as soon as the write-ahead record is visible: the drain is somewhere between decided and confirmed.
    const starting = await waitFor(
      'DrainStarting for ast2',
      async () =>
        (await sidecar.audit({ nodeId: 'ast2', kind: 'DrainStarting' })).find((r) => !before.has(r.decisionId)),
      20_000,
      20,
    );
    await sidecar.kill9();
    const decisionId = starting.decisionId;
    expect(decisionId).toBeTruthy();

    sidecar = await startSidecar();
    const resumed = await waitFor(
      'Resumed for ast2',
      async () => (await sidecar.audit({ nodeId: 'ast2', kind: 'Resumed' })).find((r) => r.decisionId === decisionId),
      60_000,
    );
    expect(resumed.details.state).toBe('draining');
    // The drain is in force in Kamailio (applied before the kill, or completed after the resume).
    await waitFor('ast2 disabled in Kamailio', async () => (await disabledNodes()).includes('ast2'), 30_000);

    // Redelivered and fresh high-risk scores must not start a second drain of the node.
    await publishScores(bus, [craftedScore('ast2', nextTs(), 0.97, { activeCalls: 3 })]);
    await sleep(1500);
    // Calls end, the node restarts (restart command), comes back up and settles: the lifecycle completes.
    await publishScores(bus, [craftedScore('ast2', nextTs(), 0.97, { activeCalls: 0 })]);
    await waitFor(
      'RestartStarting',
      async () =>
        (await sidecar.audit({ nodeId: 'ast2', kind: 'RestartStarting' })).some((r) => r.decisionId === decisionId),
      30_000,
    );
    const returned = await waitFor(
      'NodeReturned',
      async () => {
        await publishScores(bus, [craftedScore('ast2', nextTs(), 0.05, { activeCalls: 0, up: true })]);
        return (await sidecar.audit({ nodeId: 'ast2', kind: 'NodeReturned' })).find((r) => r.decisionId === decisionId);
      },
      40_000,
      700,
    );
    expect(returned).toBeTruthy();
    await waitFor('ast2 active in Kamailio', async () => !(await disabledNodes()).includes('ast2'), 10_000);

    const trail = (await sidecar.audit({ nodeId: 'ast2' })).filter((r) => r.decisionId === decisionId);
    const kinds = trail.map((r) => r.kind);
    const count = (k: AuditRecord['kind']) => kinds.filter((x) => x === k).length;
    expect(count('DrainStarting')).toBe(1);
    expect(count('DrainSucceeded')).toBe(1);
    expect(count('Resumed')).toBe(1);
    expect(count('RestartStarting')).toBe(1);
    expect(count('RestartSucceeded')).toBe(1);
    expect(count('RecoveryStarted')).toBe(1);
    expect(count('NodeReturned')).toBe(1);
    // In order: decided, resumed after the crash, restarted, returned.
    const at = (k: AuditRecord['kind']) => kinds.indexOf(k);
    expect(at('DrainStarting')).toBeLessThan(at('Resumed'));
    expect(at('Resumed')).toBeLessThan(at('RestartStarting'));
    expect(at('RestartStarting')).toBeLessThan(at('RestartSucceeded'));
    expect(at('RecoveryStarted')).toBeLessThan(at('NodeReturned'));
    // Every decision ever started in this store started exactly once.
    const all = await sidecar.audit({ kind: 'DrainStarting' });
    const perDecision = new Map<string, number>();
    for (const r of all) perDecision.set(r.decisionId ?? '', (perDecision.get(r.decisionId ?? '') ?? 0) + 1);
    for (const [, n] of perDecision) expect(n).toBe(1);
  });
});

describe('kill -9 Foresight while the dispatcher has not confirmed a drain', () => {
  it('completes the write-ahead drain after the restart, once', async () => {
    // Kamailio's RPC behind a proxy that can hang: the drain is decided and recorded, but never reaches Kamailio.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5080 });
    const viaProxy = structuredClone(config) as { actions: { dispatcher: { rpcUrl: string } } };
    viaProxy.actions.dispatcher.rpcUrl = `http://127.0.0.1:${proxy.port}/RPC`;
    try {
      await sidecar.stop();
      generation++;
      sidecar = await SidecarProcess.start(viaProxy, `chaos-actions-${generation}`);
      await allHealthy();
      await sleep(800);
      const before = new Set((await sidecar.audit({ kind: 'DrainStarting' })).map((r) => r.decisionId));
      proxy.setMode('blackhole');
      await publishScores(bus, [craftedScore('ast1', nextTs(), 0.97, { activeCalls: 3 })]);
      const starting = await waitFor(
        'DrainStarting for ast1',
        async () =>
          (await sidecar.audit({ nodeId: 'ast1', kind: 'DrainStarting' })).find((r) => !before.has(r.decisionId)),
        20_000,
      );
      await sleep(500);
      await sidecar.kill9();
      expect(await disabledNodes()).not.toContain('ast1');

      proxy.setMode('pass');
      generation++;
      sidecar = await SidecarProcess.start(viaProxy, `chaos-actions-${generation}`);
      const resumed = await waitFor(
        'Resumed for ast1',
        async () =>
          (await sidecar.audit({ nodeId: 'ast1', kind: 'Resumed' })).find((r) => r.decisionId === starting.decisionId),
        60_000,
      );
      expect(resumed.details.drainUnconfirmed).toBe(true);
      await waitFor('ast1 disabled in Kamailio', async () => (await disabledNodes()).includes('ast1'), 30_000);
      const trail = (await sidecar.audit({ nodeId: 'ast1' })).filter((r) => r.decisionId === starting.decisionId);
      expect(trail.filter((r) => r.kind === 'DrainStarting')).toHaveLength(1);
      await waitFor(
        'DrainSucceeded after the resume',
        async () =>
          (await sidecar.audit({ nodeId: 'ast1', kind: 'DrainSucceeded' })).some(
            (r) => r.decisionId === starting.decisionId,
          ),
        20_000,
      );
      const undrain = await sidecar.post('/api/nodes/ast1/undrain', { reason: 'chaos: done' });
      expect(undrain.status).toBeLessThan(300);
      await waitFor('ast1 back', async () => (await disabledNodes()).length === 0, 10_000);
    } finally {
      // Back to the direct RPC URL for the scenarios that follow.
      await sidecar.stop();
      generation++;
      sidecar = await SidecarProcess.start(config, `chaos-actions-${generation}`);
      await proxy.close();
    }
  });
});

describe('Kamailio restart while a node is drained', () => {
  it('re-applies the drained state within seconds (StateReapplied, dispatcher shows D)', async () => {
    await allHealthy();
    await sleep(800);
    const res = await sidecar.post('/api/nodes/ast2/drain', {
      reason: 'chaos: hold ast2 out across a Kamailio restart',
    });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    await waitFor('ast2 disabled', async () => (await disabledNodes()).includes('ast2'), 10_000);

    await kamailioService('restart');
    const restartedAt = Date.now();
    // A fresh Kamailio loads every destination from the list file: ast2 is back in rotation until Foresight acts.
    const reapplied = await waitFor(
      'StateReapplied for ast2',
      async () =>
        (await sidecar.audit({ nodeId: 'ast2', kind: 'StateReapplied' })).find((r) => r.ts >= restartedAt - 5000),
      30_000,
    );
    await waitFor('ast2 disabled again', async () => (await disabledNodes()).includes('ast2'), 5_000);
    const reappliedAfterMs = reapplied.ts - restartedAt;
    console.log(`chaos: drain re-applied ${reappliedAfterMs} ms after Kamailio restarted`);
    // Reconcile runs every 10 s; a margin for the first list after the restart.
    expect(reappliedAfterMs).toBeLessThan(20_000);
    expect((await sidecar.node('ast2')).manualOverride).toBeNull();

    const undrain = await sidecar.post('/api/nodes/ast2/undrain', { reason: 'chaos: done' });
    expect(undrain.status).toBeLessThan(300);
    await waitFor('ast2 back', async () => (await disabledNodes()).length === 0, 10_000);
    expect(sidecar.alive).toBe(true);
  });
});
