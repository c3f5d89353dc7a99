import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { ProxyFleetDispatcher } from '../../src/actions/dispatcher/proxy-fleet.js';
import type { DestinationState } from '../../src/actions/ports.js';
import { BACKEND_PORTS, backendUri, kamailioService, labEngine, SET_ID } from './kamailio-env.js';

/**
 * Two real Kamailio proxies in front of the same destinations: the shared test instance (SIP 5060, RPC 5080, used by
 * other tests: never stopped here) and a second one this file starts and stops through the same script with its own
 * home and ports (SIP 5160, RPC 5180/5181, HEP to 5190 where nobody listens, so the HEP tests see nothing of it).
 */

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const SCRIPT = join(REPO, 'scripts/services/kamailio.sh');
const SECOND_ENV = {
  FORESIGHT_KAMAILIO_HOME: join(REPO, 'var/kamailio-proxy2'),
  FORESIGHT_KAMAILIO_SIP_PORT: '5160',
  FORESIGHT_KAMAILIO_RPC_PORT: '5180',
  FORESIGHT_KAMAILIO_RPC_UDP_PORT: '5181',
  FORESIGHT_KAMAILIO_HEP_PORT: '5190',
};

async function second(action: 'start' | 'stop'): Promise<void> {
  // Only the script's own environment gets these: FORESIGHT_* in this process would be read as Foresight config.
  await run('bash', [SCRIPT, action], { env: { ...process.env, ...SECOND_ENV }, timeout: 60_000 });
}

const p1 = new KamailioDispatcher({ url: 'http://127.0.0.1:5080/RPC', name: 'proxy1', timeoutMs: 1000, retries: 1 });
const p2 = new KamailioDispatcher({ url: 'http://127.0.0.1:5180/RPC', name: 'proxy2', timeoutMs: 1000, retries: 1 });
const fleet = new ProxyFleetDispatcher({
  proxies: [
    { name: 'proxy1', dispatcher: p1 },
    { name: 'proxy2', dispatcher: p2 },
  ],
  proxyTimeoutMs: 1500,
});
const [AST2, AST3] = [backendUri(5072), backendUri(5073)];
// No scores are fed, so no node counts as healthy capacity: the operator forces past the capacity guardrails.
const op = { actor: 'fleet-test', reason: 'integration', restart: false, force: true };

const stateOn = async (d: KamailioDispatcher, uri: string): Promise<DestinationState | undefined> =>
  (await d.list()).find((x) => x.setId === SET_ID && x.uri === uri)?.state;

async function activateEverywhere(): Promise<void> {
  for (const d of [p1, p2]) {
    for (const port of BACKEND_PORTS) await d.activate(SET_ID, backendUri(port)).catch(() => undefined);
  }
}

let firstStartedHere = false;
beforeAll(async () => {
  // The shared instance may be run from another checkout; start it only when nobody answers on 5080.
  const up = await p1.uptime().then(
    () => true,
    () => false,
  );
  if (!up) {
    await kamailioService('start');
    firstStartedHere = true;
  }
  await second('stop');
  await second('start');
  await activateEverywhere();
});

afterAll(async () => {
  await activateEverywhere();
  await second('stop');
  await Promise.all([p1.close(), p2.close()]);
  if (firstStartedHere) await kamailioService('stop');
});

describe('ProxyFleetDispatcher over two real Kamailio proxies, driven by the action engine', () => {
  const { engine, store, audits, reconcile, kinds } = labEngine(fleet);

  afterAll(async () => {
    await store.close();
  });

  it('drains through the fleet: both proxies show the destination disabled', async () => {
    await engine.init();
    const t0 = performance.now();
    const result = await engine.drain('ast2', op);
    const ms = performance.now() - t0;
    expect(result.applied).toBe(true);
    expect(await stateOn(p1, AST2)).toBe('disabled');
    expect(await stateOn(p2, AST2)).toBe('disabled');
    console.log(`fleet drain of 2 proxies through the engine: ${ms.toFixed(1)} ms`);
  });

  it('with the second proxy stopped, drains on the first and reports the second unreachable', async () => {
    await second('stop');
    const t0 = performance.now();
    const result = await engine.drain('ast3', op);
    const ms = performance.now() - t0;
    expect(result.applied).toBe(true);
    expect(await stateOn(p1, AST3)).toBe('disabled');
    const view = (await fleet.list()).find((d) => d.uri === AST3);
    expect(view?.state).toBe('disabled');
    expect(view?.proxies).toEqual([
      { proxy: 'proxy1', state: 'disabled', flags: 'DX' },
      { proxy: 'proxy2', state: 'unreachable', flags: null },
    ]);
    await reconcile();
    expect(engine.explain('ast3').dispatcher?.proxies?.[1]?.state).toBe('unreachable');
    expect(engine.nodeRecords().find((r) => r.nodeId === 'ast3')?.manualOverride).toBeNull();
    console.log(`fleet drain with one proxy down (connection refused): ${ms.toFixed(1)} ms`);
  });

  it('re-applies both drains on the second proxy after it restarts with its list file (node active there)', async () => {
    await second('start');
    expect(await stateOn(p2, AST2)).not.toBe('disabled');
    expect(await stateOn(p2, AST3)).not.toBe('disabled');
    const t0 = performance.now();
    await reconcile();
    const ms = performance.now() - t0;
    expect(await stateOn(p2, AST2)).toBe('disabled');
    expect(await stateOn(p2, AST3)).toBe('disabled');
    expect(await stateOn(p1, AST2)).toBe('disabled');
    expect(kinds('ast2').at(-1)).toBe('StateReapplied');
    expect(kinds('ast3').at(-1)).toBe('StateReapplied');
    expect(audits.some((a) => a.kind === 'ManualOverrideDetected')).toBe(false);
    // The engine keeps the per-proxy view of its last list until the next reconcile refreshes it.
    await reconcile();
    expect(engine.explain('ast2').dispatcher?.proxies?.map((p) => p.state)).toEqual(['disabled', 'disabled']);
    console.log(`reconcile that re-armed and re-applied 2 drains on the returning proxy: ${ms.toFixed(1)} ms`);
  });

  it('takes a set_state by hand on one proxy as a manual override and does not revert it', async () => {
    await p1.setState(SET_ID, AST2, 'ap');
    await reconcile();
    await reconcile();
    expect(kinds('ast2')).toContain('ManualOverrideDetected');
    expect(engine.nodeRecords().find((r) => r.nodeId === 'ast2')?.manualOverride).toMatch(/enabled by hand/);
    expect(await stateOn(p1, AST2)).not.toBe('disabled');
    expect(await stateOn(p2, AST2)).toBe('disabled');
    // ast3 was not touched by hand: still drained everywhere.
    expect(await stateOn(p1, AST3)).toBe('disabled');
    expect(await stateOn(p2, AST3)).toBe('disabled');
  });
});
