import { ForesightError } from '../errors.js';
import { type CsvScoreSummary, scoreCsvFile } from '../models/csv-score.js';

export interface ScoreCliOptions {
  input: string;
  output: string;
  /** Healthy CSV with the same value columns: learn normal from it first. */
  train?: string;
  /** Fail on the first row that needs a note, naming its line. */
  strict?: boolean;
  /** Values a column needs before it is scored (online mode). */
  warmup?: number;
  /** Recent values forming the online baseline. */
  window?: number;
  /** Robust z at which the score is 0.5. */
  threshold?: number;
  quiet?: boolean;
}

function describe(s: CsvScoreSummary, elapsedS: number): string {
  const lines = [
    `scored ${s.rows} rows (${s.mode}, timestamp column "${s.timestampColumn}", values ${s.valueColumns.join(', ')}; threshold z ${s.threshold.toFixed(2)}) in ${elapsedS.toFixed(2)} s`,
  ];
  if (s.mode === 'online' && s.warmupRows > 0)
    lines.push(`${s.warmupRows} warm-up rows scored 0 (no column had enough history yet)`);
  const kinds = Object.entries(s.notes);
  if (kinds.length > 0) {
    lines.push(`notes: ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const n of s.firstNotes) lines.push(`  line ${n.line}: ${n.kind}: ${n.detail}`);
  }
  return lines.join('\n');
}

/** `foresight score --input FILE.csv --output FILE.csv [--train HEALTHY.csv]`. */
export async function runScore(opts: ScoreCliOptions): Promise<CsvScoreSummary> {
  if (!opts.input || !opts.output) throw new ForesightError('FORESIGHT_ERR_INPUT', 'score needs --input and --output');
  if (opts.input === opts.output) throw new ForesightError('FORESIGHT_ERR_INPUT', '--output must differ from --input');
  const t0 = performance.now();
  const summary = await scoreCsvFile({
    input: opts.input,
    output: opts.output,
    ...(opts.train ? { train: opts.train } : {}),
    options: {
      ...(opts.strict ? { strict: true } : {}),
      ...(opts.warmup !== undefined ? { warmupRows: opts.warmup } : {}),
      ...(opts.window !== undefined ? { windowRows: opts.window } : {}),
      ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
    },
  });
  if (!opts.quiet) process.stderr.write(`${describe(summary, (performance.now() - t0) / 1000)}\n`);
  return summary;
}
