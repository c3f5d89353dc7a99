/**
 * A person's change wins, on the real Kamailio and with the real kamcmd (its ctl socket, as an operator would use
 * it): a drained node enabled by hand, or an active node disabled by hand, is a manual override that Foresight shows
 * and never reverts, until it is cleared through the engine; a `dispatcher.reload` (the reset marker disappears) has
 * Foresight's drain re-applied instead.
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { backendUri, type KamailioLab, labEngine, SET_ID, startKamailioLab } from './kamailio-env.js';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const CTL = `unix:${join(process.env.FORESIGHT_KAMAILIO_HOME ?? join(REPO, 'var/kamailio'), 'run/kamailio_ctl')}`;
const op = { actor: 'alice', reason: 'override test' };

async function kamcmd(...args: string[]): Promise<string> {
  const { stdout } = await run('kamcmd', ['-s', CTL, ...args], { timeout: 15_000 });
  return stdout;
}

let lab: KamailioLab;
const dispatcher = new KamailioDispatcher({ url: 'http://127.0.0.1:5080/RPC', timeoutMs: 2000 });
const { engine, store, audits, reconcile, kinds } = labEngine(dispatcher, { minActivePerSet: 0 });
const stateOf = async (uri: string) => (await dispatcher.list()).find((d) => d.uri === uri)?.state;
const record = (nodeId: string) => engine.nodeRecords().find((r) => r.nodeId === nodeId)!;

beforeAll(async () => {
  lab = await startKamailioLab();
  await engine.init();
}, 60_000);

afterAll(async () => {
  await engine.idle();
  await lab?.activateAll().catch(() => undefined);
  await store.close();
  await dispatcher.close();
  await lab?.stop();
});

describe('manual changes with kamcmd against Foresight on the real Kamailio', () => {
  it('takes a drained node enabled by hand as an override, never reverts it, and resumes once it is cleared', async () => {
    await engine.drain('ast1', op);
    expect(await stateOf(backendUri(5071))).toBe('disabled');
    await kamcmd('dispatcher.set_state', 'ap', String(SET_ID), backendUri(5071));
    for (let i = 0; i < 3; i++) await reconcile();
    expect(kinds('ast1')).toContain('ManualOverrideDetected');
    expect(record('ast1').manualOverride).toMatch(/enabled by hand/);
    expect(await stateOf(backendUri(5071))).toBe('active');
    await engine.clearOverride('ast1', { ...op, reason: 'that was me' });
    await reconcile();
    expect(record('ast1')).toMatchObject({ manualOverride: null, state: 'active' });
    expect(kinds('ast1')).toContain('OverrideCleared');
  });

  it('takes an active node disabled by hand as an override; clearing it adopts the node as a held drain', async () => {
    await kamcmd('dispatcher.set_state', 'd', String(SET_ID), backendUri(5073));
    for (let i = 0; i < 3; i++) await reconcile();
    expect(record('ast3').manualOverride).toMatch(/disabled by hand/);
    expect(await stateOf(backendUri(5073))).toBe('disabled');
    await engine.clearOverride('ast3', { ...op, reason: 'keep it out until I say' });
    await reconcile();
    // Never silently re-enabled: Foresight holds it out as an operator's drain until an undrain.
    expect(record('ast3')).toMatchObject({ manualOverride: null, state: 'draining' });
    expect(await stateOf(backendUri(5073))).toBe('disabled');
    await engine.undrain('ast3', op);
    expect(await stateOf(backendUri(5073))).toBe('active');
  });

  it('re-applies its drain after a dispatcher.reload (the reset marker is gone), recording no override', async () => {
    await engine.drain('ast2', op);
    await reconcile(); // arms the marker after the drain
    const overridesBefore = kinds('ast2').filter((k) => k === 'ManualOverrideDetected').length;
    // Kamailio refuses a reload within 5 s of the last list change; the adapter's reload() waits for the slot.
    await dispatcher.reload();
    expect(await stateOf(backendUri(5072))).toBe('active');
    await reconcile();
    expect(await stateOf(backendUri(5072))).toBe('disabled');
    expect(kinds('ast2').at(-1)).toBe('StateReapplied');
    expect(audits.find((a) => a.nodeId === 'ast2' && a.kind === 'StateReapplied')?.details.by).toBe('reset_marker');
    expect(kinds('ast2').filter((k) => k === 'ManualOverrideDetected').length).toBe(overridesBefore);
    await engine.undrain('ast2', op);
  }, 30_000);
});
