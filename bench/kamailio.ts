import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { KamailioDispatcher } from '../src/actions/dispatcher/kamailio.js';

/**
 * drain.decision_to_applied: time from calling drain() until Kamailio routes no new call to the node, on loopback.
 * Each cycle: drain() (read state, set_state d) -> a confirming dispatcher.list shows `D` -> stop the clock; then a probe
 * INVITE goes through Kamailio and must land on another backend; then activate(). The three backends are tiny
 * UDP responders in this process (200 to OPTIONS, 486 to INVITE), so the bench needs only Kamailio.
 */

const CYCLES = Number(process.env.FORESIGHT_BENCH_KAMAILIO_CYCLES ?? 200);
const BUDGET_MS = 45_000;
const SET_ID = 1;
const PORTS = [5071, 5072, 5073] as const;
const DRAINED = 5072;
const PROXY = { host: '127.0.0.1', port: 5060 };
const REPO = resolve(import.meta.dirname, '..');

function header(msg: string, name: string): string {
  return new RegExp(`^${name}\\s*:.*$`, 'im').exec(msg)?.[0] ?? '';
}

/** Stand-in backend: keeps dispatcher keepalives happy and refuses calls at once, reporting each INVITE. */
function startBackend(port: number, onInvite: (port: number, callId: string) => void): Promise<Socket> {
  return new Promise((resolveSocket, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.on('message', (buf, peer) => {
      const msg = buf.toString('utf8');
      const method = /^([A-Z]+) /.exec(msg)?.[1];
      if (method !== 'OPTIONS' && method !== 'INVITE') return; // ACKs for our 486 need no answer
      const vias = msg.split(/\r\n/).filter((l) => /^Via\s*:/i.test(l));
      const code = method === 'OPTIONS' ? '200 OK' : '486 Busy Here';
      const reply = [
        `SIP/2.0 ${code}`,
        ...vias,
        header(msg, 'From'),
        `${header(msg, 'To')};tag=b${port}`,
        header(msg, 'Call-ID'),
        header(msg, 'CSeq'),
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      socket.send(reply, peer.port, peer.address);
      if (method === 'INVITE') onInvite(port, header(msg, 'Call-ID').replace(/^Call-ID\s*:\s*/i, ''));
    });
    socket.bind(port, '127.0.0.1', () => resolveSocket(socket));
  });
}

/** Sends one INVITE through Kamailio and resolves with the backend port that received it. */
function probeInvite(caller: Socket, n: number, landed: Map<string, (port: number) => void>): Promise<number> {
  const callId = `bench-${n}-${process.pid}@127.0.0.1`;
  const branch = `z9hG4bKbench${n}x${Date.now()}`;
  const local = caller.address();
  const lines = [
    `INVITE sip:svc@${PROXY.host}:${PROXY.port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${local.port};branch=${branch}`,
    `From: <sip:bench@127.0.0.1:${local.port}>;tag=f${n}`,
    `To: <sip:svc@${PROXY.host}:${PROXY.port}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:bench@127.0.0.1:${local.port}>`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ];
  return new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => {
      landed.delete(callId);
      reject(new Error(`probe INVITE ${n} reached no backend within 2 s`));
    }, 2000);
    landed.set(callId, (port) => {
      clearTimeout(timer);
      landed.delete(callId);
      resolvePort(port);
    });
    caller.send(lines.join('\r\n'), PROXY.port, PROXY.host);
  });
}

/** The caller ACKs Kamailio's relayed 486 so tm stops retransmitting it. */
function startCaller(): Promise<Socket> {
  return new Promise((resolveSocket) => {
    const caller = createSocket('udp4');
    caller.on('message', (buf) => {
      const msg = buf.toString('utf8');
      const status = Number(/^SIP\/2\.0 (\d{3})/.exec(msg)?.[1] ?? 0);
      if (status < 300) return;
      const via = header(msg, 'Via');
      const ack = [
        `ACK sip:svc@${PROXY.host}:${PROXY.port} SIP/2.0`,
        via,
        header(msg, 'From'),
        header(msg, 'To'),
        header(msg, 'Call-ID'),
        header(msg, 'CSeq').replace(/INVITE/i, 'ACK'),
        'Max-Forwards: 70',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      caller.send(ack, PROXY.port, PROXY.host);
    });
    caller.bind(0, '127.0.0.1', () => resolveSocket(caller));
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? Number.NaN;
}

const round = (v: number) => Math.round(v * 1000) / 1000;

export async function run(): Promise<{ name: string; value: number; unit: string }[]> {
  await promisify(execFile)('bash', [join(REPO, 'scripts/services/kamailio.sh'), 'start'], { timeout: 120_000 });
  const landed = new Map<string, (port: number) => void>();
  const backends = await Promise.all(PORTS.map((p) => startBackend(p, (port, callId) => landed.get(callId)?.(port))));
  const caller = await startCaller();
  const dispatcher = new KamailioDispatcher();
  const uri = `sip:127.0.0.1:${DRAINED}`;
  const drainMs: number[] = [];
  const activateMs: number[] = [];
  let probes = 0;
  let misrouted = 0;
  try {
    for (const p of PORTS) await dispatcher.activate(SET_ID, `sip:127.0.0.1:${p}`);
    const started = performance.now();
    for (let n = 0; n < CYCLES && performance.now() - started < BUDGET_MS; n++) {
      const t0 = performance.now();
      await dispatcher.drain(SET_ID, uri);
      const applied = (await dispatcher.list()).find((d) => d.setId === SET_ID && d.uri === uri);
      const t1 = performance.now();
      if (applied?.state !== 'disabled') throw new Error(`cycle ${n}: drain returned but ${uri} is ${applied?.flags}`);
      drainMs.push(t1 - t0);
      // Two probes: round-robin over the two remaining backends, so one alone could miss the drained one by luck.
      for (let k = 0; k < 2; k++) {
        probes++;
        if ((await probeInvite(caller, probes, landed)) === DRAINED) misrouted++;
      }
      const t2 = performance.now();
      await dispatcher.activate(SET_ID, uri);
      activateMs.push(performance.now() - t2);
    }
  } finally {
    await dispatcher.activate(SET_ID, uri).catch(() => undefined);
    await dispatcher.close();
    for (const s of [...backends, caller]) s.close();
  }
  drainMs.sort((a, b) => a - b);
  activateMs.sort((a, b) => a - b);
  return [
    { name: 'drain.decision_to_applied.ms_p99', value: round(percentile(drainMs, 99)), unit: 'ms' },
    { name: 'drain.decision_to_applied.ms_p50', value: round(percentile(drainMs, 50)), unit: 'ms' },
    { name: 'drain.activate.ms_p99', value: round(percentile(activateMs, 99)), unit: 'ms' },
    { name: 'drain.cycles', value: drainMs.length, unit: 'count' },
    { name: 'drain.probe_invites_to_drained_node', value: misrouted, unit: 'count' },
    { name: 'drain.probe_invites', value: probes, unit: 'count' },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then(
    (results) => {
      for (const r of results) console.log(`${r.name} ${r.value} ${r.unit}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
