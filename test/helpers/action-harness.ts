/** Builds an ActionEngine on the recording dispatcher, a virtual clock and a SQLite store, and drives it in steps. */
import { ActionEngine, type ActionEngineOptions, type EngineNode } from '../../src/actions/engine.js';
import type { Dispatcher, Restarter, Store } from '../../src/actions/ports.js';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { VirtualClock } from '../../src/clock.js';
import type { AuditRecord, CallsSource, NodeScore, ProbeWindow } from '../../src/messages.js';
import { RecordingDispatcher, RecordingRestarter } from './recording-dispatcher.js';

export const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
export const STEP = 5_000;

export function makeNodes(perSet: number[], firstPort = 5071): EngineNode[] {
  const nodes: EngineNode[] = [];
  let port = firstPort;
  let i = 1;
  perSet.forEach((count, set) => {
    for (let k = 0; k < count; k++) nodes.push({ nodeId: `ast${i++}`, setId: set + 1, uri: `sip:127.0.0.1:${port++}` });
  });
  return nodes;
}

/** Foresight's probes of a node that answers them all, quickly: what a healthy node shows. */
export const HEALTHY_PROBES = { sent: 10, lost: 0, replies5xx: 0, rttMsP50: 4 } as const;

/**
 * A score as a node with AMI and probes reports it: calls counted by AMI, up as reported, healthy probes, unless
 * `over` says otherwise (`activeCalls: null` for a node nobody counts the calls of, `probe: null` for no probes).
 */
export function score(
  nodeId: string,
  ts: number,
  risk: number,
  over: Partial<Pick<NodeScore, 'observed' | 'activeCalls' | 'up' | 'setId' | 'timeToFailureS' | 'explanation'>> & {
    probe?: ProbeWindow | null;
    upReported?: boolean | null;
    callsSource?: CallsSource;
  } = {},
): NodeScore {
  const calls = over.activeCalls === undefined ? 0 : over.activeCalls;
  const source = over.callsSource ?? 'ami';
  const up = over.up ?? true;
  return {
    activeCalls: calls,
    activeCallsSource: calls === null ? null : source,
    evidence: {
      calls: calls === null ? null : { count: calls, source },
      upReported: over.upReported === undefined ? up : over.upReported,
      probe: over.probe === undefined ? { ...HEALTHY_PROBES } : over.probe,
    },
    nodeId,
    setId: over.setId ?? 1,
    ts,
    risk,
    timeToFailureS: over.timeToFailureS ?? null,
    explanation: over.explanation ?? [],
    scorer: 'test-v1',
    observed: over.observed ?? true,
    up,
  };
}

export interface Harness {
  engine: ActionEngine;
  dispatcher: RecordingDispatcher;
  restarter: RecordingRestarter;
  store: Store;
  clock: VirtualClock;
  nodes: EngineNode[];
  audits: AuditRecord[];
  /** Advance to `t`, feed the scores, tick. */
  step(t: number, scores: NodeScore[]): Promise<void>;
  /** Init plus one healthy observed window at T0, so that every node counts as healthy capacity. */
  start(): Promise<void>;
  kinds(nodeId: string): string[];
  uri(nodeId: string): string;
}

export interface HarnessOptions extends Partial<Omit<ActionEngineOptions, 'store' | 'nodes' | 'clock'>> {
  nodes?: EngineNode[];
  store?: Store;
  clock?: VirtualClock;
  recording?: RecordingDispatcher;
  recordingRestarter?: RecordingRestarter;
  dispatcherWrapper?: (d: RecordingDispatcher) => Dispatcher;
  restarterWrapper?: (r: RecordingRestarter) => Restarter;
}

export async function harness(o: HarnessOptions = {}): Promise<Harness> {
  const nodes = o.nodes ?? makeNodes([4]);
  const dispatcher = o.recording ?? new RecordingDispatcher(nodes);
  const restarter = o.recordingRestarter ?? new RecordingRestarter();
  const store = o.store ?? new SqliteStore({ path: ':memory:' });
  const clock = o.clock ?? new VirtualClock(T0);
  const audits: AuditRecord[] = [];
  const engine = new ActionEngine({
    dispatcher: o.dispatcherWrapper ? o.dispatcherWrapper(dispatcher) : dispatcher,
    restarter: o.restarterWrapper ? o.restarterWrapper(restarter) : restarter,
    store,
    clock,
    nodes,
    guardrails: {
      maxOutOfServicePerSet: 1,
      maxOutOfServicePercent: 50,
      minActivePerSet: 2,
      cooldownMs: 0,
      ...o.guardrails,
    },
    lifecycle: { riskThreshold: 0.8, consecutiveWindows: 3, recoverThreshold: 0.3, recoverWindows: 2, ...o.lifecycle },
    timeouts: { reconcileIntervalMs: STEP, ...o.timeouts },
    retry: { attempts: 3, baseMs: 0, maxMs: 0, ...o.retry },
    sleep: async () => {},
    onAudit: (r) => {
      audits.push(r);
      o.onAudit?.(r);
    },
    ...(o.dryRun !== undefined ? { dryRun: o.dryRun } : {}),
    ...(o.listDefaults ? { listDefaults: o.listDefaults } : {}),
    ...(o.feedback ? { feedback: o.feedback } : {}),
  });
  const h: Harness = {
    engine,
    dispatcher,
    restarter,
    store,
    clock,
    nodes,
    audits,
    async step(t, scores) {
      clock.advanceTo(t);
      await engine.onScores(scores);
      await engine.tick(t);
    },
    async start() {
      await engine.init();
      await h.step(T0, healthyExcept(nodes, T0, []));
    },
    kinds: (nodeId) => audits.filter((a) => a.nodeId === nodeId).map((a) => a.kind),
    uri: (nodeId) => {
      const n = nodes.find((x) => x.nodeId === nodeId);
      if (!n) throw new Error(`no node ${nodeId}`);
      return n.uri;
    },
  };
  return h;
}

/** Healthy scores for every node except the ones given. */
export function healthyExcept(nodes: EngineNode[], ts: number, special: NodeScore[]): NodeScore[] {
  const ids = new Set(special.map((s) => s.nodeId));
  return [
    ...nodes
      .filter((n) => !ids.has(n.nodeId))
      .map((n) => score(n.nodeId, ts, 0.05, { setId: n.setId, activeCalls: 3 })),
    ...special,
  ];
}
