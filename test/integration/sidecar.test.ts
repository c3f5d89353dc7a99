/**
 * `foresight run` end to end against the real stack: three nodes ast1..ast3 mapped to the test Kamailio's dispatcher
 * URIs (three sipp backends), AMI from replay servers of recorded Asterisk traffic, the realtime-database probe on the
 * local PostgreSQL, host metrics from node_exporter, SIP from Kamailio's siptrace (HEP on 9060) and its RPC
 * counters, Kafka as the bus, PostgreSQL as the store, the API in open local mode on a free loopback port.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, NODE_IDS, SidecarProcess, sidecarConfig, sleep, uriOf, waitFor } from '../chaos/env.js';
import { startUac } from '../helpers/sipp.js';
import { type RealStack, startRealStack } from './real-stack.js';

let stack: RealStack;
let sidecar: SidecarProcess;

beforeAll(async () => {
  stack = await startRealStack('sidecar');
  const config = sidecarConfig({
    name: 'sidecar-e2e',
    storeUrl: stack.db.url,
    apiPort: await freePort(),
    inputs: stack.inputs,
    hep: true,
    kamailioStats: true,
  });
  sidecar = await SidecarProcess.start(config, 'sidecar-e2e');
});

afterAll(async () => {
  await sidecar?.stop();
  await stack?.close();
});

/** Which sources a node's windows showed so far, read from the features the API serves. */
type Seen = Record<'ami' | 'sip' | 'db' | 'host', boolean>;

describe('foresight run as a sidecar', () => {
  it('observes every node with telemetry from AMI, SIP, the database and the host', async () => {
    // On a fresh Kamailio the first keepalives may have gone out before the backends listened (state T); round robin
    // then skips those backends until a ping round (5 s) answers. Calls start once every backend is in rotation.
    for (let waited = 0; waited < 20_000; waited += 500) {
      const list = await stack.lab.dispatcher.list();
      if (list.filter((d) => d.setId === 1).every((d) => d.flags === 'AP')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    // Calls through Kamailio: round-robin puts INVITEs on every backend, siptrace mirrors them as HEP.
    const uac = startUac({ dir: stack.lab.dir, port: 5095, calls: 30, rate: 10, durationMs: 1500, timeoutS: 30 });
    const seen = new Map<string, Seen>(NODE_IDS.map((id) => [id, { ami: false, sip: false, db: false, host: false }]));
    try {
      await waitFor(
        'telemetry of every kind on every node',
        async () => {
          for (const n of await sidecar.nodes()) {
            const s = seen.get(n.nodeId);
            const f = n.features;
            if (!s || !f) continue;
            if (f['node.up.last'] === 1) s.ami = true;
            if ((f['sip.invite_setup_ms.count'] ?? 0) > 0 || (f['sip.options_rtt_ms.count'] ?? 0) > 0) s.sip = true;
            if ((f['db.query_ms.count'] ?? 0) > 0) s.db = true;
            if ((f['host.memory_rss_mb.last'] ?? 0) > 0) s.host = true;
          }
          return [...seen.values()].every((s) => s.ami && s.sip && s.db && s.host);
        },
        45_000,
        150,
      ).catch(async (err: unknown) => {
        // What to look at when a source stays silent: the sources that failed to start (a HEP port held by another
        // process fails only that source), readiness, the caller's stats and Kamailio's view of the backends.
        const startFailures = sidecar
          .logTail(200_000)
          .split('\n')
          .filter((l) => l.includes('failed to start'));
        const ready = await sidecar.readyz().catch((e: unknown) => String(e));
        const list = await stack.lab.dispatcher.list().catch((e: unknown) => String(e));
        throw new Error(
          `${String(err)}; seen ${JSON.stringify(Object.fromEntries(seen))}; source start failures ${JSON.stringify(startFailures)}; readyz ${JSON.stringify(ready)}; caller ${JSON.stringify(uac.stats())}; dispatcher ${JSON.stringify(list)}`,
        );
      });
    } finally {
      await uac.exited.catch(() => undefined);
    }
    expect(uac.stats()['SuccessfulCall(C)']).toBe(30);
    const nodes = await sidecar.nodes();
    expect(nodes.map((n) => n.nodeId).sort()).toEqual([...NODE_IDS]);
    for (const n of nodes) {
      expect(n.observed, n.nodeId).toBe(true);
      expect(n.up, n.nodeId).toBe(true);
      expect(n.state).toBe('active');
    }
    // Every replay server saw a login and the periodic actions.
    for (const [id, server] of stack.ami) {
      expect(server.actions('Login').length, id).toBeGreaterThanOrEqual(1);
      expect(server.actions('CoreShowChannels').length, id).toBeGreaterThanOrEqual(1);
    }
    // Right after a burst of calls the bus may still be catching up ("telemetry lag"): readiness must come back, and
    // report the lag while it lasts rather than hide it.
    let last: Awaited<ReturnType<typeof sidecar.readyz>> | undefined;
    await waitFor(
      'ready',
      async () => {
        last = await sidecar.readyz();
        return last.status === 200;
      },
      20_000,
    ).catch(() => undefined);
    expect(last?.status, JSON.stringify(last?.body)).toBe(200);
  });

  it('drains ast2 through the API: Kamailio shows it disabled; undrain puts it back', async () => {
    const drain = await sidecar.post('/api/nodes/ast2/drain', { reason: 'e2e: drain ast2 by hand' });
    expect(drain.status, JSON.stringify(drain.body)).toBe(200);
    const state = async () => (await stack.lab.dispatcher.list()).find((d) => d.uri === uriOf('ast2'));
    const drained = await waitFor('ast2 disabled', async () => (await state())?.state === 'disabled' && state(), 5000);
    expect(drained?.flags).toMatch(/^D/);
    // The API's node view follows the engine on its 1 s tick.
    await waitFor('ast2 draining in the API', async () => (await sidecar.node('ast2')).state === 'draining', 5000);

    const undrain = await sidecar.post('/api/nodes/ast2/undrain', { reason: 'e2e: done' });
    expect(undrain.status, JSON.stringify(undrain.body)).toBe(200);
    await waitFor('ast2 active', async () => (await state())?.state === 'active', 5000);
    await sleep(1200);
    expect((await sidecar.node('ast2')).state).toBe('active');
    const kinds = (await sidecar.audit({ nodeId: 'ast2' })).map((r) => r.kind);
    expect(kinds).toContain('DrainSucceeded');
    expect(kinds).toContain('UndrainSucceeded');
  });
});
