/**
 * The drain lifecycle on the real stack with a fault the simulator does not model: the network path to one backend
 * degrades while the backend itself is healthy. Real Kamailio (dispatcher, siptrace HEP), sipp backends, a sipp caller
 * placing calls of known duration, and `foresight run` with its OPTIONS prober and its SIP dialog count; no AMI, so
 * the only count of a node's calls is the one Foresight makes from the SIP stream. The fault injector is a UDP relay
 * in front of ast2's backend (Kamailio's dispatcher URI for ast2 points at the relay) whose loss we set while it runs.
 * The restarter is a webhook served here: it restarts ast2's sipp backend, which drops every call still up on it, and
 * a restart cures nothing on the path.
 *
 * What is asserted is what callers feel — sipp's failed calls, and the calls a restart cut off (dialogs the old
 * backend had answered and never saw end) — next to the audit trail that says why.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/messages.js';
import {
  createScratchDatabase,
  freePort,
  type ScratchDatabase,
  SidecarProcess,
  sidecarConfig,
  sleep,
  uriOf,
  waitFor,
} from '../chaos/env.js';
import { type SippRun, startUac, startUas } from '../helpers/sipp.js';
import { UdpRelay } from '../helpers/udp-relay.js';
import { kafkaService } from './kafka-support.js';
import { type KamailioLab, startKamailioLab } from './kamailio-env.js';

/** ast2's sipp backend listens here; Kamailio reaches it through the relay on ast2's dispatcher port (5072). */
const AST2_BACKEND_PORT = 25172;
const AST2_PORT = 5072;
const CALL_MS = 8000;
const DIALOG_SESSION_MS = 15_000;

let lab: KamailioLab;
let db: ScratchDatabase;
let relay: UdpRelay;
let ast2: SippRun;
let sidecar: SidecarProcess;
let webhook: Server;
/** What each restart of ast2 found: when, the calls it cut off, and the backend's orphans (see restartAst2). */
const restarts: { at: number; callsCut: number; orphaned: number }[] = [];
/** When set, a restart of ast2 also ends the path fault: a fault that a restart cures. */
let restartCures = false;
/** Every caller this file starts, so a restart can tell a call still up from one its caller has already ended. */
const callers: SippRun[] = [];
const startCaller = (options: Parameters<typeof startUac>[0]): SippRun => {
  const run = startUac(options);
  callers.push(run);
  return run;
};

/**
 * Calls a sipp UAS has established (the caller's ACK arrived) and never saw end (no BYE received), split by what the
 * caller knows. `cut`: the caller had not finished hanging up, so a stop of this backend cuts a call someone is on.
 * `orphaned`: the caller's BYE transaction had already ended (answered, or given up on by the proxy after its
 * fr_timer) without the BYE reaching this backend through the lossy path: the call is over for everyone but the
 * backend, which would hold it until its own timers expire; a restart costs nobody anything there. A setup whose
 * 200 OK was lost on the path never got its ACK: the caller saw that call fail (sipp's FailedCall), it was never up.
 */
function openDialogs(uas: SippRun): { cut: number; orphaned: number } {
  const answered = new Set<string>();
  const ended = new Set<string>();
  for (const m of uas.messages()) {
    if (m.callId === null) continue;
    if (m.direction === 'received' && m.method === 'ACK') answered.add(m.callId);
    if (m.direction === 'received' && m.method === 'BYE') ended.add(m.callId);
  }
  const hungUp = new Set<string>();
  for (const caller of callers) {
    for (const m of caller.messages()) {
      if (m.callId !== null && m.direction === 'received' && m.cseqMethod === 'BYE' && (m.status ?? 0) >= 200) {
        hungUp.add(m.callId);
      }
    }
  }
  let cut = 0;
  let orphaned = 0;
  for (const id of answered) {
    if (ended.has(id)) continue;
    if (hungUp.has(id)) orphaned++;
    else cut++;
  }
  return { cut, orphaned };
}

