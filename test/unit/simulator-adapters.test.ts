import { describe, expect, it } from 'vitest';
import type { Dispatcher, Restarter } from '../../src/actions/ports.js';
import { ConfiguredDestinations, SimulatedDispatcher } from '../../src/sim/dispatcher.js';
import { SimulatedCluster } from '../../src/sim/index.js';
import { SimulatedRestarter } from '../../src/sim/restarter.js';
import { describeDispatcherConformance } from '../helpers/dispatcher-conformance.js';

const BUSY = Date.UTC(2024, 0, 1, 10, 0, 0);
const QUIET = {
  randomIncidents: { perNodeDay: 0 },
  disturbances: { dbBlipsPerDay: 0, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 },
} as const;

function setup(extra: ConstructorParameters<typeof SimulatedCluster>[0] = {}) {
  const cluster = new SimulatedCluster({ seed: 77, startAt: BUSY, ...QUIET, ...extra });
  const dispatcher: Dispatcher = new SimulatedDispatcher(cluster);
  const restarter: Restarter = new SimulatedRestarter(cluster);
  return { cluster, dispatcher, restarter };
}

async function stateOf(d: Dispatcher, uri: string) {
  const dest = (await d.list()).find((x) => x.uri === uri);
  return dest ? `${dest.state}/${dest.flags}` : 'missing';
}

describeDispatcherConformance('simulated', async () => {
  const { cluster, dispatcher } = setup();
  cluster.step(BUSY + 60_000);
  return { dispatcher, setId: 1, uri: 'sip:127.0.0.1:5073' };
});

// `foresight run` with the simulated dispatcher: a stand-in list of the configured nodes, two sets.
describeDispatcherConformance('simulated, over configured destinations', async () => {
  const table = new ConfiguredDestinations([
    { id: 'a1', setId: 1, uri: 'sip:10.0.0.1:5060' },
    { id: 'a2', setId: 1, uri: 'sip:10.0.0.2:5060' },
    { id: 'b1', setId: 2, uri: 'sip:10.0.1.1:5060' },
  ]);
  return { dispatcher: new SimulatedDispatcher(table), setId: 1, uri: 'sip:10.0.0.2:5060' };
});

describe('SimulatedDispatcher', () => {
  it('lists one active, probed destination per node, as Kamailio shows them', async () => {
    const { dispatcher } = setup();
    const list = await dispatcher.list();
    expect(list.map((d) => d.uri)).toEqual([
      'sip:127.0.0.1:5071',
      'sip:127.0.0.1:5072',
      'sip:127.0.0.1:5073',
      'sip:127.0.0.1:5074',
    ]);
    for (const d of list) expect(d).toMatchObject({ setId: 1, state: 'active', probing: true, flags: 'AP' });
  });

  it('drains to disabled and activates back, idempotently, matching the URI case-insensitively', async () => {
    const { cluster, dispatcher } = setup();
    const uri = 'sip:127.0.0.1:5072';
    await dispatcher.drain(1, uri);
    await dispatcher.drain(1, 'SIP:127.0.0.1:5072');
    expect(await stateOf(dispatcher, uri)).toBe('disabled/DX');
    expect(cluster.nodeView('ast2').accepting).toBe(false);

    const samples = cluster.step(BUSY + 10 * 60_000);
    const started = samples.filter((s) => s.nodeId === 'ast2' && s.metric === 'calls.started');
    expect(started.reduce((a, s) => a + s.value, 0)).toBe(0);
    expect(await stateOf(dispatcher, uri)).toBe('disabled/DX'); // never pinged, so never re-activated

    await dispatcher.activate(1, uri);
    await dispatcher.activate(1, uri);
    expect(await stateOf(dispatcher, uri)).toBe('active/AP');
    const later = cluster.step(BUSY + 20 * 60_000);
    const startedLater = later.filter((s) => s.nodeId === 'ast2' && s.metric === 'calls.started');
    expect(startedLater.reduce((a, s) => a + s.value, 0)).toBeGreaterThan(0);
  });

  it('shows a crashed node trying, then inactive after three missed pings, then active once it answers again', async () => {
    const crashAt = BUSY + 5 * 60_000;
    const { cluster, dispatcher } = setup({
      incidents: [{ nodeId: 'ast1', mode: 'sudden_crash', onsetAt: crashAt, recoveryMs: 60_000 }],
    });
    const uri = 'sip:127.0.0.1:5071';
    const seen: string[] = [];
    for (let t = crashAt - 5000; t <= crashAt + 120_000; t += 1000) {
      cluster.step(t);
      const s = await stateOf(dispatcher, uri);
      if (seen[seen.length - 1] !== s) seen.push(s);
    }
    expect(seen).toEqual(['active/AP', 'trying/TP', 'inactive/IP', 'active/AP']);
  });

  it('rejects unknown destinations and malformed arguments with typed errors', async () => {
    const { dispatcher } = setup();
    await expect(dispatcher.drain(1, 'sip:127.0.0.1:5999')).rejects.toMatchObject({ code: 'FORESIGHT_ERR_NOT_FOUND' });
    await expect(dispatcher.drain(2, 'sip:127.0.0.1:5071')).rejects.toMatchObject({ code: 'FORESIGHT_ERR_NOT_FOUND' });
    await expect(dispatcher.activate(-1, 'sip:127.0.0.1:5071')).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_BAD_REQUEST',
    });
    await expect(dispatcher.drain(1, '127.0.0.1:5071')).rejects.toMatchObject({ code: 'FORESIGHT_ERR_BAD_REQUEST' });
  });
});

describe('SimulatedRestarter', () => {
  it('restarts the node on the virtual clock and rejects unknown nodes', async () => {
    const { cluster, restarter } = setup();
    cluster.step(BUSY + 60_000);
    await restarter.restart('ast3');
    expect(cluster.isUp('ast3')).toBe(false);
    cluster.step(cluster.now() + cluster.options.restartMs);
    expect(cluster.isUp('ast3')).toBe(true);
    expect(cluster.stats().restarts).toBe(1);
    await expect(restarter.restart('ast99')).rejects.toMatchObject({ code: 'FORESIGHT_ERR_NOT_FOUND' });
  });

  it('drain, wait for zero calls, restart: the full Foresight sequence drops no call and prevents the crash', async () => {
    const onsetAt = BUSY + 10 * 60_000;
    const { cluster, dispatcher, restarter } = setup({
      incidents: [{ nodeId: 'ast2', mode: 'memory_leak', onsetAt, crashAt: onsetAt + 120 * 60_000 }],
    });
    cluster.step(onsetAt + 20 * 60_000);
    await dispatcher.drain(1, 'sip:127.0.0.1:5072');
    const deadline = cluster.now() + 90 * 60_000;
    while (cluster.activeCalls('ast2') > 0 && cluster.now() < deadline) cluster.step(cluster.now() + 10_000);
    expect(cluster.activeCalls('ast2')).toBe(0);
    await restarter.restart('ast2');
    cluster.step(cluster.now() + 60_000);
    await dispatcher.activate(1, 'sip:127.0.0.1:5072');
    cluster.step(onsetAt + 180 * 60_000);
    const stats = cluster.stats();
    expect(stats.incidents.map((i) => i.outcome)).toEqual(['prevented']);
    expect(stats.callsDropped).toBe(0);
    expect(stats.crashes).toBe(0);
  });
});
