import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HepCollector } from '../../src/ingest/sip/collector.js';
import { KamailioStatsPoller } from '../../src/ingest/sip/kamailio-stats.js';
import type { TelemetrySample } from '../../src/messages.js';
import {
  PORTS,
  pidOf,
  RPC_URL,
  rpc,
  runCaller,
  sippRetransmissions,
  startBackend,
  startKamailio,
  stop,
  stopAll,
  waitFor,
} from '../fixtures/kamailio-siptrace/harness.js';

const nodes = {
  ast1: 'sip:127.0.0.1:5171',
  ast2: 'sip:127.0.0.1:5172',
  ast3: 'sip:127.0.0.1:5173',
  ast4: 'sip:127.0.0.1:5174',
};
const samples: TelemetrySample[] = [];
const statsSamples: TelemetrySample[] = [];
let collector: HepCollector;
let poller: KamailioStatsPoller;

function sum(list: TelemetrySample[], nodeId: string, metric: string): number {
  return list.filter((s) => s.nodeId === nodeId && s.metric === metric).reduce((a, s) => a + s.value, 0);
}
function values(nodeId: string, metric: string): number[] {
  return samples.filter((s) => s.nodeId === nodeId && s.metric === metric).map((s) => s.value);
}

beforeAll(async () => {
  collector = new HepCollector({
    nodes,
    port: PORTS.hep,
    flushIntervalMs: 500,
    transactionTimeoutMs: 4000,
    sink: (s) => void samples.push(...s),
  });
  await collector.start();
  poller = new KamailioStatsPoller({ url: RPC_URL, nodes, sink: (s) => void statsSamples.push(...s) });
  await startKamailio(PORTS.hep);
  startBackend(5171, 'uas_rr.xml');
  startBackend(5172, 'uas_rr.xml');
  startBackend(5173, 'uas_slow.xml');
  // All three backends must answer pings (flags AP) before the calls, or round robin skips one.
  await waitFor('backends active', async () => {
    const list = JSON.stringify(await rpc('dispatcher.list'));
    return (list.match(/"FLAGS":"AP"/g) ?? []).length >= 3;
  });
  expect(await poller.pollOnce()).not.toBeNull(); // baseline for TIMEOUT deltas
});

afterAll(async () => {
  await collector?.stop();
  await poller?.stop();
  await stopAll();
});

describe('HEP from Kamailio siptrace against SIPp backends', () => {
  it('counts INVITE retransmissions per destination exactly as the backends saw them', async () => {
    expect(await runCaller(9)).toBe(0);
    // Let the last BYE/200 and the mirrored copies arrive, then drain the reorder buffer.
    await new Promise((r) => setTimeout(r, 1500));
    await collector.flush(true);
    const sipp = {
      ast1: sippRetransmissions(pidOf('sipp-5171'), 'uas_rr.xml'),
      ast2: sippRetransmissions(pidOf('sipp-5172'), 'uas_rr.xml'),
      ast3: sippRetransmissions(pidOf('sipp-5173'), 'uas_slow.xml'),
    };
    const hep = {
      ast1: sum(samples, 'ast1', 'sip.retransmissions'),
      ast2: sum(samples, 'ast2', 'sip.retransmissions'),
      ast3: sum(samples, 'ast3', 'sip.retransmissions'),
    };
    console.log('retransmissions per destination: HEP', hep, 'SIPp', sipp);
    // SIPp rewrites its counts file every second (-fd 1); the 1.5 s pause above lets the last row land.
    expect(hep).toEqual(sipp);
    expect(hep.ast3).toBeGreaterThanOrEqual(4); // 3 slow calls, 2 Timer A copies each
    expect(hep.ast1).toBe(0);

    const setup3 = values('ast3', 'sip.invite_setup_ms');
    const setup1 = values('ast1', 'sip.invite_setup_ms');
    console.log('invite setup ms ast1', setup1, 'ast3', setup3);
    expect(setup3.length).toBe(3);
    expect(setup1.length).toBe(3);
    for (const v of setup3) expect(v).toBeGreaterThan(1500);
    for (const v of setup1) expect(v).toBeLessThan(500);
    expect(values('ast2', 'sip.options_rtt_ms').length).toBeGreaterThan(0);
    expect(sum(samples, 'ast1', 'sip.replies_5xx')).toBe(0);
    const st = collector.stats();
    expect(st.rejected).toEqual({ short: 0, magic: 0, truncated: 0, bad_chunk: 0, incomplete: 0 });
    expect(st.notSip).toBe(0);
    // Every call was answered and hung up: each opened one dialog on its backend, and its BYE closed it.
    console.log('dialogs', st.dialogs, collector.dialogs());
    expect(st.dialogs).toMatchObject({ opened: 9, closed: 9, active: 0, untagged2xx: 0, reopenRefused: 0, evicted: 0 });
    // While the calls were up (about two at a time), the emitted lower bound showed them.
    const seen = samples.filter((x) => x.metric === 'sip.dialogs_seen').map((x) => x.value);
    console.log('sip.dialogs_seen: max', Math.max(...seen), 'of', seen.length, 'samples');
    expect(Math.max(...seen)).toBeGreaterThanOrEqual(1);
    expect(samples.some((x) => x.metric === 'sip.dialogs_active')).toBe(false);
    // Seen for seconds, not for the 30 min warm-up: a count, but only a lower bound. The dead ast4 is observed too:
    // Kamailio's pings toward it are mirrored, so an INVITE toward it would be as well.
    expect(collector.dialogs().map((d) => [d.nodeId, d.active, d.state])).toEqual([
      ['ast1', 0, 'warming_up'],
      ['ast2', 0, 'warming_up'],
      ['ast3', 0, 'warming_up'],
      ['ast4', 0, 'warming_up'],
    ]);
  });

  it('sees unanswered pings to a dead destination as retransmissions, timeouts and dispatcher TIMEOUTs', async () => {
    // Pings go out every 2 s to 5174, where nothing listens: 3 copies each (0, +0.5, +1.5 s) until fr_timer.
    await waitFor(
      'ping timeouts toward ast4',
      async () => {
        await collector.flush(false);
        return sum(samples, 'ast4', 'sip.replies_408') >= 1;
      },
      20_000,
    );
    expect(sum(samples, 'ast4', 'sip.retransmissions')).toBeGreaterThanOrEqual(2);
    await waitFor(
      'dispatcher TIMEOUT delta',
      async () => {
        await poller.pollOnce();
        return sum(statsSamples, 'ast4', 'sip.replies_408') >= 1;
      },
      10_000,
    );
    const snap = poller.lastSnapshot();
    expect(snap?.statistics['core:rcv_requests_invite']).toBeGreaterThanOrEqual(9);
    const ast4 = snap?.targets.find((t) => t.uri === 'sip:127.0.0.1:5174');
    expect(ast4?.latency?.timeouts).toBeGreaterThanOrEqual(1);
    expect(sum(statsSamples, 'ast1', 'sip.replies_408')).toBe(0);
  });

  it('reports an unreachable Kamailio RPC as a failed poll, not a crash', async () => {
    const dead = new KamailioStatsPoller({ url: 'http://127.0.0.1:5189/RPC', nodes, sink: () => {}, timeoutMs: 500 });
    expect(await dead.pollOnce()).toBeNull();
    expect(dead.pollFailures()).toBe(1);
    await stop('sipp-5171');
  });
});
