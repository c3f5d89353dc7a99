import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { FeatureVector, NodeScore } from '../../messages.js';
import { enforceScoreContract, type Scorer } from '../scorers/scorer.js';
import { StatScorer } from '../scorers/stat-scorer.js';
import { openLines } from './input.js';
import { formatField } from './rfc4180.js';
import {
  type Header,
  inputError,
  type NoteKind,
  type ParsedRow,
  type RowNote,
  RowReader,
  readHeader,
  records,
} from './table.js';
import { CSV_NODE, cadenceOf, RowMapper } from './vector.js';

/**
 * `foresight score`: runs one of the product's scorers over a metric CSV (a timestamp column and any number of metric
 * columns, any cadence) through the same Scorer contract as the sidecar, one node, one window per row. Each output row
 * is the input record followed by:
 * - `raw_score`: the scorer's uncalibrated evidence at full precision (monotone, unbounded): what ranks rows;
 * - `risk`: the calibrated risk in [0, 1] that would drive drains (persistence included);
 * - `status`: `scored`, `warmup` (the scorer has not learnt enough yet: raw_score and risk are empty, not 0) or
 *   `no_values` (nothing to judge: empty);
 * - `explanation`: the largest contributions, `name=weight` separated by `; ` (for `stat`: each metric's term of
 *   raw_score; `joint(a+b)` is a break in the usual correlation of metrics a and b).
 * Online, the scorer learns as it goes: a row's scores depend only on the rows up to it (and the training file). With
 * a training file (a period the user says was normal, same metric columns in any order), the scorer first fits it.
 * Row treatment and notes: table.ts.
 */
export type CsvScorerKind = 'stat' | 'tfjs';

export const CSV_SCORERS: readonly CsvScorerKind[] = ['stat', 'tfjs'];

export interface CsvScoreOptions {
  /** Which scorer. Default `stat`. `tfjs` needs a training file. */
  scorer?: CsvScorerKind;
  /** Values a metric needs before `stat` judges it (online). Default 30. */
  warmupRows?: number;
  /** Recent values forming a metric's baseline (`stat`). Default 1000. */
  windowRows?: number;
  /** |z| up to which a metric's value is normal variation (`stat`). Default 3. */
  threshold?: number;
  /** Risk counted as "would drain" in the summary. Default 0.8 (guardrails' default riskThreshold). */
  riskThreshold?: number;
  /** Fail on the first row that needs a note. Default false. */
  strict?: boolean;
  /** How many notes are kept with their line. Default 20. */
  maxNotes?: number;
  /** Rows scored per call of the scorer. Default 1024. */
  batchRows?: number;
}

export interface CsvScoreSummary {
  rows: number;
  scoredRows: number;
  /** Rows the scorer was still warming up on (empty scores). */
  warmupRows: number;
  /** Rows without any usable value (empty scores). */
  noValueRows: number;
  /** Rows whose risk reached `riskThreshold`. */
  atRiskRows: number;
  riskThreshold: number;
  timestampColumn: string;
  valueColumns: string[];
  /** Metric columns judged as rates (cumulative counters). */
  counters: string[];
  cadenceMs: number;
  mode: 'online' | 'trained';
  scorer: string;
  notes: Partial<Record<NoteKind, number>>;
  firstNotes: RowNote[];
}

export const OUTPUT_COLUMNS = ['raw_score', 'risk', 'status', 'explanation'] as const;
/** Rows read before the cadence is inferred (online, without a training file). */
const CADENCE_ROWS = 64;

interface Resolved {
  scorer: CsvScorerKind;
  warmupRows: number;
  windowRows: number;
  threshold: number;
  riskThreshold: number;
  strict: boolean;
  maxNotes: number;
  batchRows: number;
}

function resolveOptions(o: CsvScoreOptions): Resolved {
  const r: Resolved = {
    scorer: o.scorer ?? 'stat',
    warmupRows: o.warmupRows ?? 30,
    windowRows: o.windowRows ?? 1000,
    threshold: o.threshold ?? 3,
    riskThreshold: o.riskThreshold ?? 0.8,
    strict: o.strict ?? false,
    maxNotes: o.maxNotes ?? 20,
    batchRows: o.batchRows ?? 1024,
  };
  if (!CSV_SCORERS.includes(r.scorer)) {
    throw inputError(`unknown scorer "${r.scorer}": use one of ${CSV_SCORERS.join(', ')}`);
  }
  if (!(Number.isInteger(r.warmupRows) && r.warmupRows >= 3)) throw inputError('warmupRows must be an integer >= 3');
  if (!(Number.isInteger(r.windowRows) && r.windowRows >= r.warmupRows))
    throw inputError('windowRows must be an integer >= warmupRows');
  if (!(r.threshold > 0)) throw inputError('threshold must be positive');
  if (!(r.riskThreshold > 0 && r.riskThreshold <= 1)) throw inputError('riskThreshold must be in (0, 1]');
  if (!(Number.isInteger(r.batchRows) && r.batchRows >= 1)) throw inputError('batchRows must be an integer >= 1');
  return r;
}

