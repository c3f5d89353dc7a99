/**
 * Bounded soak through the real stack (`npm run soak`; `--minutes 6 --speed 10 --nodes 12` are the defaults):
 * the cluster simulator publishes one hour of cluster telemetry to Kafka at 10× real time while `foresight run`
 * (a child process, dry-run against the test Kamailio, PostgreSQL store) consumes it. Recorded every few seconds:
 * the sidecar's RSS, heap and event-loop delay (a preloaded perf_hooks probe, test/chaos/loop-probe.ts), the pipeline
 * lag of its consumer groups, and the publisher's own event-loop delay.
 *
 * Simulated event times are compressed onto wall time (virtual second n of the hour lands at start + n/speed), so
 * the sidecar, whose windows follow the wall clock, sees the simulated traffic at `speed`× density.
 *
 * Fails (exit 1) when RSS grows without bound (least-squares slope over the second half above --max-slope MiB/min)
 * or when the pipeline lag does not return to 0 within --recover-s after publishing stops. Writes the figures of the
 * run to docs/reliability.md between markers.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { linearRegression } from 'simple-statistics';
import type { TelemetrySample } from '../src/messages.js';
import { SimulatedCluster } from '../src/sim/index.js';
import {
  CHAOS_VAR,
  createScratchDatabase,
  freePort,
  openBus,
  REPO,
  SidecarProcess,
  sidecarConfig,
  sleep,
} from '../test/chaos/env.js';

const run = promisify(execFile);

interface Point {
  /** Seconds since the soak started. */
  s: number;
  rssMb: number;
  heapMb: number;
  loopP99Ms: number;
  loopMaxMs: number;
  telemetryLag: number;
  scoresLag: number;
  published: number;
}

const program = new Command()
  .option('--minutes <n>', 'wall minutes of publishing', '6')
  .option('--speed <x>', 'simulated seconds per wall second', '10')
  .option('--nodes <n>', 'simulated Asterisk nodes', '12')
  .option('--max-slope <mib_per_min>', 'largest RSS slope allowed over the second half, MiB per wall minute', '4')
  .option('--recover-s <s>', 'seconds the pipeline lag may take to reach 0 after publishing stops', '60')
  .option('--report <file>', 'report to update', 'docs/reliability.md')
  .parse();
const opts = program.opts<{
  minutes: string;
  speed: string;
  nodes: string;
  maxSlope: string;
  recoverS: string;
  report: string;
}>();

const minutes = Number(opts.minutes);
const speed = Number(opts.speed);
const nodeCount = Number(opts.nodes);
const maxSlope = Number(opts.maxSlope);
const recoverS = Number(opts.recoverS);

async function service(name: string, action: string): Promise<void> {
  await run('bash', [join(REPO, `scripts/services/${name}.sh`), action], { timeout: 180_000 });
}

function slopePerMinute(points: Point[], key: 'rssMb' | 'heapMb'): number {
  if (points.length < 3) return 0;
  const { m } = linearRegression(points.map((p) => [p.s / 60, p[key]]));
  return m;
}

function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

