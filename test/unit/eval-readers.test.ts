import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLabels } from '../../src/eval/labels.js';
import { newReadStats, readTelemetry, readTelemetryStream, TelemetryWriter } from '../../src/eval/telemetry-io.js';
import type { TelemetrySample } from '../../src/messages.js';

const dir = mkdtempSync(join(tmpdir(), 'foresight-readers-'));

async function readAll(path: string) {
  const stats = newReadStats();
  const samples: TelemetrySample[] = [];
  for await (const batch of readTelemetry(path, stats, { batchSize: 3 })) samples.push(...batch);
  return { samples, stats };
}

const SAMPLES: TelemetrySample[] = [
  { nodeId: 'ast1', ts: 1704067201000, metric: 'channels.active', value: 12, source: 'sim' },
  { nodeId: 'ast2', ts: 1704067201000, metric: 'host.memory_rss_mb', value: 412.125, source: 'host' },
  { nodeId: 'ast1', ts: 1704067202000, metric: 'sip.options_rtt_ms', value: 3.5, source: 'sip' },
];

describe('telemetry readers', () => {
  it('reads JSONL plain and gzipped alike, whatever the file name says', async () => {
    const text = `${SAMPLES.map((s) => JSON.stringify(s)).join('\n')}\n`;
    writeFileSync(join(dir, 'a.jsonl'), text);
    writeFileSync(join(dir, 'a.data'), gzipSync(text));
    const plain = await readAll(join(dir, 'a.jsonl'));
    const gz = await readAll(join(dir, 'a.data'));
    expect(plain.samples).toEqual(SAMPLES);
    expect(gz.samples).toEqual(SAMPLES);
    expect(gz.stats.gzip).toBe(true);
    expect(plain.stats).toMatchObject({ format: 'jsonl', badLines: 0, gzip: false });
  });

  it('reads CSV with a header, ISO times, a default source, and reports bad lines by number', async () => {
    const { samples, stats } = await readAll('test/fixtures/replay/sample.csv');
    expect(samples).toEqual([
      { nodeId: 'ast1', ts: 1704067201000, metric: 'channels.active', value: 12, source: 'sim' },
      { nodeId: 'ast1', ts: 1704067202000, metric: 'node.up', value: 1, source: 'sim' },
      { nodeId: 'ast1', ts: 1704067205000, metric: 'host.cpu_pct', value: 37.5, source: 'sim' },
    ]);
    expect(stats.format).toBe('csv');
    expect(stats.badLines).toBe(2);
    expect(stats.firstBadLines.map((b) => b.line)).toEqual([4, 5]);
    expect(stats.firstBadLines[0]!.reason).toMatch(/unknown metric/);
    expect(stats.firstBadLines[1]!.reason).toMatch(/not finite/);
  });

  it('reads headerless CSV in the documented column order', async () => {
    writeFileSync(join(dir, 'b.csv'), '1704067201000,ast3,calls.started,2,ami\n1704067202000,ast3,calls.started,1\n');
    const { samples, stats } = await readAll(join(dir, 'b.csv'));
    expect(samples.map((s) => [s.nodeId, s.value, s.source])).toEqual([
      ['ast3', 2, 'ami'],
      ['ast3', 1, 'sim'],
    ]);
    expect(stats.badLines).toBe(0);
  });

  it('keeps only the first bad lines but counts all of them', async () => {
    const lines = ['{"nodeId":"ast1","ts":1,"metric":"node.up","value":1}'];
    for (let i = 0; i < 25; i++) lines.push('{broken');
    writeFileSync(join(dir, 'c.jsonl'), lines.join('\n'));
    const { samples, stats } = await readAll(join(dir, 'c.jsonl'));
    expect(samples).toHaveLength(1);
    expect(stats.badLines).toBe(25);
    expect(stats.firstBadLines).toHaveLength(10);
    expect(stats.firstBadLines[0]).toEqual({ line: 2, reason: 'not valid JSON' });
  });

  it('ends a truncated gzip with a note and the lines read so far, without throwing', async () => {
    const text = Array.from({ length: 5000 }, (_, i) =>
      JSON.stringify({ nodeId: 'ast1', ts: 1704067200000 + i * 1000, metric: 'channels.active', value: i % 17 }),
    ).join('\n');
    const gz = gzipSync(text);
    writeFileSync(join(dir, 'd.jsonl.gz'), gz.subarray(0, Math.floor(gz.length / 2)));
    const { samples, stats } = await readAll(join(dir, 'd.jsonl.gz'));
    expect(stats.truncated).not.toBeNull();
    expect(samples.length).toBeLessThan(5000);
    expect(samples.length + stats.badLines).toBeLessThanOrEqual(stats.lines);
  });

  it('refuses a missing file with FORESIGHT_ERR_INPUT', async () => {
    await expect(readAll(join(dir, 'missing.jsonl'))).rejects.toMatchObject({ code: 'FORESIGHT_ERR_INPUT' });
  });

  it('round-trips what the writer writes (values rounded to 3 decimals), gzipped', async () => {
    const path = join(dir, 'w.jsonl.gz');
    const writer = new TelemetryWriter(path);
    await writer.write([...SAMPLES, { ...SAMPLES[0]!, value: 1 / 3 }]);
    await writer.close();
    expect(readFileSync(path).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const { samples } = await readAll(path);
    expect(samples).toEqual([...SAMPLES, { ...SAMPLES[0]!, value: 0.333 }]);
  });

  it('property: arbitrary garbage never throws, and every non-blank line is a sample or a bad line', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.constant('{"nodeId":"ast1","ts":5,"metric":"node.up","value":1}'),
            fc.constant('ts,nodeId,metric,value'),
            fc.constant('7,ast1,channels.active,3'),
            fc.json(),
          ),
          { maxLength: 30 },
        ),
        async (lines) => {
          const stats = newReadStats();
          let n = 0;
          for await (const b of readTelemetryStream(Readable.from([lines.join('\n')]), stats)) n += b.length;
          expect(n).toBe(stats.samples);
          expect(stats.samples + stats.badLines).toBeLessThanOrEqual(stats.lines);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('labels', () => {
  it('accepts epoch ms and ISO times and defaults predictable from the mode', () => {
    const labels = parseLabels([
      { nodeId: 'ast1', mode: 'memory_leak', onsetAt: 1000, crashAt: '1970-01-01T00:00:05Z' },
      { nodeId: 'ast2', mode: 'sudden_crash', crashAt: 9000 },
    ]);
    expect(labels).toEqual([
      { nodeId: 'ast1', mode: 'memory_leak', predictable: true, onsetAt: 1000, crashAt: 5000 },
      { nodeId: 'ast2', mode: 'sudden_crash', predictable: false, onsetAt: 9000, crashAt: 9000 },
    ]);
  });

  it('names the bad entry', () => {
    expect(() => parseLabels([{ nodeId: 'a', mode: 'boom', crashAt: 1 }])).toThrow(/\[0\].*mode/);
    expect(() => parseLabels([{ nodeId: 'a', mode: 'memory_leak', onsetAt: 9, crashAt: 1 }])).toThrow(/after crashAt/);
    expect(() => parseLabels({})).toThrow(/array/);
  });
});
