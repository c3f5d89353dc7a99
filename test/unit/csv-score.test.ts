import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ForesightError } from '../../src/errors.js';
import { formatRecord, parseRecord, RecordAssembler } from '../../src/models/csv/rfc4180.js';
import {
  parseTimestamp,
  SCORE_COLUMN,
  SlidingQuantiles,
  scoreCsvFile,
  scoreCsvText,
} from '../../src/models/csv-score.js';

const FIXTURES = path.join(import.meta.dirname, '../fixtures/csv');

function scoresOf(output: string): number[] {
  const records: string[][] = [];
  const asm = new RecordAssembler();
  for (const line of output.replace(/\n$/, '').split('\n')) {
    const r = asm.push(line);
    if (r) records.push(r.fields);
  }
  return records.slice(1).map((f) => Number(f[f.length - 1]));
}

describe('RFC 4180 reader', () => {
  const field = fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', ' ', '1', 'é'), maxLength: 8 });
  it('parses what it formats, quoted fields and embedded newlines included', () => {
    fc.assert(
      fc.property(fc.array(field, { minLength: 1, maxLength: 6 }), (fields) => {
        const text = formatRecord(fields);
        const asm = new RecordAssembler();
        let rec = null;
        for (const line of text.split('\n')) rec = asm.push(line) ?? rec;
        expect(rec?.fields).toEqual(fields);
        expect(rec?.text).toBe(text);
      }),
    );
  });
  it('keeps doubled quotes and commas inside quotes', () => {
    expect(parseRecord('a,"b, c","d ""e"""')).toEqual(['a', 'b, c', 'd "e"']);
    expect(parseRecord('')).toEqual(['']);
  });
});

describe('SlidingQuantiles', () => {
  it('matches a sort of the last values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 10 }),
        (xs, cap) => {
          const q = new SlidingQuantiles(cap);
          for (const x of xs) q.add(x);
          const last = xs.slice(-cap).sort((a, b) => a - b);
          expect(q.quantile(0)).toBe(last[0]);
          expect(q.quantile(1)).toBe(last[last.length - 1]);
        },
      ),
    );
  });
});

describe('parseTimestamp', () => {
  it('reads ISO 8601 and epoch seconds or milliseconds', () => {
    expect(parseTimestamp('2024-01-01T00:00:00Z')).toBe(Date.UTC(2024, 0, 1));
    expect(parseTimestamp('1704067200')).toBe(Date.UTC(2024, 0, 1));
    expect(parseTimestamp('1704067200000')).toBe(Date.UTC(2024, 0, 1));
    expect(parseTimestamp('yesterday')).toBeNull();
  });
});

