import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import {
  createKamailioDispatcher,
  isUnreachable,
  ProxyFleetDispatcher,
} from '../../src/actions/dispatcher/proxy-fleet.js';
import type { DestinationState } from '../../src/actions/ports.js';
import { ForesightError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { harness, makeNodes, T0 } from '../helpers/action-harness.js';
import { describeDispatcherConformance } from '../helpers/dispatcher-conformance.js';
import { MarkerRecordingDispatcher, RecordingDispatcher } from '../helpers/recording-dispatcher.js';

const DESTS = [5071, 5072, 5073].map((port) => ({ setId: 1, uri: `sip:127.0.0.1:${port}` }));
const [A, B] = [DESTS[0]!.uri, DESTS[1]!.uri];
const op = { actor: 'alice', reason: 'test' };

/** A proxy that answers and refuses (Kamailio's `State Update Failed`): reachable, but the change did not happen. */
class RefusingDispatcher extends MarkerRecordingDispatcher {
  override async drain(): Promise<void> {
    throw new ForesightError('FORESIGHT_ERR_DISPATCHER', 'kamailio refused State Update Failed', {
      details: { rpcCode: 500 },
    });
  }
}

function fleetOf(n: number, make: (i: number) => RecordingDispatcher = () => new MarkerRecordingDispatcher(DESTS)) {
  const members = Array.from({ length: n }, (_, i) => make(i));
  const fleet = new ProxyFleetDispatcher({
    proxies: members.map((dispatcher, i) => ({ name: `proxy${i + 1}`, dispatcher })),
    proxyTimeoutMs: 100,
  });
  return { fleet, members };
}

const down = (d: RecordingDispatcher) => d.failNext(Number.POSITIVE_INFINITY);
const up = (d: RecordingDispatcher) => d.clearFailures();
const combined = async (fleet: ProxyFleetDispatcher, uri: string) => (await fleet.list()).find((d) => d.uri === uri);

describeDispatcherConformance('proxy fleet of two recording dispatchers', async () => ({
  dispatcher: fleetOf(2).fleet,
  setId: 1,
  uri: B,
}));

describe('ProxyFleetDispatcher: combined state', () => {
  it('shows a destination disabled only when every reachable proxy has it disabled, with each proxy’s view', async () => {
    const { fleet, members } = fleetOf(2);
    members[0]!.setByHand(A, 'disabled');
    expect(await combined(fleet, A)).toMatchObject({
      state: 'active',
      flags: 'AP',
      proxies: [
        { proxy: 'proxy1', state: 'disabled', flags: 'DX' },
        { proxy: 'proxy2', state: 'active', flags: 'AP' },
      ],
    });
    members[1]!.setByHand(A, 'disabled');
    expect((await combined(fleet, A))?.state).toBe('disabled');
    // The second proxy is down: the first one alone decides, and the view says which one did not answer.
    members[1]!.setByHand(A, 'inactive');
    down(members[1]!);
    expect(await combined(fleet, A)).toMatchObject({
      state: 'disabled',
      proxies: [
        { proxy: 'proxy1', state: 'disabled' },
        { proxy: 'proxy2', state: 'unreachable', flags: null },
      ],
    });
  });

  it('takes the first reachable proxy that is not disabled, and marks a destination one proxy lacks as missing', async () => {
    const { fleet, members } = fleetOf(3, (i) => new RecordingDispatcher(i === 2 ? DESTS.slice(1) : DESTS));
    members[0]!.setByHand(A, 'disabled');
    members[1]!.setByHand(A, 'trying');
    expect(await combined(fleet, A)).toMatchObject({
      state: 'trying',
      proxies: [
        { proxy: 'proxy1', state: 'disabled' },
        { proxy: 'proxy2', state: 'trying' },
        { proxy: 'proxy3', state: 'missing', flags: null },
      ],
    });
  });

  it('throws a retriable dispatcher error when no proxy answers', async () => {
    const { fleet, members } = fleetOf(2);
    members.forEach(down);
    const err = await fleet.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_DISPATCHER');
    expect((err as ForesightError).retriable).toBe(true);
    expect(await fleet.drain(1, A).catch((e: ForesightError) => e.message)).toMatch(/no proxy reachable/);
  });

  it('counts a proxy that hangs past proxyTimeoutMs as unreachable', async () => {
    const { fleet, members } = fleetOf(2);
    const release = members[1]!.hangOn('list');
    const started = Date.now();
    expect((await combined(fleet, A))?.proxies?.[1]?.state).toBe('unreachable');
    expect(Date.now() - started).toBeLessThan(1000);
    release();
  });

  it('classifies transport failures and timeouts as unreachable, refusals and NOT_FOUND as answers', () => {
    expect(isUnreachable(new ForesightError('FORESIGHT_ERR_TIMEOUT', 'x'))).toBe(true);
    expect(isUnreachable(new ForesightError('FORESIGHT_ERR_DISPATCHER', 'ECONNREFUSED'))).toBe(true);
    expect(isUnreachable(new ForesightError('FORESIGHT_ERR_DISPATCHER', 'x', { details: { rpcCode: 500 } }))).toBe(
      false,
    );
    expect(isUnreachable(new ForesightError('FORESIGHT_ERR_NOT_FOUND', 'x'))).toBe(false);
  });
});

describe('ProxyFleetDispatcher: changes', () => {
  it('drains on every proxy; a proxy that is down is skipped and the drain still succeeds', async () => {
    const { fleet, members } = fleetOf(2);
    await fleet.drain(1, A);
    expect(members.map((m) => m.stateOf(A))).toEqual(['disabled', 'disabled']);
    down(members[1]!);
    await fleet.drain(1, B);
    expect(members[0]!.stateOf(B)).toBe('disabled');
    expect(members[1]!.stateOf(B)).toBe('active');
  });

  it('fails a drain that a reachable proxy refused, even when the others took it', async () => {
    const { fleet, members } = fleetOf(2, (i) =>
      i === 1 ? new RefusingDispatcher(DESTS) : new RecordingDispatcher(DESTS),
    );
    const err = await fleet.drain(1, A).catch((e: ForesightError) => e);
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).message).toMatch(/failed on proxy2/);
    expect(members[0]!.stateOf(A)).toBe('disabled');
    expect((await combined(fleet, A))?.state).toBe('active');
  });

  it('reports NOT_FOUND only when no reachable proxy has the destination', async () => {
    const { fleet, members } = fleetOf(2, (i) => new RecordingDispatcher(i === 1 ? DESTS.slice(1) : DESTS));
    await fleet.drain(1, A);
    expect(members[0]!.stateOf(A)).toBe('disabled');
    const err = await fleet.drain(1, 'sip:127.0.0.1:5999').catch((e: ForesightError) => e);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_NOT_FOUND');
  });
});

