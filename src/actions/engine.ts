/**
 * The action engine: the I/O shell around the decision core (src/core/). The core says what to do with each node —
 * drain, wait, restart, return, quarantine — from the evidence of its windows; the engine does it (dispatcher,
 * restarter), retries what failed, keeps the store as the record of what is true (so a restarted Foresight resumes
 * where it was) and writes every step to the audit trail with the evidence the core named.
 *
 * All public operations run one at a time (a promise chain), so scores, ticks and operator requests never interleave
 * on one node's state. Dispatcher retries therefore hold the queue for a few seconds at most.
 *
 * Reset versus manual change (see reconcile()): a destination Foresight keeps disabled that shows up enabled again
 * was either reset wholesale (dispatcher.reload or a Kamailio restart reloads every state from the list file) or
 * enabled by a person. Where the dispatcher has a reset marker (Kamailio: a marker destination that only a reload or
 * restart removes), its answer decides; elsewhere a heuristic does: every Foresight-drained destination came back at
 * once AND either at least two did, or the whole list matches the list-file defaults. A manual change is recorded,
 * audited, shown, and never reverted; a person clears it through the API.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { type DrainOutcome, decideDrains } from '../core/drains.js';
import {
  compileMaintenanceWindows,
  DEFAULT_GUARDRAILS,
  evaluateDrain,
  type GuardrailConfig,
  type GuardrailName,
  type GuardrailVerdict,
  isAuto,
  type NodeView,
  summarizeSets,
  validateGuardrails,
} from '../core/guardrails.js';
import {
  DEFAULT_LIFECYCLE_POLICY,
  type DrainPlan,
  drainConfirmedAt,
  endProbationIfDue,
  enter,
  evidenceOf,
  holdReplayed,
  inProbation,
  type LifecycleNode,
  type LifecyclePolicy,
  newLifecycleNode,
  nextStep,
  observe,
  restartIssued,
  type Step,
  startDrain,
} from '../core/lifecycle.js';
import type { ThresholdFeedback } from '../core/thresholds.js';
import { errorMessage, ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type {
  AuditKind,
  AuditRecord,
  DrainAction,
  DrainDecision,
  NodeLifecycleState,
  NodeRecord,
  NodeScore,
  ProbeWindow,
} from '../messages.js';
import type { Dispatcher, DispatcherDestination, ProxyDestinationState, Restarter, Store } from './ports.js';
import { EffectiveThresholds, isCounted, moveOf, type ThresholdsView } from './thresholds.js';

export type { DrainPlan } from '../core/lifecycle.js';

export interface EngineNode {
  nodeId: string;
  setId: number;
  /** Dispatcher destination URI exactly as in the list file. */
  uri: string;
}

export interface LifecycleConfig {
  /** Risk at or above which a window counts toward an automatic drain. */
  riskThreshold: number;
  /** K: consecutive observed windows at or above the threshold before a drain is requested. */
  consecutiveWindows: number;
  /** Risk below which an observed node counts as calm. */
  recoverThreshold: number;
  /** N: consecutive windows of healthy probes before a drained node returns to rotation. */
  recoverWindows: number;
}

/** A drain whose node keeps its calls may run to this many drain timeouts (the core's default). */
export const DRAIN_EXTENSION = DEFAULT_LIFECYCLE_POLICY.drainExtensions;

export interface EngineTimeouts {
  /** One dispatcher RPC. */
  dispatcherCallMs: number;
  /** One restarter call. */
  restartCallMs: number;
  /** Wait for active calls to reach 0 before restarting anyway. */
  drainMs: number;
  /** Wait for the node to come back up after the restart call; then the node stays out and an operator decides. */
  restartMs: number;
  /** Wait for healthy probes after a restart; then the node is quarantined. */
  recoverMs: number;
  /** How often tick() compares the dispatcher with the store. */
  reconcileIntervalMs: number;
  /** A refusal for the same node and guardrail is audited again only after this long. */
  refusalRepeatMs: number;
  /** Base delay between lifecycle retries of a failed dispatcher change (doubles up to 16×). */
  lifecycleRetryMs: number;
}

export interface RetryPolicy {
  /** Tries per dispatcher or restarter operation. */
  attempts: number;
  baseMs: number;
  maxMs: number;
}

/** What a list-file entry sets: Foresight's reset heuristic compares the live list against it. */
export interface ListDefaults {
  disabled: boolean;
  probing: boolean;
}

/** A dispatcher that can tell a wholesale reset (reload, restart) from a person's change: Kamailio's reset marker. */
export interface ResetAwareDispatcher extends Dispatcher {
  armResetMarker(): Promise<void>;
  resetSinceArmed(): Promise<boolean>;
}

function isResetAware(d: Dispatcher): d is ResetAwareDispatcher {
  const r = d as Partial<ResetAwareDispatcher>;
  return typeof r.armResetMarker === 'function' && typeof r.resetSinceArmed === 'function';
}

export interface ActionEngineOptions {
  dispatcher: Dispatcher;
  restarter: Restarter;
  store: Store;
  nodes: EngineNode[];
  clock?: Clock;
  logger?: Logger;
  guardrails?: Partial<GuardrailConfig>;
  lifecycle?: Partial<LifecycleConfig>;
  /** The decision core's policy beyond `lifecycle` and `timeouts` (probes, probation, restarts per hour, ...). */
  policy?: Partial<LifecyclePolicy>;
  timeouts?: Partial<EngineTimeouts>;
  retry?: Partial<RetryPolicy>;
  /** Default: flags 8 in the list file (active, probing). */
  listDefaults?: ListDefaults;
  /** Called with every stored audit record (the wiring publishes them on the bus and to the dashboard). */
  onAudit?: (record: AuditRecord) => void;
  /** Labels audit records and decisions; dry-run itself is the DryRunDispatcher/DryRunRestarter swapped in. */
  dryRun?: boolean;
  newId?: () => string;
  /** Backoff sleep between retries (real time). */
  sleep?: (ms: number) => Promise<void>;
  /** How operators' verdicts move the drain threshold; absent: they do not move it. */
  feedback?: ThresholdFeedback;
  /** The scorer in charge before the first score names it (the configured one). */
  scorer?: string;
}

export const DEFAULT_LIFECYCLE: LifecycleConfig = {
  riskThreshold: DEFAULT_LIFECYCLE_POLICY.riskThreshold,
  consecutiveWindows: DEFAULT_LIFECYCLE_POLICY.consecutiveWindows,
  recoverThreshold: DEFAULT_LIFECYCLE_POLICY.recoverThreshold,
  recoverWindows: DEFAULT_LIFECYCLE_POLICY.healthyProbeWindows,
};

export const DEFAULT_TIMEOUTS: EngineTimeouts = {
  dispatcherCallMs: 5_000,
  restartCallMs: 120_000,
  drainMs: DEFAULT_LIFECYCLE_POLICY.drainMs,
  restartMs: DEFAULT_LIFECYCLE_POLICY.restartMs,
  recoverMs: DEFAULT_LIFECYCLE_POLICY.recoverMs,
  reconcileIntervalMs: 10_000,
  refusalRepeatMs: 15 * 60_000,
  lifecycleRetryMs: 5_000,
};

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 200, maxMs: 5_000 };

export interface AutoDecisionInfo {
  ts: number;
  outcome: 'drain_started' | 'refused' | 'waiting_hysteresis' | 'below_threshold' | 'unobserved' | 'not_active';
  guardrail: GuardrailName | null;
  detail: string;
  risk: number | null;
  streak: number;
}

