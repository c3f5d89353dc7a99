/**
 * `foresight run` in front of real Asterisk 22 nodes: ast1..ast3 (scripts/services/asterisk.sh) behind a Kamailio of
 * their own whose dispatcher lists their SIP URIs, sipp calling through that Kamailio, the sidecar reading each node's
 * AMI and probing it with OPTIONS, draining it through Kamailio's RPC and restarting it with AMI
 * `core restart gracefully`. What is asserted is what callers feel (sipp's failed calls: a call cut by a restart is
 * a failed call for sipp, whose scenario expects its own BYE answered) next to what the nodes themselves report.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, freePort, type ScratchDatabase, SidecarProcess, waitFor } from '../chaos/env.js';
import { openAmiTap } from '../helpers/ami-tap.js';
import { type SippRun, startUac } from '../helpers/sipp.js';
import { ASTERISK_START_TIMEOUT_MS, type AsteriskNode, coreStartup, startAsteriskNodes } from './asterisk-env.js';
import { AST_PROXY, type AsteriskProxy, asteriskSidecarConfig, startAsteriskProxy } from './asterisk-stack.js';
import { kafkaService } from './kafka-support.js';

let nodes: AsteriskNode[];
let proxy: AsteriskProxy;
let db: ScratchDatabase;
let sidecar: SidecarProcess;
let dir: string;
const callers: SippRun[] = [];

beforeAll(async () => {
  nodes = await startAsteriskNodes(3);
  await kafkaService('start');
  proxy = await startAsteriskProxy(nodes);
  db = await createScratchDatabase('astfull');
  const config = asteriskSidecarConfig({
    name: 'asterisk-fullstack',
    storeUrl: db.url,
    apiPort: await freePort(),
    nodes,
    actions: {
      timeouts: { drainTimeoutMs: 90_000, restartTimeoutMs: 30_000, recoveryTimeoutMs: 30_000, probationMs: 60_000 },
      evidence: { healthyProbeWindows: 3 },
    },
  });
  sidecar = await SidecarProcess.start(config, 'asterisk-fullstack');
  dir = mkdtempSync(join(tmpdir(), 'foresight-astfull-'));
}, ASTERISK_START_TIMEOUT_MS);

afterAll(async () => {
  await Promise.all(callers.map((c) => c.stop()));
  await sidecar?.stop();
  await proxy?.close();
  await db?.drop().catch(() => undefined);
  // sipp logs live here; keep them when FORESIGHT_KEEP_SIPP_LOGS is set, for a failing run.
  if (dir && !process.env.FORESIGHT_KEEP_SIPP_LOGS) rmSync(dir, { recursive: true, force: true });
  // The nodes stay up (ast2 restarted in place keeps its PID and config), as asterisk.sh start leaves them.
});

function call(o: { port: number; calls: number; rate: number; durationMs: number; name: string }): SippRun {
  const run = startUac({
    dir,
    target: `127.0.0.1:${AST_PROXY.sipPort}`,
    service: 'hold',
    timeoutS: 180,
    ...o,
  });
  callers.push(run);
  return run;
}

async function finished(run: SippRun) {
  const exit = await run.exited;
  const s = run.stats();
  return { code: exit.code, ok: s['SuccessfulCall(C)'], failed: s['FailedCall(C)'] };
}

/** Calls sipp has up right now: answered (200 to its INVITE) and not yet ended by a BYE either way. */
function upNow(run: SippRun): number {
  const answered = new Set<string>();
  const ended = new Set<string>();
  for (const m of run.messages()) {
    if (!m.callId) continue;
    if (m.status === 200 && m.cseqMethod === 'INVITE') answered.add(m.callId);
    if (m.method === 'BYE') ended.add(m.callId);
  }
  return [...answered].filter((id) => !ended.has(id)).length;
}

