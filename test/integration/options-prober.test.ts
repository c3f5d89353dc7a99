/**
 * The OPTIONS prober against a real SIP peer: SIPp as a UAS answering OPTIONS (fixtures/sipp/uas_options.xml) on a
 * loopback port, with the fault-injecting UDP relay (helpers/udp-relay.ts) between prober and SIPp. Phases, one run:
 * no fault, 35 % loss (prober -> node) set mid-run, 300 ms added delay, relay closed.
 *
 * Load: one node probed every 20 ms (50 OPTIONS/s) for about 25 s; SIPp gets `-timeout` so it stops by itself.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OptionsProber, type ProbeOutcome } from '../../src/ingest/probe/options-prober.js';
import type { TelemetrySample } from '../../src/messages.js';
import { type SippRun, startUas } from '../helpers/sipp.js';
import { UdpRelay } from '../helpers/udp-relay.js';

const INTERVAL_MS = 20;
const TIMEOUT_MS = 1000;
/** Uncommon ports, away from the shared Kamailio test stack (5060-5174, 9060). */
const SIPP_PORTS = [25081, 25083, 25085, 25087, 25089];

let dir: string;
let sipp: SippRun;
let relay: UdpRelay;
let prober: OptionsProber;
const outcomes: ProbeOutcome[] = [];
const samples: TelemetrySample[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
}

/** Outcomes of the probes sent in [from, to) (clock ms), once every one of them has ended. */
async function probesSentBetween(from: number, to: number): Promise<ProbeOutcome[]> {
  await sleep(Math.max(0, to + TIMEOUT_MS + 200 - Date.now()));
  return outcomes.filter((o) => o.sentAt >= from && o.sentAt < to);
}

/** Runs the prober for `ms` and returns the outcomes of the probes sent meanwhile. */
async function phase(ms: number): Promise<ProbeOutcome[]> {
  const from = Date.now();
  await sleep(ms);
  return probesSentBetween(from, Date.now());
}

beforeAll(async () => {
  try {
    execFileSync('sipp', ['-v'], { stdio: 'ignore' });
  } catch (err) {
    // SIPp exits 99 on -v; only a missing binary throws ENOENT.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('sipp not installed: run scripts/services/kamailio.sh (apt_ensure sip-tester)');
    }
  }
  dir = mkdtempSync(join(tmpdir(), 'foresight-probe-'));
  let port: number | undefined;
  for (const p of SIPP_PORTS) {
    if (await udpPortFree(p)) {
      port = p;
      break;
    }
  }
  if (port === undefined) throw new Error(`no free UDP port among ${SIPP_PORTS.join(', ')}`);
  sipp = await startUas({ port, dir, scenario: 'uas_options.xml', extraArgs: ['-timeout', '120s'] });
  relay = await UdpRelay.start(0, '127.0.0.1', port, { seed: 20_250 });
  prober = new OptionsProber({
    nodes: { ast9: `sip:127.0.0.1:${relay.port}` },
    sink: (s) => {
      samples.push(...s);
    },
    intervalMs: INTERVAL_MS,
    timeoutMs: TIMEOUT_MS,
    onOutcome: (o) => outcomes.push(o),
  });
  await prober.start();
});

afterAll(async () => {
  await prober?.stop();
  await relay?.close();
  await sipp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('OPTIONS prober through a fault-injecting relay to SIPp', () => {
  let baselineRtt = Number.NaN;

  it('without faults: every probe answered 200, RTT small', async () => {
    await sleep(300); // SIPp's first replies
    const got = await phase(3000);
    const rtts = got.map((o) => o.rttMs ?? Number.NaN);
    baselineRtt = median(rtts);
    console.log(
      `baseline: ${got.length} probes, lost ${got.filter((o) => !o.answered).length}, median RTT ${baselineRtt.toFixed(2)} ms, max ${Math.max(...rtts).toFixed(2)} ms`,
    );
    expect(got.length).toBeGreaterThan(100);
    expect(got.every((o) => o.answered && o.status === 200)).toBe(true);
    expect(baselineRtt).toBeLessThan(50);
  });

  it('with 35 % loss set mid-run (prober -> node), about 35 % of the probes are lost', async () => {
    relay.setLoss(0.35, 'forward');
    const lostBefore = prober.status()[0]!.lost;
    const got = await phase(8000);
    relay.setLoss(0);
    const lost = got.filter((o) => !o.answered).length;
    const share = lost / got.length;
    console.log(`loss 0.35: ${got.length} probes, ${lost} lost, share ${(share * 100).toFixed(1)} %`);
    // ~400 probes: the binomial sd is 2.4 points, so +-8 points is beyond 3 sd.
    expect(got.length).toBeGreaterThan(250);
    expect(share).toBeGreaterThan(0.27);
    expect(share).toBeLessThan(0.43);
    expect(got.filter((o) => o.answered).every((o) => o.status === 200)).toBe(true);
    // The emitted counters agree with the per-probe outcomes.
    await sleep(100);
    expect(prober.status()[0]!.lost - lostBefore).toBeGreaterThanOrEqual(lost);
    const emittedLost = samples.filter((s) => s.metric === 'probe.options_lost').reduce((a, s) => a + s.value, 0);
    expect(emittedLost).toBe(prober.status()[0]!.lost);
  });

  it('with 300 ms added delay, the RTT rises by about 300 ms and nothing is lost', async () => {
    relay.setDelayMs(300, 'forward');
    await sleep(500);
    const got = await phase(3000);
    relay.setDelayMs(0);
    const rise = median(got.map((o) => o.rttMs ?? Number.NaN)) - baselineRtt;
    console.log(`delay 300 ms: ${got.length} probes, median RTT rise ${rise.toFixed(1)} ms`);
    expect(got.every((o) => o.answered)).toBe(true);
    expect(rise).toBeGreaterThan(290);
    expect(rise).toBeLessThan(380);
    const rttSamples = samples.filter((s) => s.metric === 'probe.options_rtt_ms' && s.value > 290);
    expect(rttSamples.length).toBeGreaterThanOrEqual(got.length);
    expect(rttSamples.every((s) => s.source === 'probe' && s.nodeId === 'ast9')).toBe(true);
  });

  it('with the relay closed, every probe is lost', async () => {
    await sleep(600); // delayed datagrams of the previous phase drain
    const before = relay.stats();
    await relay.close();
    const got = await phase(3000);
    console.log(
      `relay closed: ${got.length} probes, ${got.filter((o) => !o.answered).length} lost; relay before close ${JSON.stringify(before)}`,
    );
    expect(got.length).toBeGreaterThan(100);
    expect(got.every((o) => !o.answered)).toBe(true);
    expect(prober.status()[0]).toMatchObject({ lastStatus: 200 });
    expect(prober.status()[0]!.consecutiveLost).toBeGreaterThanOrEqual(got.length);
    expect(prober.health()[0]).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^last 200 in .* ms, \d+ lost since$/),
    });
    // Nothing malformed came back from SIPp at any point.
    expect(prober.stats().rejected).toMatchObject({ unparsable: 0, not_a_response: 0, unmatched: 0 });
  });
});
