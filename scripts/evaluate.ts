/**
 * `npm run evaluate`: the honest evaluation on a held-out set. Simulated clusters with seeds, precursor magnitudes,
 * start times and incident timings the shipped model never saw, at a realistic incident rate, replayed through the
 * same pipeline and policy as `foresight replay`, per scorer, against the issue's targets. Writes docs/evaluation.md
 * and var/evaluation/<scorer>.json|html. Two worker processes share the clusters (the machine has two cores).
 *
 * Options: --clusters N (default 26, 4 nodes x 1 day each), --hours H (24), --workers W (2), --scorers stat,tfjs,
 * --first K (0): start at seed 1000 + K. A run with K > 0 is a confirmation set (after choices were made looking at
 * the default set); it writes docs/evaluation-confirm-<first seed>.md and leaves docs/evaluation.md alone.
 *
 * Then the public, real, labelled data sets of test/fixtures/public (src/eval/public): AP and early detection of
 * stat, the TF.js model and two classic baselines, written to docs/evaluation-public.md and var/evaluation/public.json.
 * --public-only skips the simulated set; --no-public skips the public one.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/load.js';
import type { ForesightConfig } from '../src/config/schema.js';
import { type AnyScorer, SeriesCollector } from '../src/eval/collect.js';
import { FixedThresholdScorer } from '../src/eval/fixed-threshold.js';
import { renderReportHtml } from '../src/eval/html.js';
import type { DetectorSummary } from '../src/eval/metrics.js';
import { evaluatePublic, markdownTable, renderPublicMarkdown, renderPublicText } from '../src/eval/public/run.js';
import { createRecordingCluster, recordedLabels } from '../src/eval/record.js';
import { pipelineFromConfig, settingsFromConfig } from '../src/eval/replay.js';
import {
  buildReport,
  evaluateSeries,
  mergeEvaluations,
  type ReplayReport,
  type RunEvaluation,
} from '../src/eval/report.js';
import { silentLogger } from '../src/log.js';
import type { TelemetrySample } from '../src/messages.js';
import { createScorer } from '../src/models/scorers/factory.js';

const SEED_BASE = 1000;
const NODES = 4;
const INCIDENTS_PER_NODE_DAY = 0.3;
/** Wider than training's 0.6..1.6: weaker and stronger precursors than the model saw. */
const MAGNITUDE: [number, number] = [0.5, 2.0];
const MODEL_DIR = 'models/default';

interface Args {
  first: number;
  clusters: number;
  hours: number;
  workers: number;
  scorers: string[];
  publicOnly: boolean;
  noPublic: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const tfjsAvailable = existsSync(`${MODEL_DIR}/manifest.json`);
  return {
    first: Number(get('first') ?? 0),
    clusters: Number(get('clusters') ?? 26),
    hours: Number(get('hours') ?? 24),
    workers: Number(get('workers') ?? 2),
    scorers: (get('scorers') ?? (tfjsAvailable ? 'stat,tfjs' : 'stat')).split(',').filter(Boolean),
    publicOnly: argv.includes('--public-only'),
    noPublic: argv.includes('--no-public'),
  };
}

/** Start times differ per cluster (weekday, hour), so incident timings fall on other parts of the load curve. */
function clusterInput(i: number, hours: number) {
  return {
    seed: SEED_BASE + i,
    nodes: NODES,
    incidentsPerNodeDay: INCIDENTS_PER_NODE_DAY,
    startAt: Date.UTC(2024, 2, 4) + Math.round(i * 1.37 * 86_400_000),
    simulator: { randomIncidents: { magnitude: MAGNITUDE } },
    durationMs: hours * 3_600_000,
  };
}

interface WorkerResult {
  scorer: string;
  run: RunEvaluation | null;
  error: string | null;
}

