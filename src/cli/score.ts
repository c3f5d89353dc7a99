import { ForesightError } from '../errors.js';
import { type CsvScorerKind, type CsvScoreSummary, scoreCsvFile } from '../models/csv/score.js';

export interface ScoreCliOptions {
  input: string;
  output: string;
  /** A period the user says was normal, same metric columns: the scorer fits it first. */
  train?: string;
  /** stat (default) or tfjs (needs --train). */
  scorer?: CsvScorerKind;
  /** Fail on the first row that needs a note, naming its line. */
  strict?: boolean;
  /** Values a metric needs before `stat` judges it (online mode). */
  warmup?: number;
  /** Recent values forming a metric's baseline (`stat`). */
  window?: number;
  /** |z| up to which a value is normal variation (`stat`). */
  threshold?: number;
  quiet?: boolean;
}

function describe(s: CsvScoreSummary, elapsedS: number): string {
  const lines = [
    `scored ${s.rows} rows with ${s.scorer} (${s.mode}, timestamp column "${s.timestampColumn}", cadence ` +
      `${s.cadenceMs / 1000} s, ${s.valueColumns.length} metrics: ${s.valueColumns.join(', ')}) in ${elapsedS.toFixed(2)} s`,
    `${s.atRiskRows} of ${s.scoredRows} scored rows at risk >= ${s.riskThreshold}`,
  ];
  if (s.warmupRows > 0) lines.push(`${s.warmupRows} warm-up rows (status warmup, no score: nothing learnt yet)`);
  if (s.noValueRows > 0) lines.push(`${s.noValueRows} rows without any usable value (status no_values)`);
  if (s.counters.length > 0) lines.push(`counters judged as rates per second: ${s.counters.join(', ')}`);
  const kinds = Object.entries(s.notes);
  if (kinds.length > 0) {
    lines.push(`notes: ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const n of s.firstNotes) lines.push(`  line ${n.line}: ${n.kind}: ${n.detail}`);
  }
  return lines.join('\n');
}

/** `foresight score --input FILE.csv --output FILE.csv [--train NORMAL.csv] [--scorer stat|tfjs]`. */
export async function runScore(opts: ScoreCliOptions): Promise<CsvScoreSummary> {
  if (!opts.input || !opts.output) throw new ForesightError('FORESIGHT_ERR_INPUT', 'score needs --input and --output');
  if (opts.input === opts.output) throw new ForesightError('FORESIGHT_ERR_INPUT', '--output must differ from --input');
  const t0 = performance.now();
  const summary = await scoreCsvFile({
    input: opts.input,
    output: opts.output,
    ...(opts.train ? { train: opts.train } : {}),
    options: {
      ...(opts.scorer ? { scorer: opts.scorer } : {}),
      ...(opts.strict ? { strict: true } : {}),
      ...(opts.warmup !== undefined ? { warmupRows: opts.warmup } : {}),
      ...(opts.window !== undefined ? { windowRows: opts.window } : {}),
      ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
    },
  });
  if (!opts.quiet) process.stderr.write(`${describe(summary, (performance.now() - t0) / 1000)}\n`);
  return summary;
}
