import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { samplesFromEvent } from '../src/ingest/ami/events.js';
import { AmiFrameDecoder } from '../src/ingest/ami/frame.js';

/** Recorded events (Newchannel, Hangup, RTCPReceived, ContactStatus, …) as CRLF wire text. */
function recordedEvents(): string {
  const dir = fileURLToPath(new URL('../test/fixtures/ami/', import.meta.url));
  return ['events-calls', 'events-media', 'events-reload']
    .map((name) => readFileSync(`${dir}${name}.ami`, 'utf8').replace(/\r?\n/g, '\r\n'))
    .join('');
}

/**
 * ami.decode.events_per_s: socket-sized chunks (16 KiB, split anywhere) of recorded events through the decoder and the
 * event → sample mapping, on this one thread (median of up to 25 passes of 20,000 events). Target 200,000.
 */
export async function run(): Promise<{ name: string; value: number; unit: string }[]> {
  const events = recordedEvents();
  const perCopy = events.split('\r\n\r\n').length - 1;
  const copies = 2000;
  const stream = Buffer.from(events.repeat(copies), 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 16384) chunks.push(stream.subarray(i, i + 16384));
  const pass = () => {
    const decoder = new AmiFrameDecoder();
    let n = 0;
    for (const chunk of chunks) {
      for (const frame of decoder.push(chunk)) {
        n++;
        samplesFromEvent(frame, 0, { nodeId: 'ast1' });
      }
    }
    return n;
  };
  pass(); // warm-up
  // Median of per-pass rates: steadier than one long run on a machine shared with other processes.
  const rates: number[] = [];
  const expected = perCopy * copies;
  const deadline = Date.now() + 8000;
  while (rates.length < 25 && Date.now() < deadline) {
    const start = process.hrtime.bigint();
    const frames = pass();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (frames !== expected) throw new Error(`decoded ${frames} frames, expected ${expected}`);
    rates.push(frames / seconds);
  }
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)] ?? 0;
  return [{ name: 'ami.decode.events_per_s', value: Math.round(median), unit: 'events/s' }];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  void run().then((r) => console.log(JSON.stringify(r)));
}
