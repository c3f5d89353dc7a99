import { describe, expect, it } from 'vitest';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { DryRunDispatcher } from '../../src/actions/dry-run.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { assemble } from '../../src/pipeline/assemble.js';
import { sidecarParts } from '../../src/pipeline/sidecar.js';
import { SimulatedDispatcher } from '../../src/sim/dispatcher.js';

/** `foresight run` on the in-process bus and an in-memory store: nothing outside the process is touched. */
function runConfig(dispatcher: Record<string, unknown>, dryRun = false) {
  return parseConfig({
    mode: 'sidecar',
    nodes: ['ast1', 'ast2', 'ast3'].map((id, i) => ({ id, setId: 1, uri: `sip:10.0.0.${11 + i}:5060` })),
    actions: {
      dryRun,
      dispatcher,
      restarter: { kind: 'command', command: '/bin/true' },
      guardrails: { minActive: 1 },
    },
    store: { path: ':memory:' },
    api: { openLocalMode: true },
  });
}

describe('foresight run chooses the dispatcher the config names', () => {
  it('builds the simulated dispatcher for kind simulated, over the configured nodes, and drains through it', async () => {
    const parts = await sidecarParts(runConfig({ kind: 'simulated' }), silentLogger());
    expect(parts.dispatcher).toBeInstanceOf(SimulatedDispatcher);
    expect((await parts.dispatcher.list()).map((d) => `${d.uri} ${d.state}`)).toEqual([
      'sip:10.0.0.11:5060 active',
      'sip:10.0.0.12:5060 active',
      'sip:10.0.0.13:5060 active',
    ]);

    const loop = await assemble(parts);
    await loop.start();
    try {
      const ready = await loop.app!.inject({ url: '/readyz' });
      expect(ready.json().checks).toContainEqual({ name: 'dispatcher', ok: true, detail: 'simulated: 3 destinations' });
      const drain = await loop.app!.inject({
        method: 'POST',
        url: '/api/nodes/ast2/drain',
        payload: { reason: 'maintenance', force: true },
      });
      expect(drain.statusCode).toBe(200);
      const ast2 = (await parts.dispatcher.list()).find((d) => d.uri === 'sip:10.0.0.12:5060');
      expect(ast2?.state).toBe('disabled');
    } finally {
      await loop.close();
    }
  });

  it('builds the Kamailio dispatcher for kind kamailio (without calling it), wrapped for dry-run', async () => {
    const kamailio = await sidecarParts(runConfig({ kind: 'kamailio' }), silentLogger());
    expect(kamailio.dispatcher).toBeInstanceOf(KamailioDispatcher);
    await kamailio.bus.close();
    await kamailio.store.close();

    const dry = await sidecarParts(runConfig({ kind: 'kamailio' }, true), silentLogger());
    expect(dry.dispatcher).toBeInstanceOf(DryRunDispatcher);
    expect(dry.restarter.name).toMatch(/dry-run/);
    await dry.bus.close();
    await dry.store.close();
  });
});
