import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { ForesightError } from '../errors.js';
import { openLines } from './csv/input.js';
import { type CsvRecord, RecordAssembler } from './csv/rfc4180.js';

/**
 * `foresight score`: an anomaly score in [0, 1] for every row of a metric CSV (a timestamp column and numeric
 * value columns), online.
 *
 * Model: per column, a robust z = (x - median) / scale, scale = max(IQR / 1.349, 1 % of |median|, 1e-6); the row's
 * evidence is the largest |z| over its columns; score = 1 / (1 + exp(-steepness (evidence - threshold))), rounded to
 * 6 decimals. A row's score depends only on the training file and the rows up to and including it.
 * - Without --train: the median and IQR are those of the column's last `windowRows` learnt values, before the row
 *   itself. A column counts only after `warmupRows` values; rows where no column is warm yet score 0 (warm-up).
 *   A value with |z| above the threshold is not learnt (an anomaly must not become normal at once), except every
 *   `forceLearnEvery`-th such value of the column, so that a lasting level shift is learnt eventually.
 * - With --train: the median and IQR come from the whole healthy file and stay fixed; the threshold is the larger of
 *   `threshold` and the healthy file's 0.999 quantile of row evidence. Its value columns must be the input's (same
 *   names, any order), else an error names the missing and extra columns.
 *
 * Per-row treatment (never a crash, every input row gets exactly one output row, in order):
 * - empty or non-numeric value: that column is ignored for that row (not scored, not learnt); noted.
 * - fewer fields than the header: the missing columns are empty; more fields: the extra ones are ignored; noted.
 * - a row with no usable value: score 0; noted.
 * - timestamp not ISO 8601 nor epoch seconds/milliseconds, duplicate or earlier than the previous row's: the row is
 *   still scored in file order (the score does not use time); noted.
 * - blank lines are not rows: they are dropped from the output; noted.
 * Notes are counted per kind and the first ones are reported with their line numbers. `strict` turns the first
 * note into an error naming the line.
 */
export interface CsvScoreOptions {
  /** Values a column needs before it is scored (online mode). Default 30. */
  warmupRows?: number;
  /** How many recent values form the online baseline. Default 1000. */
  windowRows?: number;
  /** Evidence (robust z) at which the score is 0.5. Default 4. */
  threshold?: number;
  /** Logistic steepness per z unit. Default 1.5. */
  steepness?: number;
  /** See the module comment. Default 20. */
  forceLearnEvery?: number;
  /** Fail on the first row that needs a note. Default false. */
  strict?: boolean;
  /** How many notes are kept with their line. Default 20. */
  maxNotes?: number;
}

export type NoteKind =
  | 'missing_value'
  | 'non_numeric'
  | 'field_count'
  | 'no_values'
  | 'bad_timestamp'
  | 'duplicate_timestamp'
  | 'unordered_timestamp'
  | 'blank_line'
  | 'unclosed_quote';

export interface RowNote {
  line: number;
  kind: NoteKind;
  detail: string;
}

export interface CsvScoreSummary {
  rows: number;
  /** Rows scored 0 because no column was warm yet. */
  warmupRows: number;
  timestampColumn: string;
  valueColumns: string[];
  mode: 'online' | 'trained';
  threshold: number;
  notes: Partial<Record<NoteKind, number>>;
  firstNotes: RowNote[];
}

export const SCORE_COLUMN = 'anomaly_score';
const TIMESTAMP_NAMES = /^(timestamp|time|ts|date|datetime|_time|time_stamp|epoch)$/i;

function inputError(message: string, details: Record<string, unknown> = {}): ForesightError {
  return new ForesightError('FORESIGHT_ERR_INPUT', message, { details });
}

/** Epoch ms of an ISO 8601 date or an epoch in seconds (< 1e11) or milliseconds; null when it is neither. */
export function parseTimestamp(text: string): number | null {
  const t = text.trim();
  if (t === '') return null;
  if (/^-?\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    if (!Number.isFinite(n)) return null;
    return Math.abs(n) < 1e11 ? n * 1000 : n;
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.test(t)) return null;
  const ms = Date.parse(t.replace(' ', 'T'));
  return Number.isFinite(ms) ? ms : null;
}

