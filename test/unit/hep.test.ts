import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHep, hepTimestampMs } from '../../src/ingest/sip/hep.js';
import { encodeHep, sipMessage } from '../fixtures/hep/encode.js';

const invite = sipMessage({
  firstLine: 'INVITE sip:svc@127.0.0.1:5071 SIP/2.0',
  callId: 'c1',
  cseq: '1 INVITE',
  branch: 'z9hG4bKa',
});

describe('decodeHep', () => {
  it('decodes every chunk siptrace sends (IPv4)', () => {
    const buf = encodeHep({
      srcIp: '127.0.0.1',
      dstIp: '10.1.2.3',
      srcPort: 5160,
      dstPort: 5071,
      tsSec: 1_700_000_000,
      tsUsec: 123_456,
      captureId: 101,
      correlationId: 'corr-1',
      payload: invite,
    });
    const r = decodeHep(buf);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const p = r.packet;
    expect(p).toMatchObject({
      family: 2,
      ipProto: 17,
      srcIp: '127.0.0.1',
      dstIp: '10.1.2.3',
      srcPort: 5160,
      dstPort: 5071,
      tsSec: 1_700_000_000,
      tsUsec: 123_456,
      protoType: 1,
      captureId: 101,
      correlationId: 'corr-1',
    });
    expect(p.payload.toString('latin1')).toBe(invite);
    expect(hepTimestampMs(p)).toBeCloseTo(1_700_000_000_123.456, 3);
  });

  it('decodes IPv6 addresses in RFC 5952 form', () => {
    const r = decodeHep(encodeHep({ srcIp: '::1', dstIp: '2001:db8::5:0:1', srcPort: 1, dstPort: 2, payload: 'x' }));
    expect(r.ok && r.packet.srcIp).toBe('::1');
    expect(r.ok && r.packet.dstIp).toBe('2001:db8::5:0:1');
    expect(r.ok && r.packet.family).toBe(10);
  });

  it('skips vendor chunks and never keeps the auth key', () => {
    const r = decodeHep(
      encodeHep({
        srcIp: '1.2.3.4',
        dstIp: '5.6.7.8',
        srcPort: 1,
        dstPort: 2,
        payload: 'p',
        extra: [
          [0x1234, 1, Buffer.from('vendor')],
          [0, 14, Buffer.from('s3cret')],
        ],
      }),
    );
    expect(r.ok).toBe(true);
    expect(JSON.stringify(r)).not.toContain('s3cret');
  });

  it('rejects short, foreign, truncated and incomplete datagrams with a reason', () => {
    const good = encodeHep({ srcIp: '1.2.3.4', dstIp: '5.6.7.8', srcPort: 1, dstPort: 2, payload: invite });
    expect(decodeHep(Buffer.from('HEP'))).toEqual({ ok: false, reason: 'short' });
    expect(decodeHep(Buffer.from('INVITE sip:x SIP/2.0\r\n'))).toEqual({ ok: false, reason: 'magic' });
    expect(decodeHep(good.subarray(0, good.length - 1))).toEqual({ ok: false, reason: 'truncated' });
    const noPayload = Buffer.from(good);
    // Rewrite the total length so the payload chunk is cut off at a chunk boundary.
    const payloadAt = good.indexOf(Buffer.from([0, 0, 0, 15]));
    noPayload.writeUInt16BE(payloadAt, 4);
    expect(decodeHep(noPayload.subarray(0, payloadAt))).toEqual({ ok: false, reason: 'incomplete' });
    const badLen = Buffer.from(good);
    badLen.writeUInt16BE(3, 6 + 4); // first chunk claims 3 bytes
    expect(decodeHep(badLen)).toEqual({ ok: false, reason: 'bad_chunk' });
  });

  it('round-trips arbitrary packets (property)', () => {
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
    fc.assert(
      fc.property(
        ipv4,
        ipv4,
        fc.nat(65535),
        fc.nat(65535),
        fc.nat(0xffffffff),
        fc.nat(999_999),
        fc.nat(0xffffffff),
        fc.uint8Array({ maxLength: 2000 }),
        (srcIp, dstIp, srcPort, dstPort, tsSec, tsUsec, captureId, payload) => {
          const r = decodeHep(
            encodeHep({ srcIp, dstIp, srcPort, dstPort, tsSec, tsUsec, captureId, payload: Buffer.from(payload) }),
          );
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(r.packet).toMatchObject({ srcIp, dstIp, srcPort, dstPort, tsSec, tsUsec, captureId });
          expect(Buffer.compare(r.packet.payload, Buffer.from(payload))).toBe(0);
        },
      ),
    );
  });

  it('never throws on random bytes or any truncation (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const r = decodeHep(Buffer.from(bytes));
        expect(typeof r.ok).toBe('boolean');
        const withMagic = Buffer.concat([Buffer.from('HEP3'), Buffer.from(bytes)]);
        expect(typeof decodeHep(withMagic).ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
    const good = encodeHep({ srcIp: '1.2.3.4', dstIp: '5.6.7.8', srcPort: 1, dstPort: 2, tsSec: 1, payload: invite });
    for (let n = 0; n < good.length; n++) {
      const r = decodeHep(good.subarray(0, n));
      expect(r.ok).toBe(false);
    }
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.nat(255), (at, byte) => {
        const mutated = Buffer.from(good);
        mutated[at] = byte;
        expect(typeof decodeHep(mutated).ok).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });
});
