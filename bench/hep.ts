/**
 * HEP v3 decode throughput on one core: a mix of Kamailio-like packets (INVITE, 100, 180, 200, OPTIONS).
 * Also reports the SIP head extraction rate and, for comparison, the hep-js package's decapsulate().
 */
import { createRequire } from 'node:module';
import { decodeHep } from '../src/ingest/sip/hep.js';
import { parseSipHead } from '../src/ingest/sip/sip-message.js';
import { encodeHep, sipMessage } from '../test/fixtures/hep/encode.js';

function corpus(): Buffer[] {
  const lines = [
    'INVITE sip:svc@127.0.0.1:5071 SIP/2.0',
    'SIP/2.0 100 trying -- your call is important to us',
    'SIP/2.0 180 Ringing',
    'SIP/2.0 200 OK',
    'OPTIONS sip:127.0.0.1:5072 SIP/2.0',
  ];
  const out: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    const firstLine = lines[i % lines.length] as string;
    const payload = `${sipMessage({ firstLine, callId: `call-${i}@127.0.0.1`, cseq: '1 INVITE', branch: `z9hG4bK${i}` })}${'v=0\r\n'.repeat(40)}`;
    out.push(
      encodeHep({
        srcIp: '127.0.0.1',
        dstIp: '127.0.0.1',
        srcPort: 5160,
        dstPort: 5071 + (i % 3),
        tsSec: 1_700_000_000 + i,
        tsUsec: i,
        captureId: 101,
        payload,
      }),
    );
  }
  return out;
}

function rate(fn: (b: Buffer) => unknown, packets: Buffer[], ms: number): number {
  for (let i = 0; i < 20_000; i++) fn(packets[i % packets.length] as Buffer); // warm-up
  let n = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (const p of packets) fn(p);
    n += packets.length;
    elapsed = performance.now() - t0;
  }
  return Math.round((n / elapsed) * 1000);
}

export async function run(): Promise<{ name: string; value: number; unit: string }[]> {
  const packets = corpus();
  const results = [
    { name: 'hep.decode.packets_per_s', value: rate(decodeHep, packets, 2000), unit: 'packets/s' },
    {
      name: 'hep.decode_and_sip_head.packets_per_s',
      value: rate(
        (b) => {
          const r = decodeHep(b);
          return r.ok ? parseSipHead(r.packet.payload) : null;
        },
        packets,
        2000,
      ),
      unit: 'packets/s',
    },
  ];
  try {
    const hepJs = createRequire(import.meta.url)('hep-js') as { decapsulate(b: Buffer): unknown };
    results.push({
      name: 'hep.decode.hepjs_packets_per_s',
      value: rate((b) => hepJs.decapsulate(b), packets, 2000),
      unit: 'packets/s',
    });
  } catch {
    // hep-js is only a comparison point; its absence is fine.
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(`${r.name} ${r.value} ${r.unit}`);
}
