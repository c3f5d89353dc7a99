/**
 * `foresight` command line. Each command lives in its own module and is imported only when used, so `--help` is fast
 * and a command's heavy dependencies (TensorFlow.js, Kafka) load only for the commands that need them.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ForesightError } from '../errors.js';
import { parseDuration } from './duration.js';

function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function brokerList(value: string): string[] {
  return value
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
}

function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${value}" is not a whole number`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function speedArg(value: string): number | 'max' {
  if (value === 'max') return 'max';
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`"${value}" is not "max" or a positive number`);
  return n;
}

const program = new Command()
  .name('foresight')
  .description('Predicts Asterisk node failures and drains them in Kamailio before they crash.')
  .showHelpAfterError();

program
  .command('demo', { isDefault: false })
  .description('Run the whole loop on a simulated cluster (in-process bus, SQLite, dashboard on 127.0.0.1:8080).')
  .option('-c, --config <file>', 'config file (JSON); defaults are the embedded ones')
  .option('--headless', 'no HTTP server: run simulated time and print a summary')
  .option('--speed <x|max>', 'virtual seconds per wall second, or "max" to run as fast as the CPU allows', speedArg)
  .option(
    '--duration <d>',
    'how much simulated time to run, e.g. 90m, 6h, 1d (default: until stopped; 6h headless)',
    durationArg,
  )
  .option('--seed <n>', 'simulator seed', intArg)
  .option('--nodes <n>', 'number of simulated Asterisk nodes', intArg)
  .option('--port <n>', 'dashboard port', intArg)
  .option('--summary-json <file>', 'write the incident summary as JSON')
  .option('--dry-run', 'decide and audit, but never touch the (simulated) dispatcher')
  .action(async (opts) => {
    const { runDemo } = await import('./demo.js');
    await runDemo(opts);
  });

program
  .command('run')
  .description('Run as the sidecar: the configured collectors, the pipeline, the action module and the API.')
  .requiredOption('-c, --config <file>', 'config file (JSON)')
  .action(async (opts) => {
    const { runSidecar } = await import('./run.js');
    await runSidecar(opts);
  });

program
  .command('train')
  .description('Train the anomaly model on recorded telemetry and write a model artefact.')
  .option('--input <file...>', 'JSONL of TelemetrySample or CSV ts,nodeId,metric,value (gzip detected)')
  .requiredOption('--out <dir>', 'artefact folder, e.g. models/mycluster')
  .option('--labels <file>', 'incident labels (IncidentLabel[] JSON or JSONL): their precursors are not "healthy"')
  .option('--verdicts <file>', "audit records (JSON/JSONL) holding operators' Verdict entries")
  .option('--verdicts-store <sqlite>', 'read Verdict audit records from a Foresight SQLite store')
  .option(
    '--kafka <topic@from..to>',
    'read a telemetry topic time range, e.g. foresight.telemetry@2026-11-20T00:00Z..now (from/to: ISO 8601, epoch ms, now, or an age like 24h)',
  )
  .option('-c, --config <file>', 'the sidecar config: bus.kafka (brokers, client) for --kafka, and features.windowMs')
  .option('--brokers <list>', 'bootstrap brokers for --kafka, comma-separated host:port', brokerList)
  .option(
    '--window-ms <ms>',
    "feature window to train on; must equal the sidecar's features.windowMs (default: the config's, else 10000)",
    intArg,
  )
  .option('--name <name>', 'model name in the manifest')
  .option('--epochs <n>', 'training epochs', intArg)
  .option('--seed <n>', 'seed for initialisation and shuffling', intArg)
  .option('--recovery-ms <ms>', 'after a labelled crash, windows stay non-healthy this long (default 900000)', intArg)
  .option(
    '--max-disorder-ms <ms>',
    'event-time disorder within an input file put right while streaming it (default 600000); later samples are fed where they are',
    intArg,
  )
  .option('--quiet', 'no progress bar')
  .action(async (opts) => {
    const { runTrain } = await import('./train.js');
    await runTrain(opts);
  });

program
  .command('score')
  .description(
    "Score any metric CSV (timestamp + metric columns) with the product's scorers: adds raw_score, risk, status, explanation.",
  )
  .requiredOption('--input <file>', 'CSV with a header: timestamp,<metric columns...> (gzip detected)')
  .requiredOption('--output <file>', 'where to write the input rows plus raw_score,risk,status,explanation')
  .option('--scorer <stat|tfjs>', 'stat (default, online) or tfjs (autoencoder trained on --train)')
  .option('--train <normal.csv>', 'fit on a period you say was normal (same metric columns) first')
  .option('--strict', 'fail on the first bad row instead of the documented per-row treatment')
  .option('--warmup <rows>', 'values per metric before stat judges it (online)', intArg)
  .option('--window <rows>', "recent values forming a metric's baseline (stat)", intArg)
  .option('--threshold <z>', 'robust |z| up to which a value is normal variation (stat)', Number)
  .option('--quiet', 'no progress bar')
  .action(async (opts) => {
    const { runScore } = await import('./score.js');
    await runScore(opts);
  });

program
  .command('simulate')
  .description(
    'Record simulated cluster telemetry (no actions) as JSONL, with incident labels, for replay and training.',
  )
  .requiredOption('--out <file>', 'telemetry JSONL (gzipped when the name ends in .gz)')
  .option('--labels <file>', 'write the incident labels (IncidentLabel[] JSON)')
  .option('--seed <n>', 'simulator seed', intArg)
  .option('--duration <d>', 'simulated time, e.g. 90m, 24h (default 24h)', durationArg)
  .option('--nodes <n>', 'number of nodes (default 4)', intArg)
  .option('--incidents-per-node-day <x>', 'random incident rate', Number)
  .option(
    '--incident <spec>',
    'planned incident MODE:NODE:ONSET[:CRASH], offsets from the start (repeatable)',
    collect,
    [],
  )
  .option('--start <iso>', 'simulated start time (ISO 8601)')
  .action(async (opts) => {
    const { runSimulate } = await import('./simulate.js');
    await runSimulate(opts);
  });

program
  .command('replay')
  .description(
    'Replay recorded telemetry through the pipeline on a virtual clock and report lead times, recall, precision.',
  )
  .option('--input <file>', 'telemetry JSONL or CSV (gzip detected)')
  .option('--kafka <topic@from..to>', 'instead of --input: a telemetry topic time range, as for train')
  .option('--brokers <list>', 'bootstrap brokers for --kafka, comma-separated host:port', brokerList)
  .option('--labels <file>', 'incident labels (IncidentLabel[] JSON); none: the recording is taken as incident-free')
  .option('-c, --config <file>', 'config file (guardrails and thresholds; bus.kafka for --kafka)')
  .option('--scorer <stat|tfjs>', "scorer to evaluate (default: the config's)")
  .option('--model <dir>', 'model artefact for the tfjs scorer')
  .option('--threshold <x>', "risk threshold (default: the config's riskThreshold)", Number)
  .option('--out <file>', 'report JSON')
  .option('--html <file>', 'report as one HTML page with plots')
  .action(async (opts) => {
    const { runReplay } = await import('./replay.js');
    await runReplay(opts);
  });

const model = program
  .command('model')
  .description('Which scorer drives decisions (model lifecycle), and rolling back to the previous one.');
for (const [name, what] of [
  ['status', 'print which scorer drives decisions, since when and why'],
  ['rollback', 'put the previous scorer back in charge (audited); a second rollback undoes the first'],
] as const) {
  const cmd = model
    .command(name)
    .description(what)
    .option('--url <url>', 'Foresight API base URL (default http://127.0.0.1:8080)')
    .option('--token <token>', 'API token (default: $FORESIGHT_TOKEN; none in open local mode)');
  if (name === 'rollback') cmd.requiredOption('--reason <text>', 'why, in plain words (goes to the audit)');
  cmd.action(async (opts) => {
    const m = await import('./model.js');
    await (name === 'rollback' ? m.runModelRollback(opts) : m.runModelStatus(opts));
  });
}

program
  .command('verdict')
  .description(
    "Judge an automatic drain through a running Foresight's API: a false alarm raises the drain threshold of the scorer that raised it, a true alarm lowers it, within actions.thresholdFeedback's bound.",
  )
  .argument('<decisionId>', 'the decision id of the drain (in its audit record and on the dashboard)')
  .argument('<verdict>', 'true-alarm or false-alarm')
  .option('--reason <text>', 'why (recorded in the audit trail)')
  .option('--url <url>', 'API base URL (default $FORESIGHT_API_URL, else http://127.0.0.1:8080)')
  .option('--token <token>', 'operator bearer token (default $FORESIGHT_API_TOKEN)')
  .option('--json', 'print the Verdict audit record as JSON')
  .action(async (decisionId: string, verdict: string, opts) => {
    const { runVerdict } = await import('./verdict.js');
    await runVerdict(decisionId, verdict, opts);
  });

program
  .command('thresholds')
  .description("Show the drain threshold in use and each scorer's effective threshold as verdicts moved it.")
  .option('--url <url>', 'API base URL (default $FORESIGHT_API_URL, else http://127.0.0.1:8080)')
  .option('--token <token>', 'viewer bearer token (default $FORESIGHT_API_TOKEN)')
  .option('--json', 'print the answer as JSON')
  .action(async (opts) => {
    const { runThresholds } = await import('./verdict.js');
    await runThresholds(opts);
  });

program
  .command('check-config')
  .description('Validate a config file (and the environment overlay) and print the effective config, secrets redacted.')
  .argument('[file]', 'config file (JSON)')
  .action(async (file: string | undefined) => {
    const { loadConfig, redactConfig } = await import('../config/load.js');
    console.log(JSON.stringify(redactConfig(loadConfig(file)), null, 2));
  });

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === 'commander.helpDisplayed' || code === 'commander.help' || code === 'commander.version') process.exit(0);
  if (typeof code === 'string' && code.startsWith('commander.')) process.exit(2);
  if (err instanceof ForesightError) {
    console.error(`foresight: ${err.message}`);
    process.exit(2);
  }
  // System errors (port in use, file not found) are the operator's to fix: say what, not where in our code.
  const sysCode = (err as NodeJS.ErrnoException).code;
  if (sysCode && !process.env.FORESIGHT_DEBUG) console.error(`foresight: ${(err as Error).message}`);
  else console.error(err);
  process.exit(1);
}