async function restartAst2(): Promise<void> {
  const old = ast2;
  // sipp writes its message log as it goes; a moment lets the last BYEs it received reach the file.
  await sleep(300);
  const { cut, orphaned } = openDialogs(old);
  await old.stop();
  restarts.push({ at: Date.now(), callsCut: cut, orphaned });
  if (restartCures) relay.setLoss(0);
  ast2 = await startUas({ port: AST2_BACKEND_PORT, dir: lab.dir });
}

beforeAll(async () => {
  await kafkaService('start');
  lab = await startKamailioLab({ except: [AST2_PORT] });
  ast2 = await startUas({ port: AST2_BACKEND_PORT, dir: lab.dir });
  relay = await UdpRelay.start(AST2_PORT, '127.0.0.1', AST2_BACKEND_PORT, { seed: 7 });
  await lab.activateAll();
  db = await createScratchDatabase('lifecycle');
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString('utf8');
    });
    req.on('end', () => {
      const nodeId = (JSON.parse(body || '{}') as { nodeId?: string }).nodeId;
      const done = nodeId === 'ast2' ? restartAst2() : Promise.resolve();
      done.then(
        () => res.writeHead(200).end('{}'),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
  });
  await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/restart`;
  const config = sidecarConfig({
    name: 'lifecycle-faults',
    storeUrl: db.url,
    apiPort: await freePort(),
    hep: true,
    actions: {
      restarter: { kind: 'webhook', url: hookUrl },
      timeouts: { drainTimeoutMs: 60_000, restartTimeoutMs: 20_000, recoveryTimeoutMs: 15_000, probationMs: 120_000 },
      evidence: { healthyProbeWindows: 3, probeFailDrainMs: 15_000 },
    },
  });
  const collectors = config.collectors as Record<string, Record<string, unknown>>;
  collectors.hep = { ...collectors.hep, dialogSessionMs: DIALOG_SESSION_MS };
  // Five probes per 1 s window, so a window's loss share means something.
  collectors.probe = { enabled: true, intervalMs: 200, timeoutMs: 1000 };
  sidecar = await SidecarProcess.start(config, 'lifecycle-faults');
}, 180_000);

afterAll(async () => {
  await sidecar?.stop();
  await new Promise<void>((r) => (webhook ? webhook.close(() => r()) : r()));
  await relay?.close();
  await ast2?.stop();
  await lab?.activateAll().catch(() => undefined);
  await lab?.stop();
  await db?.drop().catch(() => undefined);
});

const kinds = (records: AuditRecord[]) => records.map((r) => r.kind).reverse();

describe('a degrading path to one backend, which a restart does not cure', () => {
  it('drains, waits for the calls it counts, restarts with none up, quarantines while the path is lossy, returns once it is clean', async () => {
    // Every backend in rotation first (a fresh Kamailio probes them as down until they answer).
    await waitFor(
      'all backends AP',
      async () => (await lab.dispatcher.list()).filter((d) => d.setId === 1).every((d) => d.flags === 'AP'),
      30_000,
      500,
    );
    // Calls through Kamailio until the dialog count of every node is trusted (one session interval of traffic).
    const warm = startCaller({
      dir: lab.dir,
      port: 5096,
      calls: 200,
      rate: 2,
      durationMs: CALL_MS,
      timeoutS: 150,
      name: 'uac-warm',
    });
    try {
      await waitFor(
        'ast2 calls counted from the SIP stream',
        async () => {
          const n = await sidecar.node('ast2');
          return n.activeCalls !== null && n.activeCalls > 0 && n;
        },
        DIALOG_SESSION_MS + 30_000,
        500,
      );
      const counted = (await sidecar.node('ast2')) as unknown as { activeCallsSource: string | null };
      expect(counted.activeCallsSource).toBe('sip');

      // The path degrades; then an operator (or the model) starts the cycle with calls up on ast2.
      relay.setLoss(0.2);
      const cycle = await sidecar.post('/api/nodes/ast2/restart', { reason: 'lossy path to ast2', force: true });
      expect(cycle.status, JSON.stringify(cycle.body)).toBe(200);
      const drainedAt = Date.now();
      await waitFor(
        'ast2 disabled in Kamailio',
        async () => (await lab.dispatcher.list()).find((d) => d.uri === uriOf('ast2'))?.state === 'disabled',
        5000,
      );
      // The restart comes only once the calls Foresight counted on ast2 ended (CALL_MS at most), not at once.
      await waitFor('ast2 restarted', async () => restarts.length > 0, 40_000, 250);
      expect(restarts[0]!.callsCut, 'calls cut off by the restart').toBe(0);
      expect(restarts[0]!.at - drainedAt).toBeGreaterThan(1000);
      const restartAudit = (await sidecar.audit({ nodeId: 'ast2', kind: 'RestartStarting' }))[0]!;
      expect(restartAudit.reason).toMatch(/active calls reached 0 \(sip\)/);
      expect(restartAudit.details.callsSource).toBe('sip');

      // The restart cured nothing: the path still loses a third of the probes, so ast2 stays out and is quarantined.
      await waitFor(
        'ast2 quarantined',
        async () => (await sidecar.audit({ nodeId: 'ast2', kind: 'Quarantined' })).length > 0,
        40_000,
        500,
      );
      const quarantined = (await sidecar.audit({ nodeId: 'ast2', kind: 'Quarantined' }))[0]!;
      expect(quarantined.reason).toMatch(/path to ast2 loses \d+ % of OPTIONS/);
      expect(quarantined.details.alert).toBe(true);
      expect((await lab.dispatcher.list()).find((d) => d.uri === uriOf('ast2'))?.state).toBe('disabled');
      expect(kinds(await sidecar.audit({ nodeId: 'ast2' }))).not.toContain('NodeReturned');

      // The fault goes away: healthy probes bring ast2 back by themselves.
      relay.setLoss(0);
      await waitFor(
        'ast2 back in rotation',
        async () => (await lab.dispatcher.list()).find((d) => d.uri === uriOf('ast2'))?.state === 'active',
        30_000,
        500,
      );
      const returned = (await sidecar.audit({ nodeId: 'ast2', kind: 'NodeReturned' }))[0]!;
      expect(returned.reason).toMatch(/quarantine lifted: healthy probes/);
      expect(restarts).toHaveLength(1);
    } finally {
      await warm.exited.catch(() => undefined);
    }
    // What callers felt over the whole episode: calls already answered were never cut; a lossy path may fail a setup
    // before the drain (a lost INVITE retransmitted past sipp's timer), which the drain itself cannot undo.
    const stats = warm.stats();
    console.log(
      `lifecycle-faults: caller ${JSON.stringify({ ok: stats['SuccessfulCall(C)'], failed: stats['FailedCall(C)'] })}, restarts ${JSON.stringify(restarts)}`,
    );
    expect(stats['SuccessfulCall(C)']! + stats['FailedCall(C)']!).toBe(200);
    expect(stats['FailedCall(C)']).toBeLessThanOrEqual(3);

    // Back in rotation, ast2 takes calls again and they complete.
    const after = startCaller({
      dir: lab.dir,
      port: 5097,
      calls: 12,
      rate: 4,
      durationMs: 500,
      timeoutS: 30,
      name: 'uac-after',
    });
    await after.exited;
    expect(after.stats()['FailedCall(C)']).toBe(0);
    // ...and some of them reached ast2 (round robin over the three backends).
    expect(ast2.messages().filter((m) => m.direction === 'received' && m.method === 'INVITE').length).toBeGreaterThan(
      0,
    );
  }, 240_000);

  it('a renewed fault in probation is re-drained at once on its failing probes, and a restart that cures returns the node', async () => {
    const returnedAt = (await sidecar.audit({ nodeId: 'ast2', kind: 'NodeReturned' }))[0]!.ts;
    restartCures = true;
    const before = restarts.length;
    relay.setLoss(0.3);
    const load = startCaller({
      dir: lab.dir,
      port: 5098,
      calls: 160,
      rate: 4,
      durationMs: 3000,
      timeoutS: 90,
      name: 'uac-probation',
    });
    try {
      const drain = await waitFor(
        'an automatic drain of ast2 in probation',
        async () =>
          (await sidecar.audit({ nodeId: 'ast2', kind: 'DrainStarting' })).find(
            (r) => r.actor === 'auto' && r.ts > returnedAt,
          ),
        55_000,
        500,
      );
      if ((drain.details.evidence as { probation?: boolean }).probation !== true) {
        // Seen once in ten full runs, before a cancelled drain kept the node's probation: if it recurs, the trail says
        // what else ended the probation.
        const trail = (await sidecar.audit({ nodeId: 'ast2' })).filter((r) => r.ts >= returnedAt);
        console.log('drain in probation without probation evidence:', JSON.stringify({ returnedAt, drain, trail }));
      }
      expect((drain.details.evidence as { probation?: boolean }).probation).toBe(true);
      expect(drain.ts - returnedAt).toBeLessThan(120_000);
      expect(drain.reason).toMatch(/probes failing for \d+ s: path to ast2 loses \d+ % of OPTIONS.*on probation/);
      // This time the restart cures: the node comes back through recovery, not quarantine.
      await waitFor(
        'ast2 returned after a curing restart',
        async () =>
          (await sidecar.audit({ nodeId: 'ast2', kind: 'NodeReturned' })).find(
            (r) => r.ts > drain.ts && r.details.restarted === true,
          ),
        60_000,
        500,
      );
    } finally {
      await load.exited.catch(() => undefined);
    }
    expect(restarts.length).toBe(before + 1);
    expect(restarts.at(-1)!.callsCut, 'calls cut off by the restart').toBe(0);
    const sinceDrain = kinds(await sidecar.audit({ nodeId: 'ast2' }));
    expect(sinceDrain.slice(sinceDrain.lastIndexOf('DrainStarting'))).not.toContain('Quarantined');
    const stats = load.stats();
    console.log(
      `lifecycle-faults (probation): caller ${JSON.stringify({ ok: stats['SuccessfulCall(C)'], failed: stats['FailedCall(C)'] })}, restarts ${JSON.stringify(restarts)}`,
    );
  }, 180_000);

  it("the same fault with Kamailio's probing alone (ast2 pinned, so Foresight keeps out): what callers feel", async () => {
    await waitFor(
      'ast2 in rotation',
      async () => (await lab.dispatcher.list()).find((d) => d.uri === uriOf('ast2'))?.state === 'active',
      30_000,
      500,
    );
    expect((await sidecar.post('/api/nodes/ast2/pin', { reason: 'baseline: Kamailio alone' })).status).toBe(200);
    relay.setLoss(0.3);
    const drainsBefore = (await sidecar.audit({ nodeId: 'ast2', kind: 'DrainStarting' })).length;
    const load = startCaller({
      dir: lab.dir,
      port: 5099,
      calls: 160,
      rate: 4,
      durationMs: 3000,
      timeoutS: 90,
      name: 'uac-baseline',
    });
    await load.exited.catch(() => undefined);
    relay.setLoss(0);
    const stats = load.stats();
    const kamailio = (await lab.dispatcher.list()).find((d) => d.uri === uriOf('ast2'));
    console.log(
      `lifecycle-faults (Kamailio alone): caller ${JSON.stringify({ ok: stats['SuccessfulCall(C)'], failed: stats['FailedCall(C)'] })}, ast2 flags at the end ${kamailio?.flags}`,
    );
    // Foresight took no action on the pinned node; Kamailio kept sending it calls through the lossy path.
    expect((await sidecar.audit({ nodeId: 'ast2', kind: 'DrainStarting' })).length).toBe(drainsBefore);
    expect(stats['SuccessfulCall(C)']! + stats['FailedCall(C)']!).toBe(160);
    await sidecar.post('/api/nodes/ast2/unpin', { reason: 'baseline done' });
  }, 120_000);
});