describe('ProxyFleetDispatcher: reset marker', () => {
  it('reports a reset when one armed proxy lost its marker, and not after re-arming', async () => {
    const { fleet, members } = fleetOf(2);
    await fleet.armResetMarker();
    expect(await fleet.resetSinceArmed()).toBe(false);
    members[1]!.reload();
    expect(await fleet.resetSinceArmed()).toBe(true);
    await fleet.armResetMarker();
    expect(await fleet.resetSinceArmed()).toBe(false);
  });

  it('reports a reset when a proxy unreachable at arming answers again', async () => {
    const { fleet, members } = fleetOf(2);
    down(members[1]!);
    await fleet.armResetMarker();
    expect(await fleet.resetSinceArmed()).toBe(false);
    up(members[1]!);
    expect(await fleet.resetSinceArmed()).toBe(true);
    await fleet.armResetMarker();
    expect(await fleet.resetSinceArmed()).toBe(false);
  });

  it('reports a reset when a proxy that missed a drain answers again (cut off, not restarted)', async () => {
    const { fleet, members } = fleetOf(2);
    await fleet.armResetMarker();
    down(members[1]!);
    await fleet.drain(1, A);
    // Still away: its marker cannot be read, and nothing is known yet.
    expect(await fleet.resetSinceArmed()).toBe(false);
    up(members[1]!);
    expect(await fleet.resetSinceArmed()).toBe(true);
  });

  it('replays an activation a proxy missed when it is re-armed', async () => {
    const { fleet, members } = fleetOf(2);
    await fleet.drain(1, A);
    await fleet.armResetMarker();
    down(members[1]!);
    await fleet.activate(1, A);
    expect(members[1]!.stateOf(A)).toBe('disabled');
    up(members[1]!);
    expect(await fleet.resetSinceArmed()).toBe(true);
    await fleet.armResetMarker();
    expect(members[1]!.stateOf(A)).toBe('active');
    expect(await fleet.resetSinceArmed()).toBe(false);
  });

  it('throws from the marker calls only when no proxy answers', async () => {
    const { fleet, members } = fleetOf(2);
    members.forEach(down);
    await expect(fleet.armResetMarker()).rejects.toThrow(/no proxy reachable/);
    await expect(fleet.resetSinceArmed()).rejects.toThrow(/no proxy reachable/);
  });
});