describe('foresight run with real Asterisk nodes behind Kamailio', () => {
  it('reads every node over AMI: up from FullyBooted, calls counted by AMI equal to the calls sipp has up', async () => {
    await waitFor(
      'every node observed and up',
      async () => {
        const view = await sidecar.nodes();
        return view.length === 3 && view.every((n) => n.observed && n.up === true && n.activeCalls === 0);
      },
      60_000,
      500,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${sidecar.logTail()}`);
    });

    const CALLS = 12;
    const uac = call({ port: 5391, calls: CALLS, rate: 10, durationMs: 12_000, name: 'uac-count' });
    // Round robin puts 4 calls on each node; AMI's count (CoreShowChannels, every 500 ms) must come to the same.
    const view = await waitFor(
      'AMI counts equal to the calls sipp has up',
      async () => {
        const v = await sidecar.nodes();
        const sum = v.reduce((a, n) => a + (n.activeCalls ?? 0), 0);
        return upNow(uac) === CALLS && sum === CALLS && v;
      },
      15_000,
      200,
    );
    for (const n of view) {
      expect(n.activeCalls, n.nodeId).toBe(CALLS / 3);
      expect((n as unknown as { activeCallsSource: string }).activeCallsSource, n.nodeId).toBe('ami');
    }
    expect(await finished(uac)).toEqual({ code: 0, ok: CALLS, failed: 0 });
    await waitFor('every count back to 0', async () => (await sidecar.nodes()).every((n) => n.activeCalls === 0), 5000);
  });

  it('drains ast2, waits for its calls to end, restarts it through AMI, and puts it back in rotation: no call lost', async () => {
    const ast2 = nodes[1] as AsteriskNode;
    const startedBefore = await coreStartup(ast2);
    // Long calls on every node, then a steady stream of new ones for the whole cycle.
    const held = call({ port: 5392, calls: 6, rate: 10, durationMs: 10_000, name: 'uac-held' });
    await waitFor('6 calls up', () => upNow(held) === 6, 10_000, 100);
    await waitFor('ast2 counts its 2 calls', async () => (await sidecar.node('ast2')).activeCalls === 2, 5000);
    // New calls while ast2 is out: they must all land on ast1 and ast3.
    const stream = call({ port: 5393, calls: 25, rate: 1, durationMs: 3000, name: 'uac-stream' });

    const cycle = await sidecar.post('/api/nodes/ast2/restart', { reason: 'e2e: restart ast2', force: true });
    expect(cycle.status, JSON.stringify(cycle.body)).toBe(200);
    const drainedAt = Date.now();
    await waitFor('ast2 disabled in Kamailio', async () => (await proxy.stateOf(ast2))?.state === 'disabled', 5000);
    // What reaches ast2 while it is drained, read from the node itself (until its restart closes the session).
    const drainedTap = await openAmiTap({
      port: ast2.amiPort,
      username: ast2.amiUser,
      secret: ast2.amiSecret,
      events: 'call',
    });

    // The restart waits for ast2's held calls to end (about 10 s after they started), then AMI says FullyBooted.
    const restart = await waitFor(
      'the restart of ast2',
      async () => (await sidecar.audit({ nodeId: 'ast2', kind: 'RestartStarting' }))[0],
      40_000,
      250,
    );
    expect(restart.reason).toMatch(/active calls reached 0 \(ami\)/);
    expect(restart.details.callsSource).toBe('ami');
    expect(restart.ts - drainedAt).toBeGreaterThan(4000);
    const whileDrained = drainedTap.eventsSince(0).filter((e) => e.startsWith('Event: Newchannel\n'));
    drainedTap.close();
    expect(whileDrained, 'new calls on ast2 while drained').toEqual([]);
    await waitFor(
      'ast2 restarted (RestartSucceeded)',
      async () => (await sidecar.audit({ nodeId: 'ast2', kind: 'RestartSucceeded' })).length > 0,
      40_000,
      500,
    );
    expect(await coreStartup(ast2)).not.toBe(startedBefore);
    // Held calls were up on ast2 when it was drained; all of them ended by the caller's BYE, none cut.
    expect(await finished(held)).toEqual({ code: 0, ok: 6, failed: 0 });

    // Healthy probes after the boot bring it back: Kamailio active, and new calls reach it again.
    await waitFor(
      'ast2 back in rotation',
      async () => (await sidecar.audit({ nodeId: 'ast2', kind: 'NodeReturned' })).length > 0,
      40_000,
      500,
    );
    await waitFor('ast2 active in Kamailio', async () => (await proxy.stateOf(ast2))?.state === 'active', 5000);
    const tap = await openAmiTap({
      port: ast2.amiPort,
      username: ast2.amiUser,
      secret: ast2.amiSecret,
      events: 'call',
    });
    try {
      const after = call({ port: 5394, calls: 6, rate: 10, durationMs: 1000, name: 'uac-after' });
      expect(await finished(after)).toEqual({ code: 0, ok: 6, failed: 0 });
      const newChannels = () =>
        tap.eventsSince(0).filter((e) => e.startsWith('Event: Newchannel\n') && e.includes('PJSIP/kamailio-'));
      // Round robin over three active nodes: 2 of the 6 new calls on ast2.
      await waitFor('new calls on ast2', () => newChannels().length >= 2, 5000, 100);
    } finally {
      tap.close();
    }
    // Every call of the stream placed during the cycle completed, whichever node took it.
    expect(await finished(stream)).toEqual({ code: 0, ok: 25, failed: 0 });
    const kinds = (await sidecar.audit({ nodeId: 'ast2' })).map((r) => r.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['DrainSucceeded', 'RestartStarting', 'RestartSucceeded', 'NodeReturned']),
    );
  });
});
