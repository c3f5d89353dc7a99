import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatagramJsonRpc } from '../../src/actions/dispatcher/jsonrpc.js';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { ForesightError } from '../../src/errors.js';
import { describeDispatcherConformance } from '../helpers/dispatcher-conformance.js';
import { BACKEND_PORTS, backendUri, type KamailioLab, SET_ID, startKamailioLab } from './kamailio-env.js';

// Real Kamailio 5.6 (scripts/services/kamailio.sh) with three sipp backends answering OPTIONS.
let lab: KamailioLab;
beforeAll(async () => {
  lab = await startKamailioLab();
});
afterAll(async () => {
  await lab?.stop();
});

describeDispatcherConformance('Kamailio over HTTP JSON-RPC', async () => ({
  dispatcher: lab.dispatcher,
  setId: SET_ID,
  uri: backendUri(5072),
}));

describeDispatcherConformance('Kamailio over UDP datagram JSON-RPC', async () => {
  const dispatcher = new KamailioDispatcher({ transport: new DatagramJsonRpc({ host: '127.0.0.1', port: 5081 }) });
  return { dispatcher, setId: SET_ID, uri: backendUri(5073), teardown: () => dispatcher.close() };
});

describe('KamailioDispatcher against Kamailio', () => {
  it('reports probing and OPTIONS latency for the keepalive-monitored backends', async () => {
    // On a fresh Kamailio the first pings may go out before the sipp backends listen (state T); a keepalive round
    // (ds_ping_interval 5 s) later they answer, are active again and have latency figures.
    const measured = async () => {
      const all = await lab.dispatcher.list();
      return BACKEND_PORTS.every((port) => {
        const d = all.find((x) => x.uri === backendUri(port));
        return d?.flags === 'AP' && d.latency != null;
      });
    };
    for (let waited = 0; !(await measured()) && waited < 20_000; waited += 500) {
      await new Promise((r) => setTimeout(r, 500));
    }
    const list = await lab.dispatcher.list();
    for (const port of BACKEND_PORTS) {
      const d = list.find((x) => x.uri === backendUri(port));
      expect(d?.flags).toBe('AP');
      expect(d?.probing).toBe(true);
      expect(d?.duid).toBe(`ast${port - 5070}`);
      expect(d?.latency).not.toBeNull();
      expect(d?.latencyAvgMs).toBeGreaterThanOrEqual(0);
    }
  });

  it('drains with `d`, which keepalive probing does not undo, whereas `i` is undone; activate restores `AP`', async () => {
    const drained = backendUri(5071);
    const inactive = backendUri(5073);
    const flagsOf = async (uri: string) => (await lab.dispatcher.list()).find((d) => d.uri === uri)?.flags;
    await lab.dispatcher.drain(SET_ID, drained);
    await lab.dispatcher.setState(SET_ID, inactive, 'i');
    expect(await flagsOf(drained)).toBe('DX');
    expect(await flagsOf(inactive)).toBe('IX');
    // ds_ping_interval 5 s, ds_inactive_threshold 2: two ping rounds later the `i` node answered OPTIONS twice and is
    // back in rotation by itself, while the disabled node was never pinged and stays out.
    await new Promise((r) => setTimeout(r, 11_000));
    expect(await flagsOf(inactive)).toBe('AP');
    expect(await flagsOf(drained)).toBe('DX');
    await lab.dispatcher.activate(SET_ID, drained);
    expect(await flagsOf(drained)).toBe('AP');
  });

  it('treats an `i` state set by hand as not drained, and a `d` set by hand as already drained', async () => {
    const uri = backendUri(5073);
    await lab.dispatcher.setState(SET_ID, uri, 'i');
    expect((await lab.dispatcher.list()).find((d) => d.uri === uri)?.state).toBe('inactive');
    await lab.dispatcher.drain(SET_ID, uri);
    expect((await lab.dispatcher.list()).find((d) => d.uri === uri)?.flags).toBe('DX');
    await lab.dispatcher.activate(SET_ID, uri);
  });

  it('reads statistics and uptime', async () => {
    const stats = await lab.dispatcher.stats(['tmx:']);
    expect(stats['tmx.UAC_transactions']).toBeGreaterThan(0);
    const up = await lab.dispatcher.uptime();
    expect(up.uptimeSec).toBeGreaterThanOrEqual(0);
    expect(up.upSince.length).toBeGreaterThan(0);
  });

  it('fails fast with a typed error when Kamailio is not listening, after bounded retries', async () => {
    const sleeps: number[] = [];
    const dead = new KamailioDispatcher({
      url: 'http://127.0.0.1:1/RPC',
      retries: 2,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    const err = await dead.list().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_DISPATCHER');
    expect((err as ForesightError).details.attempts).toBe(3);
    expect(sleeps).toHaveLength(2);
  });

  it('reports a silent datagram endpoint as a timeout', async () => {
    const mute = new KamailioDispatcher({
      transport: new DatagramJsonRpc({ host: '127.0.0.1', port: 5999 }),
      timeoutMs: 200,
      retries: 1,
      sleep: async () => undefined,
    });
    const err = await mute.list().then(
      () => null,
      (e: unknown) => e,
    );
    await mute.close();
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_TIMEOUT');
  });
});
