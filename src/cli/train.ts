import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import cliProgress from 'cli-progress';
import { ForesightError } from '../errors.js';
import { FEATURE_NAMES } from '../features/names.js';
import { createLogger, type Logger } from '../log.js';
import { type AuditRecord, type IncidentLabel, isMetricName, type TelemetrySample } from '../messages.js';
import { saveModelArtefact } from '../models/artefact/format.js';
import { isGzipFile, openLines } from '../models/csv/input.js';
import { parseRecord } from '../models/csv/rfc4180.js';
import { evaluateScores } from '../models/training/evaluate.js';
import { splitHeldOut, trainModel } from '../models/training/fit.js';
import { spansFromLabels, spansFromVerdicts } from '../models/training/labels.js';
import { inTimeOrder, type TimeOrderStats } from '../models/training/time-order.js';
import { WindowCollector } from '../models/training/windows.js';
import { openKafkaTelemetry } from './kafka-telemetry.js';

export interface TrainCliOptions {
  /** Telemetry files: JSONL of TelemetrySample or CSV ts,nodeId,metric,value; gzipped or not. These or --kafka. */
  input?: string[];
  /** IncidentLabel[] as JSON or JSONL: excluded from healthy, and used to evaluate. */
  labels?: string;
  /** Audit records (JSON or JSONL, e.g. exported from GET /api/v1/audit) holding operators' Verdicts. */
  verdicts?: string;
  /** SQLite store file to read Verdict audit records from (the sidecar's store). */
  verdictsStore?: string;
  /** A telemetry topic's time range, `TOPIC@FROM..TO` (see parseKafkaRange); read with the configured Kafka client. */
  kafka?: string;
  /** Config file for --kafka: brokers, client and the rest of bus.kafka (the environment overlays it as usual). */
  config?: string;
  /** Bootstrap brokers for --kafka, overriding the config's. */
  brokers?: string[];
  /**
   * Feature window the model is trained on; the sidecar's features.windowMs must match. Default: the --config's
   * features.windowMs when a config is given, else 10 s.
   */
  windowMs?: number;
  out: string;
  /** Model name in the manifest. Default: the output folder's name. */
  name?: string;
  epochs?: number;
  /** Initializer and shuffle seed. Default 7. */
  seed?: number;
  /** Windows after a labelled crash not treated as healthy. Default 15 min. */
  recoveryMs?: number;
  quiet?: boolean;
  /**
   * Event-time disorder within one input file that is still put right while streaming. Default 10 min; samples later
   * than that are fed where they are (the extractor dead-letters them as late when beyond its lateness).
   */
  maxDisorderMs?: number;
  logger?: Logger;
}

export interface TrainCliResult {
  out: string;
  samples: number;
  rejected: number;
  healthyWindows: number;
  excludedWindows: number;
  weightsDigest: string;
  dataDigest: string;
}

function inputError(msg: string, details: Record<string, unknown> = {}): ForesightError {
  return new ForesightError('FORESIGHT_ERR_INPUT', msg, { details });
}

async function readJsonOrJsonl<T>(file: string): Promise<T[]> {
  const buf = readFileSync(file);
  const text = ((await isGzipFile(file)) ? gunzipSync(buf) : buf).toString('utf8').trim();
  if (text === '') return [];
  if (text.startsWith('[')) {
    try {
      return JSON.parse(text) as T[];
    } catch (err) {
      throw inputError(`${file}: not valid JSON: ${(err as Error).message}`);
    }
  }
  return text.split(/\r?\n/).flatMap((line, i) => {
    if (line.trim() === '') return [];
    try {
      return [JSON.parse(line) as T];
    } catch {
      throw inputError(`${file} line ${i + 1}: not valid JSON`, { line: i + 1 });
    }
  });
}

function checkLabel(l: IncidentLabel, file: string, i: number): IncidentLabel {
  if (typeof l?.nodeId !== 'string' || !Number.isFinite(l.onsetAt) || !Number.isFinite(l.crashAt)) {
    throw inputError(`${file}: label ${i + 1} needs nodeId, onsetAt and crashAt (epoch ms)`, { index: i });
  }
  return { ...l, predictable: l.predictable !== false };
}

/** Parses one telemetry line (JSONL object or CSV ts,nodeId,metric,value); null for a header, blank or bad line. */
function parseSampleLine(line: string, csv: { cols: number[] } | null): TelemetrySample | null {
  if (csv) {
    const f = parseRecord(line);
    const [ti, ni, mi, vi] = csv.cols as [number, number, number, number];
    const ts = Number(f[ti]);
    const value = Number(f[vi]);
    const metric = (f[mi] ?? '').trim();
    const nodeId = (f[ni] ?? '').trim();
    if (!Number.isFinite(ts) || !Number.isFinite(value) || !isMetricName(metric) || nodeId === '') return null;
    return { ts, nodeId, metric, value, source: 'sim' };
  }
  try {
    const s = JSON.parse(line) as TelemetrySample;
    if (typeof s !== 'object' || s === null) return null;
    return s;
  } catch {
    return null;
  }
}