export interface NodeExplanation {
  nodeId: string;
  setId: number;
  state: NodeLifecycleState;
  since: number;
  reason: string;
  decisionId: string | null;
  plan: DrainPlan | null;
  pinned: boolean;
  manualOverride: string | null;
  /** True while a drain is recorded but the dispatcher has not confirmed it. */
  drainUnconfirmed: boolean;
  /** Why the lifecycle stopped and waits for an operator, or null. */
  stalled: string | null;
  /** `proxies`: each proxy's view where the dispatcher fronts several (ProxyFleetDispatcher). */
  dispatcher: { state: string; flags: string; proxies?: ProxyDestinationState[] } | null;
  lastScore: {
    ts: number;
    risk: number;
    observed: boolean;
    activeCalls: number | null;
    activeCallsSource: string | null;
    up: boolean;
  } | null;
  riskStreak: number;
  /** Consecutive windows of healthy probes (what a return needs). */
  recoverStreak: number;
  /** End of probation, epoch ms, or null. */
  probationUntil: number | null;
  /** How a quarantined node may come back. */
  quarantineRelease: 'probes' | 'operator' | null;
  /** What the latest probes said. */
  probe: { window: ProbeWindow | null; verdict: string | null; healthy: boolean | null };
  lastAutoDecision: AutoDecisionInfo | null;
}

export interface ActionResult {
  /** Null when nothing had to be done (idempotent repeat). */
  decision: DrainDecision | null;
  record: NodeRecord;
  /** False when the dispatcher did not confirm the change yet; the engine keeps retrying. */
  applied: boolean;
}

export interface OperatorRequest {
  actor: string;
  reason: string;
  force?: boolean;
}

interface Runtime {
  /** The decision core's view of the node. */
  node: LifecycleNode;
  uri: string;
  decisionId: string | null;
  reason: string;
  lastScore: NodeScore | null;
  failures: number;
  retryAt: number;
  stalled: string | null;
  dest: DispatcherDestination | null;
  lastRefusal: { guardrail: GuardrailName; at: number } | null;
  lastAuto: AutoDecisionInfo | null;
}

type ChangeResult = { ok: true; already: boolean; attempts: number } | { ok: false; error: unknown; attempts: number };

const MAX_REMEMBERED_DECISIONS = 10_000;

function destKey(setId: number, uri: string): string {
  return `${setId}|${uri.toLowerCase()}`;
}

function recordOf(rt: Runtime): NodeRecord {
  const n = rt.node;
  return {
    nodeId: n.nodeId,
    setId: n.setId,
    uri: rt.uri,
    state: n.state,
    since: n.since,
    pinned: n.pinned,
    manualOverride: n.manualOverride,
    lastDrainAt: n.lastDrainAt,
    decisionId: rt.decisionId,
    reason: rt.reason,
  };
}

export class ActionEngine {
  private readonly dispatcher: Dispatcher;
  private readonly restarter: Restarter;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly guardrails: GuardrailConfig;
  /** The core's policy; its riskThreshold is the scorer in charge's effective threshold (see `thresholds`). */
  private policy: LifecyclePolicy;
  private readonly thresholds: EffectiveThresholds;
  private readonly timeouts: EngineTimeouts;
  private readonly retry: RetryPolicy;
  private readonly listDefaults: ListDefaults;
  private readonly onAudit: ((r: AuditRecord) => void) | undefined;
  private readonly dryRun: boolean;
  private readonly newId: () => string;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maintenanceAt: (now: number) => string | null;
  private readonly nodes: EngineNode[];
  private readonly runtimes = new Map<string, Runtime>();
  private readonly decisions = new Map<string, string>();
  /** Latest probe window of every node, for judging each node's probes against its set's peers. */
  private readonly latestProbe = new Map<string, ProbeWindow>();
  private recentDrains: number[] = [];
  private lastReconcileAt = Number.NEGATIVE_INFINITY;
  private markerArmed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private initialized = false;

