/** `foresight replay`: recorded telemetry + labels → the pipeline on a virtual clock → report JSON and HTML. */
import { writeFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config/load.js';
import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import { renderReportHtml } from '../eval/html.js';
import { pipelineFromConfig, replayFile, settingsFromConfig } from '../eval/replay.js';
import type { ReplayReport } from '../eval/report.js';
import { createLogger } from '../log.js';
import { createScorer } from '../models/scorers/factory.js';
import { openKafkaTelemetry } from './kafka-telemetry.js';

export interface ReplayOptions {
  /** Telemetry file (JSONL or CSV, gzip detected); or --kafka. */
  input?: string;
  /** A telemetry topic's time range, TOPIC@FROM..TO, read with the config's Kafka client (brokers overridable). */
  kafka?: string;
  brokers?: string[];
  /** Incident labels; without them the recording is taken as incident-free, so every drain counts as false. */
  labels?: string;
  scorer?: 'stat' | 'tfjs';
  /** Model artefact directory for --scorer tfjs (default: the config's, models/default). */
  model?: string;
  threshold?: number;
  out?: string;
  html?: string;
  config?: string;
}

export async function runReplay(opts: ReplayOptions): Promise<ReplayReport> {
  const base = loadConfig(opts.config);
  const config = structuredClone(base) as ForesightConfig;
  if (opts.scorer) config.model.kind = opts.scorer;
  if (opts.model) config.model.path = opts.model;
  if (opts.threshold !== undefined && !(opts.threshold >= 0 && opts.threshold <= 1)) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `--threshold must be within 0..1, got ${opts.threshold}`);
  }
  if ((opts.input === undefined) === (opts.kafka === undefined)) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', 'replay needs either --input FILE or --kafka TOPIC@FROM..TO');
  }
  const logger = createLogger(process.env.FORESIGHT_LOG_LEVEL ?? 'warn');
  const scorer = await createScorer(config, logger);
  const fromKafka = opts.kafka ? await openKafkaTelemetry(opts.kafka, base, opts.brokers, logger) : null;
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { stream: process.stderr, format: 'replay {value} samples', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(0, 0);
  const started = performance.now();
  let report: ReplayReport;
  try {
    report = await replayFile({
      input: fromKafka?.source ?? opts.input ?? '',
      ...(fromKafka ? { batches: fromKafka.slices() } : {}),
      labels: opts.labels ?? [],
      scorer,
      settings: settingsFromConfig(config, opts.threshold),
      pipeline: pipelineFromConfig(config),
      onProgress: (n) => bar?.update(n),
    });
  } finally {
    await fromKafka?.close();
  }
  bar?.stop();
  const seconds = (performance.now() - started) / 1000;
  if (opts.out) await writeFile(opts.out, `${JSON.stringify(report, null, 1)}\n`);
  if (opts.html) await writeFile(opts.html, renderReportHtml(report));
  printSummary(report, seconds);
  return report;
}

function pct(x: number | null): string {
  return x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`;
}

function secs(x: number | null): string {
  return x === null ? 'n/a' : `${Math.round(x)} s`;
}

function printSummary(r: ReplayReport, seconds: number): void {
  const lines: string[] = [];
  if (r.input && r.input.badLines > 0) {
    const first = r.input.firstBadLines.map((b) => `line ${b.line}: ${b.reason}`).join('; ');
    lines.push(`input: ${r.input.badLines} bad lines skipped (${first})`);
  }
  if (r.input?.truncated) lines.push(`input: file ended early: ${r.input.truncated}`);
  lines.push(
    `replayed ${r.input?.samples ?? 0} samples, ${r.span.nodes.length} nodes, ${r.span.nodeDays.toFixed(2)} node-days in ${seconds.toFixed(1)} s (scorer ${r.scorer}, threshold ${r.settings.threshold})`,
  );
  for (const d of [r.model, r.baselines.fixedThreshold, r.baselines.reactive]) {
    if (!d) continue;
    lines.push(
      `${d.name}: recall ${pct(d.recall)} (${d.detected}/${d.predictableIncidents}), precision ${pct(d.precision)}, ` +
        `false drains ${d.falseDrains} (${d.falseDrainsPer100NodeDays.toFixed(2)}/100 node-days), ` +
        `median lead ${secs(d.lead.medianS)} (slow ${secs(d.leadSlow.medianS)}, fast ${secs(d.leadFast.medianS)}), ` +
        `calls saved ${d.callsSaved.toFixed(0)} of ${d.callsAtRisk.toFixed(0)}`,
    );
  }
  lines.push(
    `unpredictable (sudden) crashes: ${r.unpredictable.incidents}; censored (crash after the end): ${r.censored}`,
  );
  console.error(lines.join('\n'));
}