/** The files' bytes as stored, in the order given: the data digest. */
async function hashFiles(files: string[], hash: ReturnType<typeof createHash>): Promise<void> {
  for (const file of files) {
    await new Promise<void>((resolve, reject) => {
      createReadStream(file)
        .on('data', (c) => hash.update(c))
        .on('end', resolve)
        .on('error', (err) => reject(inputError(`cannot read ${file}: ${err.message}`)));
    });
  }
}

/** One file's samples as they are read (JSONL or CSV with a header); unreadable lines are counted in `counts.bad`. */
async function* fileSamples(
  file: string,
  counts: { bad: number },
  onBytes: (n: number) => void,
): AsyncGenerator<TelemetrySample> {
  const src = await openLines(file);
  let csv: { cols: number[] } | null = null;
  let first = true;
  let lastBytes = 0;
  for await (const line of src.lines) {
    if (line.trim() === '') continue;
    if (first) {
      first = false;
      if (!line.trimStart().startsWith('{')) {
        const names = parseRecord(line).map((n) => n.trim());
        const cols = ['ts', 'nodeId', 'metric', 'value'].map((c) => names.indexOf(c));
        if (cols.some((c) => c < 0)) {
          throw inputError(
            `${file}: neither JSONL nor a CSV with columns ts,nodeId,metric,value (header: ${names.join(',')})`,
          );
        }
        csv = { cols };
        continue;
      }
    }
    const b = src.bytesRead();
    if (b !== lastBytes) {
      onBytes(b - lastBytes);
      lastBytes = b;
    }
    const s = parseSampleLine(line, csv);
    // A sample without a numeric time has no place in time; the extractor would reject it as malformed anyway.
    if (s === null || typeof s.ts !== 'number' || !Number.isFinite(s.ts)) counts.bad++;
    else yield s;
  }
}

async function readVerdictsStore(file: string): Promise<AuditRecord[]> {
  const { SqliteStore } = await import('../actions/store/sqlite.js');
  const store = new SqliteStore({ path: file });
  await store.init();
  try {
    return await store.queryAudit({ limit: 10_000_000 });
  } finally {
    await store.close();
  }
}

