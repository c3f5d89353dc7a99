import { ForesightError } from '../../errors.js';
import { type CsvRecord, RecordAssembler } from './rfc4180.js';

/**
 * Reading a metric CSV: a header naming a timestamp column and any number of metric columns, then one row per time.
 *
 * Per-row treatment (never a crash; every record is kept, in order):
 * - empty or non-numeric value: that column is missing for that row (not judged, not learnt); noted.
 * - fewer fields than the header: the missing columns are empty; more fields: the extra ones are ignored; noted.
 * - a row with no usable value: noted (the scorer reports it unobserved).
 * - timestamp not ISO 8601 nor epoch seconds/milliseconds, duplicate or earlier than the previous row's: the row is
 *   still read in file order; noted.
 * - blank lines are not rows; noted.
 * Notes are counted per kind and the first ones are kept with their line numbers. `strict` turns the first note into
 * an error naming the line.
 */
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

const TIMESTAMP_NAMES = /^(timestamp|time|ts|date|datetime|_time|time_stamp|epoch)$/i;

export function inputError(message: string, details: Record<string, unknown> = {}): ForesightError {
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

export interface Header {
  text: string;
  names: string[];
  tsIndex: number;
  /** Field index of each value column. */
  valueIndex: number[];
  valueNames: string[];
}

export function readHeader(rec: CsvRecord, file: string): Header {
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

/** Reads records (header first) from lines; blank lines are skipped and reported to `onBlank`. */
export async function* records(
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

export interface ParsedRow {
  /** One per metric column, null where missing. */
  values: Array<number | null>;
  ts: number | null;
  line: number;
  text: string;
}

/** Parses records of one file against its header, counting notes. */
export class RowReader {
  private lastTs: number | null = null;
  readonly notes: Partial<Record<NoteKind, number>> = {};
  readonly firstNotes: RowNote[] = [];

  constructor(
    readonly header: Header,
    private readonly file: string,
    private readonly strict: boolean,
    private readonly maxNotes = 20,
  ) {}

  note(line: number, kind: NoteKind, detail: string): void {
    if (this.strict) throw inputError(`${this.file} line ${line}: ${detail}`, { line, kind });
    this.notes[kind] = (this.notes[kind] ?? 0) + 1;
    if (this.firstNotes.length < this.maxNotes) this.firstNotes.push({ line, kind, detail });
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
    let any = false;
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
      any = true;
      return v;
    });
    if (!any) this.note(rec.line, 'no_values', 'no usable value in the row: it is reported unobserved');
    return { values, ts, line: rec.line, text: rec.text };
  }
}
