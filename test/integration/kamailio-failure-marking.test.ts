/**
 * Kamailio's own failure handling against a drain, on the real proxy with the shipped routing: a call routed to a node
 * just before Foresight drains it, which then times out there, runs the failure_route. Stock `ds_mark_dst("tp")`
 * rewrites every state bit, the drain's `d` included, and the next keepalive puts the node back in rotation (seen on
 * the lossy-path stack: Foresight then took Kamailio's doing for a person's). The shipped cfg marks only destinations
 * that are still selectable, so the drain holds and the call still fails over to another node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { receivedInvites, type SippRun, startUac, startUas } from '../helpers/sipp.js';
import { UdpRelay } from '../helpers/udp-relay.js';
import { backendUri, type KamailioLab, SET_ID, startKamailioLab } from './kamailio-env.js';

const DRAINED = 5072;
const BACKEND_PORT = 25272;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let lab: KamailioLab;
let relay: UdpRelay;
let backend: SippRun;

beforeAll(async () => {
  lab = await startKamailioLab({ except: [DRAINED] });
  backend = await startUas({ port: BACKEND_PORT, dir: lab.dir });
  relay = await UdpRelay.start(DRAINED, '127.0.0.1', BACKEND_PORT, { seed: 3 });
  await lab.activateAll();
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await backend?.stop();
  await lab?.activateAll().catch(() => undefined);
  await lab?.stop();
});

describe("Kamailio's failure_route and a drain", () => {
  it('a call that times out on a node drained after it was routed leaves the node drained, and fails over', async () => {
    const uri = backendUri(DRAINED);
    // Everything to the node vanishes on the way: its INVITE gets no answer, as on a path that just broke.
    relay.setLoss(1, 'forward');
    const forwardBefore = relay.stats().received.forward;
    // Three calls in a row: round robin sends one to each backend, so one INVITE goes to the node.
    const uac = startUac({ dir: lab.dir, port: 5094, calls: 3, rate: 20, durationMs: 500, timeoutS: 30 });
    try {
      await sleep(400);
      await lab.dispatcher.drain(SET_ID, uri);
      expect((await lab.dispatcher.list()).find((d) => d.uri === uri)?.state).toBe('disabled');
      // The node's INVITE times out (fr_timer 2 s) and the failure_route runs; then a keepalive interval (5 s)
      // passes, which is what would turn a `TP` back into `AP`.
      await sleep(2500 + 6000);
      const after = (await lab.dispatcher.list()).find((d) => d.uri === uri);
      expect(after?.state, `flags ${after?.flags}`).toBe('disabled');
      expect(after?.flags).toBe('DX');

      const exit = await uac.exited;
      // The caller never noticed: the timed-out branch went to the next destination.
      expect(uac.stats()['SuccessfulCall(C)']).toBe(3);
      expect(exit.code).toBe(0);
      // The scenario happened as described: an INVITE was sent to the node and went unanswered.
      expect(relay.stats().received.forward).toBeGreaterThan(forwardBefore);
      expect(relay.stats().dropped.forward).toBeGreaterThan(0);
      expect(receivedInvites(backend.messages())).toEqual([]);
    } finally {
      await uac.stop();
      relay.setLoss(0, 'forward');
    }
  }, 60_000);
});