/** `foresight train --input FILE... [--labels FILE] [--verdicts FILE | --verdicts-store DB] --out DIR`. */
export async function runTrain(opts: TrainCliOptions): Promise<TrainCliResult> {
  const logger = opts.logger ?? createLogger(process.env.FORESIGHT_LOG_LEVEL ?? 'warn');
  const inputs = opts.input ?? [];
  if ((inputs.length === 0) === (opts.kafka === undefined)) {
    throw inputError(
      'train needs either --input FILE... or --kafka TOPIC@FROM..TO (to combine them, export the range)',
    );
  }
  if (!opts.out) throw inputError('train needs --out DIR');
  const showBar = !opts.quiet && process.stderr.isTTY === true;
  const bar = showBar
    ? new cliProgress.SingleBar(
        { stream: process.stderr, format: '{stage} [{bar}] {percentage}% | {value}/{total}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const say = (msg: string) => {
    if (!opts.quiet) process.stderr.write(`${msg}\n`);
  };

  const hash = createHash('sha256');
  const { statSync } = await import('node:fs');
  const totalBytes = inputs.reduce((s, f) => {
    try {
      return s + statSync(f).size;
    } catch {
      throw inputError(`cannot read ${f}: no such file`);
    }
  }, 0);
  const labels = opts.labels
    ? (await readJsonOrJsonl<IncidentLabel>(opts.labels)).map((l, i) => checkLabel(l, opts.labels!, i))
    : [];
  const audit = [
    ...(opts.verdicts ? await readJsonOrJsonl<AuditRecord>(opts.verdicts) : []),
    ...(opts.verdictsStore ? await readVerdictsStore(opts.verdictsStore) : []),
  ];
  const verdicts = spansFromVerdicts(audit, opts.recoveryMs !== undefined ? { recoveryMs: opts.recoveryMs } : {});
  if (audit.length > 0)
    say(
      `verdicts: ${verdicts.confirmed.length} confirmed drains, ${verdicts.false.length} false drains, ${verdicts.unplaced} unusable`,
    );

  if (opts.windowMs !== undefined && !(Number.isInteger(opts.windowMs) && opts.windowMs >= 100)) {
    throw inputError(`--window-ms must be a whole number of milliseconds, at least 100; got ${opts.windowMs}`);
  }
  // Read only when there is one to read (a file, or the environment for --kafka).
  const config = opts.config || opts.kafka ? (await import('../config/load.js')).loadConfig(opts.config) : null;
  // A model only loads where its window is the sidecar's, so the config that names the cluster names the window too.
  const windowMs = opts.windowMs ?? (opts.config ? config?.features.windowMs : undefined);
  const collector = new WindowCollector({
    keepVectors: labels.length > 0,
    ...(windowMs !== undefined ? { extractor: { windowMs } } : {}),
  });

  let source: string;
  let count = 0;
  let bad = 0;
  let firstTs = Number.POSITIVE_INFINITY;
  let lastTs = Number.NEGATIVE_INFINITY;
  const feed = (batch: readonly TelemetrySample[]) => {
    if (batch.length === 0) return;
    count += batch.length;
    // Not simply the first and last: a sample beyond the reorder bound arrives out of order.
    for (const s of batch) {
      if (s.ts < firstTs) firstTs = s.ts;
      if (s.ts > lastTs) lastTs = s.ts;
    }
    collector.add(batch);
  };
  if (opts.kafka) {
    // Streamed slice by slice: a week of a cluster's telemetry does not fit in memory as sample objects.
    const kafka = await openKafkaTelemetry(opts.kafka, config!, opts.brokers, logger);
    source = kafka.source;
    const span = kafka.range.toTs - kafka.range.fromTs;
    bar?.start(Math.ceil(span / 60_000), 0, { stage: 'kafka min' });
    try {
      for await (const slice of kafka.slices((doneMs) => bar?.update(Math.floor(doneMs / 60_000)))) {
        for (const s of slice) hash.update(`${JSON.stringify(s)}\n`);
        feed(slice);
      }
    } finally {
      await kafka.close();
    }
    bar?.stop();
    say(`read ${count} samples from ${source}`);
  } else {
    // Streamed: files may interleave nodes or be given in any order, and the extractor wants event-time order, so
    // they are merged by time with a bounded reorder buffer instead of being loaded and sorted.
    await hashFiles(inputs, hash);
    bar?.start(totalBytes, 0, { stage: 'reading ' });
    const counts = { bad: 0 };
    const order: TimeOrderStats = { outOfOrder: 0, peakBuffered: 0 };
    const streams = inputs.map((f) => fileSamples(f, counts, (n) => bar?.increment(n)));
    for await (const chunk of inTimeOrder(
      streams,
      opts.maxDisorderMs !== undefined ? { maxDisorderMs: opts.maxDisorderMs } : {},
      order,
    )) {
      feed(chunk);
    }
    bar?.stop();
    bad = counts.bad;
    say(`read ${count} samples (${bad} unreadable lines) from ${inputs.length} file(s)`);
    if (order.outOfOrder > 0) {
      say(`${order.outOfOrder} samples were further out of time order than the reorder bound; fed where they were`);
    }
    source = `files: ${inputs.join(', ')}`;
  }
  if (count === 0) throw inputError('no telemetry samples in the input');
  collector.finish(lastTs + 60_000);
  const exclude = [...spansFromLabels(labels, opts.recoveryMs), ...verdicts.confirmed];
  const split = collector.split(exclude, verdicts.false);
  const cols = FEATURE_NAMES.length;
  const { train, held } = splitHeldOut(split.healthy, cols);
  say(
    `${split.healthy.length / cols} healthy windows (${train.length / cols} to train, ${held.length / cols} held out to calibrate), ${split.excluded} excluded`,
  );

  const seed = opts.seed ?? 7;
  const name = opts.name ?? opts.out.replace(/\/+$/, '').split('/').pop() ?? 'model';
  if (bar) bar.start(opts.epochs ?? 20, 0, { stage: 'training' });
  const trained = await trainModel({
    train,
    calibration: held,
    falseDrain: split.falseDrain,
    name,
    source: `${source}${opts.labels ? `; labels ${opts.labels}` : ''}`,
    dataDigest: `sha256:${hash.digest('hex')}`,
    initSeed: seed,
    shuffleSeed: seed + 1,
    ...(opts.epochs !== undefined ? { spec: { epochs: opts.epochs } } : {}),
    excludedWindows: split.excluded,
    ...(windowMs !== undefined ? { windowMs } : {}),
    verdicts: { confirmed: verdicts.confirmed.length, false: verdicts.false.length },
    logger,
    onEpoch: (e, n, loss) => {
      if (bar) bar.update(e + 1);
      else if (!opts.quiet && (e === n - 1 || e % 5 === 0)) say(`epoch ${e + 1}/${n} loss ${loss.toFixed(4)}`);
    },
  });
  bar?.stop();
  let manifest = trained.manifest;
  if (labels.length > 0) {
    // In-sample for the incidents (they were excluded from training, but the healthy windows around them were not).
    const scores = trained.scorer.score(collector.vectors);
    const nodes = new Set(collector.vectors.map((v) => v.nodeId)).size;
    const spanMs = lastTs - firstTs;
    manifest = {
      ...manifest,
      evaluation: {
        heldOut:
          'none: figures are on the training files (incidents excluded from training); use foresight replay on other data',
        ...evaluateScores(scores, labels, { nodeDays: (nodes * spanMs) / 86_400_000 }),
      },
    };
  }
  const saved = await saveModelArtefact(trained.tf, opts.out, trained.model, manifest);
  say(
    `model written to ${opts.out} (threshold ${saved.calibration.threshold.toPrecision(4)}, weights ${saved.training.weightsDigest.slice(0, 12)})`,
  );
  return {
    out: opts.out,
    samples: count,
    rejected: bad + collector.rejected(),
    healthyWindows: split.healthy.length / cols,
    excludedWindows: split.excluded,
    weightsDigest: saved.training.weightsDigest,
    dataDigest: saved.training.dataDigest,
  };
}
