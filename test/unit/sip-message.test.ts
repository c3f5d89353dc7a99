import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSipHead } from '../../src/ingest/sip/sip-message.js';
import { sipMessage } from '../fixtures/hep/encode.js';

describe('parseSipHead', () => {
  it('extracts the key of a request, with the top Via branch only', () => {
    const s = parseSipHead(
      Buffer.from(
        sipMessage({
          firstLine: 'INVITE sip:svc@127.0.0.1:5071 SIP/2.0',
          callId: 'abc@h',
          cseq: '1 INVITE',
          branch: 'z9hG4bK.1',
        }),
      ),
    );
    expect(s).toEqual({
      firstLine: 'INVITE sip:svc@127.0.0.1:5071 SIP/2.0',
      method: 'INVITE',
      status: null,
      callId: 'abc@h',
      cseq: '1 INVITE',
      cseqMethod: 'INVITE',
      branch: 'z9hG4bK.1',
      fromTag: '1',
      toTag: '',
      sessionExpiresS: null,
    });
  });

  it('reads dialog tags (not a tag inside the URI) and Session-Expires', () => {
    const s = parseSipHead(
      [
        'SIP/2.0 200 OK',
        'v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1',
        'f: "A" <sip:a@127.0.0.1;tag=uri-param>;tag=caller-1',
        't: <sip:b@127.0.0.1>;TAG=callee-9;x=y',
        'i: c1',
        'CSeq: 1 INVITE',
        'x: 90;refresher=uac',
        '',
        '',
      ].join('\r\n'),
    );
    expect(s).toMatchObject({ fromTag: 'caller-1', toTag: 'callee-9', sessionExpiresS: 90 });
    const bare = parseSipHead(
      'BYE sip:a SIP/2.0\r\nFrom: sip:a@h;tag=t1\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nSession-Expires: soon\r\n\r\n',
    );
    expect(bare).toMatchObject({ fromTag: 't1', toTag: '', sessionExpiresS: null });
  });

  it('reads responses and compact header forms', () => {
    const s = parseSipHead(
      sipMessage({
        firstLine: 'SIP/2.0 503 Service Unavailable',
        callId: 'x',
        cseq: '7 OPTIONS',
        branch: 'b1',
        compact: true,
      }),
    );
    expect(s).toMatchObject({ status: 503, method: null, callId: 'x', cseqMethod: 'OPTIONS', branch: 'b1' });
  });

  it('ignores the body and rejects what is not SIP', () => {
    const body = 'SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\n\r\nVia: SIP/2.0/UDP x;branch=body\r\n';
    expect(parseSipHead(body)?.branch).toBe('');
    expect(parseSipHead('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toBeNull();
    expect(parseSipHead('INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n')).toBeNull();
    expect(parseSipHead('')).toBeNull();
  });

  it('never throws on random or truncated input (property)', () => {
    const full = sipMessage({ firstLine: 'BYE sip:x@y SIP/2.0', callId: 'c', cseq: '2 BYE', branch: 'z9' });
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.nat(full.length), (junk, cut) => {
        parseSipHead(junk);
        parseSipHead(Buffer.from(junk, 'utf8'));
        const r = parseSipHead(full.slice(0, cut) + junk);
        if (r) expect(r.firstLine.length).toBeGreaterThan(0);
      }),
      { numRuns: 3000 },
    );
  });
});
