import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { HepCollector } from '../../src/ingest/sip/collector.js';
import { parseSipHead } from '../../src/ingest/sip/sip-message.js';
import { dispatcherEndpoint, SipTracker } from '../../src/ingest/sip/tracker.js';
import type { TelemetrySample } from '../../src/messages.js';
import { encodeHep, sipMessage } from '../fixtures/hep/encode.js';

const KAM = { ip: '127.0.0.1', port: 5160 };
const nodes = { ast1: 'sip:127.0.0.1:5171', ast2: 'sip:127.0.0.1:5172;transport=udp' };

function pkt(ts: number, from: number, to: number, firstLine: string, callId: string, cseq: string, branch: string) {
  const sip = parseSipHead(sipMessage({ firstLine, callId, cseq, branch }));
  if (!sip) throw new Error('bad fixture');
  return { ts, srcIp: '127.0.0.1', srcPort: from, dstIp: '127.0.0.1', dstPort: to, sip };
}

function total(samples: TelemetrySample[], nodeId: string, metric: string): number {
  return samples.filter((s) => s.nodeId === nodeId && s.metric === metric).reduce((a, s) => a + s.value, 0);
}

/** A slow backend: INVITE sent 3 times (0, +500, +1500 ms), 180 at 1800 ms, 200 at 1810 ms. */
function slowCall(t0: number, to = 5171) {
  const inv = 'INVITE sip:svc@127.0.0.1 SIP/2.0';
  return [
    pkt(t0, KAM.port, to, inv, 'call-1', '1 INVITE', 'z9hG4bKr1'),
    pkt(t0 + 500, KAM.port, to, inv, 'call-1', '1 INVITE', 'z9hG4bKr1'),
    pkt(t0 + 1500, KAM.port, to, inv, 'call-1', '1 INVITE', 'z9hG4bKr1'),
    pkt(t0 + 1800, to, KAM.port, 'SIP/2.0 180 Ringing', 'call-1', '1 INVITE', 'z9hG4bKr1'),
    pkt(t0 + 1810, to, KAM.port, 'SIP/2.0 200 OK', 'call-1', '1 INVITE', 'z9hG4bKr1'),
    // 200 retransmitted by the UAS: not a request retransmission toward the node.
    pkt(t0 + 2310, to, KAM.port, 'SIP/2.0 200 OK', 'call-1', '1 INVITE', 'z9hG4bKr1'),
    pkt(t0 + 2320, KAM.port, to, 'ACK sip:svc@127.0.0.1 SIP/2.0', 'call-1', '1 ACK', 'z9hG4bKack'),
  ];
}

describe('dispatcherEndpoint', () => {
  it('normalises dispatcher URIs to host:port', () => {
    expect(dispatcherEndpoint('sip:127.0.0.1:5071')).toBe('127.0.0.1:5071');
    expect(dispatcherEndpoint('sip:10.0.0.1;transport=udp')).toBe('10.0.0.1:5060');
    expect(dispatcherEndpoint('sips:10.0.0.1')).toBe('10.0.0.1:5061');
    expect(dispatcherEndpoint('sip:[0:0:0:0:0:0:0:1]:5071')).toBe('[::1]:5071');
    expect(() => dispatcherEndpoint('http://x')).toThrow(/not a SIP URI/);
  });
});

