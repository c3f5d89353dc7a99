/**
 * Recorded telemetry on disk: JSONL (one TelemetrySample per line) or CSV (`ts,nodeId,metric,value[,source]`),
 * gzipped or not (told by the magic bytes, not the name). Reading streams line by line; a bad line is counted and the
 * first few are kept with their line numbers, and a truncated gzip ends the read with a note, never a crash.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { errorMessage, ForesightError } from '../errors.js';
import { isMetricName, TELEMETRY_SOURCES, type TelemetrySample, type TelemetrySource } from '../messages.js';

export type TelemetryFormat = 'jsonl' | 'csv';

const SOURCES: readonly TelemetrySource[] = TELEMETRY_SOURCES;
/** Lines longer than this are bad lines, not memory hogs. */
const MAX_LINE_CHARS = 64 * 1024;

export interface BadLine {
  /** 1-based line number in the (decompressed) file. */
  line: number;
  reason: string;
}

export interface ReadStats {
  /** Lines read, blank lines and the CSV header included. */
  lines: number;
  samples: number;
  badLines: number;
  /** The first `keepBadLines` bad lines. */
  firstBadLines: BadLine[];
  format: TelemetryFormat | null;
  gzip: boolean;
  /** Set when the file ended abnormally (e.g. a truncated gzip); what came before was read. */
  truncated: string | null;
}

export interface ReadOptions {
  /** Forces a format; by default the first non-blank line decides (`{` means JSONL). */
  format?: TelemetryFormat;
  /** Samples per yielded batch. Default 4096. */
  batchSize?: number;
  /** Bad lines kept with their numbers. Default 10. */
  keepBadLines?: number;
  /** Source given to CSV rows without one. Default `sim`. */
  defaultSource?: TelemetrySource;
}