describe('csv score', () => {
  const row = fc.record({
    cpu: fc.oneof(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.constantFrom('', 'n/a')),
    mem: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constant('')),
    ts: fc.integer({ min: 1_600_000_000, max: 1_700_000_000 }),
  });

  it('is online: scoring a prefix gives the same scores for that prefix', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 120 }), fc.nat(), async (rows, cut) => {
        const lines = ['timestamp,cpu,mem', ...rows.map((r) => `${r.ts},${r.cpu},${r.mem}`)];
        const k = 1 + (cut % rows.length);
        const opts = { warmupRows: 5, windowRows: 40 };
        const full = scoresOf((await scoreCsvText(lines.join('\n'), opts)).output);
        const prefix = scoresOf((await scoreCsvText(lines.slice(0, k + 1).join('\n'), opts)).output);
        expect(full).toHaveLength(rows.length);
        expect(prefix).toEqual(full.slice(0, k));
        for (const s of full) expect(s >= 0 && s <= 1).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps one output row per input row, in order, through bad rows, and names their lines', async () => {
    const text = readFileSync(path.join(FIXTURES, 'quoted.csv'), 'utf8');
    const { output, summary } = await scoreCsvText(text, { warmupRows: 1 });
    const outLines = output.trimEnd().split('\n');
    expect(outLines[0]).toBe(`timestamp,cpu,"mem, MiB",note,${SCORE_COLUMN}`);
    // Every record is echoed unchanged (the two-line quoted one too), the blank line is dropped.
    const inputRecords = text
      .trimEnd()
      .split('\n')
      .filter((l) => l !== '');
    expect(outLines.slice(1).map((l) => l.replace(/,[0-9.e-]+$/, ''))).toEqual(inputRecords.slice(1));
    expect(summary.rows).toBe(6);
    expect(summary.notes.non_numeric).toBeGreaterThan(0);
    expect(summary.notes.missing_value).toBe(1);
    expect(summary.notes.unordered_timestamp).toBe(1);
    expect(summary.notes.blank_line).toBe(1);
    expect(summary.firstNotes.find((n) => n.kind === 'unordered_timestamp')?.line).toBe(7);
    expect(summary.firstNotes.find((n) => n.kind === 'missing_value')?.line).toBe(4);
  });

  it('fails in strict mode naming the line', async () => {
    const text = 'timestamp,v\n1,1\n2,oops\n';
    await expect(scoreCsvText(text, { strict: true })).rejects.toThrow(/line 3/);
  });

  it('scores a spike far above the healthy rows once normal is learnt', async () => {
    const lines = ['timestamp,value'];
    for (let i = 0; i < 300; i++) lines.push(`${1_700_000_000 + i},${100 + (i % 7)}`);
    lines.push(`${1_700_000_300},400`);
    const scores = scoresOf((await scoreCsvText(lines.join('\n'))).output);
    expect(scores.slice(0, 29).every((s) => s === 0)).toBe(true); // warm-up
    expect(Math.max(...scores.slice(40, 300))).toBeLessThan(0.1);
    expect(scores[300]).toBeGreaterThan(0.99);
  });

  it('learns normal from --train and refuses a header with other columns, naming them', async () => {
    const healthy = readFileSync(path.join(FIXTURES, 'healthy.csv'), 'utf8');
    const input = 'time,mem,cpu\n1704070000,808,45\n1704070010,5000,45\n';
    const { output, summary } = await scoreCsvText(input, { trainText: healthy });
    expect(summary.mode).toBe('trained');
    const scores = scoresOf(output);
    expect(scores[0]).toBeLessThan(0.05); // scored from the first row: no warm-up with --train
    expect(scores[1]).toBeGreaterThan(0.99);
    const other = readFileSync(path.join(FIXTURES, 'other-columns.csv'), 'utf8');
    const err = await scoreCsvText(other, { trainText: healthy }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_INPUT');
    expect((err as Error).message).toMatch(/missing mem/);
    expect((err as Error).message).toMatch(/disk/);
  });

  it('streams files, plain or gzipped (detected by magic bytes)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'csv-score-'));
    const lines = ['timestamp,a,b'];
    for (let i = 0; i < 2000; i++) lines.push(`${1_700_000_000_000 + i * 1000},${i % 13},${(i * 7) % 5}`);
    const text = `${lines.join('\n')}\n`;
    writeFileSync(path.join(dir, 'in.csv'), text);
    writeFileSync(path.join(dir, 'in.data'), gzipSync(text));
    const a = await scoreCsvFile({ input: path.join(dir, 'in.csv'), output: path.join(dir, 'a.csv') });
    const b = await scoreCsvFile({ input: path.join(dir, 'in.data'), output: path.join(dir, 'b.csv') });
    expect(a.rows).toBe(2000);
    expect(b.rows).toBe(2000);
    const outA = readFileSync(path.join(dir, 'a.csv'), 'utf8');
    expect(outA).toBe(readFileSync(path.join(dir, 'b.csv'), 'utf8'));
    expect(outA).toBe((await scoreCsvText(text)).output);
  });

  it('reports an empty file and a one-column header clearly', async () => {
    await expect(scoreCsvText('')).rejects.toThrow(/header is required/);
    await expect(scoreCsvText('timestamp\n1\n')).rejects.toThrow(/at least one value column/);
  });
});
