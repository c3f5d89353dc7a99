import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ForesightError } from '../../src/errors.js';
import { formatRecord, parseRecord, RecordAssembler } from '../../src/models/csv/rfc4180.js';
import { OUTPUT_COLUMNS, scoreCsvFile, scoreCsvText, scoreRows } from '../../src/models/csv/score.js';
import { parseTimestamp } from '../../src/models/csv/table.js';
import { SlidingQuantiles } from '../../src/models/scorers/sliding-quantiles.js';

const FIXTURES = path.join(import.meta.dirname, '../fixtures/csv');

interface OutRow {
  fields: string[];
  raw: number | null;
  risk: number | null;
  status: string;
  explanation: string;
}

function recordsOf(output: string): string[][] {
  const records: string[][] = [];
  const asm = new RecordAssembler();
  for (const line of output.replace(/\n$/, '').split('\n')) {
    const r = asm.push(line);
    if (r) records.push(r.fields);
  }
  return records;
}

function rowsOf(output: string): OutRow[] {
  return recordsOf(output)
    .slice(1)
    .map((f) => {
      const [raw, risk, status, explanation] = f.slice(-4);
      return {
        fields: f.slice(0, -4),
        raw: raw === '' ? null : Number(raw),
        risk: risk === '' ? null : Number(risk),
        status: status!,
        explanation: explanation!,
      };
    });
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
  const cell = fc.oneof(
    fc.double({ min: -1e6, max: 1e6, noNaN: true }).map(String),
    fc.integer({ min: 0, max: 5000 }).map(String),
    fc.constantFrom('', 'n/a', '1e3', ' 7 '),
  );
  const row = fc.record({ cpu: cell, mem: cell, ts: fc.integer({ min: 1_600_000_000, max: 1_700_000_000 }) });

  it('maps every row to one output row, its fields unchanged, with a status that says what was judged', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 120 }), fc.nat(), async (rows, cut) => {
        const lines = ['timestamp,cpu,mem', ...rows.map((r) => `${r.ts},${r.cpu},${r.mem}`)];
        const k = 1 + (cut % rows.length);
        const opts = { warmupRows: 5, windowRows: 40 };
        const full = rowsOf((await scoreCsvText(lines.join('\n'), opts)).output);
        const prefix = rowsOf((await scoreCsvText(lines.slice(0, k + 1).join('\n'), opts)).output);
        expect(full).toHaveLength(rows.length);
        // Online: a row's scores depend only on the rows up to it.
        expect(prefix).toEqual(full.slice(0, k));
        full.forEach((out, i) => {
          expect(out.fields).toEqual(parseRecord(lines[i + 1]!));
          const numeric = [rows[i]!.cpu, rows[i]!.mem].some((v) => v.trim() !== '' && Number.isFinite(Number(v)));
          expect(out.status === 'no_values').toBe(!numeric);
          if (out.status === 'scored') {
            expect(out.risk! >= 0 && out.risk! <= 1).toBe(true);
            expect(out.raw! >= 0 && Number.isFinite(out.raw!)).toBe(true);
          } else {
            // Warm-up and rows without values claim nothing: empty, not 0.
            expect(out.raw).toBeNull();
            expect(out.risk).toBeNull();
          }
        });
      }),
      { numRuns: 60 },
    );
  });

  it('keeps one output row per input row, in order, through bad rows, and names their lines', async () => {
    const text = readFileSync(path.join(FIXTURES, 'quoted.csv'), 'utf8');
    const { output, summary } = await scoreCsvText(text, { warmupRows: 3 });
    const records = recordsOf(output);
    expect(records[0]).toEqual(['timestamp', 'cpu', 'mem, MiB', 'note', ...OUTPUT_COLUMNS]);
    const input = recordsOf(text.replace(/\n\n/, '\n'));
    expect(rowsOf(output).map((r) => r.fields)).toEqual(input.slice(1));
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

  it('says warm-up while it learns, then ranks a spike far above the healthy rows', async () => {
    const lines = ['timestamp,value'];
    for (let i = 0; i < 300; i++) lines.push(`${1_700_000_000 + i * 60},${100 + (i % 7)}`);
    lines.push(`${1_700_000_000 + 300 * 60},400`, `${1_700_000_000 + 301 * 60},410`);
    const { output, summary } = await scoreCsvText(lines.join('\n'));
    const out = rowsOf(output);
    expect(out.slice(0, 29).every((r) => r.status === 'warmup')).toBe(true);
    expect(summary.warmupRows).toBeGreaterThanOrEqual(29);
    expect(summary.cadenceMs).toBe(60_000);
    const healthy = out.slice(40, 300);
    expect(Math.max(...healthy.map((r) => r.risk!))).toBeLessThan(0.1);
    expect(out[300]!.raw!).toBeGreaterThan(Math.max(...healthy.map((r) => r.raw!)));
    expect(out[301]!.risk!).toBeGreaterThan(0.8);
    expect(out[301]!.explanation).toMatch(/^value=/);
    expect(summary.atRiskRows).toBe(1);
  });

  it('learns normal from --train and refuses a header with other columns, naming them', async () => {
    const healthy = readFileSync(path.join(FIXTURES, 'healthy.csv'), 'utf8');
    // 10 s rows: evidence must last a minute (the product's persistence) before risk may pass 0.5.
    const late = Array.from({ length: 8 }, (_, i) => `${1704070010 + 10 * i},${5000 + i},45`);
    const input = ['time,mem,cpu', '1704070000,808,45', ...late].join('\n');
    const { output, summary } = await scoreCsvText(input, { trainText: healthy });
    expect(summary.mode).toBe('trained');
    const out = rowsOf(output);
    expect(out[0]!.status).toBe('scored'); // no warm-up with --train
    expect(out[0]!.risk!).toBeLessThan(0.05);
    expect(out[1]!.raw!).toBeGreaterThan(out[0]!.raw! + 10);
    expect(out[1]!.risk).toBeLessThanOrEqual(0.5);
    expect(out[8]!.risk!).toBeGreaterThan(0.8);
    const other = readFileSync(path.join(FIXTURES, 'other-columns.csv'), 'utf8');
    const err = await scoreCsvText(other, { trainText: healthy }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForesightError);
    expect((err as ForesightError).code).toBe('FORESIGHT_ERR_INPUT');
    expect((err as Error).message).toMatch(/missing mem/);
    expect((err as Error).message).toMatch(/disk/);
  });

  it('scores from the first row whatever the dates of the training period (after or before the input)', async () => {
    const healthy = readFileSync(path.join(FIXTURES, 'healthy.csv'), 'utf8');
    // One day before the training file starts.
    const input = ['time,mem,cpu', ...Array.from({ length: 5 }, (_, i) => `${1703980800 + 10 * i},808,45`)].join('\n');
    const out = rowsOf((await scoreCsvText(input, { trainText: healthy })).output);
    expect(out.map((r) => r.status)).toEqual(['scored', 'scored', 'scored', 'scored', 'scored']);
    expect(Math.max(...out.map((r) => r.risk!))).toBeLessThan(0.05);
  });

  it('refuses tfjs without a training file, and an unknown scorer, clearly', async () => {
    const text = 'timestamp,v\n1,1\n2,2\n';
    await expect(scoreCsvText(text, { scorer: 'tfjs' })).rejects.toThrow(/--scorer tfjs needs --train/);
    await expect(scoreCsvText(text, { scorer: 'magic' as 'stat' })).rejects.toThrow(/unknown scorer "magic"/);
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

  it('scores parsed rows (scoreRows, for evaluations) exactly as it scores the file', async () => {
    const lines = ['timestamp,a,b'];
    const rows: Array<{ values: Array<number | null>; ts: number | null }> = [];
    for (let i = 0; i < 500; i++) {
      const a = i === 400 ? 90 : 10 + ((i * 7) % 5);
      const b = i % 50 === 0 ? null : (i * 13) % 11;
      lines.push(`${1_700_000_000 + i * 60},${a},${b ?? ''}`);
      rows.push({ values: [a, b], ts: (1_700_000_000 + i * 60) * 1000 });
    }
    const fromFile = rowsOf((await scoreCsvText(lines.join('\n'))).output);
    const scores = await scoreRows(['a', 'b'], rows);
    expect(scores.map((s) => (s.warmup ? null : (s.rawScore ?? null)))).toEqual(fromFile.map((r) => r.raw));
    expect(scores.map((s) => (s.warmup ? null : s.risk))).toEqual(fromFile.map((r) => r.risk));
  });

  it('reports an empty file and a one-column header clearly', async () => {
    await expect(scoreCsvText('')).rejects.toThrow(/header is required/);
    await expect(scoreCsvText('timestamp\n1\n')).rejects.toThrow(/at least one value column/);
  });
});