  constructor(options: ActionEngineOptions) {
    this.dispatcher = options.dispatcher;
    this.restarter = options.restarter;
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'actions' });
    this.guardrails = { ...DEFAULT_GUARDRAILS, ...options.guardrails };
    validateGuardrails(this.guardrails);
    const lifecycle = { ...DEFAULT_LIFECYCLE, ...options.lifecycle };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.policy = {
      ...DEFAULT_LIFECYCLE_POLICY,
      riskThreshold: lifecycle.riskThreshold,
      consecutiveWindows: lifecycle.consecutiveWindows,
      recoverThreshold: lifecycle.recoverThreshold,
      healthyProbeWindows: lifecycle.recoverWindows,
      drainMs: this.timeouts.drainMs,
      restartMs: this.timeouts.restartMs,
      recoverMs: this.timeouts.recoverMs,
      ...options.policy,
    };
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.listDefaults = options.listDefaults ?? { disabled: false, probing: true };
    this.onAudit = options.onAudit;
    this.dryRun = options.dryRun ?? false;
    this.newId = options.newId ?? randomUUID;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.maintenanceAt = compileMaintenanceWindows(this.guardrails.maintenanceWindows);
    const { riskThreshold, recoverThreshold, consecutiveWindows, healthyProbeWindows } = this.policy;
    if (!(recoverThreshold <= riskThreshold) || consecutiveWindows < 1 || healthyProbeWindows < 1) {
      throw new ForesightError(
        'FORESIGHT_ERR_CONFIG',
        'lifecycle: need recoverThreshold <= riskThreshold and at least one window for each streak',
      );
    }
    this.thresholds = new EffectiveThresholds(
      riskThreshold,
      options.feedback ?? {
        enabled: false,
        min: riskThreshold,
        max: riskThreshold,
        falseAlarmStep: 0,
        trueAlarmStep: 0,
      },
      recoverThreshold,
      options.scorer ?? null,
    );
    const seen = new Set<string>();
    for (const n of options.nodes) {
      if (seen.has(n.nodeId)) throw new ForesightError('FORESIGHT_ERR_CONFIG', `node ${n.nodeId} configured twice`);
      seen.add(n.nodeId);
    }
    this.nodes = options.nodes.map((n) => ({ ...n }));
  }

  /** The policy the decision core runs with (for the API and the docs). */
  lifecyclePolicy(): Readonly<LifecyclePolicy> {
    return this.policy;
  }

  /** Each scorer's effective drain threshold, the one in charge, and the bound verdicts move them in. */
  thresholdsView(): ThresholdsView {
    return this.thresholds.view();
  }

  /** The drain threshold in use now. */
  riskThreshold(): number {
    return this.policy.riskThreshold;
  }

  private useThreshold(): void {
    const t = this.thresholds.current();
    if (t !== this.policy.riskThreshold) this.policy = { ...this.policy, riskThreshold: t };
  }

  // ---------------------------------------------------------------- public API

  /** Loads the store, resumes in-flight lifecycles and reconciles with the dispatcher. */
  init(): Promise<void> {
    return this.exclusive(async () => {
      if (this.initialized) return;
      await this.store.init();
      await this.thresholds.load(this.store);
      this.useThreshold();
      const now = this.clock.now();
      const stored = new Map((await this.store.listNodes()).map((r) => [r.nodeId, r]));
      for (const n of this.nodes) {
        let record = stored.get(n.nodeId);
        if (!record) {
          record = {
            ...n,
            state: 'active',
            since: now,
            pinned: false,
            manualOverride: null,
            lastDrainAt: null,
            decisionId: null,
            reason: 'configured',
          };
          await this.store.putNode(record);
        } else if (record.setId !== n.setId || record.uri !== n.uri) {
          // The configuration names the destination; the store remembers the state.
          record = { ...record, setId: n.setId, uri: n.uri };
          await this.store.putNode(record);
        }
        const rt = this.newRuntime(record);
        this.runtimes.set(n.nodeId, rt);
        await this.restore(rt, now);
      }
      const recent = await this.store.queryAudit({ kind: 'DrainStarting', since: now - 3_600_000, limit: 10_000 });
      this.recentDrains = recent.map((r) => r.ts);
      this.initialized = true;
      await this.reconcile(now);
    });
  }

  /** Feeds scores: the core folds each window into its node; then automatic drains are decided set-wide. */
  onScores(scores: readonly NodeScore[]): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      const now = this.clock.now();
      this.absorbBatch(scores, now);
      await this.planAutoDrains(now);
    });
  }

  /**
   * Folds a batch of scores into the nodes' lifecycles. With `moved`, also collects the nodes that took a new window
   * (the warm-up counts them; onScores, the hot path, does not ask).
   */
  private absorbBatch(scores: readonly NodeScore[], now: number, moved?: Set<string>): void {
    for (const s of scores) {
      if (s.evidence?.probe) this.latestProbe.set(s.nodeId, s.evidence.probe);
    }
    // Decisions follow the threshold of whichever scorer produced the scores (a promoted model takes over).
    const last = scores[scores.length - 1];
    if (last && this.thresholds.follow(last.scorer)) this.useThreshold();
    const probesBySet = this.activeProbesBySet();
    if (moved === undefined) {
      for (const s of scores) this.absorbScore(s, probesBySet, now);
      return;
    }
    for (const s of scores) {
      const before = this.runtimes.get(s.nodeId)?.lastScore;
      this.absorbScore(s, probesBySet, now);
      if (this.runtimes.get(s.nodeId)?.lastScore !== before) moved.add(s.nodeId);
    }
  }

  /**
   * Warms a new leadership term with the recent scores (read back from the bus): the windows are folded into the
   * active nodes' streaks as onScores would, but nothing is decided on them, and holdReplayed() keeps any drain from
   * resting on them alone. Without it a new leader counts a node's K high-risk windows from zero again. Scores the
   * action stage then redelivers are at or before each node's last window, and are skipped as any redelivery is.
   * Nodes out of rotation are left to their live windows (their next step may rest on replayed probes otherwise).
   */
  warm(scores: readonly NodeScore[]): Promise<{ nodes: number; windows: number }> {
    return this.exclusive(async () => {
      this.requireInit();
      const now = this.clock.now();
      const active = new Set(
        [...this.runtimes.values()].filter((rt) => rt.node.state === 'active').map((rt) => rt.node.nodeId),
      );
      const replay = scores.filter((s) => active.has(s.nodeId)).sort((a, b) => a.ts - b.ts);
      const warmed = new Set<string>();
      let windows = 0;
      // One window's scores at a time, so each node's probes are judged against its peers' of the same window.
      for (let i = 0; i < replay.length; ) {
        let j = i;
        while (j < replay.length && replay[j]!.ts === replay[i]!.ts) j++;
        const moved = new Set<string>();
        this.absorbBatch(replay.slice(i, j), now, moved);
        i = j;
        windows += moved.size;
        for (const id of moved) warmed.add(id);
      }
      for (const id of warmed) {
        const rt = this.runtimes.get(id)!;
        rt.node = holdReplayed(rt.node, this.policy);
      }
      return { nodes: warmed.size, windows };
    });
  }

  /** Advances lifecycles, retries pending changes, serves queued drains, and reconciles periodically. Cheap. */
  tick(now: number = this.clock.now()): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      if (now - this.lastReconcileAt >= this.timeouts.reconcileIntervalMs) await this.reconcile(now);
      for (const rt of this.runtimes.values()) await this.advance(rt, now);
      await this.planAutoDrains(now);
    });
  }

  /** Operator drain. Keeps the node out until undrain, or restarts it when `restart` is set. */
  drain(nodeId: string, req: OperatorRequest & { restart?: boolean }): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      const now = this.clock.now();
      if (rt.node.state !== 'active') {
        return {
          decision: null,
          record: recordOf(rt),
          applied: rt.node.drainConfirmed || rt.node.state !== 'draining',
        };
      }
      return this.operatorDrain(rt, req, req.restart ? 'cycle' : 'hold', now);
    });
  }

  /** An operator's drain of an active node: guardrails (audited and thrown when they refuse), then the drain. */
  private async operatorDrain(rt: Runtime, req: OperatorRequest, plan: DrainPlan, now: number): Promise<ActionResult> {
    const verdict = this.evaluateOperator(rt, req.actor, req.force === true, now);
    if (!verdict.allowed) {
      await this.audit(rt, 'DrainRefused', req.actor, verdict.detail, null, {
        guardrail: verdict.guardrail,
        ...verdict.details,
        requested: req.reason,
      });
      throw new ForesightError('FORESIGHT_ERR_GUARDRAIL', `${verdict.guardrail}: ${verdict.detail}`, {
        details: { guardrail: verdict.guardrail, ...verdict.details },
      });
    }
    const decision = await this.startDrain(rt, now, {
      actor: req.actor,
      reason: req.reason,
      plan,
      bypassed: verdict.bypassed,
      evidence: { operator: req.actor },
    });
    return { decision, record: recordOf(rt), applied: rt.node.drainConfirmed };
  }

  /** Operator undrain: back into rotation from any state; also ends a manual override. */
  undrain(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      const now = this.clock.now();
      const disabledNow = rt.dest?.state === 'disabled';
      if (rt.node.state === 'active' && rt.node.manualOverride === null && !disabledNow) {
        return { decision: null, record: recordOf(rt), applied: true };
      }
      const decision = this.decision(rt, 'undrain', req.actor, req.reason, now);
      const change = await this.setDisabled(rt, false);
      if (!change.ok) {
        await this.audit(rt, 'UndrainFailed', req.actor, `undrain failed: ${errorMessage(change.error)}`, decision.id, {
          error: errorMessage(change.error),
          attempts: change.attempts,
          alert: true,
        });
        throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `undrain of ${nodeId} failed`, { cause: change.error });
      }
      // An operator's return is the operator's evidence; no probation (a person vouched for the node).
      rt.node = { ...enter(rt.node, returnStep('operator undrain'), this.policy, now), probationUntil: null };
      rt.node.manualOverride = null;
      this.settle(rt, req.reason, decision.id);
      await this.store.putNode(recordOf(rt));
      await this.audit(rt, 'UndrainSucceeded', req.actor, req.reason, decision.id, {
        alreadyActive: change.already,
        evidence: { operator: req.actor },
      });
      return { decision, record: recordOf(rt), applied: true };
    });
  }

  /** Operator restart: drains first when the node is active (capacity guardrails apply), else restarts now. */
  restart(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      const now = this.clock.now();
      if (rt.node.state === 'active') return this.operatorDrain(rt, req, 'cycle', now);
      if (rt.node.state === 'draining' && !rt.node.drainConfirmed) {
        throw new ForesightError('FORESIGHT_ERR_CONFLICT', `drain of ${nodeId} is not confirmed by the dispatcher yet`);
      }
      const decision = this.decision(rt, 'restart', req.actor, req.reason, now);
      rt.node = { ...rt.node, plan: 'cycle', actor: req.actor };
      rt.decisionId = decision.id;
      await this.performRestart(rt, now, {
        kind: 'restart',
        reason: req.reason,
        evidence: { operator: req.actor, activeCalls: rt.node.lastCalls?.count ?? null },
      });
      return { decision, record: recordOf(rt), applied: rt.stalled === null };
    });
  }

  pin(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.setPinned(nodeId, req, true);
  }

  unpin(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.setPinned(nodeId, req, false);
  }

  /** An operator's judgement of a decision (was the node really failing?), kept as a training label. */
  verdict(decisionId: string, v: { actor: string; confirmed: boolean; note: string }): Promise<AuditRecord> {
    return this.exclusive(async () => {
      this.requireInit();
      this.requireActor(v.actor);
      let nodeId = this.decisions.get(decisionId);
      if (nodeId === undefined) nodeId = (await this.store.queryAudit({ decisionId, limit: 1 }))[0]?.nodeId;
      if (nodeId === undefined) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `decision ${decisionId} not found`);
      const reason = v.confirmed ? 'operator confirmed the decision' : 'operator rejected the decision';
      const now = this.clock.now();
      const [drain] = await this.store.queryAudit({ decisionId, kind: 'DrainStarting', limit: 1 });
      const earlier = await this.store.queryAudit({ decisionId, kind: 'Verdict', limit: 100 });
      const previous = earlier.map(moveOf).find((m) => m !== null && isCounted(m)) ?? null;
      const move = this.thresholds.judge(drain ?? null, previous, v.confirmed ? 'true_alarm' : 'false_alarm');
      // Stored before it is told: a restart after this point keeps the moved threshold.
      await this.thresholds.commit(this.store, move, previous, now);
      this.useThreshold();
      // The node may have left the configuration since; the label is still worth keeping.
      const record = await this.appendAudit({
        ts: now,
        nodeId,
        kind: 'Verdict',
        actor: v.actor,
        reason,
        decisionId,
        dryRun: this.dryRun,
        details: { confirmed: v.confirmed, note: v.note, threshold: move },
      });
      if (move.moved) {
        await this.appendAudit({
          ts: now,
          nodeId,
          kind: 'ThresholdMoved',
          actor: v.actor,
          reason: `${move.scorer} drain threshold ${move.from} -> ${move.to}: ${move.why}`,
          decisionId,
          dryRun: this.dryRun,
          details: { ...move, bound: [this.thresholds.feedback.min, this.thresholds.feedback.max] },
        });
      }
      return record;
    });
  }

  /**
   * Ends a manual override: Foresight drives the node again. A node a person left disabled is adopted as an
   * operator drain (held out until undrain), never silently re-enabled.
   */
  clearOverride(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      if (rt.node.manualOverride === null) return { decision: null, record: recordOf(rt), applied: true };
      const now = this.clock.now();
      const was = rt.node.manualOverride;
      rt.lastRefusal = null;
      const adopt = rt.dest?.state === 'disabled';
      if (adopt) {
        const decision = this.decision(rt, 'drain', req.actor, req.reason, now);
        rt.node = drainConfirmedAt(
          startDrain({ ...rt.node, manualOverride: null }, { actor: req.actor, plan: 'hold' }, now),
          now,
        );
        // Adopting is not a drain Foresight decided: it neither starts a cooldown nor counts toward the rate limit.
        rt.node.lastDrainAt = null;
        this.settle(rt, `adopted a node disabled by hand: ${req.reason}`, decision.id);
      } else {
        rt.node = { ...rt.node, manualOverride: null, riskStreak: 0 };
        rt.reason = req.reason;
      }
      await this.store.putNode(recordOf(rt));
      await this.audit(rt, 'OverrideCleared', req.actor, `override cleared: ${req.reason}`, rt.decisionId, {
        cause: 'override_cleared',
        override: was,
        adoptedAsDrain: adopt,
        plan: adopt ? 'hold' : null,
      });
      return { decision: null, record: recordOf(rt), applied: true };
    });
  }

  /** Why the node is where it is, and why the last automatic decision was or was not taken. */
  explain(nodeId: string): NodeExplanation {
    const rt = this.runtimes.get(nodeId);
    if (!rt) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `node ${nodeId} is not configured`);
    const s = rt.lastScore;
    const n = rt.node;
    return {
      nodeId,
      setId: n.setId,
      state: n.state,
      since: n.since,
      reason: rt.reason,
      decisionId: rt.decisionId,
      plan: n.state === 'active' ? null : n.plan,
      pinned: n.pinned,
      manualOverride: n.manualOverride,
      drainUnconfirmed: n.state === 'draining' && !n.drainConfirmed,
      stalled: rt.stalled,
      dispatcher: rt.dest
        ? { state: rt.dest.state, flags: rt.dest.flags, ...(rt.dest.proxies ? { proxies: rt.dest.proxies } : {}) }
        : null,
      lastScore: s
        ? {
            ts: s.ts,
            risk: s.risk,
            observed: s.observed,
            activeCalls: s.activeCalls,
            activeCallsSource: s.activeCallsSource,
            up: s.up,
          }
        : null,
      riskStreak: n.riskStreak,
      recoverStreak: n.healthyProbeStreak,
      probationUntil: inProbation(n, this.clock.now()) ? n.probationUntil : null,
      quarantineRelease: n.state === 'quarantined' ? n.quarantineRelease : null,
      probe: {
        window: n.last?.evidence.probe ?? null,
        verdict: n.last?.probeNote ?? null,
        healthy: n.last?.probeHealthy ?? null,
      },
      lastAutoDecision: rt.lastAuto ? { ...rt.lastAuto } : null,
    };
  }

  nodeRecords(): NodeRecord[] {
    return [...this.runtimes.values()].map(recordOf);
  }

  /** Waits until every queued operation has run (for tests and shutdown). */
  async idle(): Promise<void> {
    await this.chain;
  }

  // ---------------------------------------------------------------- scores and automatic drains

  /** The latest probe window of every active node, by set: each node's probes are judged against these peers. */
  private activeProbesBySet(): Map<number, { nodeId: string; probe: ProbeWindow }[]> {
    const bySet = new Map<number, { nodeId: string; probe: ProbeWindow }[]>();
    for (const rt of this.runtimes.values()) {
      const probe = this.latestProbe.get(rt.node.nodeId);
      if (!probe || rt.node.state !== 'active') continue;
      const list = bySet.get(rt.node.setId) ?? [];
      list.push({ nodeId: rt.node.nodeId, probe });
      bySet.set(rt.node.setId, list);
    }
    return bySet;
  }

  private absorbScore(
    s: NodeScore,
    probesBySet: ReadonlyMap<number, readonly { nodeId: string; probe: ProbeWindow }[]>,
    now: number,
  ): void {
    const rt = this.runtimes.get(s.nodeId);
    if (!rt) return;
    if (!Number.isFinite(s.risk) || s.risk < 0 || s.risk > 1 || !Number.isFinite(s.ts)) {
      this.logger.warn({ nodeId: s.nodeId, risk: s.risk, ts: s.ts }, 'score ignored: risk or ts out of range');
      return;
    }
    if (rt.lastScore && s.ts <= rt.lastScore.ts) return;
    rt.lastScore = s;
    const peers = (probesBySet.get(rt.node.setId) ?? []).filter((p) => p.nodeId !== s.nodeId).map((p) => p.probe);
    const before = rt.node.riskStreak;
    rt.node = observe(endProbationIfDue(rt.node, now), evidenceOf(s, peers, this.policy), this.policy);
    if (rt.node.riskStreak === 0 && before > 0) rt.lastRefusal = null;
    const { riskThreshold, consecutiveWindows } = this.policy;
    if (rt.node.state !== 'active') {
      rt.lastAuto = this.autoInfo(rt, now, 'not_active', null, `node is ${rt.node.state}`);
    } else if (!s.observed) {
      rt.lastAuto = this.autoInfo(rt, now, 'unobserved', 'unobserved', 'no telemetry in the window');
    } else if (s.risk < riskThreshold) {
      rt.lastAuto = this.autoInfo(rt, now, 'below_threshold', null, `risk ${s.risk.toFixed(3)} < ${riskThreshold}`);
    } else if (rt.node.riskStreak < consecutiveWindows) {
      rt.lastAuto = this.autoInfo(
        rt,
        now,
        'waiting_hysteresis',
        null,
        `risk high for ${rt.node.riskStreak} of ${consecutiveWindows} windows`,
      );
    }
  }

  private autoInfo(
    rt: Runtime,
    now: number,
    outcome: AutoDecisionInfo['outcome'],
    guardrail: GuardrailName | null,
    detail: string,
  ): AutoDecisionInfo {
    return { ts: now, outcome, guardrail, detail, risk: rt.lastScore?.risk ?? null, streak: rt.node.riskStreak };
  }

  private async planAutoDrains(now: number): Promise<void> {
    const nodes: LifecycleNode[] = [];
    for (const rt of this.runtimes.values()) nodes.push(rt.node);
    this.recentDrains = this.recentDrains.filter((t) => t > now - 3_600_000);
    const outcomes: DrainOutcome[] = decideDrains(
      nodes,
      this.views(),
      this.policy,
      { guardrails: this.guardrails, recentDrains: this.recentDrains, maintenance: this.maintenanceAt(now) },
      now,
    );
    for (const o of outcomes) {
      const rt = this.runtimes.get(o.nodeId)!;
      if (o.outcome === 'refused') {
        rt.lastAuto = this.autoInfo(rt, now, 'refused', o.guardrail, o.detail);
        await this.noteRefusal(rt, o, now);
        continue;
      }
      rt.lastAuto = this.autoInfo(rt, now, 'drain_started', null, o.reason);
      await this.startDrain(rt, now, {
        actor: 'auto',
        reason: o.reason,
        plan: 'cycle',
        bypassed: [],
        evidence: o.evidence,
        // Which scorer's alarm this is, and at which threshold: a verdict on the drain moves that scorer's threshold.
        scorer: o.cause === 'risk' ? (rt.lastScore?.scorer ?? null) : null,
      });
    }
  }

  private views(): Map<string, NodeView> {
    const views = new Map<string, NodeView>();
    for (const rt of this.runtimes.values()) views.set(rt.node.nodeId, this.view(rt));
    return views;
  }

  private evaluateOperator(rt: Runtime, actor: string, force: boolean, now: number): GuardrailVerdict {
    const views = this.views();
    return evaluateDrain(
      { nodeId: rt.node.nodeId, actor, force },
      views.get(rt.node.nodeId),
      summarizeSets(views.values()).get(rt.node.setId),
      {
        config: this.guardrails,
        now,
        riskThreshold: this.policy.riskThreshold,
        recentDrains: this.recentDrains,
        maintenance: this.maintenanceAt(now),
      },
    );
  }

  private view(rt: Runtime): NodeView {
    const d = rt.dest;
    // A destination missing from the dispatcher, disabled, or marked inactive by Kamailio's probing takes no calls.
    const dispatcherOut = d === null || d.state === 'disabled' || d.state === 'inactive';
    return {
      nodeId: rt.node.nodeId,
      setId: rt.node.setId,
      state: rt.node.state,
      inService: rt.node.state === 'active' && !dispatcherOut,
      observed: rt.lastScore?.observed ?? false,
      up: rt.lastScore?.up ?? false,
      risk: rt.lastScore?.risk ?? null,
      pinned: rt.node.pinned,
      manualOverride: rt.node.manualOverride,
      lastDrainAt: rt.node.lastDrainAt,
    };
  }

  /** One audit line per node and guardrail until the guardrail changes, the episode ends, or refusalRepeatMs passes. */
  private async noteRefusal(rt: Runtime, o: DrainOutcome & { outcome: 'refused' }, now: number): Promise<void> {
    const last = rt.lastRefusal;
    if (last && last.guardrail === o.guardrail && now - last.at < this.timeouts.refusalRepeatMs) return;
    rt.lastRefusal = { guardrail: o.guardrail, at: now };
    await this.audit(rt, 'DrainRefused', 'auto', o.detail, null, {
      guardrail: o.guardrail,
      ...o.details,
      risk: rt.lastScore?.risk ?? null,
      streak: rt.node.riskStreak,
      ...(o.alert ? { alert: true } : {}),
    });
  }

  // ---------------------------------------------------------------- lifecycle

  private async startDrain(
    rt: Runtime,
    now: number,
    d: {
      actor: string;
      reason: string;
      plan: DrainPlan;
      bypassed: GuardrailName[];
      evidence: Record<string, unknown>;
      cause?: 'risk' | 'probes';
      scorer?: string | null;
    },
  ): Promise<DrainDecision> {
    const decision = this.decision(rt, 'drain', d.actor, d.reason, now);
    const next = startDrain(rt.node, { actor: d.actor, plan: d.plan, ...(d.cause ? { cause: d.cause } : {}) }, now);
    // Write-ahead: the store says "draining, unconfirmed" before the dispatcher is touched, so a crash in between
    // is resumed (and the drain completed) rather than forgotten. Stored before memory changes: if the store refuses,
    // nothing else happens and the caller sees the error.
    await this.store.putNode({
      ...recordOf(rt),
      state: 'draining',
      since: now,
      lastDrainAt: now,
      decisionId: decision.id,
      reason: d.reason,
    });
    const streak = rt.node.riskStreak;
    rt.node = next;
    this.settle(rt, d.reason, decision.id);
    rt.failures = 0;
    rt.retryAt = now;
    rt.lastRefusal = null;
    this.recentDrains.push(now);
    await this.audit(rt, 'DrainStarting', d.actor, d.reason, decision.id, {
      plan: d.plan,
      risk: decision.risk,
      streak,
      bypassed: d.bypassed,
      probationFailures: next.probationFailures,
      evidence: d.evidence,
      ...(d.scorer ? { scorer: d.scorer, threshold: this.policy.riskThreshold } : {}),
    });
    await this.applyPendingDrain(rt, now);
    return decision;
  }

  private async applyPendingDrain(rt: Runtime, now: number): Promise<void> {
    const change = await this.setDisabled(rt, true);
    if (change.ok) {
      rt.node = drainConfirmedAt(rt.node, this.clock.now());
      await this.store.putNode(recordOf(rt));
      await this.audit(rt, 'DrainSucceeded', rt.node.actor, rt.reason, rt.decisionId, {
        alreadyDisabled: change.already,
        attempts: change.attempts,
        failedRounds: rt.failures,
      });
      rt.failures = 0;
      return;
    }
    this.logger.warn({ nodeId: rt.node.nodeId, err: errorMessage(change.error) }, 'drain not applied');
    await this.retryAfterDispatcherError(rt, now, 'DrainFailed', change);
  }

  /** Backs off before the next attempt and alerts on the first failure of this decision only. */
  private async retryAfterDispatcherError(
    rt: Runtime,
    now: number,
    kind: 'DrainFailed' | 'UndrainFailed',
    change: { error?: unknown; attempts: number },
  ): Promise<void> {
    rt.failures++;
    rt.retryAt = now + this.timeouts.lifecycleRetryMs * 2 ** Math.min(rt.failures - 1, 4);
    if (rt.failures !== 1) return;
    const error = errorMessage(change.error);
    await this.audit(rt, kind, rt.node.actor, `dispatcher error: ${error}`, rt.decisionId, {
      error,
      attempts: change.attempts,
      alert: true,
      willRetry: true,
    });
  }

  /** Asks the decision core for the node's next step and performs it. */
  private async advance(rt: Runtime, now: number): Promise<void> {
    if (rt.node.state === 'active') {
      rt.node = endProbationIfDue(rt.node, now);
      return;
    }
    if (rt.node.manualOverride !== null || rt.stalled !== null || now < rt.retryAt) return;
    const step = nextStep(rt.node, this.policy, now);
    await this.perform(rt, step, now);
  }

  private async perform(rt: Runtime, step: Step, now: number): Promise<void> {
    switch (step.kind) {
      case 'none':
        return;
      case 'wait':
        if (step.note) {
          rt.node = enter(rt.node, step, this.policy, now);
          await this.audit(rt, 'DrainWaiting', rt.node.actor, step.reason, rt.decisionId, { evidence: step.evidence });
        }
        return;
      case 'apply_drain':
        await this.applyPendingDrain(rt, now);
        return;
      case 'cancel_drain': {
        // Only reached while the dispatcher has not confirmed the drain; make sure it did not land meanwhile.
        const change = await this.setDisabled(rt, false);
        if (!change.ok) {
          rt.retryAt = now + this.timeouts.lifecycleRetryMs;
          return;
        }
        const decisionId = rt.decisionId;
        rt.node = enter(rt.node, step, this.policy, now);
        this.settle(rt, step.reason, decisionId);
        await this.store.putNode(recordOf(rt));
        await this.audit(rt, 'DrainRefused', 'auto', step.reason, decisionId, {
          guardrail: 'risk_recovered',
          risk: rt.lastScore?.risk ?? null,
          observed: rt.lastScore?.observed ?? false,
          evidence: step.evidence,
        });
        return;
      }
      case 'extend_drain':
        rt.node = enter(rt.node, step, this.policy, now);
        await this.audit(rt, 'DrainExtended', rt.node.actor, step.reason, rt.decisionId, {
          activeCalls: rt.node.lastCalls?.count ?? null,
          drainMs: this.policy.drainMs,
          untilMs: this.policy.drainMs * this.policy.drainExtensions,
          evidence: step.evidence,
        });
        return;
      case 'restart':
        await this.performRestart(rt, now, step);
        return;
      case 'restarted': {
        const downForMs = now - (rt.node.restartIssuedAt ?? now);
        await this.audit(rt, 'RestartSucceeded', rt.node.actor, step.reason, rt.decisionId, {
          downForMs,
          evidence: step.evidence,
        });
        rt.node = enter(rt.node, step, this.policy, now);
        rt.reason = 'restarted; waiting for healthy probes';
        await this.store.putNode(recordOf(rt));
        await this.audit(rt, 'RecoveryStarted', rt.node.actor, rt.reason, rt.decisionId, {
          recoverThreshold: this.policy.recoverThreshold,
          windows: this.policy.healthyProbeWindows,
        });
        return;
      }
      case 'return': {
        const change = await this.setDisabled(rt, false);
        if (!change.ok) {
          await this.retryAfterDispatcherError(rt, now, 'UndrainFailed', change);
          return;
        }
        const decisionId = rt.decisionId;
        const from = rt.node.state;
        rt.node = enter(rt.node, step, this.policy, now);
        this.settle(rt, step.reason, decisionId);
        await this.store.putNode(recordOf(rt));
        await this.audit(rt, 'NodeReturned', rt.node.actor, step.reason, decisionId, {
          ...step.evidence,
          from,
          restarted: step.restarted,
          alreadyActive: change.already,
          probationUntil: rt.node.probationUntil,
          windows: this.policy.healthyProbeWindows,
          evidence: step.evidence,
        });
        return;
      }
      case 'quarantine':
        rt.node = enter(rt.node, step, this.policy, now);
        this.settle(rt, step.reason, rt.decisionId);
        await this.store.putNode(recordOf(rt));
        await this.audit(rt, 'Quarantined', rt.node.actor, step.reason, rt.decisionId, {
          release: step.release,
          alert: true,
          evidence: step.evidence,
        });
        return;
      case 'stall':
        await this.stall(rt, step.audit, step.reason, {
          evidence: step.evidence,
          phase: step.audit === 'RestartFailed' ? 'wait' : 'recover',
        });
        return;
    }
  }

  private async performRestart(rt: Runtime, now: number, step: Step & { kind: 'restart' }): Promise<void> {
    rt.node = enter(rt.node, step, this.policy, now);
    this.settle(rt, step.reason, rt.decisionId);
    rt.failures = 0;
    await this.store.putNode(recordOf(rt));
    await this.audit(rt, 'RestartStarting', rt.node.actor, step.reason, rt.decisionId, {
      restarter: this.restarter.name,
      ...step.evidence,
      evidence: step.evidence,
    });
    const result = await this.withRetries(() =>
      this.timed(this.restarter.restart(rt.node.nodeId), this.timeouts.restartCallMs, 'restart'),
    );
    if (result.ok) {
      rt.node = restartIssued(rt.node, this.clock.now());
      return;
    }
    await this.stall(rt, 'RestartFailed', `restart failed: ${errorMessage(result.error)}; kept out of rotation`, {
      phase: 'call',
      error: errorMessage(result.error),
      attempts: result.attempts,
    });
  }

  /** Stops the lifecycle with the node out of rotation; an operator decides (undrain or restart). */
  private async stall(rt: Runtime, kind: AuditKind, reason: string, details: Record<string, unknown>): Promise<void> {
    rt.stalled = reason;
    rt.reason = reason;
    await this.store.putNode(recordOf(rt));
    await this.audit(rt, kind, rt.node.actor, reason, rt.decisionId, { ...details, alert: true, stalled: true });
  }

  /** Records why the node is where it is, and under which decision; a new state also ends a stall. */
  private settle(rt: Runtime, reason: string, decisionId: string | null): void {
    rt.reason = reason;
    rt.decisionId = decisionId;
    rt.stalled = null;
    rt.failures = 0;
    rt.retryAt = this.clock.now();
    if (rt.node.state === 'active') {
      rt.lastRefusal = null;
      if (rt.dest) rt.dest = { ...rt.dest, state: 'active' };
    }
  }

  // ---------------------------------------------------------------- resume and reconcile

  /** Rebuilds what the store does not hold (plan, restarts, probation, quarantine) from the node's audit trail. */
  private async restore(rt: Runtime, now: number): Promise<void> {
    const history = await this.store.queryAudit({ nodeId: rt.node.nodeId, limit: 200 });
    const restarts = history
      .filter((r) => r.kind === 'RestartStarting' && r.ts > now - 3_600_000)
      .map((r) => r.ts)
      .reverse();
    rt.node = { ...rt.node, restarts };
    const returned = history.find((r) => r.kind === 'NodeReturned');
    if (rt.node.state === 'active') {
      const until = returned?.details.probationUntil;
      if (typeof until === 'number' && until > now) rt.node = { ...rt.node, probationUntil: until };
      return;
    }
    const starting = history.find((r) => r.kind === 'DrainStarting' && r.decisionId === rt.decisionId);
    const failures = starting?.details.probationFailures;
    const cause = (starting?.details.evidence as { cause?: unknown } | undefined)?.cause;
    rt.node = {
      ...rt.node,
      plan: starting?.details.plan === 'hold' ? 'hold' : 'cycle',
      actor: starting?.actor ?? 'auto',
      drainCause: cause === 'probes' ? 'probes' : starting?.actor === 'auto' ? 'risk' : 'operator',
      probationFailures: typeof failures === 'number' ? failures : 0,
    };
    const latest = (kinds: AuditKind[]) => history.find((r) => kinds.includes(r.kind));
    if (rt.node.state === 'draining') {
      const last = latest([
        'DrainStarting',
        'DrainSucceeded',
        'DrainFailed',
        'StateReapplied',
        'Resumed',
        'OverrideCleared',
      ]);
      rt.node.drainConfirmed = !(last?.kind === 'DrainStarting' || last?.kind === 'DrainFailed');
    } else if (rt.node.state === 'restarting') {
      rt.node.drainConfirmed = true;
      const last = latest(['RestartStarting', 'RestartFailed']);
      if (last?.kind === 'RestartFailed') rt.stalled = rt.reason;
      // A restart recorded as starting is assumed issued: restarting a node twice is worse than waiting for it.
      else rt.node.restartIssuedAt = rt.node.since;
    } else if (rt.node.state === 'recovering') {
      rt.node.drainConfirmed = true;
      const last = latest(['RecoveryStarted', 'UndrainFailed']);
      if (last?.kind === 'UndrainFailed' && last.details.stalled === true) rt.stalled = rt.reason;
    } else if (rt.node.state === 'quarantined') {
      rt.node.drainConfirmed = true;
      const q = latest(['Quarantined']);
      rt.node.quarantineRelease = q?.details.release === 'probes' ? 'probes' : 'operator';
    }
    await this.audit(rt, 'Resumed', 'auto', `resumed in ${rt.node.state} after a Foresight restart`, rt.decisionId, {
      state: rt.node.state,
      since: rt.node.since,
      plan: rt.node.plan,
      drainUnconfirmed: rt.node.state === 'draining' && !rt.node.drainConfirmed,
      stalled: rt.stalled,
      downtimeMs: now - rt.node.since,
    });
  }

  private async reconcile(now: number): Promise<void> {
    this.lastReconcileAt = now;
    // A reset marker that is gone proves a reload or restart; one still there proves any change was made by hand.
    let markerReset: boolean | null = null;
    if (isResetAware(this.dispatcher)) {
      const d = this.dispatcher;
      try {
        if (this.markerArmed) {
          markerReset = await this.timed(d.resetSinceArmed(), this.timeouts.dispatcherCallMs, 'dispatcher.marker');
        }
      } catch (err) {
        this.logger.warn({ err: errorMessage(err) }, 'reset marker unreadable; falling back to the heuristic');
        this.markerArmed = false;
      }
      if (!this.markerArmed || markerReset) {
        // Arm first, then re-apply: a reset landing in between is seen on the next check. Right after a reload
        // Kamailio may refuse the add for a few seconds; the answer already read stands, and arming is tried again.
        try {
          await this.timed(d.armResetMarker(), this.timeouts.dispatcherCallMs, 'dispatcher.arm');
          this.markerArmed = true;
        } catch (err) {
          this.logger.warn({ err: errorMessage(err) }, 'reset marker not armed; will try again');
          this.markerArmed = false;
        }
      }
    }
    let list: DispatcherDestination[];
    try {
      list = await this.timed(this.dispatcher.list(), this.timeouts.dispatcherCallMs, 'dispatcher.list');
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'reconcile skipped: dispatcher list failed');
      return;
    }
    const index = new Map(list.map((d) => [destKey(d.setId, d.uri), d]));
    const lost: Runtime[] = [];
    const markedByProxy: Runtime[] = [];
    const handDisabled: Runtime[] = [];
    let drainedByUs = 0;
    for (const rt of this.runtimes.values()) {
      const d = index.get(destKey(rt.node.setId, rt.uri)) ?? null;
      if (d === null && rt.dest !== null) {
        this.logger.warn({ nodeId: rt.node.nodeId, uri: rt.uri }, 'destination missing from the dispatcher');
      }
      rt.dest = d;
      if (d === null || rt.node.manualOverride !== null) continue;
      const disabled = d.state === 'disabled';
      if (rt.node.state === 'draining' && !rt.node.drainConfirmed) {
        // A drain that landed although its call reported failure (or a crash hid the answer).
        if (disabled) {
          rt.node = drainConfirmedAt(rt.node, now);
          await this.store.putNode(recordOf(rt));
          await this.audit(rt, 'DrainSucceeded', rt.node.actor, rt.reason, rt.decisionId, { confirmedBy: 'reconcile' });
        }
        continue;
      }
      const expectDisabled = rt.node.state !== 'active';
      if (expectDisabled) drainedByUs++;
      if (expectDisabled && !disabled && (d.state === 'trying' || d.state === 'inactive')) markedByProxy.push(rt);
      else if (expectDisabled && !disabled) lost.push(rt);
      else if (!expectDisabled && disabled) handDisabled.push(rt);
    }

    // Kamailio's own failure handling (ds_mark_dst in a failure_route, for a call sent before the drain that failed
    // after it) turns a disabled destination into trying or inactive; a trying one takes new calls again. Not a
    // person's doing: a person enabling a node makes it active. Re-apply at once.
    for (const rt of markedByProxy) {
      await this.reapply(rt, now, { by: 'proxy_failure_marking', flags: rt.dest?.flags ?? null });
    }

    if (lost.length > 0) {
      const matchesDefaults = list.every(
        (d) => (d.state === 'disabled') === this.listDefaults.disabled && d.probing === this.listDefaults.probing,
      );
      const allLost = lost.length === drainedByUs;
      const wholesale = markerReset ?? (allLost && (lost.length >= 2 || matchesDefaults));
      const evidence =
        markerReset === null
          ? { by: 'heuristic', lost: lost.length, drainedByUs, matchesListDefaults: matchesDefaults, wholesale }
          : { by: 'reset_marker', markerGone: markerReset, lost: lost.length, wholesale };
      for (const rt of lost) {
        if (wholesale) await this.reapply(rt, now, evidence);
        else await this.markOverride(rt, now, `enabled by hand while ${rt.node.state}`, evidence);
      }
    }
    for (const rt of handDisabled) {
      // A reset restores the list file's states; a disable only a person (or another tool) makes.
      await this.markOverride(rt, now, 'disabled by hand', { flags: rt.dest?.flags ?? null, markerGone: markerReset });
    }
  }

  private async reapply(rt: Runtime, now: number, evidence: Record<string, unknown>): Promise<void> {
    const change = await this.setDisabled(rt, true);
    if (change.ok) {
      await this.audit(
        rt,
        'StateReapplied',
        'auto',
        evidence.by === 'proxy_failure_marking'
          ? `Kamailio's failure handling marked the drained node ${String(evidence.flags)}; drain re-applied`
          : 'dispatcher states were reset (reload or restart); drain re-applied',
        rt.decisionId,
        { ...evidence, evidence, state: rt.node.state },
      );
      return;
    }
    // The store keeps saying what Foresight wants; the lifecycle retries until the dispatcher takes it.
    rt.node = { ...rt.node, state: 'draining', drainConfirmed: false };
    rt.failures = 1;
    rt.retryAt = now + this.timeouts.lifecycleRetryMs;
    await this.audit(
      rt,
      'DrainFailed',
      'auto',
      `re-applying a reset drain failed: ${errorMessage(change.error)}`,
      rt.decisionId,
      { ...evidence, error: errorMessage(change.error), alert: true, willRetry: true },
    );
  }

  private async markOverride(rt: Runtime, now: number, what: string, details: Record<string, unknown>): Promise<void> {
    const previous = rt.node.state;
    const flags = rt.dest?.flags ?? null;
    const override = `${what} (dispatcher flags ${flags ?? '?'})`;
    // The lifecycle ends where the person left it: Foresight records the fact and keeps its hands off.
    rt.node = {
      ...rt.node,
      state: 'active',
      since: now,
      manualOverride: override,
      drainConfirmed: false,
      restartIssuedAt: null,
      riskStreak: 0,
      healthyProbeStreak: 0,
      lastProbeFault: null,
      quarantineRelease: null,
    };
    rt.reason = `manual override: ${what}`;
    rt.stalled = null;
    await this.store.putNode(recordOf(rt));
    await this.audit(rt, 'ManualOverrideDetected', 'auto', override, rt.decisionId, {
      ...details,
      previousState: previous,
      flags,
    });
  }

  // ---------------------------------------------------------------- dispatcher and plumbing

  /** Re-reads the destination and changes it only if needed; "already in that state" is success. */
  private async setDisabled(rt: Runtime, disabled: boolean): Promise<ChangeResult> {
    const { setId, nodeId } = rt.node;
    const uri = rt.uri;
    return this.withRetries(async () => {
      const list = await this.timed(this.dispatcher.list(), this.timeouts.dispatcherCallMs, 'dispatcher.list');
      const d = list.find((x) => destKey(x.setId, x.uri) === destKey(setId, uri));
      if (!d) {
        throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `${nodeId}: ${uri} is not in dispatcher set ${setId}`);
      }
      rt.dest = d;
      if ((d.state === 'disabled') === disabled) return true;
      const op = disabled ? this.dispatcher.drain(setId, uri) : this.dispatcher.activate(setId, uri);
      await this.timed(op, this.timeouts.dispatcherCallMs, disabled ? 'dispatcher.drain' : 'dispatcher.activate');
      rt.dest = { ...d, state: disabled ? 'disabled' : 'active', probing: !disabled };
      return false;
    }).then((r) => (r.ok ? { ok: true, already: r.value, attempts: r.attempts } : r));
  }

  private async withRetries<T>(
    fn: () => Promise<T>,
  ): Promise<{ ok: true; value: T; attempts: number } | { ok: false; error: unknown; attempts: number }> {
    let lastError: unknown;
    let attempt = 0;
    while (attempt < this.retry.attempts) {
      attempt++;
      try {
        return { ok: true, value: await fn(), attempts: attempt };
      } catch (err) {
        lastError = err;
        if (err instanceof ForesightError && !err.retriable) break;
        if (attempt < this.retry.attempts) {
          const cap = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** (attempt - 1));
          await this.sleep(cap / 2 + Math.random() * (cap / 2));
        }
      }
    }
    return { ok: false, error: lastError, attempts: attempt };
  }

  private timed<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ForesightError('FORESIGHT_ERR_TIMEOUT', `${what} timed out after ${ms} ms`)),
        ms,
      );
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  private setPinned(nodeId: string, req: OperatorRequest, pinned: boolean): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      if (rt.node.pinned === pinned) return { decision: null, record: recordOf(rt), applied: true };
      const now = this.clock.now();
      const decision = this.decision(rt, pinned ? 'pin' : 'unpin', req.actor, req.reason, now);
      rt.node = { ...rt.node, pinned };
      await this.store.putNode(recordOf(rt));
      await this.audit(rt, pinned ? 'Pinned' : 'Unpinned', req.actor, req.reason, decision.id, {});
      return { decision, record: recordOf(rt), applied: true };
    });
  }

  private decision(rt: Runtime, action: DrainAction, actor: string, reason: string, now: number): DrainDecision {
    const id = this.newId();
    this.decisions.set(id, rt.node.nodeId);
    if (this.decisions.size > MAX_REMEMBERED_DECISIONS) {
      const oldest = this.decisions.keys().next().value;
      if (oldest !== undefined) this.decisions.delete(oldest);
    }
    return {
      id,
      nodeId: rt.node.nodeId,
      ts: now,
      action,
      actor,
      reason,
      risk: rt.lastScore?.risk ?? null,
      dryRun: this.dryRun,
    };
  }

  private async audit(
    rt: Runtime,
    kind: AuditKind,
    actor: string,
    reason: string,
    decisionId: string | null,
    details: Record<string, unknown>,
  ): Promise<AuditRecord> {
    return this.appendAudit({
      ts: this.clock.now(),
      nodeId: rt.node.nodeId,
      kind,
      actor,
      reason,
      decisionId,
      dryRun: this.dryRun,
      details,
    });
  }

  private async appendAudit(record: Omit<AuditRecord, 'seq'>): Promise<AuditRecord> {
    const stored = await this.store.appendAudit(record);
    const alert = stored.details.alert === true;
    this.logger[alert ? 'warn' : 'info'](
      { nodeId: stored.nodeId, kind: stored.kind, actor: stored.actor, dryRun: stored.dryRun, seq: stored.seq },
      stored.reason,
    );
    try {
      this.onAudit?.(stored);
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'onAudit listener threw');
    }
    return stored;
  }

  private operatorTarget(nodeId: string, req: OperatorRequest): Runtime {
    this.requireInit();
    this.requireActor(req.actor);
    if (typeof req.reason !== 'string') throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', 'reason is required');
    const rt = this.runtimes.get(nodeId);
    if (!rt) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `node ${nodeId} is not configured`);
    return rt;
  }

  private requireActor(actor: string): void {
    // `auto` is reserved for the model loop, so audit trails can tell people from automation.
    if (typeof actor !== 'string' || actor.trim() === '' || isAuto(actor)) {
      throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', 'actor must name an operator (not empty, not "auto")');
    }
  }

  private requireInit(): void {
    if (!this.initialized) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'action engine used before init()');
  }

  private newRuntime(record: NodeRecord): Runtime {
    const node: LifecycleNode = {
      ...newLifecycleNode(record.nodeId, record.setId, record.since),
      state: record.state,
      pinned: record.pinned,
      manualOverride: record.manualOverride,
      lastDrainAt: record.lastDrainAt,
    };
    return {
      node,
      uri: record.uri,
      decisionId: record.decisionId,
      reason: record.reason,
      lastScore: null,
      failures: 0,
      retryAt: Number.NEGATIVE_INFINITY,
      stalled: null,
      dest: null,
      lastRefusal: null,
      lastAuto: null,
    };
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/** The core's return step for a return an operator (not evidence) decided. */
function returnStep(reason: string): Step {
  return { kind: 'return', reason, evidence: {}, restarted: false };
}
