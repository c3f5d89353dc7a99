/** Action-module benchmarks: the cost of one scoring window for a 1000-node cluster, and audit append throughput. */
import { DryRunDispatcher, DryRunRestarter } from '../src/actions/dry-run.js';
import { ActionEngine, type EngineNode } from '../src/actions/engine.js';
import { SqliteStore } from '../src/actions/store/sqlite.js';
import { VirtualClock } from '../src/clock.js';
import type { NodeScore } from '../src/messages.js';

const NODES = 1000;
const SETS = 10;
const WINDOWS = 300;
const STEP = 5_000;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Deterministic PRNG so that runs are comparable. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function run(): Promise<{ name: string; value: number; unit: string }[]> {
  const nodes: EngineNode[] = Array.from({ length: NODES }, (_, i) => ({
    nodeId: `ast${i}`,
    setId: (i % SETS) + 1,
    uri: `sip:10.0.${Math.floor(i / 250)}.${i % 250}:5060`,
  }));
  const clock = new VirtualClock(Date.UTC(2026, 0, 1));
  const store = new SqliteStore({ path: ':memory:' });
  const engine = new ActionEngine({
    dispatcher: new DryRunDispatcher({ destinations: nodes }),
    restarter: new DryRunRestarter(),
    store,
    clock,
    nodes,
    dryRun: true,
    guardrails: { maxOutOfServicePerSet: 5, maxOutOfServicePercent: 10, minActivePerSet: 50, maxDrainsPerHour: 1000 },
  });
  await engine.init();
  const rand = mulberry32(7);
  // A few nodes run hot for a while, so the loop exercises streaks, drains, refusals and full lifecycles.
  const hot = new Set<number>();
  const scoreMs: number[] = [];
  const tickMs: number[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    const t = clock.now() + STEP;
    clock.advanceTo(t);
    if (w % 10 === 0) {
      hot.clear();
      for (let k = 0; k < 30; k++) hot.add(Math.floor(rand() * NODES));
    }
    const scores: NodeScore[] = nodes.map((n, i) => ({
      nodeId: n.nodeId,
      setId: n.setId,
      ts: t,
      risk: hot.has(i) ? 0.85 + rand() * 0.15 : rand() * 0.3,
      timeToFailureS: null,
      explanation: [],
      scorer: 'bench',
      observed: rand() > 0.01,
      activeCalls: Math.floor(rand() * 3),
      activeCallsSource: 'ami',
      evidence: { calls: { count: Math.floor(rand() * 3), source: 'ami' }, upReported: true, probe: null },
      up: true,
    }));
    let t0 = performance.now();
    await engine.onScores(scores);
    scoreMs.push(performance.now() - t0);
    t0 = performance.now();
    await engine.tick(t);
    tickMs.push(performance.now() - t0);
  }
  scoreMs.sort((a, b) => a - b);
  tickMs.sort((a, b) => a - b);
  const drains = (await store.queryAudit({ kind: 'DrainStarting', limit: 10_000 })).length;

  const appendStore = new SqliteStore({ path: ':memory:' });
  await appendStore.init();
  const appends = 5_000;
  const a0 = performance.now();
  for (let i = 0; i < appends; i++) {
    await appendStore.appendAudit({
      ts: i,
      nodeId: `ast${i % 100}`,
      kind: 'DrainRefused',
      actor: 'auto',
      reason: 'bench',
      decisionId: null,
      dryRun: true,
      details: { guardrail: 'min_active', risk: 0.9 },
    });
  }
  const appendPerS = appends / ((performance.now() - a0) / 1000);
  await appendStore.close();
  await store.close();

  return [
    { name: 'actions.on_scores_1000_nodes.ms_p50', value: quantile(scoreMs, 0.5), unit: 'ms' },
    { name: 'actions.on_scores_1000_nodes.ms_p99', value: quantile(scoreMs, 0.99), unit: 'ms' },
    { name: 'actions.tick_1000_nodes.ms_p99', value: quantile(tickMs, 0.99), unit: 'ms' },
    { name: 'actions.drains_started_in_bench', value: drains, unit: 'count' },
    { name: 'actions.sqlite_append_audit.per_s', value: appendPerS, unit: 'records/s' },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(`${r.name} ${r.value.toFixed(3)} ${r.unit}`);
}