/** A parsed training file. */
export interface TrainingTable {
  header: Header;
  rows: ParsedRow[];
  file: string;
}

/** Reads a training CSV whole (a period the user says was normal). */
export async function readTrainingTable(
  lines: AsyncIterable<string> | Iterable<string>,
  file: string,
): Promise<TrainingTable> {
  let reader: RowReader | null = null;
  const rows: ParsedRow[] = [];
  for await (const rec of records(
    lines,
    () => {},
    () => {},
  )) {
    if (reader === null) {
      reader = new RowReader(readHeader(rec, file), file, false);
      continue;
    }
    rows.push(reader.parse(rec));
  }
  if (reader === null) throw inputError(`${file}: empty file, a header is required`);
  if (rows.length < 10) throw inputError(`${file}: ${rows.length} rows; at least 10 are needed to learn normal`);
  return { header: reader.header, rows, file };
}

/** Index of each of `names` among the value columns of `header`; throws naming the differences. */
function matchColumns(names: readonly string[], header: Header, file: string, trainFile: string): number[] {
  const missing = names.filter((n) => !header.valueNames.includes(n));
  const extra = header.valueNames.filter((n) => !names.includes(n));
  if (missing.length > 0 || extra.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`);
    if (extra.length > 0) parts.push(`not in the training file: ${extra.join(', ')}`);
    throw inputError(`${file}: header columns differ from ${trainFile} (${parts.join('; ')})`, { missing, extra });
  }
  return names.map((n) => header.valueNames.indexOf(n));
}

/** The scorer for `names` at `cadenceMs`, fitted on `train` when given, behind the score contract. */
async function buildScorer(
  o: Resolved,
  names: readonly string[],
  cadenceMs: number,
  train: FeatureVector[] | null,
): Promise<{ scorer: Scorer; counters: () => string[] }> {
  if (o.scorer === 'tfjs') {
    if (train === null) {
      throw inputError('--scorer tfjs needs --train FILE: the autoencoder learns normal from a period you name');
    }
    const { fitCsvAutoencoder } = await import('./tfjs.js');
    const scorer = await fitCsvAutoencoder(names, train, cadenceMs);
    return { scorer: enforceScoreContract(scorer), counters: () => [] };
  }
  const stat = new StatScorer({
    windowMs: cadenceMs,
    metrics: names,
    zThreshold: o.threshold,
    metricModel: { warmupValues: o.warmupRows, windowValues: o.windowRows },
  });
  if (train !== null) stat.fit(train);
  return { scorer: enforceScoreContract(stat), counters: () => stat.counters(CSV_NODE) };
}

function fieldsOf(s: NodeScore): string {
  if (!s.observed) return ',,no_values,';
  if (s.warmup) return ',,warmup,';
  const why = s.explanation.map((c) => `${c.feature}=${Number(c.weight.toPrecision(4))}`).join('; ');
  return `${s.rawScore ?? ''},${s.risk},scored,${formatField(why)}`;
}

export interface ScoreStreamArgs {
  lines: AsyncIterable<string> | Iterable<string>;
  /** Receives each output line (no newline). */
  write: (line: string) => void | Promise<void>;
  file?: string;
  train?: TrainingTable | null;
  options?: CsvScoreOptions;
}

/** Scores a CSV given as lines; writes the header plus OUTPUT_COLUMNS, then every record with its scores. */
export async function scoreCsvLines(args: ScoreStreamArgs): Promise<CsvScoreSummary> {
  const o = resolveOptions(args.options ?? {});
  const file = args.file ?? 'input';
  const train = args.train ?? null;
  let reader: RowReader | null = null;
  let mapper: RowMapper | null = null;
  let scorer: Scorer | null = null;
  let counters: () => string[] = () => [];
  let names: string[] = [];
  let cadenceMs = 0;
  let scorerName = '';
  const summary = { rows: 0, scoredRows: 0, warmupRows: 0, noValueRows: 0, atRiskRows: 0 };
  const pending: ParsedRow[] = [];
  const early: Array<[number, NoteKind, string]> = [];
  const noteEarly = (line: number, kind: NoteKind, detail: string) => {
    if (reader) reader.note(line, kind, detail);
    else early.push([line, kind, detail]);
  };

  const start = async () => {
    const header = reader!.header;
    let index: number[];
    let trainVectors: FeatureVector[] | null = null;
    if (train !== null) {
      names = train.header.valueNames;
      index = matchColumns(names, header, file, train.file);
      cadenceMs = cadenceOf(train.rows.map((r) => r.ts));
      const trainMapper = new RowMapper(
        names,
        names.map((_, i) => i),
        cadenceMs,
      );
      trainVectors = train.rows.map((r) => trainMapper.vector(r));
    } else {
      names = header.valueNames;
      index = names.map((_, i) => i);
      cadenceMs = cadenceOf(pending.map((r) => r.ts));
    }
    mapper = new RowMapper(names, index, cadenceMs);
    const built = await buildScorer(o, names, cadenceMs, trainVectors);
    scorer = built.scorer;
    counters = built.counters;
    scorerName = scorer.name;
  };

  const flush = async () => {
    if (pending.length === 0) return;
    const rows = pending.splice(0);
    const scores = scorer!.score(rows.map((r) => mapper!.vector(r)));
    for (let i = 0; i < rows.length; i++) {
      const s = scores[i]!;
      summary.rows++;
      if (!s.observed) summary.noValueRows++;
      else if (s.warmup) summary.warmupRows++;
      else {
        summary.scoredRows++;
        if (s.risk >= o.riskThreshold) summary.atRiskRows++;
      }
      await args.write(`${rows[i]!.text},${fieldsOf(s)}`);
    }
  };

  for await (const rec of records(
    args.lines,
    (line) => noteEarly(line, 'blank_line', 'blank line dropped'),
    (line) => noteEarly(line, 'unclosed_quote', 'a quoted field is never closed; the rest of the file is one row'),
  )) {
    if (reader === null) {
      reader = new RowReader(readHeader(rec, file), file, o.strict, o.maxNotes);
      for (const [l, k, d] of early.splice(0)) reader.note(l, k, d);
      await args.write(`${rec.text},${OUTPUT_COLUMNS.join(',')}`);
      continue;
    }
    pending.push(reader.parse(rec));
    if (scorer === null) {
      if (train === null && pending.length < CADENCE_ROWS) continue;
      await start();
    }
    if (pending.length >= o.batchRows) await flush();
  }
  if (reader === null) throw inputError(`${file}: empty file, a header is required`);
  const header: Header = reader.header;
  if (scorer === null) await start();
  await flush();
  return {
    ...summary,
    riskThreshold: o.riskThreshold,
    timestampColumn: header.names[header.tsIndex]!,
    valueColumns: header.valueNames,
    counters: counters(),
    cadenceMs,
    mode: train ? 'trained' : 'online',
    scorer: scorerName,
    notes: reader.notes,
    firstNotes: reader.firstNotes,
  };
}

function splitLines(t: string): string[] {
  const lines = t.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** In-memory convenience (tests, small files): returns the output text and the summary. */
export async function scoreCsvText(
  text: string,
  options: CsvScoreOptions & { trainText?: string } = {},
): Promise<{ output: string; summary: CsvScoreSummary }> {
  const train =
    options.trainText !== undefined ? await readTrainingTable(splitLines(options.trainText), 'train') : null;
  const out: string[] = [];
  const summary = await scoreCsvLines({ lines: splitLines(text), write: (l) => void out.push(l), train, options });
  return { output: out.length > 0 ? `${out.join('\n')}\n` : '', summary };
}

export interface ScoreCsvFileArgs {
  input: string;
  output: string;
  train?: string;
  options?: CsvScoreOptions;
}

/** Streams `input` to `output` with the score columns; gzipped input is detected by its magic bytes. */
export async function scoreCsvFile(args: ScoreCsvFileArgs): Promise<CsvScoreSummary> {
  let train: TrainingTable | null = null;
  if (args.train) {
    const src = await openLines(args.train);
    train = await readTrainingTable(src.lines, args.train);
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
    train,
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

/** A row already parsed: one value per metric (null where missing) and its time (null when unknown). */
export type MetricRow = Pick<ParsedRow, 'values' | 'ts'>;

/**
 * Scores rows already parsed, exactly as `foresight score` scores a file (same mapping, same scorer, same options):
 * for evaluations that load their data themselves. `train`, when given, is the period the scorer fits first.
 */
export async function scoreRows(
  names: readonly string[],
  rows: readonly MetricRow[],
  options: CsvScoreOptions = {},
  train?: readonly MetricRow[],
): Promise<NodeScore[]> {
  const o = resolveOptions(options);
  const index = names.map((_, i) => i);
  const cadenceMs = cadenceOf((train ?? rows).map((r) => r.ts));
  let trainVectors: FeatureVector[] | null = null;
  if (train !== undefined) {
    const trainMapper = new RowMapper(names, index, cadenceMs);
    trainVectors = train.map((r) => trainMapper.vector(r));
  }
  const { scorer } = await buildScorer(o, names, cadenceMs, trainVectors);
  const mapper = new RowMapper(names, index, cadenceMs);
  const out: NodeScore[] = [];
  for (let i = 0; i < rows.length; i += o.batchRows) {
    out.push(...scorer.score(rows.slice(i, i + o.batchRows).map((r) => mapper.vector(r))));
  }
  return out;
}
