import dgram from 'node:dgram';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { OptionsProber, type RejectedDatagram } from '../../src/ingest/probe/options-prober.js';
import { silentLogger } from '../../src/log.js';
import type { TelemetrySample } from '../../src/messages.js';
import { createCollectors } from '../../src/pipeline/collectors.js';

/** A loopback UAS answering each OPTIONS with the status its port is given (none = silent), copying the key headers. */
async function fakeUas(
  status: number | null,
): Promise<{ port: number; requests: string[]; close: () => Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  const requests: string[] = [];
  sock.on('message', (buf, rinfo) => {
    const text = buf.toString('latin1');
    requests.push(text);
    if (status === null) return;
    const keep = text
      .split('\r\n')
      .filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l))
      .map((l) => (/^To:/i.test(l) ? `${l};tag=uas` : l));
    const reply = [`SIP/2.0 ${status} Whatever`, ...keep, 'Content-Length: 0', '', ''].join('\r\n');
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, requests, close: () => new Promise((r) => sock.close(() => r())) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('OptionsProber', () => {
  it('sends a well-formed OPTIONS (RFC 3261 8.1.1, rport) from its own socket', async () => {
    const uas = await fakeUas(200);
    cleanups.push(uas.close);
    const prober = new OptionsProber({
      nodes: { ast1: `sip:127.0.0.1:${uas.port}` },
      sink: () => {},
      intervalMs: 10_000,
    });
    await prober.start();
    cleanups.push(() => prober.stop());
    for (let i = 0; i < 50 && uas.requests.length === 0; i++) await sleep(10);
    const req = uas.requests[0] ?? '';
    const { port } = prober.address();
    expect(req.endsWith('\r\n\r\n')).toBe(true);
    const lines = req.split('\r\n');
    expect(lines[0]).toBe(`OPTIONS sip:127.0.0.1:${uas.port} SIP/2.0`);
    expect(lines).toContain('Max-Forwards: 70');
    expect(lines).toContain('Content-Length: 0');
    expect(lines).toContain(`To: <sip:127.0.0.1:${uas.port}>`);
    expect(lines).toContain(`Contact: <sip:foresight@127.0.0.1:${port}>`);
    expect(req).toMatch(new RegExp(`\r\nVia: SIP/2\\.0/UDP 127\\.0\\.0\\.1:${port};rport;branch=z9hG4bK[^;\\s]+\r\n`));
    expect(req).toMatch(/\r\nFrom: <sip:foresight@127\.0\.0\.1>;tag=[0-9a-f]+\r\n/);
    expect(req).toMatch(/\r\nCall-ID: \S+\r\nCSeq: (\d+) OPTIONS\r\n/);
    for (let i = 0; i < 50 && prober.status()[0]?.answered === 0; i++) await sleep(10);
    expect(prober.status()[0]).toMatchObject({ answered: 1, lastStatus: 200, unhealthy: false, lost: 0 });
  });

  it('counts any final reply as answered, a 5xx as unhealthy, silence as lost; emits source probe', async () => {
    const [ok, busy, notFound, silent] = await Promise.all([fakeUas(200), fakeUas(503), fakeUas(404), fakeUas(null)]);
    for (const u of [ok, busy, notFound, silent]) cleanups.push(u.close);
    const samples: TelemetrySample[] = [];
    const prober = new OptionsProber({
      nodes: {
        ok: `sip:127.0.0.1:${ok.port}`,
        busy: `sip:127.0.0.1:${busy.port};transport=udp`,
        nf: `sip:127.0.0.1:${notFound.port}`,
        silent: `sip:127.0.0.1:${silent.port}`,
        tls: 'sips:127.0.0.1:5061',
        tcp: 'sip:127.0.0.1:5062;transport=tcp',
      },
      sink: (s) => {
        samples.push(...s);
      },
      intervalMs: 40,
      timeoutMs: 100,
    });
    await prober.start();
    await sleep(500);
    await prober.stop();
    const by = Object.fromEntries(prober.status().map((s) => [s.nodeId, s]));
    expect(by.ok).toMatchObject({ lastStatus: 200, unhealthy: false, replies5xx: 0, lost: 0 });
    expect(by.busy).toMatchObject({ lastStatus: 503, unhealthy: true, lost: 0 });
    expect(by.busy!.replies5xx).toBe(by.busy!.answered);
    expect(by.nf).toMatchObject({ lastStatus: 404, unhealthy: false, lost: 0 });
    expect(by.silent!.answered).toBe(0);
    expect(by.silent!.lost).toBeGreaterThanOrEqual(by.silent!.sent - 3);
    expect(by.tls).toMatchObject({ unprobeable: 'sips', sent: 0 });
    expect(by.tcp).toMatchObject({ unprobeable: 'transport', sent: 0 });
    const sum = (node: string, metric: string) =>
      samples.filter((s) => s.nodeId === node && s.metric === metric).reduce((a, s) => a + s.value, 0);
    expect(samples.every((s) => s.source === 'probe')).toBe(true);
    expect(sum('ok', 'probe.options_sent')).toBe(by.ok!.sent);
    expect(samples.filter((s) => s.nodeId === 'ok' && s.metric === 'probe.options_rtt_ms')).toHaveLength(
      by.ok!.answered,
    );
    expect(sum('busy', 'probe.options_5xx')).toBe(by.busy!.replies5xx);
    expect(sum('silent', 'probe.options_lost')).toBe(by.silent!.lost);
    expect(samples.some((s) => s.nodeId === 'tls' || s.nodeId === 'tcp')).toBe(false);
    // Stopped now: every line says so; a node's own trouble is in the detail, never in ok (see health()).
    expect(prober.health().every((h) => !h.ok)).toBe(true);
    expect(prober.health().find((h) => h.name === 'probe:busy')?.detail).toMatch(/last 503 \(unhealthy\)/);
    expect(prober.health().find((h) => h.name === 'probe:tls')?.detail).toMatch(/not probed: sips/);
  });

  it('dead-letters garbage, stray requests and unmatched or duplicate replies without crashing', async () => {
    const silent = await fakeUas(null);
    cleanups.push(silent.close);
    const rejected: RejectedDatagram[] = [];
    const prober = new OptionsProber({
      nodes: { n: `sip:127.0.0.1:${silent.port}` },
      sink: () => {},
      intervalMs: 10_000,
      onRejected: (r) => rejected.push(r),
    });
    await prober.start();
    cleanups.push(() => prober.stop());
    for (let i = 0; i < 50 && silent.requests.length === 0; i++) await sleep(10);
    const req = silent.requests[0] ?? '';
    const head = req
      .split('\r\n')
      .filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l))
      .join('\r\n');
    const from = { address: '127.0.0.1', port: silent.port };
    prober.onDatagram(Buffer.from([0, 1, 2, 255, 13, 10]), from);
    prober.onDatagram(Buffer.from('OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n'), from);
    prober.onDatagram(
      Buffer.from(`SIP/2.0 200 OK\r\n${head.replace(/branch=\S+/, 'branch=z9hG4bKother')}\r\n\r\n`),
      from,
    );
    prober.onDatagram(Buffer.from(`SIP/2.0 100 Trying\r\n${head}\r\n\r\n`), from);
    prober.onDatagram(Buffer.from(`SIP/2.0 200 OK\r\n${head}\r\n\r\n`), from);
    prober.onDatagram(Buffer.from(`SIP/2.0 200 OK\r\n${head}\r\n\r\n`), from);
    expect(rejected.map((r) => r.reason)).toEqual(['unparsable', 'not_a_response', 'unmatched', 'duplicate']);
    expect(prober.stats()).toMatchObject({
      provisional: 1,
      rejected: { unparsable: 1, not_a_response: 1, unmatched: 1, duplicate: 1, late: 0 },
    });
    expect(prober.status()[0]).toMatchObject({ answered: 1, lastStatus: 200 });
    expect(rejected[0]?.excerpt).toBe('...\u00ff.\\n');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.string({ maxLength: 300 }), (bytes, s) => {
        prober.onDatagram(Buffer.from(bytes), from);
        prober.onDatagram(Buffer.from(`SIP/2.0 200 OK\r\n${s}\r\n${head}\r\n\r\n`), from);
      }),
      { numRuns: 300 },
    );
    expect(prober.stats().recentRejects.length).toBeLessThanOrEqual(16);
  });
});

