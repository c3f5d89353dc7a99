import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completedByes, receivedInvites, sentInvites, startUac } from '../helpers/sipp.js';
import { backendUri, type KamailioLab, kamailioService, SET_ID, startKamailioLab } from './kamailio-env.js';

// Real Kamailio round-robin over three sipp UAS backends; a sipp UAC places calls of known duration through it.
const DRAINED = 5072;
const OTHERS = [5071, 5073];
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let lab: KamailioLab;
beforeAll(async () => {
  lab = await startKamailioLab();
});
afterAll(async () => {
  if (!lab) return;
  await lab.activateAll().catch(() => undefined);
  await lab.stop();
});

describe('draining a backend in a real Kamailio', () => {
  it('stops new calls to the drained backend at once, lets its calls finish, and takes calls again after activate', async () => {
    const CALLS = 60;
    const CALL_MS = 5000;
    // 10 calls/s for 6 s, each up 5 s: when the drain lands (t≈2 s) several calls are up on every backend.
    const uac = startUac({ dir: lab.dir, port: 5090, calls: CALLS, rate: 10, durationMs: CALL_MS, timeoutS: 40 });
    try {
      await sleep(2000);
      await lab.dispatcher.drain(SET_ID, backendUri(DRAINED));
      const drainedAt = nowMs();
      await sleep(2500);
      const activateCalledAt = nowMs();
      await lab.dispatcher.activate(SET_ID, backendUri(DRAINED));

      const exit = await uac.exited;
      // SIPp exits 0 only when every call got its 200 to INVITE and to BYE.
      expect(exit.code).toBe(0);
      expect(uac.stats()['SuccessfulCall(C)']).toBe(CALLS);
      expect(uac.stats()['FailedCall(C)']).toBe(0);
      // Let the backends log their last 200 to BYE before reading the logs.
      await sleep(300);

      const drainedLog = lab.backends.get(DRAINED)?.messages() ?? [];
      const invites = receivedInvites(drainedLog);
      const before = invites.filter((i) => i.ts <= drainedAt);
      // A new call is one the caller sent after drain() returned. An INVITE sent just before may have been routed
      // before the state changed and be logged by the backend a little after (under load, tens of ms): not new.
      const sentAt = new Map(sentInvites(uac.messages()).map((i) => [i.callId, i.ts]));
      const whileDrained = invites.filter((i) => {
        const sent = sentAt.get(i.callId) ?? i.ts;
        return sent > drainedAt && sent < activateCalledAt;
      });
      const afterActivate = invites.filter((i) => i.ts >= activateCalledAt);

      // Calls were up on the backend when it was drained (answered less than CALL_MS before).
      expect(before.filter((i) => i.ts > drainedAt - CALL_MS).length).toBeGreaterThanOrEqual(2);
      // From the moment drain() returned, no new INVITE reached it.
      expect(whileDrained).toEqual([]);
      // Each of its calls, including the ones up at drain time, ended with BYE answered 200 (in-dialog routing).
      const byes = completedByes(drainedLog);
      for (const call of before) expect(byes.has(call.callId), `BYE/200 for ${call.callId}`).toBe(true);
      // After activate, round-robin includes it again.
      expect(afterActivate.length).toBeGreaterThanOrEqual(1);
      for (const call of afterActivate) expect(byes.has(call.callId)).toBe(true);

      // The other backends absorbed the calls placed during the drain, and every call reached some backend.
      const otherInvites = OTHERS.map((port) => receivedInvites(lab.backends.get(port)?.messages() ?? []));
      for (const list of otherInvites) {
        expect(list.filter((i) => i.ts > drainedAt && i.ts < activateCalledAt).length).toBeGreaterThanOrEqual(8);
      }
      const total = invites.length + otherInvites.reduce((n, l) => n + l.length, 0);
      expect(total).toBe(CALLS);
    } finally {
      await uac.stop();
    }
  });

  it('a Kamailio restart resets a drained backend to active, which list() shows and the reset marker reports', async () => {
    const uri = backendUri(DRAINED);
    await lab.dispatcher.armResetMarker();
    expect(await lab.dispatcher.resetSinceArmed()).toBe(false);
    await lab.dispatcher.drain(SET_ID, uri);
    expect((await lab.dispatcher.list()).find((d) => d.uri === uri)?.state).toBe('disabled');

    await kamailioService('restart');

    const after = (await lab.dispatcher.list()).find((d) => d.uri === uri);
    expect(after?.state).toBe('active');
    expect(after?.probing).toBe(true);
    expect(await lab.dispatcher.resetSinceArmed()).toBe(true);
    // A restart (unlike a reload) also shows in core.uptime.
    expect((await lab.dispatcher.uptime()).uptimeSec).toBeLessThan(5);
    // The building blocks an engine uses to re-apply: arm first, then drain again.
    await lab.dispatcher.armResetMarker();
    await lab.dispatcher.drain(SET_ID, uri);
    expect((await lab.dispatcher.list()).find((d) => d.uri === uri)?.state).toBe('disabled');
    expect(await lab.dispatcher.resetSinceArmed()).toBe(false);
    await lab.dispatcher.activate(SET_ID, uri);
  });

  it('dispatcher.reload resets a drained backend too, and is detected by the reset marker', async () => {
    const uri = backendUri(DRAINED);
    await lab.dispatcher.armResetMarker();
    await lab.dispatcher.drain(SET_ID, uri);
    // reload shares Kamailio's 5 s rate limit with the marker's dispatcher.add: reload() waits for the slot.
    await lab.dispatcher.reload();
    expect((await lab.dispatcher.list()).find((d) => d.uri === uri)?.state).toBe('active');
    expect(await lab.dispatcher.resetSinceArmed()).toBe(true);
    // A drain made by hand-style RPC on another node is not a reset: the marker survives set_state.
    await lab.dispatcher.armResetMarker();
    await lab.dispatcher.setState(SET_ID, backendUri(5071), 'd');
    expect(await lab.dispatcher.resetSinceArmed()).toBe(false);
    await lab.dispatcher.activate(SET_ID, backendUri(5071));
  });
});
