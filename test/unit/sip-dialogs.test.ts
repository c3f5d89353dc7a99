import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HepCollector } from '../../src/ingest/sip/collector.js';
import { DialogCounter, type DialogCounterOptions } from '../../src/ingest/sip/dialogs.js';
import { parseSipHead } from '../../src/ingest/sip/sip-message.js';
import { type SipPacket, SipTracker } from '../../src/ingest/sip/tracker.js';
import type { TelemetrySample } from '../../src/messages.js';
import { encodeHep } from '../fixtures/hep/encode.js';

const PROXY = 5060;
const NODE = 5071;
const NODES = { ast1: `sip:127.0.0.1:${NODE}` };

/** One SIP message between the proxy and ast1, as the tests describe it. */
interface Msg {
  /** `to` = proxy -> node, `from` = node -> proxy. */
  dir: 'to' | 'from';
  first: string;
  callId: string;
  cseq: string;
  /** Tag of the From header / To header as sent (requests from the node carry the caller's tag in To). */
  fromTag: string;
  toTag?: string;
  extra?: string[];
}

function text(m: Msg): string {
  return [
    m.first,
    `Via: SIP/2.0/UDP 127.0.0.1:${m.dir === 'to' ? PROXY : NODE};branch=z9hG4bK-${m.callId}-${m.cseq.replace(' ', '')}`,
    `From: <sip:a@127.0.0.1>;tag=${m.fromTag}`,
    `To: <sip:b@127.0.0.1>${m.toTag ? `;tag=${m.toTag}` : ''}`,
    `Call-ID: ${m.callId}`,
    `CSeq: ${m.cseq}`,
    ...(m.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

function packet(m: Msg, ts: number): SipPacket {
  const sip = parseSipHead(text(m));
  if (!sip) throw new Error(`test message does not parse: ${m.first}`);
  const [src, dst] = m.dir === 'to' ? [PROXY, NODE] : [NODE, PROXY];
  return { ts, srcIp: '127.0.0.1', srcPort: src, dstIp: '127.0.0.1', dstPort: dst, sip };
}

/** The messages of one call with caller tag a<i> and callee tag b<i>. */
function call(i: number) {
  const c = `call-${i}`;
  const a = `a${i}`;
  const b = `b${i}`;
  return {
    invite: { dir: 'to', first: 'INVITE sip:svc@127.0.0.1 SIP/2.0', callId: c, cseq: '1 INVITE', fromTag: a } as Msg,
    ringing: { dir: 'from', first: 'SIP/2.0 180 Ringing', callId: c, cseq: '1 INVITE', fromTag: a, toTag: b } as Msg,
    ok: (extra?: string[]) =>
      ({ dir: 'from', first: 'SIP/2.0 200 OK', callId: c, cseq: '1 INVITE', fromTag: a, toTag: b, extra }) as Msg,
    ack: { dir: 'to', first: 'ACK sip:b@127.0.0.1 SIP/2.0', callId: c, cseq: '1 ACK', fromTag: a, toTag: b } as Msg,
    reinvite: {
      dir: 'to',
      first: 'INVITE sip:b@127.0.0.1 SIP/2.0',
      callId: c,
      cseq: '2 INVITE',
      fromTag: a,
      toTag: b,
    } as Msg,
    reinviteOk: { dir: 'from', first: 'SIP/2.0 200 OK', callId: c, cseq: '2 INVITE', fromTag: a, toTag: b } as Msg,
    reinvite481: {
      dir: 'from',
      first: 'SIP/2.0 481 Call/Transaction Does Not Exist',
      callId: c,
      cseq: '2 INVITE',
      fromTag: a,
      toTag: b,
    } as Msg,
    // Requests from the node swap the tags: its own tag is in From.
    update: {
      dir: 'from',
      first: 'UPDATE sip:a@127.0.0.1 SIP/2.0',
      callId: c,
      cseq: '1 UPDATE',
      fromTag: b,
      toTag: a,
    } as Msg,
    byeCaller: {
      dir: 'to',
      first: 'BYE sip:b@127.0.0.1 SIP/2.0',
      callId: c,
      cseq: '3 BYE',
      fromTag: a,
      toTag: b,
    } as Msg,
    byeCallerOk: { dir: 'from', first: 'SIP/2.0 200 OK', callId: c, cseq: '3 BYE', fromTag: a, toTag: b } as Msg,
    byeNode: {
      dir: 'from',
      first: 'BYE sip:a@127.0.0.1 SIP/2.0',
      callId: c,
      cseq: '2 BYE',
      fromTag: b,
      toTag: a,
    } as Msg,
    byeNodeOk: { dir: 'to', first: 'SIP/2.0 200 OK', callId: c, cseq: '2 BYE', fromTag: b, toTag: a } as Msg,
    cancel: { dir: 'to', first: 'CANCEL sip:svc@127.0.0.1 SIP/2.0', callId: c, cseq: '1 CANCEL', fromTag: a } as Msg,
    cancelOk: { dir: 'from', first: 'SIP/2.0 200 OK', callId: c, cseq: '1 CANCEL', fromTag: a, toTag: b } as Msg,
    terminated: {
      dir: 'from',
      first: 'SIP/2.0 487 Request Terminated',
      callId: c,
      cseq: '1 INVITE',
      fromTag: a,
      toTag: b,
    } as Msg,
  };
}

const route = (p: SipPacket) => ({
  toNode: p.dstPort === NODE ? 'ast1' : undefined,
  fromNode: p.srcPort === NODE ? 'ast1' : undefined,
});

function counter(o: Partial<DialogCounterOptions> = {}): DialogCounter {
  return new DialogCounter({ nodes: ['ast1'], warmupMs: 10_000, ...o });
}

function feed(dc: DialogCounter, msgs: Msg[], t0 = 1_000_000, step = 10): number {
  let ts = t0;
  for (const m of msgs) {
    const p = packet(m, ts);
    dc.observe(p, route(p));
    ts += step;
  }
  return ts;
}

const active = (dc: DialogCounter, now = 2_000_000) => dc.view(now)[0]!.active;

describe('DialogCounter', () => {
  it('counts a retransmitted 200 OK once, and a 200 retransmitted after the BYE does not reopen the dialog', () => {
    const dc = counter();
    const k = call(1);
    const t = feed(dc, [k.invite, k.ringing, k.ok(), k.ok(), k.ok()]);
    expect(active(dc, t)).toBe(1);
    expect(dc.stats()).toMatchObject({ opened: 1, repeated2xx: 2 });
    const t2 = feed(dc, [k.ack, k.byeCaller, k.byeCallerOk, k.ok()], t);
    expect(active(dc, t2)).toBe(0);
    expect(dc.stats()).toMatchObject({ closed: 1, reopenRefused: 1, active: 0 });
  });

  it('a cancelled INVITE never opens a dialog; a CANCEL that crosses the 200 leaves the call up until its BYE', () => {
    const dc = counter();
    const k = call(2);
    feed(dc, [
      k.invite,
      k.ringing,
      k.cancel,
      k.cancelOk,
      k.terminated,
      { ...k.ack, first: 'ACK sip:svc@127.0.0.1 SIP/2.0' },
    ]);
    expect(active(dc)).toBe(0);
    expect(dc.stats().opened).toBe(0);

    const r = call(3);
    const t = feed(dc, [r.invite, r.cancel, r.ok(), r.cancelOk, r.ack], 1_100_000);
    expect(active(dc, t)).toBe(1);
    feed(dc, [r.byeNode, r.byeNodeOk], t);
    expect(active(dc)).toBe(0);
  });

  it('closes on the answer to a BYE from either side and on a 481 to a re-INVITE; refreshes on in-dialog traffic', () => {
    const dc = counter();
    const [x, y, z] = [call(4), call(5), call(6)];
    feed(dc, [x.invite, x.ok(), y.invite, y.ok(), z.invite, z.ok(), x.update, y.reinvite, y.reinviteOk]);
    expect(active(dc)).toBe(3);
    feed(dc, [x.byeNode, y.byeCaller, z.reinvite, z.reinvite481], 1_200_000);
    // The BYEs are not answered yet: those two calls may still be up where the BYE is headed.
    expect(active(dc)).toBe(2);
    feed(dc, [x.byeNodeOk, y.byeCallerOk], 1_300_000);
    expect(active(dc)).toBe(0);
    expect(dc.stats()).toMatchObject({ closed: 2, closedByError: 1, byeUnanswered: 0 });
  });

  it('keeps counting a call whose BYE is unanswered, and lets it go once the BYE transaction has timed out', () => {
    const dc = counter({ byeTimeoutMs: 32_000 });
    const k = call(13);
    feed(dc, [k.invite, k.ok(), k.ack], 0, 0);
    // The BYE left the proxy (mirrored) and was lost on the path; retransmissions keep the first one's clock.
    feed(dc, [k.byeCaller], 10_000);
    feed(dc, [k.byeCaller], 10_500);
    feed(dc, [k.byeCaller], 41_500);
    dc.expire(42_000);
    expect(active(dc, 42_000)).toBe(1);
    dc.expire(42_001);
    expect(active(dc, 42_001)).toBe(0);
    expect(dc.stats()).toMatchObject({ closed: 0, byeUnanswered: 1, active: 0 });
    // A late answer to that BYE finds it closed: nothing goes negative.
    feed(dc, [k.byeCallerOk], 43_000);
    expect(active(dc, 43_000)).toBe(0);
  });

  it('expires a silent dialog after Session-Expires plus grace, or after the default session timer', () => {
    const dc = counter({ sessionTimerMs: 600_000, sessionGraceMs: 5_000 });
    const [se, plain] = [call(7), call(8)];
    feed(dc, [se.invite, se.ok(['Session-Expires: 90;refresher=uac']), plain.invite, plain.ok()], 0, 0);
    dc.expire(94_000);
    expect(active(dc, 94_000)).toBe(2);
    // A refresh of the timed dialog (its UPDATE) restarts its interval.
    feed(dc, [se.update], 94_000);
    dc.expire(189_000);
    expect(active(dc, 189_000)).toBe(2);
    dc.expire(189_001);
    expect(active(dc, 189_001)).toBe(1);
    dc.expire(600_001);
    expect(active(dc, 600_001)).toBe(0);
    expect(dc.stats().expired).toBe(2);
    expect(dc.view(600_001)[0]!.expired).toBe(2);
  });

  it('says nothing for an unseen node, a lower bound while warming up, the count once trusted, nothing when stale', () => {
    const dc = counter({ warmupMs: 10_000, staleAfterMs: 5_000 });
    const metrics = (now: number) => dc.samples(now).map((s) => `${s.metric}=${s.value}`);
    expect(metrics(0)).toEqual([]);
    const k = call(9);
    feed(dc, [k.invite, k.ok()], 1000, 0);
    expect(dc.view(2000)[0]).toMatchObject({
      state: 'warming_up',
      active: 1,
      observedSince: 1000,
      trustedFrom: 11_000,
    });
    expect(metrics(2000)).toEqual(['sip.dialogs_seen=1']);
    // Keepalives keep the stream alive; after the warm-up the count is complete.
    for (let t = 4000; t <= 12_000; t += 4000) feed(dc, [k.update], t);
    expect(metrics(12_000)).toEqual(['sip.dialogs_seen=1', 'sip.dialogs_active=1']);
    expect(metrics(17_001)).toEqual([]);
    expect(dc.view(17_001)[0]!.state).toBe('stale');
    // Traffic after the gap starts the warm-up again.
    feed(dc, [k.update], 30_000);
    expect(dc.view(30_000)[0]).toMatchObject({ state: 'warming_up', observedSince: 30_000 });
  });

  it('evicts beyond its cap, counts it, and stops trusting the node until a new warm-up', () => {
    const dc = counter({ maxDialogs: 2, warmupMs: 1000 });
    const [a, b, c] = [call(10), call(11), call(12)];
    feed(dc, [a.invite, a.ok(), b.invite, b.ok()], 0, 100);
    expect(dc.view(1500)[0]!.state).toBe('trusted');
    feed(dc, [c.invite, c.ok()], 1500, 0);
    expect(dc.stats()).toMatchObject({ evicted: 1, active: 2 });
    expect(dc.view(1500)[0]).toMatchObject({ state: 'warming_up', active: 2 });
  });

  it('never goes negative and equals the reference count for any interleaving, duplicates included', () => {
    fc.assert(
      fc.property(scenario(), ({ msgs, reference }) => checkDirect(msgs, reference)),
      { numRuns: 300 },
    );
  });

  it('gives the same final count behind the tracker when mirrored packets arrive out of order', () => {
    fc.assert(
      fc.property(
        scenario(),
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 200 }),
        ({ msgs, reference }, jitter) => {
          const dc = counter();
          const tracker = new SipTracker({ nodes: NODES, reorderWindowMs: 500, onPacket: (p, r) => dc.observe(p, r) });
          const pkts = msgs.map((m, i) => packet(m, 1_000_000 + i * 10));
          // Arrival = capture time + a delay below the reorder window: the tracker must restore capture order.
          const arrivals = pkts
            .map((p, i) => ({ p, at: p.ts + (jitter[i % Math.max(1, jitter.length)] ?? 0) }))
            .sort((x, y) => x.at - y.at);
          for (const { p, at } of arrivals) {
            tracker.offer(p, at);
            tracker.flush(at);
          }
          tracker.flush(Number.MAX_SAFE_INTEGER / 2, true);
          expect(dc.view(2_000_000)[0]!.active).toBe(reference[reference.length - 1] ?? 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reaches the HEP collector as sip.dialogs_seen / sip.dialogs_active samples', async () => {
    const emitted: TelemetrySample[] = [];
    let now = 1_000_000;
    const hep = new HepCollector({
      nodes: NODES,
      sink: (s) => {
        emitted.push(...s);
      },
      reorderWindowMs: 0,
      dialogs: { warmupMs: 6000 },
      clock: { now: () => now },
    });
    const k = call(20);
    for (const m of [k.invite, k.ringing, k.ok(), k.ok(), k.ack]) {
      const p = packet(m, now);
      hep.ingest(
        encodeHep({
          srcIp: p.srcIp,
          dstIp: p.dstIp,
          srcPort: p.srcPort,
          dstPort: p.dstPort,
          tsSec: Math.floor(now / 1000),
          tsUsec: (now % 1000) * 1000,
          payload: text(m),
        }),
        now,
      );
      now += 1000;
    }
    await hep.flush();
    const dialogSamples = () => emitted.filter((s) => s.metric.startsWith('sip.dialogs'));
    expect(dialogSamples().map((s) => `${s.metric}=${s.value}`)).toEqual(['sip.dialogs_seen=1']);
    expect(hep.dialogs()[0]).toMatchObject({ nodeId: 'ast1', active: 1, state: 'warming_up' });
    emitted.length = 0;
    now += 1000;
    await hep.flush();
    expect(dialogSamples().map((s) => `${s.metric}=${s.value}:${s.source}`)).toEqual([
      'sip.dialogs_seen=1:sip',
      'sip.dialogs_active=1:sip',
    ]);
    expect(hep.stats().dialogs).toMatchObject({ opened: 1, repeated2xx: 1, active: 1 });
  });
});

/** One step of one call's script, with whether the call is open once it has been sent. */
interface Step {
  msg: Msg;
  open: boolean;
}

/** A call's messages in causal order: answered (with retransmissions, refreshes, an optional BYE) or cancelled. */
function callScript(i: number): fc.Arbitrary<Step[]> {
  const k = call(i);
  const answered = fc
    .record({
      okCopies: fc.integer({ min: 1, max: 3 }),
      refreshes: fc.array(fc.constantFrom(k.update, k.reinvite, k.reinviteOk, k.ack), { maxLength: 4 }),
      bye: fc.constantFrom(null, 'caller' as const, 'node' as const),
      byeCopies: fc.integer({ min: 1, max: 2 }),
      byeAnswered: fc.boolean(),
      lateOk: fc.boolean(),
    })
    .map(({ okCopies, refreshes, bye, byeCopies, byeAnswered, lateOk }) => {
      const steps: Step[] = [
        { msg: k.invite, open: false },
        { msg: k.ringing, open: false },
      ];
      for (let n = 0; n < okCopies; n++) steps.push({ msg: k.ok(), open: true });
      steps.push({ msg: k.ack, open: true });
      for (const r of refreshes) steps.push({ msg: r, open: true });
      if (bye) {
        // Until its BYE is answered the call may still be up where the BYE is headed.
        for (let n = 0; n < byeCopies; n++) steps.push({ msg: bye === 'caller' ? k.byeCaller : k.byeNode, open: true });
        if (byeAnswered) steps.push({ msg: bye === 'caller' ? k.byeCallerOk : k.byeNodeOk, open: false });
        // The callee's 200 retransmitted after the BYE (its ACK was lost): closed stays closed, ending stays ending.
        if (lateOk) steps.push({ msg: k.ok(), open: !byeAnswered });
      }
      return steps;
    });
  const cancelled = fc.constant<Step[]>(
    [k.invite, k.ringing, k.cancel, k.cancelOk, k.terminated].map((msg) => ({ msg, open: false })),
  );
  return fc.oneof({ arbitrary: answered, weight: 4 }, { arbitrary: cancelled, weight: 1 });
}

/** Several calls' scripts merged in a random order that keeps each call's own order; duplicates of any message too. */
function scenario(): fc.Arbitrary<{ msgs: Msg[]; reference: number[] }> {
  return fc
    .integer({ min: 1, max: 6 })
    .chain((n) =>
      fc.tuple(
        fc.tuple(...Array.from({ length: n }, (_, i) => callScript(i))),
        fc.array(fc.nat(n - 1), { minLength: 200, maxLength: 200 }),
        fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
      ),
    )
    .map(([scripts, picks, dups]) => {
      const cursor = scripts.map(() => 0);
      const isOpen = scripts.map(() => false);
      const msgs: Msg[] = [];
      const reference: number[] = [];
      const emit = (s: Step, c: number) => {
        msgs.push(s.msg);
        isOpen[c] = s.open;
        reference.push(isOpen.filter(Boolean).length);
      };
      let k = 0;
      while (cursor.some((c, i) => c < (scripts[i] as Step[]).length)) {
        let c = (picks[k % picks.length] ?? 0) % scripts.length;
        while ((cursor[c] as number) >= (scripts[c] as Step[]).length) c = (c + 1) % scripts.length;
        const step = (scripts[c] as Step[])[cursor[c] as number] as Step;
        cursor[c] = (cursor[c] as number) + 1;
        emit(step, c);
        // A mirrored duplicate of the same message (two capture points, or a retransmission).
        if (dups[k % dups.length]) emit(step, c);
        k++;
      }
      return { msgs, reference };
    });
}

function checkDirect(msgs: Msg[], reference: number[]): void {
  const dc = counter();
  msgs.forEach((m, i) => {
    const p = packet(m, 1_000_000 + i);
    dc.observe(p, route(p));
    const n = dc.view(1_000_000 + i)[0]!.active;
    expect(n).toBeGreaterThanOrEqual(0);
    expect(n).toBe(reference[i]);
  });
  expect(dc.stats().active).toBe(reference[reference.length - 1]);
}