async function buildScorers(names: string[], config: Readonly<ForesightConfig>) {
  const out: { name: string; scorer: AnyScorer | null; error: string | null }[] = [];
  for (const kind of names) {
    const c = structuredClone(config) as ForesightConfig;
    c.model.kind = kind as 'stat' | 'tfjs';
    c.model.path = MODEL_DIR;
    try {
      out.push({ name: kind, scorer: await createScorer(c, silentLogger()), error: null });
    } catch (err) {
      out.push({ name: kind, scorer: null, error: (err as Error).message });
    }
  }
  return out;
}

/** Worker: simulates its clusters and returns one RunEvaluation per cluster and scorer. */
async function worker(indices: number[], hours: number, scorerNames: string[]): Promise<WorkerResult[][]> {
  const config = loadConfig(undefined);
  const settings = settingsFromConfig(config);
  const pipeline = pipelineFromConfig(config);
  const scorers = await buildScorers(scorerNames, config);
  const live = scorers.filter((s) => s.scorer !== null);
  const results: WorkerResult[][] = [];
  for (const i of indices) {
    const input = clusterInput(i, hours);
    const cluster = createRecordingCluster(input);
    const columns: AnyScorer[] = [new FixedThresholdScorer(), ...live.map((s) => s.scorer!)];
    const collector = new SeriesCollector(columns, pipeline);
    const end = cluster.now() + input.durationMs;
    const buffer: TelemetrySample[] = [];
    while (cluster.now() < end) {
      buffer.length = 0;
      cluster.step(Math.min(end, cluster.now() + 60_000), buffer);
      await collector.push(buffer.slice());
    }
    const series = await collector.finish();
    const labels = recordedLabels(cluster);
    results.push(
      scorers.map((s) => {
        if (s.scorer === null) return { scorer: s.name, run: null, error: s.error };
        const column = 1 + live.indexOf(s);
        return {
          scorer: s.name,
          run: evaluateSeries(series, labels, settings, { model: column, fixed: 0 }),
          error: null,
        };
      }),
    );
  }
  return results;
}

function fmtPct(x: number | null): string {
  return x === null ? 'n/a' : `${(x * 100).toFixed(1)} %`;
}

function fmtS(x: number | null): string {
  return x === null ? 'n/a' : `${Math.round(x)} s`;
}

function targetRows(d: DetectorSummary, r: ReplayReport): string[][] {
  const pass = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'NOT met');
  return [
    [
      'Recall, incidents with a precursor',
      '>= 95 %',
      `${fmtPct(d.recall)} (${d.detected}/${d.predictableIncidents})`,
      pass(d.recall === null ? null : d.recall >= 0.95),
    ],
    [
      'Median lead, slow (leak, backlog)',
      '>= 300 s',
      `${fmtS(d.leadSlow.medianS)} (n=${d.leadSlow.n})`,
      pass(d.leadSlow.medianS === null ? null : d.leadSlow.medianS >= 300),
    ],
    [
      'Median lead, fast (DB, retransmission storm)',
      '>= 30 s',
      `${fmtS(d.leadFast.medianS)} (n=${d.leadFast.n})`,
      pass(d.leadFast.medianS === null ? null : d.leadFast.medianS >= 30),
    ],
    [
      'False drains per 100 node-days',
      '<= 1',
      `${d.falseDrainsPer100NodeDays.toFixed(2)} (${d.falseDrains} in ${d.nodeDays.toFixed(1)} node-days)`,
      pass(d.falseDrainsPer100NodeDays <= 1),
    ],
    [
      'Sudden crashes',
      'reported as unpredictable',
      `${r.unpredictable.incidents} (${r.unpredictable.callsDropped} calls dropped)`,
      'reported',
    ],
  ];
}

const table = markdownTable;

function detectorTable(ds: DetectorSummary[]): string {
  return table(
    [
      'detector',
      'recall',
      'precision',
      'false drains /100 node-days',
      'median lead',
      'slow',
      'fast',
      'calls saved / at risk',
    ],
    ds.map((d) => [
      d.name,
      `${fmtPct(d.recall)} (${d.detected}/${d.predictableIncidents})`,
      fmtPct(d.precision),
      d.falseDrainsPer100NodeDays.toFixed(2),
      fmtS(d.lead.medianS),
      fmtS(d.leadSlow.medianS),
      fmtS(d.leadFast.medianS),
      `${d.callsSaved.toFixed(0)} / ${d.callsAtRisk.toFixed(0)}`,
    ]),
  );
}