/** A number, or null for empty text; NaN for text that is not a finite number. */
export function parseValue(text: string): number | null {
  const t = text.trim();
  if (t === '') return null;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return Number.NaN;
  return Number(t);
}

interface Header {
  text: string;
  names: string[];
  tsIndex: number;
  /** Field index of each value column. */
  valueIndex: number[];
  valueNames: string[];
}

function readHeader(rec: CsvRecord, file: string): Header {
  const names = rec.fields.map((f, i) => (i === 0 ? f.replace(/^\uFEFF/, '') : f).trim());
  if (names.length < 2) {
    throw inputError(`${file} line ${rec.line}: the header needs a timestamp column and at least one value column`, {
      line: rec.line,
    });
  }
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n))
      throw inputError(`${file} line ${rec.line}: column "${n}" appears twice in the header`, { line: rec.line });
    seen.add(n);
  }
  let tsIndex = names.findIndex((n) => TIMESTAMP_NAMES.test(n));
  if (tsIndex < 0) tsIndex = 0;
  const valueIndex = names.map((_, i) => i).filter((i) => i !== tsIndex);
  return { text: rec.text, names, tsIndex, valueIndex, valueNames: valueIndex.map((i) => names[i]!) };
}

/** The last `capacity` values, kept sorted as well as in arrival order, for O(1) median and quartiles. */
export class SlidingQuantiles {
  private readonly ring: Float64Array;
  private readonly sorted: Float64Array;
  private head = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.ring = new Float64Array(capacity);
    this.sorted = new Float64Array(capacity);
  }

  add(x: number): void {
    if (this.size === this.capacity) {
      const old = this.ring[this.head]!;
      const at = this.lowerBound(old);
      this.sorted.copyWithin(at, at + 1, this.size);
      this.size--;
    }
    this.ring[this.head] = x;
    this.head = (this.head + 1) % this.capacity;
    const at = this.lowerBound(x);
    this.sorted.copyWithin(at + 1, at, this.size);
    this.sorted[at] = x;
    this.size++;
  }

  quantile(p: number): number {
    if (this.size === 0) return 0;
    const pos = p * (this.size - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(this.size - 1, lo + 1);
    return this.sorted[lo]! + (this.sorted[hi]! - this.sorted[lo]!) * (pos - lo);
  }

  private lowerBound(x: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

interface Baseline {
  median: number;
  scale: number;
}

function baselineOf(q: SlidingQuantiles): Baseline {
  const median = q.quantile(0.5);
  const iqr = q.quantile(0.75) - q.quantile(0.25);
  return { median, scale: Math.max(iqr / 1.349, 0.01 * Math.abs(median), 1e-6) };
}

/** Frozen per-column baselines and threshold learnt from a healthy file. */
export interface TrainedBaseline {
  valueNames: string[];
  baselines: Baseline[];
  threshold: number;
  rows: number;
}

interface ParsedRow {
  values: Array<number | null>;
  ts: number | null;
}

/** Scores records one by one; the same object scores the training file (learn-only) and the input. */
class RowScorer {
  private readonly windows: SlidingQuantiles[];
  private readonly gated: number[];
  private lastTs: number | null = null;
  readonly notes: Partial<Record<NoteKind, number>> = {};
  readonly firstNotes: RowNote[] = [];

  constructor(
    private readonly header: Header,
    private readonly o: Required<CsvScoreOptions>,
    private readonly trained: TrainedBaseline | null,
    private readonly file: string,
    /** For each value column of this file, its index in the trained baseline. */
    private readonly trainedIndex: number[] | null,
  ) {
    this.windows = header.valueIndex.map(() => new SlidingQuantiles(o.windowRows));
    this.gated = header.valueIndex.map(() => 0);
  }

  note(line: number, kind: NoteKind, detail: string): void {
    if (this.o.strict) throw inputError(`${this.file} line ${line}: ${detail}`, { line, kind });
    this.notes[kind] = (this.notes[kind] ?? 0) + 1;
    if (this.firstNotes.length < this.o.maxNotes) this.firstNotes.push({ line, kind, detail });
  }

  parse(rec: CsvRecord): ParsedRow {
    const h = this.header;
    const f = rec.fields;
    if (f.length !== h.names.length) {
      this.note(rec.line, 'field_count', `${f.length} fields, the header has ${h.names.length}`);
    }
    const tsText = f[h.tsIndex] ?? '';
    const ts = parseTimestamp(tsText);
    if (ts === null) {
      this.note(rec.line, 'bad_timestamp', `timestamp "${tsText.slice(0, 40)}" is neither ISO 8601 nor epoch s/ms`);
    } else if (this.lastTs !== null) {
      if (ts === this.lastTs)
        this.note(rec.line, 'duplicate_timestamp', `timestamp ${tsText} repeats the previous row's`);
      else if (ts < this.lastTs)
        this.note(rec.line, 'unordered_timestamp', `timestamp ${tsText} is earlier than the previous row's`);
    }
    if (ts !== null && (this.lastTs === null || ts > this.lastTs)) this.lastTs = ts;
    const values = h.valueIndex.map((fi, j) => {
      const v = parseValue(f[fi] ?? '');
      if (v === null) {
        this.note(rec.line, 'missing_value', `no value for ${h.valueNames[j]}`);
        return null;
      }
      if (Number.isNaN(v)) {
        this.note(rec.line, 'non_numeric', `${h.valueNames[j]} "${(f[fi] ?? '').slice(0, 40)}" is not a number`);
        return null;
      }
      return v;
    });
    return { values, ts };
  }

  /** Largest |z| of the row, or null when no column could be scored (warm-up or no values). */
  evidence(values: ReadonlyArray<number | null>, learn: boolean): number | null {
    let best: number | null = null;
    for (let j = 0; j < values.length; j++) {
      const x = values[j];
      if (x === null || x === undefined) continue;
      let z: number | null = null;
      if (this.trained && this.trainedIndex) {
        const b = this.trained.baselines[this.trainedIndex[j]!]!;
        z = Math.abs(x - b.median) / b.scale;
      } else {
        const w = this.windows[j]!;
        if (w.size >= this.o.warmupRows) {
          const b = baselineOf(w);
          z = Math.abs(x - b.median) / b.scale;
        }
        if (learn) {
          if (z !== null && z > this.o.threshold) {
            this.gated[j]!++;
            if (this.gated[j]! % this.o.forceLearnEvery === 0) w.add(x);
          } else {
            w.add(x);
          }
        }
      }
      if (z !== null && Number.isFinite(z) && (best === null || z > best)) best = z;
    }
    return best;
  }

  score(evidence: number | null, threshold: number): number {
    if (evidence === null) return 0;
    const s = 1 / (1 + Math.exp(-this.o.steepness * (evidence - threshold)));
    return Number.isFinite(s) ? Math.round(s * 1e6) / 1e6 : evidence > threshold ? 1 : 0;
  }
}

function resolveOptions(o: CsvScoreOptions): Required<CsvScoreOptions> {
  const r = {
    warmupRows: o.warmupRows ?? 30,
    windowRows: o.windowRows ?? 1000,
    threshold: o.threshold ?? 4,
    steepness: o.steepness ?? 1.5,
    forceLearnEvery: o.forceLearnEvery ?? 20,
    strict: o.strict ?? false,
    maxNotes: o.maxNotes ?? 20,
  };
  if (!(Number.isInteger(r.warmupRows) && r.warmupRows >= 1)) throw inputError('warmupRows must be an integer >= 1');
  if (!(Number.isInteger(r.windowRows) && r.windowRows >= r.warmupRows))
    throw inputError('windowRows must be an integer >= warmupRows');
  if (!(r.threshold > 0) || !(r.steepness > 0)) throw inputError('threshold and steepness must be positive');
  return r;
}

/** Reads records (header first) from lines; blank lines are skipped and reported to `onBlank`. */
async function* records(
  lines: AsyncIterable<string> | Iterable<string>,
  onBlank: (line: number) => void,
  onUnclosed: (line: number) => void,
) {
  const asm = new RecordAssembler();
  let lineNo = 0;
  let pendingSince = 0;
  for await (const line of lines) {
    lineNo++;
    if (pendingSince === 0 && line.trim() === '') {
      // Keep line numbers right: the assembler counts lines itself.
      asm.push('');
      onBlank(lineNo);
      continue;
    }
    const rec = asm.push(line);
    if (rec === null) {
      if (pendingSince === 0) pendingSince = lineNo;
      continue;
    }
    pendingSince = 0;
    yield rec;
  }
  const last = asm.end();
  if (last) {
    onUnclosed(last.line);
    yield last;
  }
}

/** Learns the frozen baselines from a healthy CSV (lines of text). */
export async function learnBaseline(
  lines: AsyncIterable<string> | Iterable<string>,
  file: string,
  options: CsvScoreOptions = {},
): Promise<TrainedBaseline> {
  const o = resolveOptions(options);
  let header: Header | null = null;
  let parser: RowScorer | null = null;
  const columns: number[][] = [];
  const rows: Array<Array<number | null>> = [];
  for await (const rec of records(
    lines,
    () => {},
    () => {},
  )) {
    if (header === null) {
      header = readHeader(rec, file);
      parser = new RowScorer(header, { ...o, strict: false }, null, file, null);
      for (let j = 0; j < header.valueIndex.length; j++) columns.push([]);
      continue;
    }
    const { values } = parser!.parse(rec);
    values.forEach((v, j) => {
      if (v !== null) columns[j]!.push(v);
    });
    rows.push(values);
  }
  if (header === null) throw inputError(`${file}: empty file, a header is required`);
  const baselines = header.valueNames.map((name, j) => {
    const col = columns[j]!;
    if (col.length < 10)
      throw inputError(
        `${file}: column ${name} has only ${col.length} numeric values; at least 10 are needed to learn normal`,
        { column: name },
      );
    const q = new SlidingQuantiles(col.length);
    for (const v of col) q.add(v);
    return baselineOf(q);
  });
  const evidence: number[] = [];
  for (const values of rows) {
    let best = 0;
    values.forEach((v, j) => {
      if (v === null) return;
      const b = baselines[j]!;
      best = Math.max(best, Math.abs(v - b.median) / b.scale);
    });
    evidence.push(best);
  }
  evidence.sort((a, b) => a - b);
  const q999 =
    evidence.length > 0 ? evidence[Math.min(evidence.length - 1, Math.floor(0.999 * (evidence.length - 1)))]! : 0;
  return { valueNames: header.valueNames, baselines, threshold: Math.max(o.threshold, q999), rows: rows.length };
}

/** Maps the input's value columns onto the trained ones; throws naming the differences. */
function matchColumns(header: Header, trained: TrainedBaseline, file: string, trainFile: string): number[] {
  const missing = trained.valueNames.filter((n) => !header.valueNames.includes(n));
  const extra = header.valueNames.filter((n) => !trained.valueNames.includes(n));
  if (missing.length > 0 || extra.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`);
    if (extra.length > 0) parts.push(`not in the training file: ${extra.join(', ')}`);
    throw inputError(`${file}: header columns differ from ${trainFile} (${parts.join('; ')})`, { missing, extra });
  }
  return header.valueNames.map((n) => trained.valueNames.indexOf(n));
}

export interface ScoreStreamArgs {
  lines: AsyncIterable<string> | Iterable<string>;
  /** Receives each output line (no newline). */
  write: (line: string) => void | Promise<void>;
  file?: string;
  trained?: TrainedBaseline | null;
  trainFile?: string;
  options?: CsvScoreOptions;
}

/** Scores a CSV given as lines; writes the header + anomaly_score, then every row with its score. */
export async function scoreCsvLines(args: ScoreStreamArgs): Promise<CsvScoreSummary> {
  const o = resolveOptions(args.options ?? {});
  const file = args.file ?? 'input';
  const trained = args.trained ?? null;
  let header: Header | null = null;
  let scorer: RowScorer | null = null;
  let threshold = o.threshold;
  let rows = 0;
  let warm = 0;
  const early: Array<[number, NoteKind, string]> = [];
  const noteEarly = (line: number, kind: NoteKind, detail: string) => {
    if (scorer) scorer.note(line, kind, detail);
    else early.push([line, kind, detail]);
  };
  for await (const rec of records(
    args.lines,
    (line) => noteEarly(line, 'blank_line', 'blank line dropped'),
    (line) => noteEarly(line, 'unclosed_quote', 'a quoted field is never closed; the rest of the file is one row'),
  )) {
    if (header === null) {
      header = readHeader(rec, file);
      const index = trained ? matchColumns(header, trained, file, args.trainFile ?? 'the training file') : null;
      if (trained) threshold = trained.threshold;
      scorer = new RowScorer(header, o, trained, file, index);
      for (const [l, k, d] of early.splice(0)) scorer.note(l, k, d);
      await args.write(`${rec.text},${SCORE_COLUMN}`);
      continue;
    }
    const s = scorer!;
    const { values } = s.parse(rec);
    if (values.every((v) => v === null)) s.note(rec.line, 'no_values', 'no usable value in the row; scored 0');
    const ev = s.evidence(values, true);
    if (ev === null && !trained && values.some((v) => v !== null)) warm++;
    rows++;
    await args.write(`${rec.text},${s.score(ev, threshold)}`);
  }
  if (header === null || scorer === null) throw inputError(`${file}: empty file, a header is required`);
  return {
    rows,
    warmupRows: warm,
    timestampColumn: header.names[header.tsIndex]!,
    valueColumns: header.valueNames,
    mode: trained ? 'trained' : 'online',
    threshold,
    notes: scorer.notes,
    firstNotes: scorer.firstNotes,
  };
}

/** In-memory convenience (tests, small files): returns the output text and the summary. */
export async function scoreCsvText(
  text: string,
  options: CsvScoreOptions & { trainText?: string } = {},
): Promise<{ output: string; summary: CsvScoreSummary }> {
  const split = (t: string) => {
    const lines = t.split(/\r?\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return lines;
  };
  const trained =
    options.trainText !== undefined ? await learnBaseline(split(options.trainText), 'train', options) : null;
  const out: string[] = [];
  const summary = await scoreCsvLines({
    lines: split(text),
    write: (l) => void out.push(l),
    trained,
    trainFile: 'train',
    options,
  });
  return { output: out.length > 0 ? `${out.join('\n')}\n` : '', summary };
}

export interface ScoreCsvFileArgs {
  input: string;
  output: string;
  train?: string;
  options?: CsvScoreOptions;
}

/** Streams `input` to `output` with the score column; gzipped input is detected by its magic bytes. */
export async function scoreCsvFile(args: ScoreCsvFileArgs): Promise<CsvScoreSummary> {
  let trained: TrainedBaseline | null = null;
  if (args.train) {
    const src = await openLines(args.train);
    trained = await learnBaseline(src.lines, args.train, args.options);
  }
  const src = await openLines(args.input);
  const out = createWriteStream(args.output);
  const failed = new Promise<never>((_, reject) =>
    out.on('error', (err) => reject(inputError(`cannot write ${args.output}: ${err.message}`))),
  );
  failed.catch(() => {});
  let buffer = '';
  const flush = async () => {
    if (buffer.length === 0) return;
    const chunk = buffer;
    buffer = '';
    if (!out.write(chunk)) await Promise.race([once(out, 'drain'), failed]);
  };
  const summary = await scoreCsvLines({
    lines: src.lines,
    file: args.input,
    trained,
    ...(args.train ? { trainFile: args.train } : {}),
    options: args.options ?? {},
    write: async (line) => {
      buffer += `${line}\n`;
      if (buffer.length >= 1 << 16) await flush();
    },
  });
  await flush();
  out.end();
  await Promise.race([once(out, 'finish'), failed]);
  return summary;
}