async function main(): Promise<void> {
  await service('kafka', 'start');
  await service('databases', 'start');
  const db = await createScratchDatabase('soak');
  const probeFile = join(CHAOS_VAR, 'soak-probe.jsonl');
  if (existsSync(probeFile)) rmSync(probeFile);
  // One run per log, so the disturbance counts below are this run's.
  rmSync(join(CHAOS_VAR, 'soak.log'), { force: true });
  const base = sidecarConfig({ name: 'soak', storeUrl: db.url, apiPort: await freePort() });
  // Simulated node ids (ast1..astN) on dispatcher URIs that exist nowhere: dry-run decides and audits only.
  const config = {
    ...base,
    nodes: Array.from({ length: nodeCount }, (_, i) => ({
      id: `ast${i + 1}`,
      setId: 1,
      uri: `sip:127.0.0.1:${5071 + i}`,
    })),
    features: { windowMs: 10_000, allowedLatenessMs: 2000 },
    actions: { ...(base.actions as object), dryRun: true },
  };
  const groupId = `foresight-soak`;
  const sidecar = await SidecarProcess.start(config, 'soak', {
    preload: './test/chaos/loop-probe.ts',
    env: { SOAK_PROBE_FILE: probeFile, FORESIGHT_LOG_LEVEL: 'warn' },
  });
  const { bus } = await openBus(config);
  const ownLoop = monitorEventLoopDelay({ resolution: 10 });
  ownLoop.enable();

  const wallStart = Date.now();
  const sim = new SimulatedCluster({ seed: 7, nodes: nodeCount, startAt: wallStart });
  const virtualStart = wallStart;
  const toWall = (virtualTs: number) => wallStart + Math.floor((virtualTs - virtualStart) / speed);
  const durationMs = minutes * 60_000;
  let published = 0;
  let publishErrors = 0;
  const points: Point[] = [];
  let publishing = true;

  const sampler = (async () => {
    for (;;) {
      await sleep(5000);
      const probe = readFileSync(probeFile, 'utf8').trim().split('\n').filter(Boolean).at(-1);
      const p = probe
        ? (JSON.parse(probe) as { rssMb: number; heapMb: number; loopP99Ms: number; loopMaxMs: number })
        : null;
      const [telemetryLag, scoresLag] = await Promise.all([
        bus.lag('telemetry', `${groupId}.features`).catch(() => -1),
        bus.lag('scores', `${groupId}.actions`).catch(() => -1),
      ]);
      points.push({
        s: (Date.now() - wallStart) / 1000,
        rssMb: p?.rssMb ?? 0,
        heapMb: p?.heapMb ?? 0,
        loopP99Ms: p?.loopP99Ms ?? 0,
        loopMaxMs: p?.loopMaxMs ?? 0,
        telemetryLag,
        scoresLag,
        published,
      });
      const last = points.at(-1)!;
      process.stdout.write(
        `soak t=${last.s.toFixed(0)}s rss=${last.rssMb}MiB heap=${last.heapMb}MiB loop_p99=${last.loopP99Ms}ms ` +
          `lag=${telemetryLag}/${scoresLag} published=${published}\n`,
      );
      if (!publishing && telemetryLag === 0 && scoresLag === 0) return;
      if (!sidecar.alive) return;
      if (Date.now() - wallStart > durationMs + recoverS * 1000) return;
    }
  })();

  // Publisher: every 100 ms of wall time, the next `speed` × 100 ms of simulated time.
  let virtualNow = virtualStart;
  while (Date.now() - wallStart < durationMs && sidecar.alive) {
    const target = virtualStart + (Date.now() - wallStart + 100) * speed;
    const out: TelemetrySample[] = sim.step(target);
    virtualNow = target;
    if (out.length > 0) {
      try {
        await bus.publish(
          'telemetry',
          out.map((s) => {
            const ts = toWall(s.ts);
            return { key: s.nodeId, value: { ...s, ts }, timestamp: ts };
          }),
        );
        published += out.length;
      } catch {
        publishErrors++;
      }
    }
    const wait = wallStart + (virtualNow - virtualStart) / speed - Date.now();
    if (wait > 0) await sleep(wait);
  }
  publishing = false;
  const stoppedAt = Date.now();
  await sampler;
  const lagRecoveredS = (Date.now() - stoppedAt) / 1000;
  const finalPoint = points.at(-1);
  const recovered = finalPoint !== undefined && finalPoint.telemetryLag === 0 && finalPoint.scoresLag === 0;
  const alive = sidecar.alive;

  const publishPoints = points.filter((p) => p.s * 1000 <= durationMs);
  const secondHalf = publishPoints.filter((p) => p.s * 1000 >= durationMs / 2);
  const lastQuarter = publishPoints.filter((p) => p.s * 1000 >= (durationMs * 3) / 4);
  const rssSlope = slopePerMinute(secondHalf, 'rssMb');
  const rssSlopeLastQuarter = slopePerMinute(lastQuarter, 'rssMb');
  const heapSlope = slopePerMinute(secondHalf, 'heapMb');
  const loopP99s = publishPoints.map((p) => p.loopP99Ms);
  const lags = publishPoints.map((p) => p.telemetryLag).filter((l) => l >= 0);
  const simulatedMinutes = ((virtualNow - virtualStart) / 60_000).toFixed(1);
  const ownP99 = Math.round(ownLoop.percentile(99) / 1e4) / 100;

  // Outside disturbances (a broker restart by someone else on a shared machine) explain steps in the figures.
  const runLog = readFileSync(sidecar.logFile, 'utf8');
  const leadershipLosses = runLog.split('no longer executes actions').length - 1;
  const brokerErrors = runLog.split('Failed to connect to seed broker').length - 1;
  await sidecar.stop();
  await bus.close();
  await db.drop().catch(() => undefined);

  const failures: string[] = [];
  if (!alive) failures.push(`the sidecar died: ${sidecar.describeExit()}`);
  // Growth without bound keeps growing: a one-off step (a burst, a rebalance) followed by a plateau is not a leak,
  // so the slope must exceed the limit over the second half and still over the last quarter.
  if (rssSlope > maxSlope && rssSlopeLastQuarter > maxSlope) {
    failures.push(
      `RSS grows ${rssSlope.toFixed(2)} MiB/min over the second half and ${rssSlopeLastQuarter.toFixed(2)} over the ` +
        `last quarter (max ${maxSlope})`,
    );
  }
  if (!recovered) failures.push(`pipeline lag did not return to 0 within ${recoverS} s after publishing stopped`);

  const rows = [
    ['wall time publishing', `${minutes} min at ${speed}× (${simulatedMinutes} simulated min, ${nodeCount} nodes)`],
    [
      'samples published',
      `${published} (${Math.round(published / (minutes * 60))}/s; ${publishErrors} failed batches)`,
    ],
    [
      'sidecar RSS first / last / max',
      `${publishPoints[0]?.rssMb ?? 0} / ${publishPoints.at(-1)?.rssMb ?? 0} / ${Math.max(0, ...publishPoints.map((p) => p.rssMb))} MiB`,
    ],
    [
      'RSS slope, second half / last quarter',
      `${rssSlope.toFixed(2)} / ${rssSlopeLastQuarter.toFixed(2)} MiB/min (limit ${maxSlope}; fails only when both exceed it)`,
    ],
    ['heap slope, second half', `${heapSlope.toFixed(2)} MiB/min`],
    [
      'sidecar event-loop delay p99 (median / max of 2 s windows)',
      `${percentile(loopP99s, 0.5)} / ${Math.max(0, ...loopP99s)} ms`,
    ],
    ['publisher event-loop delay p99', `${ownP99} ms`],
    ['telemetry lag while publishing (median / max)', `${percentile(lags, 0.5)} / ${Math.max(0, ...lags)} records`],
    [
      'lag back to 0 after publishing stopped',
      recovered ? `${lagRecoveredS.toFixed(1)} s` : `no (after ${lagRecoveredS.toFixed(0)} s)`,
    ],
    [
      'disturbances seen by the sidecar',
      `${leadershipLosses} leadership losses, ${brokerErrors} broker connection errors`,
    ],
    ['verdict', failures.length === 0 ? 'pass' : `FAIL: ${failures.join('; ')}`],
  ];
  const table = ['| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  const section = `<!-- soak:begin -->\nLast soak: ${new Date().toISOString()} (\`npm run soak\`).\n\n${table}\n<!-- soak:end -->`;
  const reportPath = join(REPO, opts.report);
  const current = existsSync(reportPath)
    ? readFileSync(reportPath, 'utf8')
    : '# Reliability\n\n<!-- soak:begin -->\n<!-- soak:end -->\n';
  const updated = /<!-- soak:begin -->[\s\S]*<!-- soak:end -->/.test(current)
    ? current.replace(/<!-- soak:begin -->[\s\S]*<!-- soak:end -->/, section)
    : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(reportPath, updated);
  writeFileSync(join(CHAOS_VAR, 'soak-points.json'), JSON.stringify(points));
  console.log(table);
  if (failures.length > 0) {
    console.error(`soak failed: ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