describe('SipTracker', () => {
  it('counts retransmissions per destination and measures INVITE setup from the first copy', () => {
    const t = new SipTracker({ nodes });
    for (const p of slowCall(10_000)) t.offer(p, 10_000);
    const out = t.flush(20_000);
    expect(total(out, 'ast1', 'sip.retransmissions')).toBe(2);
    expect(total(out, 'ast2', 'sip.retransmissions')).toBe(0);
    expect(out.filter((s) => s.metric === 'sip.invite_setup_ms').map((s) => [s.nodeId, s.value])).toEqual([
      ['ast1', 1800],
    ]);
  });

  it('gives the same result whatever the arrival order within the reorder window (property)', () => {
    const pkts = [
      ...slowCall(50_000),
      ...slowCall(50_100, 5172).map((p) => ({ ...p, sip: { ...p.sip, callId: 'call-2' } })),
    ];
    fc.assert(
      fc.property(fc.shuffledSubarray(pkts, { minLength: pkts.length, maxLength: pkts.length }), (shuffled) => {
        const t = new SipTracker({ nodes, reorderWindowMs: 5000 });
        for (const p of shuffled) t.offer(p, 50_000);
        const out = t.flush(51_000, true);
        expect(total(out, 'ast1', 'sip.retransmissions')).toBe(2);
        expect(total(out, 'ast2', 'sip.retransmissions')).toBe(2);
        expect(total(out, 'ast1', 'sip.invite_setup_ms')).toBe(1800);
        expect(total(out, 'ast2', 'sip.invite_setup_ms')).toBe(1800);
      }),
    );
  });

  it('counts 5xx and 408 once per transaction, unanswered requests as timeouts, and OPTIONS RTT', () => {
    const t = new SipTracker({ nodes, reorderWindowMs: 0 });
    const opt = 'OPTIONS sip:127.0.0.1:5172 SIP/2.0';
    const feed = [
      pkt(1000, KAM.port, 5172, opt, 'p1', '10 OPTIONS', 'b1'),
      pkt(1004, 5172, KAM.port, 'SIP/2.0 200 OK', 'p1', '10 OPTIONS', 'b1'),
      pkt(2000, KAM.port, 5171, 'INVITE sip:a@b SIP/2.0', 'c5', '1 INVITE', 'b2'),
      pkt(2010, 5171, KAM.port, 'SIP/2.0 503 Overloaded', 'c5', '1 INVITE', 'b2'),
      pkt(2510, 5171, KAM.port, 'SIP/2.0 503 Overloaded', 'c5', '1 INVITE', 'b2'),
      pkt(3000, KAM.port, 5171, 'BYE sip:a@b SIP/2.0', 'c6', '2 BYE', 'b3'),
      pkt(3020, 5171, KAM.port, 'SIP/2.0 408 Request Timeout', 'c6', '2 BYE', 'b3'),
      pkt(4000, KAM.port, 5172, opt, 'p2', '11 OPTIONS', 'b4'), // never answered
    ];
    for (const p of feed) t.offer(p, p.ts);
    const first = t.flush(5000);
    expect(total(first, 'ast1', 'sip.replies_5xx')).toBe(1);
    expect(total(first, 'ast1', 'sip.replies_408')).toBe(1);
    expect(total(first, 'ast2', 'sip.replies_408')).toBe(0);
    expect(first.filter((s) => s.metric === 'sip.options_rtt_ms').map((s) => s.value)).toEqual([4]);
    expect(first.filter((s) => s.metric === 'sip.invite_setup_ms').map((s) => s.value)).toEqual([10]);
    const later = t.flush(4000 + 32_001);
    expect(total(later, 'ast2', 'sip.replies_408')).toBe(1);
    expect(t.stats().tracked).toBe(0);
  });

  it('keeps memory bounded under a flood of distinct transactions', () => {
    const t = new SipTracker({ nodes, reorderWindowMs: 0, maxTracked: 1000 });
    for (let i = 0; i < 20_000; i++)
      t.offer(pkt(i, KAM.port, 5171, 'INVITE sip:a@b SIP/2.0', `c${i}`, '1 INVITE', `b${i}`), i);
    t.flush(20_000);
    expect(t.stats().tracked).toBeLessThanOrEqual(2000);
    expect(t.stats().evicted).toBeGreaterThan(0);
  });
});

describe('HepCollector.ingest', () => {
  it('counts garbage and non-SIP datagrams and still measures the good ones', async () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const got: TelemetrySample[] = [];
    const c = new HepCollector({ nodes, sink: (s) => void got.push(...s), clock });
    const base = 1_700_000_000;
    for (const p of slowCall(0)) {
      const ms = p.ts;
      const buf = encodeHep({
        srcIp: p.srcIp,
        dstIp: p.dstIp,
        srcPort: p.srcPort,
        dstPort: p.dstPort,
        tsSec: base + Math.floor(ms / 1000),
        tsUsec: (ms % 1000) * 1000,
        payload: sipMessage({
          firstLine: p.sip.firstLine,
          callId: p.sip.callId,
          cseq: p.sip.cseq,
          branch: p.sip.branch,
        }),
      });
      c.ingest(buf, clock.now());
      c.ingest(buf.subarray(0, buf.length - 3), clock.now());
    }
    c.ingest(Buffer.from('garbage'), clock.now());
    c.ingest(
      encodeHep({ srcIp: '1.1.1.1', dstIp: '2.2.2.2', srcPort: 1, dstPort: 2, payload: 'not sip' }),
      clock.now(),
    );
    await c.flush(true);
    expect(total(got, 'ast1', 'sip.retransmissions')).toBe(2);
    expect(got.every((s) => s.source === 'sip' && Number.isFinite(s.value))).toBe(true);
    const st = c.stats();
    expect(st.rejected.truncated).toBe(7);
    expect(st.rejected.magic).toBe(1);
    expect(st.notSip).toBe(1);
  });
});