/** The public-data evaluation: one table per data set, to stdout, docs/evaluation-public.md and var/evaluation. */
async function runPublic(): Promise<void> {
  const started = performance.now();
  const results = await evaluatePublic();
  mkdirSync('var/evaluation', { recursive: true });
  writeFileSync('var/evaluation/public.json', `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync('docs/evaluation-public.md', `# Evaluation on public data\n\n${renderPublicMarkdown(results)}`);
  console.log(renderPublicText(results));
  console.log(
    `\npublic data: ${results.length} data sets in ${((performance.now() - started) / 1000).toFixed(0)} s; ` +
      'docs/evaluation-public.md and var/evaluation/public.json written',
  );
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.publicOnly) {
    await runPublic();
    return;
  }
  const manifestPath = `${MODEL_DIR}/manifest.json`;
  if (existsSync(manifestPath)) {
    // Held-out means held out: refuse to evaluate on a seed the model was trained or calibrated on.
    const text = readFileSync(manifestPath, 'utf8');
    const used = new Set((text.match(/\d+/g) ?? []).map(Number));
    const manifest = JSON.parse(text) as { seeds?: Record<string, number[]> };
    const trained = Object.values(manifest.seeds ?? {}).flat();
    const lo = SEED_BASE + args.first;
    const clash = trained.filter((s) => s >= lo && s < lo + args.clusters);
    if (clash.length > 0) throw new Error(`evaluation seeds overlap the model's seeds: ${clash.join(',')}`);
    void used;
  }
  const started = performance.now();
  const indices = Array.from({ length: args.clusters }, (_, i) => args.first + i);
  const shares = Array.from({ length: Math.max(1, args.workers) }, (_, w) =>
    indices.filter((i) => i % args.workers === w),
  );
  const self = fileURLToPath(import.meta.url);
  const parts = await Promise.all(
    shares.map(
      (share) =>
        new Promise<WorkerResult[][]>((resolve, reject) => {
          const child = fork(self, ['--worker', JSON.stringify({ share, hours: args.hours, scorers: args.scorers })], {
            execArgv: ['--import', 'tsx'],
          });
          let result: WorkerResult[][] | null = null;
          child.on('message', (m) => {
            result = m as WorkerResult[][];
          });
          child.on('error', reject);
          child.on('exit', (code) =>
            code === 0 && result ? resolve(result) : reject(new Error(`worker exited ${code}`)),
          );
        }),
    ),
  );
  const perCluster = parts.flat();
  const seconds = (performance.now() - started) / 1000;
  const config = loadConfig(undefined);
  const settings = settingsFromConfig(config);
  mkdirSync('var/evaluation', { recursive: true });

  const sections: string[] = [];
  const console_: string[] = [];
  for (const name of args.scorers) {
    const runs = perCluster.map((c) => c.find((r) => r.scorer === name)!);
    const failed = runs.find((r) => r.run === null);
    if (failed) {
      sections.push(`### Scorer \`${name}\`\n\nNot evaluated: ${failed.error}\n`);
      console_.push(`${name}: not evaluated: ${failed.error}`);
      continue;
    }
    const merged = mergeEvaluations(runs.map((r) => r.run!));
    const report = buildReport({
      scorer: name,
      evaluation: merged,
      settings,
      windowMs: pipelineFromConfig(config).windowMs,
      input: null,
      series: null,
    });
    writeFileSync(`var/evaluation/${name}.json`, `${JSON.stringify(report, null, 1)}\n`);
    writeFileSync(`var/evaluation/${name}.html`, renderReportHtml(report));
    const d = report.model;
    const rows = targetRows(d, report);
    console_.push(`\n== scorer ${name} (threshold ${settings.threshold})`);
    for (const r of rows) console_.push(`${r[0]!.padEnd(46)} target ${r[1]!.padEnd(26)} measured ${r[2]}  ${r[3]}`);
    const byMode = Object.entries(d.recallByMode)
      .map(([m, v]) => `${m} ${v!.detected}/${v!.incidents}`)
      .join(', ');
    console_.push(`recall by mode: ${byMode}`);
    console_.push(
      `baselines: fixed thresholds recall ${fmtPct(report.baselines.fixedThreshold?.recall ?? null)}, ` +
        `${report.baselines.fixedThreshold?.falseDrainsPer100NodeDays.toFixed(2)} false drains/100 node-days; ` +
        `reactive recall 0, calls saved 0 of ${report.baselines.reactive.callsAtRisk.toFixed(0)}`,
    );
    sections.push(`### Scorer \`${report.model.name}\` (\`--scorer ${name}\`), threshold ${settings.threshold}

${table(['target', 'wanted', 'measured', ''], rows)}

Recall by mode: ${byMode}. Drains: ${d.drains} (${d.trueDrains} true, ${d.falseDrains} false, ${d.repeatDrains} repeat, ${d.lateDrains} late, ${d.postCrashDrains} post-crash). Refused by guardrails: ${JSON.stringify(d.refusals)}.

${detectorTable([d, report.baselines.fixedThreshold!, report.baselines.reactive].filter(Boolean))}

Threshold sweep:

${table(
  ['threshold', 'recall', 'precision', 'false drains /100 node-days', 'median lead', 'slow', 'fast'],
  report.sweep.map((s) => [
    String(s.threshold),
    fmtPct(s.recall),
    fmtPct(s.precision),
    s.falseDrainsPer100NodeDays.toFixed(2),
    fmtS(s.medianLeadS),
    fmtS(s.medianLeadSlowS),
    fmtS(s.medianLeadFastS),
  ]),
)}
`);
  }
  const first = perCluster[0]?.find((r) => r.run !== null)?.run;
  const allLabels = perCluster.flatMap((c) => c.find((r) => r.run !== null)?.run?.model.incidents ?? []);
  const modeCounts: Record<string, number> = {};
  for (const i of allLabels) modeCounts[i.mode] = (modeCounts[i.mode] ?? 0) + 1;
  void first;
  const title =
    args.first === 0
      ? 'Evaluation (generated by `npm run evaluate`; do not edit)'
      : `Confirmation evaluation (generated by \`npx tsx scripts/evaluate.ts --first ${args.first}\`; do not edit)`;
  const doc = `# ${title}

Held-out set: ${args.clusters} simulated clusters of ${NODES} nodes x ${args.hours} h = ${((args.clusters * NODES * args.hours) / 24).toFixed(0)} node-days,
simulator seeds ${SEED_BASE + args.first}..${SEED_BASE + args.first + args.clusters - 1} (the shipped model is trained and calibrated on other seeds, listed in
${MODEL_DIR}/manifest.json; the script refuses to run on an overlap), precursor magnitudes ${MAGNITUDE.join('..')} (training: 0.6..1.6),
start times spread over weekdays and hours, random incident timings at ${INCIDENTS_PER_NODE_DAY} incidents per node-day
(most node-days have none), all failure modes: ${Object.entries(modeCounts)
    .map(([m, n]) => `${m} ${n}`)
    .join(', ')}.
Default guardrails and hysteresis from the config (threshold ${settings.threshold}, ${settings.hysteresisWindows} windows,
cooldown ${settings.guardrails.cooldownMs / 60000} min, at most ${settings.guardrails.maxOutOfServicePerSet} node out per set, min active ${settings.guardrails.minActivePerSet}).
Runtime: ${seconds.toFixed(0)} s with ${args.workers} workers. The figures are measured, not tuned: the evaluation never
changes a scorer.

${sections.join('\n')}

## How it is measured

The simulator output goes through the same code as \`foresight replay\` (src/eval): the live FeatureExtractor, the scorer,
and the action layer of a replay (src/eval/policy.ts): the decision core of the live engine (src/core: the same drain
decisions, guardrails, shared-fault rule and lifecycle steps), driven by a model of what follows each decision — calls
ending after the drain, the restart's downtime, probe answers — because a recording made without Foresight cannot
answer the core's questions (see the comment there). Drains are scored against the simulator's labels (src/eval/metrics.ts):

- a drain on the incident's node in [onset, crash) catches it; the first is a true drain, lead = crash − drain;
- DB degradation and retransmission storms keep the node up after the failure moment, failing new calls for 10–30 min
  until the cause clears (the label's \`endedAt\`); a drain of that node while it is failing calls is a late drain of the
  incident (no lead, no recall, not false: the node is failing calls right now);
- a drain within ${settings.postCrashGraceMs / 60000} min after a crash is post-crash noise (counted apart); every other drain — of a healthy
  node — is false;
- a drain that catches an incident, or drains it late, restarts the node and ends it, so the policy treats that node's
  recorded windows as healthy until the incident's recorded end (the crash, or the end of the failing period) plus
  ${settings.postCrashGraceMs / 60000} min: the recording, made without Foresight, shows a precursor, failure and recovery that would not have
  happened. Without this the replay drained the same failing node again every cooldown (22 of the 26 "false" drains
  before this rule);
- recall counts incidents with a precursor whose crash lies inside the run; sudden crashes are reported as unpredictable;
- calls at risk = channels.active in the last window before the crash; with a drain at lead L the A calls active at the
  drain end with exponential durations (mean from Little's law on the recording), A·exp(−min(L, drain timeout)/mean)
  remain; calls saved = at risk − remaining;
- reactive baseline (Kamailio OPTIONS probing): the node leaves rotation only once it stops answering, so lead 0 and
  every active call dropped; fixed-threshold baseline: static limits on raw readings (src/eval/fixed-threshold.ts)
  through the same policy.

## Public, real, labelled data: how it is measured

The simulator is our own; so \`npm run evaluate\` also scores public recordings of real servers with labelled anomaly
windows (test/fixtures/public, origin, licence and any cut in SOURCES.md there) and writes one table per data set to
docs/evaluation-public.md and var/evaluation/public.json (\`--public-only\` runs only this part). Code: src/eval/public.

- Detectors: \`stat\` and \`tfjs\`, the product's scorers, through one adapter (src/eval/public/scorers.ts: how a
  generic metric column reaches them is written there), and two classic baselines (src/eval/public/baselines.ts):
  rolling z-score (|x − mean| / std of the previous 100 values) and windowed Gaussian (NAB's baseline: a Gaussian of
  the last 6400 values, refreshed every 100). Several columns: a baseline scores a row by its largest column score.
  Every detector is causal: a row's score depends on that row and earlier ones only.
- Probation: the first min(15 % of the rows, 750) rows (NAB's rule) are learnt from and not scored. \`tfjs\` is trained
  on them (first 80 %) and calibrated on the rest of them (held out); the others learn online from the start.
- Average precision (AP), point-wise: every scored row is a positive when it lies inside a labelled window. Rows are
  ranked by the detector's raw score (full precision; the product's risk where it has no other), highest first; rows
  with equal scores enter together. AP = Σ over distinct score levels of (recall gained at that level) × (precision
  at that level). A random ranking gets the share of positive rows, printed with each table.
- Early detection, NAB-style (standard profile): at a threshold, an alarm is a row whose score reaches the threshold
  when the row before did not (a detector that stays above raises one alarm, as a drain is one action). For each
  window, the first alarm inside it earns 2 / (1 + e^(5y)) − 1, y = −1 at the window's first row and 0 at its last
  (≈ 0.987 to 0; earlier is better); later alarms inside the same window earn and cost nothing; a window without an
  alarm costs 1; every alarm outside all windows costs 0.11. The sum S is normalised as 100 (S − S_never) /
  (S_perfect − S_never), S_never = −(windows) (never alarming), S_perfect = 0.987 × windows (an alarm on every
  window's first row, none elsewhere): 100 is perfect, 0 is no better than never alarming, negative is worse.
  "Best threshold" is the best score over every distinct score of the detector on that data set (at most 400, spread
  over the ranks, plus never alarming): chosen on the test data, the same search for every detector, so an upper
  bound for each. "At drain threshold" is the product scorers' calibrated risk at the default 0.8, chosen beforehand.
- "Rows at its lowest score": the share of scored rows at the detector's lowest score, which it cannot order among
  themselves (a risk held at its floor below a threshold leaves AP nothing to rank there).

## Formats

Telemetry recordings (\`foresight simulate --out\`, \`foresight replay --input\`): JSONL, one TelemetrySample per line
(\`{"ts":1704067201000,"nodeId":"ast1","metric":"channels.active","value":12,"source":"sim"}\`), or CSV
\`ts,nodeId,metric,value[,source]\` with or without that header (\`timestamp\`, \`node\`, \`node_id\` are accepted too); ts is
epoch ms or ISO 8601; gzip is detected by its magic bytes. Blank lines and lines starting with \`#\` are skipped; a bad
line is counted and reported with its line number, never fatal.

Labels (\`--labels\`): a JSON array of IncidentLabel: \`{"nodeId","mode","predictable","onsetAt","crashAt"}\`, modes
memory_leak, taskprocessor_backlog, db_degradation, retransmission_storm, sudden_crash; times epoch ms or ISO 8601;
\`predictable\` defaults to mode != sudden_crash.

Report (\`--out\`, schema \`foresight.replay-report/v1\`, types in src/eval/report.ts and src/eval/metrics.ts):
\`scorer\`; \`input\` (samples, badLines, firstBadLines [{line, reason}], truncated, rejected by reason); \`span\` (startTs,
endTs, nodes, nodeDays); \`settings\` (threshold, hysteresisWindows, windowMs, guardrails, drainTimeoutMs, restartDownMs,
recoverWindows, meanCallS, matchSlackMs, postCrashGraceMs); \`model\`, \`baselines.reactive\`, \`baselines.fixedThreshold\`:
DetectorSummary (recall, recallByMode, precision, drains by kind, falseDrainsPerNodeDay, falseDrainsPer100NodeDays,
lead/leadSlow/leadFast {n, medianS, p10S, p90S, minS, maxS}, callsAtRisk, callsDroppedEstimate, callsSaved, refusals);
\`sweep\`: [{threshold, recall, precision, falseDrainsPer100NodeDays, medianLeadS, medianLeadSlowS, medianLeadFastS,
drains, callsSaved}]; \`incidents\`: per incident {nodeId, mode, class, predictable, onsetAt, crashAt, censored,
drainedAt, leadS, activeAtCrash, activeAtDrain, callsDroppedEstimate, callsSaved}; \`unpredictable\`; \`censored\`;
\`falseDrains\`; \`series\` ({stepMs, nodes: [{nodeId, ts[], risk[]}]}, the largest risk per minute) or null.
`;
  const docPath = args.first === 0 ? 'docs/evaluation.md' : `docs/evaluation-confirm-${SEED_BASE + args.first}.md`;
  mkdirSync(dirname(docPath), { recursive: true });
  writeFileSync(docPath, doc);
  console.log(console_.join('\n'));
  console.log(
    `\n${args.clusters * NODES * (args.hours / 24)} node-days in ${seconds.toFixed(0)} s; ${docPath} written`,
  );
  if (!args.noPublic && args.first === 0) await runPublic();
}

if (process.argv[2] === '--worker') {
  const { share, hours, scorers } = JSON.parse(process.argv[3]!) as {
    share: number[];
    hours: number;
    scorers: string[];
  };
  const result = await worker(share, hours, scorers);
  process.send?.(result, () => process.exit(0));
} else {
  await main();
}