/** Timestamps: epoch ms as a number, or an ISO 8601 string. */
function parseTs(raw: unknown): number | null {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : null;
  if (typeof raw !== 'string' || raw.trim() === '') return null;
  const text = raw.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

type Parsed = TelemetrySample | string;

/** A sample from loosely typed fields, or the reason it is not one. */
export function toSample(
  nodeId: unknown,
  tsRaw: unknown,
  metric: unknown,
  valueRaw: unknown,
  sourceRaw: unknown,
  defaultSource: TelemetrySource,
): Parsed {
  if (typeof nodeId !== 'string' || nodeId.trim() === '') return 'nodeId missing or empty';
  const ts = parseTs(tsRaw);
  if (ts === null) return `ts ${JSON.stringify(tsRaw)} is not epoch ms or ISO 8601`;
  if (typeof metric !== 'string' || !isMetricName(metric)) return `unknown metric ${JSON.stringify(metric)}`;
  const value = typeof valueRaw === 'string' && valueRaw.trim() !== '' ? Number(valueRaw) : valueRaw;
  if (typeof value !== 'number' || !Number.isFinite(value)) return `value ${JSON.stringify(valueRaw)} is not finite`;
  let source = defaultSource;
  if (sourceRaw !== undefined && sourceRaw !== null && sourceRaw !== '') {
    if (typeof sourceRaw !== 'string' || !SOURCES.includes(sourceRaw as TelemetrySource))
      return `unknown source ${JSON.stringify(sourceRaw)}`;
    source = sourceRaw as TelemetrySource;
  }
  return { nodeId: nodeId.trim(), ts, metric, value, source };
}

export function parseJsonLine(line: string, defaultSource: TelemetrySource = 'sim'): Parsed {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return 'not valid JSON';
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return 'not a JSON object';
  const o = obj as Record<string, unknown>;
  return toSample(o.nodeId, o.ts, o.metric, o.value, o.source, defaultSource);
}

/** Column positions of a CSV file: from its header, or the documented default order. */
export interface CsvColumns {
  ts: number;
  nodeId: number;
  metric: number;
  value: number;
  source: number;
}

export const DEFAULT_CSV_COLUMNS: CsvColumns = { ts: 0, nodeId: 1, metric: 2, value: 3, source: 4 };

const HEADER_ALIASES: Record<string, keyof CsvColumns> = {
  ts: 'ts',
  timestamp: 'ts',
  time: 'ts',
  nodeid: 'nodeId',
  node_id: 'nodeId',
  node: 'nodeId',
  metric: 'metric',
  value: 'value',
  source: 'source',
};

function splitCsv(line: string): string[] {
  return line.split(',').map((f) => {
    const t = f.trim();
    return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
  });
}

/** Columns named by a header line, or null when the line is not a header (its first field is a time). */
export function parseCsvHeader(line: string): CsvColumns | string | null {
  const fields = splitCsv(line).map((f) => f.toLowerCase());
  if (fields.length === 0 || parseTs(fields[0]) !== null) return null;
  const cols: Partial<CsvColumns> = { source: -1 };
  fields.forEach((f, i) => {
    const key = HEADER_ALIASES[f];
    if (key) cols[key] = i;
  });
  for (const k of ['ts', 'nodeId', 'metric', 'value'] as const) {
    if (cols[k] === undefined) return `header lacks a ${k} column (want ts,nodeId,metric,value[,source])`;
  }
  return cols as CsvColumns;
}

export function parseCsvLine(line: string, cols: CsvColumns, defaultSource: TelemetrySource = 'sim'): Parsed {
  const f = splitCsv(line);
  const needed = Math.max(cols.ts, cols.nodeId, cols.metric, cols.value) + 1;
  if (f.length < needed) return `expected at least ${needed} columns, got ${f.length}`;
  return toSample(
    f[cols.nodeId],
    f[cols.ts],
    f[cols.metric],
    f[cols.value],
    cols.source >= 0 ? f[cols.source] : undefined,
    defaultSource,
  );
}

async function isGzip(path: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new ForesightError('FORESIGHT_ERR_INPUT', `cannot open ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await handle.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * Streams a recording as batches of samples. `stats` is filled as reading goes and is final when the iteration ends.
 * Throws only when the file cannot be opened (FORESIGHT_ERR_INPUT); everything inside the file is reported.
 */
export async function* readTelemetry(
  path: string,
  stats: ReadStats = newReadStats(),
  options: ReadOptions = {},
): AsyncGenerator<TelemetrySample[]> {
  const gzip = await isGzip(path);
  stats.gzip = gzip;
  const file = createReadStream(path);
  // Errors (a truncated gzip, an I/O error) end the text stream cleanly; the reader notes them in stats.truncated.
  const text = new PassThrough();
  let streamError: unknown = null;
  const stop = (err: unknown) => {
    if (streamError === null) streamError = err;
    text.end();
  };
  file.on('error', stop);
  if (gzip) {
    const gunzip = createGunzip();
    gunzip.on('error', stop);
    file.pipe(gunzip).pipe(text);
  } else {
    file.pipe(text);
  }
  const input: Readable = text;
  yield* readLines(input, stats, options, () => streamError);
}

/** Same as readTelemetry, from any text stream (tests, stdin). */
export async function* readTelemetryStream(
  input: Readable,
  stats: ReadStats = newReadStats(),
  options: ReadOptions = {},
): AsyncGenerator<TelemetrySample[]> {
  let streamError: unknown = null;
  input.on('error', (err) => {
    streamError = err;
  });
  yield* readLines(input, stats, options, () => streamError);
}

export function newReadStats(): ReadStats {
  return { lines: 0, samples: 0, badLines: 0, firstBadLines: [], format: null, gzip: false, truncated: null };
}

async function* readLines(
  input: Readable,
  stats: ReadStats,
  options: ReadOptions,
  streamError: () => unknown,
): AsyncGenerator<TelemetrySample[]> {
  const batchSize = options.batchSize ?? 4096;
  const keep = options.keepBadLines ?? 10;
  const defaultSource = options.defaultSource ?? 'sim';
  let format: TelemetryFormat | null = options.format ?? null;
  let cols: CsvColumns | null = null;
  let batch: TelemetrySample[] = [];
  const bad = (line: number, reason: string) => {
    stats.badLines++;
    if (stats.firstBadLines.length < keep) stats.firstBadLines.push({ line, reason });
  };
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const raw of lines) {
      const n = ++stats.lines;
      if (raw.length > MAX_LINE_CHARS) {
        bad(n, `line longer than ${MAX_LINE_CHARS} characters`);
        continue;
      }
      const line = raw.charCodeAt(0) === 0xfeff ? raw.slice(1).trim() : raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      if (format === null) format = line.startsWith('{') ? 'jsonl' : 'csv';
      stats.format = format;
      let parsed: Parsed;
      if (format === 'jsonl') {
        parsed = parseJsonLine(line, defaultSource);
      } else {
        if (cols === null) {
          const header = parseCsvHeader(line);
          if (typeof header === 'string') {
            bad(n, header);
            cols = DEFAULT_CSV_COLUMNS;
            continue;
          }
          cols = header ?? DEFAULT_CSV_COLUMNS;
          if (header !== null) continue;
        }
        parsed = parseCsvLine(line, cols, defaultSource);
      }
      if (typeof parsed === 'string') {
        bad(n, parsed);
        continue;
      }
      stats.samples++;
      batch.push(parsed);
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
  } catch (err) {
    stats.truncated = errorMessage(err);
  }
  const err = streamError();
  if (err !== null && stats.truncated === null) stats.truncated = errorMessage(err);
  if (batch.length > 0) yield batch;
}

/** Writes samples as JSONL, gzipped when the path ends in `.gz`. Values are rounded to keep files small. */
export class TelemetryWriter {
  private readonly out: Writable;
  private readonly file: Writable;
  private readonly digits: number;
  samples = 0;

  constructor(path: string, options: { decimals?: number } = {}) {
    this.file = createWriteStream(path);
    this.digits = 10 ** (options.decimals ?? 3);
    if (path.endsWith('.gz')) {
      const gz = createGzip();
      gz.pipe(this.file);
      this.out = gz;
    } else {
      this.out = this.file;
    }
  }

  /** Appends samples; waits when the stream is full so memory stays flat. */
  async write(samples: readonly TelemetrySample[]): Promise<void> {
    if (samples.length === 0) return;
    let chunk = '';
    for (const s of samples) {
      const value = Math.round(s.value * this.digits) / this.digits;
      chunk += `{"ts":${s.ts},"nodeId":${JSON.stringify(s.nodeId)},"metric":"${s.metric}","value":${value},"source":"${s.source}"}\n`;
    }
    this.samples += samples.length;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
  }

  async close(): Promise<void> {
    const finished = once(this.file, 'finish');
    this.out.end();
    await finished;
  }
}