const STATE = fc.constantFrom<DestinationState>('active', 'inactive', 'disabled', 'trying');

describe('ProxyFleetDispatcher: properties', () => {
  it('reports a destination disabled only if every reachable proxy has it disabled', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ reachable: fc.boolean(), states: fc.array(STATE, { minLength: 3, maxLength: 3 }) }), {
          minLength: 1,
          maxLength: 5,
        }),
        async (proxies) => {
          const { fleet, members } = fleetOf(proxies.length);
          proxies.forEach((p, i) => {
            DESTS.forEach((d, k) => {
              members[i]!.setByHand(d.uri, p.states[k]!);
            });
            if (!p.reachable) down(members[i]!);
          });
          const reachable = proxies.filter((p) => p.reachable);
          const list = await fleet.list().catch(() => null);
          if (reachable.length === 0) {
            expect(list).toBeNull();
            return;
          }
          DESTS.forEach((d, k) => {
            const c = list?.find((x) => x.uri === d.uri);
            const allDisabled = reachable.every((p) => p.states[k] === 'disabled');
            expect(c?.state === 'disabled').toBe(allDisabled);
            expect(c?.proxies?.map((x) => x.state)).toEqual(
              proxies.map((p) => (p.reachable ? p.states[k] : 'unreachable')),
            );
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('never reports a drain as done unless every reachable proxy confirmed it', async () => {
    const BEHAVIOUR = fc.constantFrom('ok', 'down', 'refuses', 'hangs');
    await fc.assert(
      fc.asyncProperty(fc.array(BEHAVIOUR, { minLength: 1, maxLength: 4 }), async (behaviours) => {
        const releases: (() => void)[] = [];
        const { fleet, members } = fleetOf(behaviours.length, (i) =>
          behaviours[i] === 'refuses' ? new RefusingDispatcher(DESTS) : new MarkerRecordingDispatcher(DESTS),
        );
        behaviours.forEach((b, i) => {
          if (b === 'down') down(members[i]!);
          if (b === 'hangs') releases.push(members[i]!.hangOn('drain'));
        });
        const ok = await fleet.drain(1, A).then(
          () => true,
          () => false,
        );
        const confirmed = behaviours.map((b, i) => b !== 'ok' || members[i]!.stateOf(A) === 'disabled');
        const reachable = behaviours.filter((b) => b === 'ok' || b === 'refuses');
        expect(ok).toBe(reachable.length > 0 && reachable.every((b) => b === 'ok'));
        if (ok) expect(confirmed.every(Boolean)).toBe(true);
        for (const release of releases) release();
      }),
      { numRuns: 60 },
    );
  });
});

describe('ProxyFleetDispatcher with the action engine', () => {
  async function fleetHarness() {
    const nodes = makeNodes([4]);
    const members = [new MarkerRecordingDispatcher(nodes), new MarkerRecordingDispatcher(nodes)];
    const fleet = new ProxyFleetDispatcher({
      proxies: members.map((dispatcher, i) => ({ name: `proxy${i + 1}`, dispatcher })),
      proxyTimeoutMs: 100,
    });
    const h = await harness({ nodes, dispatcherWrapper: () => fleet });
    await h.start();
    return { h, members };
  }

  it('re-applies a drain on the proxy that restarted, as a reset, and shows each proxy in explain()', async () => {
    const { h, members } = await fleetHarness();
    await h.engine.drain('ast1', op);
    expect(members.map((m) => m.stateOf(h.uri('ast1')))).toEqual(['disabled', 'disabled']);
    members[1]!.reload();
    await h.engine.tick(T0 + 10_000);
    expect(members[1]!.stateOf(h.uri('ast1'))).toBe('disabled');
    expect(h.kinds('ast1').at(-1)).toBe('StateReapplied');
    expect(h.engine.explain('ast1').dispatcher?.proxies?.map((p) => p.proxy)).toEqual(['proxy1', 'proxy2']);
  });

  it('drains while one proxy is down, and drains it there once it is back', async () => {
    const { h, members } = await fleetHarness();
    down(members[1]!);
    await h.engine.drain('ast2', op);
    expect(members[0]!.stateOf(h.uri('ast2'))).toBe('disabled');
    expect(h.engine.explain('ast2').dispatcher?.proxies?.[1]?.state).toBe('unreachable');
    // Back, having kept its old state (cut off, not restarted): its marker is intact, yet it missed the drain.
    up(members[1]!);
    await h.engine.tick(T0 + 10_000);
    expect(members[1]!.stateOf(h.uri('ast2'))).toBe('disabled');
    expect(h.kinds('ast2')).not.toContain('ManualOverrideDetected');
  });

  it('takes a drain lifted by hand on one proxy as a manual override and leaves it', async () => {
    const { h, members } = await fleetHarness();
    await h.engine.drain('ast3', op);
    await h.engine.tick(T0 + 10_000);
    members[0]!.setByHand(h.uri('ast3'), 'active', true);
    await h.engine.tick(T0 + 20_000);
    await h.engine.tick(T0 + 30_000);
    expect(h.kinds('ast3').at(-1)).toBe('ManualOverrideDetected');
    expect(members[0]!.stateOf(h.uri('ast3'))).toBe('active');
    expect(members[1]!.stateOf(h.uri('ast3'))).toBe('disabled');
  });
});

describe('createKamailioDispatcher', () => {
  it('builds one KamailioDispatcher for one endpoint and a named fleet for several', () => {
    const one = createKamailioDispatcher({ rpcUrl: 'http://127.0.0.1:5080/RPC', timeoutMs: 2000 }, silentLogger());
    expect(one).toBeInstanceOf(KamailioDispatcher);
    const two = createKamailioDispatcher(
      { rpcUrls: ['http://127.0.0.1:5080/RPC', { name: 'kam-b', url: 'http://127.0.0.1:5180/RPC' }], timeoutMs: 2000 },
      silentLogger(),
    );
    expect(two).toBeInstanceOf(ProxyFleetDispatcher);
    expect(two.name).toBe('fleet(proxy1,kam-b)');
  });

  it('refuses a fleet without proxies or with a name twice', () => {
    const d = new RecordingDispatcher(DESTS);
    expect(() => new ProxyFleetDispatcher({ proxies: [] })).toThrow(/at least one proxy/);
    expect(
      () =>
        new ProxyFleetDispatcher({
          proxies: [
            { name: 'a', dispatcher: d },
            { name: 'a', dispatcher: d },
          ],
        }),
    ).toThrow(/own name/);
  });
});
