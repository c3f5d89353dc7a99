import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ForesightError } from '../../errors.js';
import type { RowWindow } from './metrics.js';

/**
 * Public, real, labelled data for the evaluation: where each set comes from, under which licence, how it was cut,
 * and a loader that turns its CSV and its labelled windows (timestamps) into rows and row ranges.
 * The files live in test/fixtures/public/ (see SOURCES.md there).
 */
export interface PublicSource {
  /** Short name shown in the tables, e.g. `nab/ec2_request_latency_system_failure`. */
  name: string;
  /** CSV under the fixtures directory (`.gz` allowed): a header, a timestamp column first, then numeric columns. */
  file: string;
  /** Labels file under the fixtures directory: a JSON object of key -> [[start, end], ...] (NAB's format). */
  labels: string;
  labelsKey: string;
  /** What the series is, in a few words. */
  what: string;
  origin: string;
  licence: string;
  /** Subsetting or reformatting done when the file was taken, or '' when taken whole. */
  subset: string;
}

const NAB_ORIGIN = 'numenta/NAB (github.com/numenta/NAB), data/realKnownCause and data/realAWSCloudwatch';
const NAB_LICENCE =
  'MIT (NAB LICENSE.txt, commit ea702d75; releases before 2024 were AGPL-3.0); the data files have no licence of their own';

export const PUBLIC_SOURCES: readonly PublicSource[] = [
  {
    name: 'nab/ec2_request_latency_system_failure',
    file: 'nab/ec2_request_latency_system_failure.csv',
    labels: 'nab/combined_windows.json',
    labelsKey: 'realKnownCause/ec2_request_latency_system_failure.csv',
    what: 'AWS CloudWatch request latency of an EC2 server, 5 min, 3 labelled windows (known cause: system failure)',
    origin: `${NAB_ORIGIN}, commit 64c28b32411bac47393acc9f32dd7bf64c2418d6`,
    licence: NAB_LICENCE,
    subset:
      'whole file (4032 rows); values rounded to 3 decimals (the source prints float noise such as 45.751999999999995)',
  },
  {
    name: 'nab/rds_cpu_utilization_cc0c53',
    file: 'nab/rds_cpu_utilization_cc0c53.csv',
    labels: 'nab/combined_windows.json',
    labelsKey: 'realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv',
    what: 'AWS CloudWatch CPU utilisation of an RDS database server, 5 min, 2 labelled windows',
    origin: `${NAB_ORIGIN}, commit ad050ac981abfe48e7a63a8e0bb1cea8a6bbfc20`,
    licence: NAB_LICENCE,
    subset: 'whole file (4032 rows); float noise rounded away (6.4479999999999995 -> 6.448; at most 5 decimals)',
  },
  {
    name: 'nab/ec2_cpu_utilization_5f5533',
    file: 'nab/ec2_cpu_utilization_5f5533.csv',
    labels: 'nab/combined_windows.json',
    labelsKey: 'realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv',
    what: 'AWS CloudWatch CPU utilisation of an EC2 server, 5 min, 2 labelled windows',
    origin: `${NAB_ORIGIN}, commit ad050ac981abfe48e7a63a8e0bb1cea8a6bbfc20`,
    licence: NAB_LICENCE,
    subset: 'whole file (4032 rows); float noise rounded away (48.56800000000001 -> 48.568; at most 4 decimals)',
  },
];

export interface PublicDataset {
  source: PublicSource;
  /** Epoch ms per row, non-decreasing. */
  ts: number[];
  columns: string[];
  /** Row-major values, NaN where a cell was empty or not a number. */
  rows: Float64Array[];
  windows: RowWindow[];
  /** Rows every detector learns in and no metric counts: NAB's probation, min(15 % of rows, 750). */
  evalStart: number;
  /** Median spacing of the timestamps, ms. */
  cadenceMs: number;
}

/** Directory of the fixtures, from the package root. */
export const PUBLIC_FIXTURES = 'test/fixtures/public';

/** "2014-03-07 03:41:00" (NAB, UTC), ISO 8601, or epoch seconds / ms. */
export function parseTimestamp(s: string): number | null {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    return n < 1e11 ? n * 1000 : n;
  }
  const iso = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(t) ? `${t.replace(' ', 'T')}Z` : t;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
}

function readText(path: string): string {
  const buf = readFileSync(path);
  return (buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf).toString('utf8');
}

/** Parses a plain CSV (no quoting) with a header whose first column is the timestamp. Throws naming the bad line. */
export function parseSeriesCsv(text: string, where: string): { ts: number[]; columns: string[]; rows: Float64Array[] } {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  if (header.length < 2)
    throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}: header needs a timestamp and a value column`);
  const columns = header.slice(1);
  const ts: number[] = [];
  const rows: Float64Array[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const cells = line.split(',');
    const t = parseTimestamp(cells[0] ?? '');
    if (t === null) throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}:${i + 1}: bad timestamp ${cells[0]}`);
    if (ts.length > 0 && t < ts[ts.length - 1]!) {
      throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}:${i + 1}: timestamp goes back in time`);
    }
    const row = new Float64Array(columns.length);
    for (let c = 0; c < columns.length; c++) {
      const cell = (cells[c + 1] ?? '').trim();
      row[c] = cell === '' ? Number.NaN : Number(cell);
    }
    ts.push(t);
    rows.push(row);
  }
  if (rows.length === 0) throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}: no rows`);
  return { ts, columns, rows };
}

/**
 * Row ranges of labelled windows given as [start, end] timestamps: from the first row at or after the start to the last
 * row at or before the end. A window holding no row is an error (the labels do not belong to this file).
 */
export function windowsToRows(
  ts: readonly number[],
  windows: readonly [string | number, string | number][],
  where: string,
): RowWindow[] {
  return windows.map(([a, b], k) => {
    const start = typeof a === 'number' ? a : parseTimestamp(a);
    const end = typeof b === 'number' ? b : parseTimestamp(b);
    if (start === null || end === null || end < start) {
      throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}: window ${k} is not a [start, end] pair of times`);
    }
    let first = -1;
    let last = -1;
    for (let i = 0; i < ts.length; i++) {
      if (ts[i]! >= start && ts[i]! <= end) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}: window ${k} holds no row of the file`);
    return { start: first, end: last };
  });
}

/** NAB's probation period: the first min(15 % of the rows, 15 % of 5000) rows. */
export function probationRows(n: number): number {
  return Math.floor(Math.min(0.15 * n, 0.15 * 5000));
}

export function loadPublicDataset(source: PublicSource, root = PUBLIC_FIXTURES): PublicDataset {
  const file = join(root, source.file);
  if (!existsSync(file))
    throw new ForesightError('FORESIGHT_ERR_INPUT', `public data set ${source.name}: ${file} is missing`);
  const { ts, columns, rows } = parseSeriesCsv(readText(file), source.file);
  const labels = JSON.parse(readText(join(root, source.labels))) as Record<string, [string, string][]>;
  const raw = labels[source.labelsKey];
  if (!Array.isArray(raw)) {
    throw new ForesightError('FORESIGHT_ERR_INPUT', `${source.labels}: no windows under ${source.labelsKey}`);
  }
  const gaps = ts
    .slice(1)
    .map((t, i) => t - ts[i]!)
    .filter((d) => d > 0)
    .sort((a, b) => a - b);
  return {
    source,
    ts,
    columns,
    rows,
    windows: windowsToRows(ts, raw, source.labelsKey),
    evalStart: probationRows(rows.length),
    cadenceMs: gaps.length > 0 ? gaps[Math.floor(gaps.length / 2)]! : 60_000,
  };
}