describe('probe config', () => {
  it('defaults to on (unset) with 1 s interval, 2 s timeout on 127.0.0.1', () => {
    expect(parseConfig({}).collectors.probe).toEqual({ intervalMs: 1000, timeoutMs: 2000, bindHost: '127.0.0.1' });
  });

  it('refuses a wildcard or a name as bindHost, and out-of-range timings, with the path', () => {
    expect(() => parseConfig({ collectors: { probe: { bindHost: '0.0.0.0' } } })).toThrow(
      /\/collectors\/probe\/bindHost: must be a specific IP address/,
    );
    expect(() => parseConfig({ collectors: { probe: { bindHost: 'localhost' } } })).toThrow(/bindHost/);
    expect(() => parseConfig({ collectors: { probe: { intervalMs: 5 } } })).toThrow(/\/collectors\/probe\/intervalMs/);
    expect(() => parseConfig({ collectors: { probe: { enabled: 'yes' } } })).toThrow(/\/collectors\/probe\/enabled/);
    expect(() => parseConfig({ collectors: { probe: { rate: 1 } } })).toThrow(/\/collectors\/probe/);
  });
});

describe('sidecar wiring', () => {
  const sidecar = (probe: Record<string, unknown> = {}) =>
    parseConfig({
      mode: 'sidecar',
      nodes: [{ id: 'ast1', uri: 'sip:127.0.0.1:5071' }],
      collectors: { probe },
      actions: { dispatcher: { kind: 'simulated' } },
    });

  it('starts a prober by default in sidecar mode, and none when disabled', async () => {
    const on = createCollectors(sidecar(), () => {}, silentLogger());
    expect(on.map((s) => s.name)).toContain('probe');
    const off = createCollectors(sidecar({ enabled: false }), () => {}, silentLogger());
    expect(off.map((s) => s.name)).not.toContain('probe');
  });
});
