/**
 * The action engine: turns scores into drains through the guardrails, drives each node through
 * active → draining → restarting → recovering → active, and keeps the store as the record of what is true, so a
 * restarted Foresight resumes where it was.
 *
 * All public operations run one at a time (a promise chain), so scores, ticks and operator requests never interleave
 * on one node's state. Dispatcher retries therefore hold the queue for a few seconds at most.
 *
 * Reset versus manual change (see reconcile()): a destination Foresight keeps disabled that shows up enabled again
 * was either reset wholesale (dispatcher.reload or a Kamailio restart reloads every state from the list file) or
 * enabled by a person. It is called a wholesale reset only when every Foresight-drained destination came back at
 * once AND either at least two did, or every destination in the list now matches the list-file defaults exactly
 * (disabled bit and probing flag: `kamcmd dispatcher.set_state a` clears the probing flag that a reload sets). Anything
 * else is a manual override: recorded, audited, and never reverted. A person who re-enables the only drained node
 * with `ap` looks exactly like a reload; Foresight then re-applies the drain loudly (audit StateReapplied), and the
 * person can undrain or pin through the API.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
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
} from '../messages.js';
import {
  compileMaintenanceWindows,
  DEFAULT_GUARDRAILS,
  evaluateDrain,
  type GuardrailConfig,
  type GuardrailName,
  type GuardrailVerdict,
  isAuto,
  type NodeView,
  type SetSummary,
  summarizeSets,
  validateGuardrails,
} from './guardrails.js';
import type { Dispatcher, DispatcherDestination, Restarter, Store } from './ports.js';

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
  /** Risk below which a recovering node counts as healthy. */
  recoverThreshold: number;
  /** M: consecutive observed healthy windows before a recovering node returns to rotation. */
  recoverWindows: number;
}

/**
 * A drain whose node keeps its calls (up, no failure forecast) may run to this many drain timeouts before the node is
 * restarted with calls left: waiting costs one node's capacity, a restart costs the calls.
 */
export const DRAIN_EXTENSION = 3;

/** Trend forecasts whose limit ends the process, and every call on it: memory (OOM kill) and the queue (deadlock). */
const CRASH_FORECASTS: ReadonlySet<string> = new Set(['forecast.memory_s', 'forecast.queue_s']);

/** The soonest crash a score's explanation forecasts, ms, or null. */
function crashForecastMs(s: NodeScore): number | null {
  let soonest: number | null = null;
  for (const c of s.explanation) {
    if (!CRASH_FORECASTS.has(c.feature) || !Number.isFinite(c.value)) continue;
    soonest = soonest === null ? c.value * 1000 : Math.min(soonest, c.value * 1000);
  }
  return soonest;
}

export interface EngineTimeouts {
  /** One dispatcher RPC. */
  dispatcherCallMs: number;
  /** One restarter call. */
  restartCallMs: number;
  /** Wait for active calls to reach 0 before restarting anyway. */
  drainMs: number;
  /** Wait for the node to come back up after the restart call; then the node stays out and an operator decides. */
  restartMs: number;
  /** Wait for the risk to settle after a restart; then the node stays out and an operator decides. */
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

export interface ActionEngineOptions {
  dispatcher: Dispatcher;
  restarter: Restarter;
  store: Store;
  nodes: EngineNode[];
  clock?: Clock;
  logger?: Logger;
  guardrails?: Partial<GuardrailConfig>;
  lifecycle?: Partial<LifecycleConfig>;
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
}

export const DEFAULT_LIFECYCLE: LifecycleConfig = {
  riskThreshold: 0.8,
  consecutiveWindows: 3,
  recoverThreshold: 0.3,
  recoverWindows: 3,
};

export const DEFAULT_TIMEOUTS: EngineTimeouts = {
  dispatcherCallMs: 5_000,
  restartCallMs: 120_000,
  drainMs: 10 * 60_000,
  restartMs: 5 * 60_000,
  recoverMs: 15 * 60_000,
  reconcileIntervalMs: 10_000,
  refusalRepeatMs: 15 * 60_000,
  lifecycleRetryMs: 5_000,
};

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 200, maxMs: 5_000 };

/** `cycle` restarts the node after draining; `hold` keeps it out of rotation until an operator acts. */
export type DrainPlan = 'cycle' | 'hold';

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
  dispatcher: { state: string; flags: string } | null;
  lastScore: { ts: number; risk: number; observed: boolean; activeCalls: number; up: boolean } | null;
  riskStreak: number;
  recoverStreak: number;
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
  record: NodeRecord;
  plan: DrainPlan;
  decisionActor: string;
  lastScore: NodeScore | null;
  riskStreak: number;
  recoverStreak: number;
  pendingApply: boolean;
  failures: number;
  retryAt: number;
  restartIssuedAt: number | null;
  stalled: string | null;
  dest: DispatcherDestination | null;
  lastRefusal: { guardrail: GuardrailName; at: number } | null;
  lastAuto: AutoDecisionInfo | null;
  /** The drain outlived `drainMs` and was extended (audited once per drain). */
  drainExtended: boolean;
  /** Consecutive scores forecasting a crash within `drainMs` (one window's forecast can be a passing stall's). */
  crashForecastStreak: number;
}

type ChangeResult = { ok: true; already: boolean; attempts: number } | { ok: false; error: unknown; attempts: number };

const MAX_REMEMBERED_DECISIONS = 10_000;

function destKey(setId: number, uri: string): string {
  return `${setId}|${uri.toLowerCase()}`;
}

export class ActionEngine {
  private readonly dispatcher: Dispatcher;
  private readonly restarter: Restarter;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly guardrails: GuardrailConfig;
  private readonly lifecycle: LifecycleConfig;
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
  private recentDrains: number[] = [];
  private lastReconcileAt = Number.NEGATIVE_INFINITY;
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
    this.lifecycle = { ...DEFAULT_LIFECYCLE, ...options.lifecycle };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.listDefaults = options.listDefaults ?? { disabled: false, probing: true };
    this.onAudit = options.onAudit;
    this.dryRun = options.dryRun ?? false;
    this.newId = options.newId ?? randomUUID;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.maintenanceAt = compileMaintenanceWindows(this.guardrails.maintenanceWindows);
    const { riskThreshold, recoverThreshold, consecutiveWindows, recoverWindows } = this.lifecycle;
    if (!(recoverThreshold <= riskThreshold) || consecutiveWindows < 1 || recoverWindows < 1) {
      throw new ForesightError(
        'FORESIGHT_ERR_CONFIG',
        'lifecycle: need recoverThreshold <= riskThreshold and at least one window for each streak',
      );
    }
    const seen = new Set<string>();
    for (const n of options.nodes) {
      if (seen.has(n.nodeId)) throw new ForesightError('FORESIGHT_ERR_CONFIG', `node ${n.nodeId} configured twice`);
      seen.add(n.nodeId);
    }
    this.nodes = options.nodes.map((n) => ({ ...n }));
  }

  // ---------------------------------------------------------------- public API

  /** Loads the store, resumes in-flight lifecycles and reconciles with the dispatcher. */
  init(): Promise<void> {
    return this.exclusive(async () => {
      if (this.initialized) return;
      await this.store.init();
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
        if (record.state !== 'active') await this.restoreInFlight(rt, now);
      }
      const recent = await this.store.queryAudit({ kind: 'DrainStarting', since: now - 3_600_000, limit: 10_000 });
      this.recentDrains = recent.map((r) => r.ts);
      this.initialized = true;
      await this.reconcile(now);
    });
  }

  /** Feeds scores: updates the hysteresis streaks and requests automatic drains through the guardrails. */
  onScores(scores: readonly NodeScore[]): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      const now = this.clock.now();
      for (const s of scores) this.absorbScore(s, now);
      await this.planAutoDrains(now);
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
      if (rt.record.state !== 'active') {
        return { decision: null, record: { ...rt.record }, applied: !rt.pendingApply };
      }
      return this.operatorDrain(rt, req, req.restart ? 'cycle' : 'hold', now);
    });
  }

  /** An operator's drain of an active node: guardrails (audited and thrown when they refuse), then the drain. */
  private async operatorDrain(rt: Runtime, req: OperatorRequest, plan: DrainPlan, now: number): Promise<ActionResult> {
    const verdict = this.evaluate(rt, req.actor, req.force === true, now);
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
    });
    return { decision, record: { ...rt.record }, applied: !rt.pendingApply };
  }

  /** Operator undrain: back into rotation from any state; also ends a manual override. */
  undrain(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      const now = this.clock.now();
      const disabledNow = rt.dest?.state === 'disabled';
      if (rt.record.state === 'active' && rt.record.manualOverride === null && !disabledNow) {
        return { decision: null, record: { ...rt.record }, applied: true };
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
      this.toActive(rt, now, req.reason, decision.id);
      rt.record.manualOverride = null;
      await this.store.putNode(rt.record);
      await this.audit(rt, 'UndrainSucceeded', req.actor, req.reason, decision.id, { alreadyActive: change.already });
      return { decision, record: { ...rt.record }, applied: true };
    });
  }

  /** Operator restart: drains first when the node is active (capacity guardrails apply), else restarts now. */
  restart(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      const now = this.clock.now();
      if (rt.record.state === 'active') return this.operatorDrain(rt, req, 'cycle', now);
      if (rt.pendingApply) {
        throw new ForesightError('FORESIGHT_ERR_CONFLICT', `drain of ${nodeId} is not confirmed by the dispatcher yet`);
      }
      const decision = this.decision(rt, 'restart', req.actor, req.reason, now);
      rt.plan = 'cycle';
      rt.record.decisionId = decision.id;
      await this.startRestart(rt, now, req.actor, req.reason, {});
      return { decision, record: { ...rt.record }, applied: rt.stalled === null };
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
      if (nodeId === undefined) {
        const recent = await this.store.queryAudit({ limit: 10_000 });
        nodeId = recent.find((r) => r.decisionId === decisionId)?.nodeId;
      }
      if (nodeId === undefined) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `decision ${decisionId} not found`);
      const reason = v.confirmed ? 'operator confirmed the decision' : 'operator rejected the decision';
      // The node may have left the configuration since; the label is still worth keeping.
      return this.appendAudit({
        ts: this.clock.now(),
        nodeId,
        kind: 'Verdict',
        actor: v.actor,
        reason,
        decisionId,
        dryRun: this.dryRun,
        details: { confirmed: v.confirmed, note: v.note },
      });
    });
  }

  /**
   * Ends a manual override: Foresight drives the node again. A node a person left disabled is adopted as an
   * operator drain (held out until undrain), never silently re-enabled.
   */
  clearOverride(nodeId: string, req: OperatorRequest): Promise<ActionResult> {
    return this.exclusive(async () => {
      const rt = this.operatorTarget(nodeId, req);
      if (rt.record.manualOverride === null) return { decision: null, record: { ...rt.record }, applied: true };
      const now = this.clock.now();
      const was = rt.record.manualOverride;
      rt.record.manualOverride = null;
      rt.riskStreak = 0;
      rt.lastRefusal = null;
      const adopt = rt.dest?.state === 'disabled';
      if (adopt) {
        const decision = this.decision(rt, 'drain', req.actor, req.reason, now);
        rt.record = {
          ...rt.record,
          state: 'draining',
          since: now,
          decisionId: decision.id,
          reason: `adopted a node disabled by hand: ${req.reason}`,
        };
        rt.plan = 'hold';
        rt.decisionActor = req.actor;
      } else {
        rt.record.reason = req.reason;
      }
      await this.store.putNode(rt.record);
      await this.audit(rt, 'Resumed', req.actor, `override cleared: ${req.reason}`, rt.record.decisionId, {
        cause: 'override_cleared',
        override: was,
        adoptedAsDrain: adopt,
        plan: adopt ? 'hold' : null,
      });
      return { decision: null, record: { ...rt.record }, applied: true };
    });
  }

  /** Why the node is where it is, and why the last automatic decision was or was not taken. */
  explain(nodeId: string): NodeExplanation {
    const rt = this.runtimes.get(nodeId);
    if (!rt) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `node ${nodeId} is not configured`);
    const s = rt.lastScore;
    return {
      nodeId,
      setId: rt.record.setId,
      state: rt.record.state,
      since: rt.record.since,
      reason: rt.record.reason,
      decisionId: rt.record.decisionId,
      plan: rt.record.state === 'active' ? null : rt.plan,
      pinned: rt.record.pinned,
      manualOverride: rt.record.manualOverride,
      drainUnconfirmed: rt.pendingApply,
      stalled: rt.stalled,
      dispatcher: rt.dest ? { state: rt.dest.state, flags: rt.dest.flags } : null,
      lastScore: s ? { ts: s.ts, risk: s.risk, observed: s.observed, activeCalls: s.activeCalls, up: s.up } : null,
      riskStreak: rt.riskStreak,
      recoverStreak: rt.recoverStreak,
      lastAutoDecision: rt.lastAuto ? { ...rt.lastAuto } : null,
    };
  }

  nodeRecords(): NodeRecord[] {
    return [...this.runtimes.values()].map((rt) => ({ ...rt.record }));
  }

  /** Waits until every queued operation has run (for tests and shutdown). */
  async idle(): Promise<void> {
    await this.chain;
  }

  // ---------------------------------------------------------------- scores and automatic drains

  private absorbScore(s: NodeScore, now: number): void {
    const rt = this.runtimes.get(s.nodeId);
    if (!rt) return;
    if (!Number.isFinite(s.risk) || s.risk < 0 || s.risk > 1 || !Number.isFinite(s.ts)) {
      this.logger.warn({ nodeId: s.nodeId, risk: s.risk, ts: s.ts }, 'score ignored: risk or ts out of range');
      return;
    }
    // Redelivered or late windows must not count twice toward a streak.
    if (rt.lastScore && s.ts <= rt.lastScore.ts) return;
    rt.lastScore = s;
    const crashMs = crashForecastMs(s);
    rt.crashForecastStreak = crashMs !== null && crashMs <= this.timeouts.drainMs ? rt.crashForecastStreak + 1 : 0;
    const { riskThreshold, consecutiveWindows, recoverThreshold } = this.lifecycle;
    if (s.observed && s.risk >= riskThreshold) {
      rt.riskStreak++;
    } else {
      rt.riskStreak = 0;
      rt.lastRefusal = null;
    }
    if (rt.record.state === 'recovering') {
      rt.recoverStreak = s.observed && s.ts > rt.record.since && s.risk < recoverThreshold ? rt.recoverStreak + 1 : 0;
    }
    if (rt.record.state !== 'active') {
      rt.lastAuto = this.autoInfo(rt, now, 'not_active', null, `node is ${rt.record.state}`);
    } else if (!s.observed) {
      rt.lastAuto = this.autoInfo(rt, now, 'unobserved', 'unobserved', 'no telemetry in the window');
    } else if (s.risk < riskThreshold) {
      rt.lastAuto = this.autoInfo(rt, now, 'below_threshold', null, `risk ${s.risk.toFixed(3)} < ${riskThreshold}`);
    } else if (rt.riskStreak < consecutiveWindows) {
      rt.lastAuto = this.autoInfo(
        rt,
        now,
        'waiting_hysteresis',
        null,
        `risk high for ${rt.riskStreak} of ${consecutiveWindows} windows`,
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
    return { ts: now, outcome, guardrail, detail, risk: rt.lastScore?.risk ?? null, streak: rt.riskStreak };
  }

  /** Candidates are served highest risk first, so when slots are scarce the most endangered node gets one. */
  private async planAutoDrains(now: number): Promise<void> {
    const k = this.lifecycle.consecutiveWindows;
    const candidates: Runtime[] = [];
    for (const rt of this.runtimes.values()) {
      if (rt.record.state === 'active' && rt.riskStreak >= k) candidates.push(rt);
    }
    if (candidates.length === 0) return;
    candidates.sort((a, b) => (b.lastScore?.risk ?? 0) - (a.lastScore?.risk ?? 0));
    let sets = this.capacity(now);
    for (const rt of candidates) {
      const verdict = this.evaluate(rt, 'auto', false, now, sets);
      if (!verdict.allowed) {
        rt.lastAuto = this.autoInfo(rt, now, 'refused', verdict.guardrail, verdict.detail);
        await this.noteRefusal(rt, verdict, now);
        continue;
      }
      const risk = rt.lastScore?.risk ?? 0;
      const reason = `risk ${risk.toFixed(3)} >= ${this.lifecycle.riskThreshold} for ${rt.riskStreak} windows`;
      rt.lastAuto = this.autoInfo(rt, now, 'drain_started', null, reason);
      await this.startDrain(rt, now, { actor: 'auto', reason, plan: 'cycle', bypassed: [] });
      sets = this.capacity(now);
    }
  }

  /** Capacity of every set as things stand; recomputed after each drain in a pass, not per candidate. */
  private capacity(now: number): Map<number, SetSummary> {
    const views: NodeView[] = [];
    for (const r of this.runtimes.values()) views.push(this.view(r));
    this.recentDrains = this.recentDrains.filter((t) => t > now - 3_600_000);
    return summarizeSets(views);
  }

  private evaluate(
    rt: Runtime,
    actor: string,
    force: boolean,
    now: number,
    sets: Map<number, SetSummary> = this.capacity(now),
  ): GuardrailVerdict {
    return evaluateDrain({ nodeId: rt.record.nodeId, actor, force }, this.view(rt), sets.get(rt.record.setId), {
      config: this.guardrails,
      now,
      riskThreshold: this.lifecycle.riskThreshold,
      recentDrains: this.recentDrains,
      maintenance: this.maintenanceAt(now),
    });
  }

  private view(rt: Runtime): NodeView {
    const d = rt.dest;
    // A destination missing from the dispatcher, disabled, or marked inactive by Kamailio's probing takes no calls.
    const dispatcherOut = d === null || d.state === 'disabled' || d.state === 'inactive';
    return {
      nodeId: rt.record.nodeId,
      setId: rt.record.setId,
      state: rt.record.state,
      inService: rt.record.state === 'active' && !dispatcherOut,
      observed: rt.lastScore?.observed ?? false,
      up: rt.lastScore?.up ?? false,
      risk: rt.lastScore?.risk ?? null,
      pinned: rt.record.pinned,
      manualOverride: rt.record.manualOverride,
      lastDrainAt: rt.record.lastDrainAt,
    };
  }

  /** One audit line per node and guardrail until the guardrail changes, the episode ends, or refusalRepeatMs passes. */
  private async noteRefusal(rt: Runtime, verdict: GuardrailVerdict & { allowed: false }, now: number): Promise<void> {
    const last = rt.lastRefusal;
    if (last && last.guardrail === verdict.guardrail && now - last.at < this.timeouts.refusalRepeatMs) return;
    rt.lastRefusal = { guardrail: verdict.guardrail, at: now };
    await this.audit(rt, 'DrainRefused', 'auto', verdict.detail, null, {
      guardrail: verdict.guardrail,
      ...verdict.details,
      risk: rt.lastScore?.risk ?? null,
      streak: rt.riskStreak,
    });
  }

  // ---------------------------------------------------------------- lifecycle

  private async startDrain(
    rt: Runtime,
    now: number,
    d: { actor: string; reason: string; plan: DrainPlan; bypassed: GuardrailName[] },
  ): Promise<DrainDecision> {
    const decision = this.decision(rt, 'drain', d.actor, d.reason, now);
    // Write-ahead: the store says "draining, unconfirmed" before the dispatcher is touched, so a crash in between
    // is resumed (and the drain completed) rather than forgotten.
    const next: NodeRecord = {
      ...rt.record,
      state: 'draining',
      since: now,
      lastDrainAt: now,
      decisionId: decision.id,
      reason: d.reason,
    };
    // Stored before memory changes: if the store refuses, nothing else happens and the caller sees the error.
    await this.store.putNode(next);
    rt.record = next;
    rt.plan = d.plan;
    rt.decisionActor = d.actor;
    rt.pendingApply = true;
    rt.failures = 0;
    rt.retryAt = now;
    rt.stalled = null;
    rt.lastRefusal = null;
    rt.recoverStreak = 0;
    this.recentDrains.push(now);
    await this.audit(rt, 'DrainStarting', d.actor, d.reason, decision.id, {
      plan: d.plan,
      risk: decision.risk,
      streak: rt.riskStreak,
      bypassed: d.bypassed,
    });
    await this.applyPendingDrain(rt, now);
    return decision;
  }

  private async applyPendingDrain(rt: Runtime, now: number): Promise<void> {
    const change = await this.setDisabled(rt, true);
    if (change.ok) {
      rt.pendingApply = false;
      rt.record = { ...rt.record, since: this.clock.now() };
      await this.store.putNode(rt.record);
      await this.audit(rt, 'DrainSucceeded', rt.decisionActor, rt.record.reason, rt.record.decisionId, {
        alreadyDisabled: change.already,
        attempts: change.attempts,
        failedRounds: rt.failures,
      });
      rt.failures = 0;
      return;
    }
    this.logger.warn({ nodeId: rt.record.nodeId, err: errorMessage(change.error) }, 'drain not applied');
    // One alert per decision; later rounds only log, the store already says "unconfirmed".
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
    await this.audit(rt, kind, rt.decisionActor, `dispatcher error: ${error}`, rt.record.decisionId, {
      error,
      attempts: change.attempts,
      alert: true,
      willRetry: true,
    });
  }

  private async advance(rt: Runtime, now: number): Promise<void> {
    const state = rt.record.state;
    if (state === 'active' || rt.record.manualOverride !== null || rt.stalled !== null) return;
    if (now < rt.retryAt) return;
    if (state === 'draining') {
      if (rt.pendingApply) {
        // The risk is checked again before a delayed automatic drain acts.
        const s = rt.lastScore;
        if (isAuto(rt.decisionActor) && s?.observed && s.risk < this.lifecycle.riskThreshold) {
          await this.cancelPendingDrain(rt, now);
          return;
        }
        await this.applyPendingDrain(rt, now);
        return;
      }
      if (rt.plan === 'hold') return;
      const s = rt.lastScore;
      if (s && s.ts > rt.record.since && s.activeCalls === 0) {
        await this.startRestart(rt, now, rt.decisionActor, 'active calls reached 0', {});
      } else if (now - rt.record.since >= this.timeouts.drainMs) {
        if (s && s.ts > rt.record.since && s.observed && s.up && s.risk < this.lifecycle.recoverThreshold) {
          // The cause cleared while the calls were finishing (a slow database, a lossy path): a restart would only
          // drop the calls still up, so the node goes back without one.
          await this.returnToRotation(
            rt,
            now,
            `drain timeout with ${s.activeCalls} calls up and the risk back to normal: returned without a restart`,
            { restarted: false, activeCalls: s.activeCalls, drainMs: this.timeouts.drainMs },
          );
          return;
        }
        // Calls still up on a node that keeps them (it is up, and no memory or queue trend has forecast a crash within
        // another drain period for K windows running; slow setups or a slow database do not end established calls):
        // a restart now would drop them for nothing, so the drain goes on, up to DRAIN_EXTENSION times.
        const crashSoon = rt.crashForecastStreak >= this.lifecycle.consecutiveWindows;
        const keepsCalls = s !== null && s.ts > rt.record.since && s.up && !crashSoon;
        if (keepsCalls && now - rt.record.since < this.timeouts.drainMs * DRAIN_EXTENSION) {
          if (!rt.drainExtended) {
            rt.drainExtended = true;
            await this.audit(
              rt,
              'DrainExtended',
              rt.decisionActor,
              `drain timeout with ${s.activeCalls} calls up and no crash forecast: waiting for them`,
              rt.record.decisionId,
              {
                activeCalls: s.activeCalls,
                drainMs: this.timeouts.drainMs,
                untilMs: this.timeouts.drainMs * DRAIN_EXTENSION,
              },
            );
          }
          return;
        }
        await this.startRestart(rt, now, rt.decisionActor, 'drain timeout: restarting with calls left', {
          activeCalls: s?.activeCalls ?? null,
          drainMs: this.timeouts.drainMs,
          extended: rt.drainExtended,
        });
      }
      return;
    }
    if (state === 'restarting') {
      if (rt.restartIssuedAt === null) return;
      const s = rt.lastScore;
      if (s && s.ts > rt.restartIssuedAt && s.up) {
        await this.audit(rt, 'RestartSucceeded', rt.decisionActor, 'node is up again', rt.record.decisionId, {
          downForMs: now - rt.restartIssuedAt,
        });
        rt.record = {
          ...rt.record,
          state: 'recovering',
          since: now,
          reason: 'restarted; waiting for the risk to settle',
        };
        rt.recoverStreak = 0;
        await this.store.putNode(rt.record);
        await this.audit(rt, 'RecoveryStarted', rt.decisionActor, rt.record.reason, rt.record.decisionId, {
          recoverThreshold: this.lifecycle.recoverThreshold,
          windows: this.lifecycle.recoverWindows,
        });
      } else if (now - rt.record.since >= this.timeouts.restartMs) {
        await this.stall(rt, 'RestartFailed', 'node did not come back up in time; kept out of rotation', {
          phase: 'wait',
          restartMs: this.timeouts.restartMs,
        });
      }
      return;
    }
    // recovering
    if (rt.recoverStreak >= this.lifecycle.recoverWindows) {
      await this.returnToRotation(rt, now, 'recovered and back in rotation', {
        windows: this.lifecycle.recoverWindows,
      });
    } else if (now - rt.record.since >= this.timeouts.recoverMs) {
      await this.stall(rt, 'UndrainFailed', 'risk did not settle after the restart; kept out of rotation', {
        phase: 'recover',
        recoverMs: this.timeouts.recoverMs,
      });
    }
  }

  private async cancelPendingDrain(rt: Runtime, now: number): Promise<void> {
    // Only reached while the dispatcher has not confirmed the drain; make sure it did not land meanwhile.
    const change = await this.setDisabled(rt, false);
    if (!change.ok) {
      rt.retryAt = now + this.timeouts.lifecycleRetryMs;
      return;
    }
    const decisionId = rt.record.decisionId;
    this.toActive(rt, now, 'drain cancelled: risk recovered before the dispatcher accepted it', decisionId);
    await this.store.putNode(rt.record);
    await this.audit(rt, 'DrainRefused', 'auto', rt.record.reason, decisionId, {
      guardrail: 'risk_recovered',
      risk: rt.lastScore?.risk ?? null,
      observed: rt.lastScore?.observed ?? false,
    });
  }

  private async startRestart(
    rt: Runtime,
    now: number,
    actor: string,
    why: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    rt.record = { ...rt.record, state: 'restarting', since: now, reason: why };
    rt.restartIssuedAt = null;
    rt.stalled = null;
    rt.failures = 0;
    await this.store.putNode(rt.record);
    await this.audit(rt, 'RestartStarting', actor, why, rt.record.decisionId, {
      restarter: this.restarter.name,
      ...details,
    });
    const result = await this.withRetries(() =>
      this.timed(this.restarter.restart(rt.record.nodeId), this.timeouts.restartCallMs, 'restart'),
    );
    if (result.ok) {
      rt.restartIssuedAt = this.clock.now();
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
    rt.record = { ...rt.record, reason };
    await this.store.putNode(rt.record);
    await this.audit(rt, kind, rt.decisionActor, reason, rt.record.decisionId, {
      ...details,
      alert: true,
      stalled: true,
    });
  }

  /**
   * Puts the node back in rotation and ends its decision with NodeReturned; a dispatcher error is retried with backoff
   * and alerted once (UndrainFailed).
   */
  private async returnToRotation(
    rt: Runtime,
    now: number,
    reason: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const change = await this.setDisabled(rt, false);
    if (change.ok) {
      const decisionId = rt.record.decisionId;
      this.toActive(rt, now, reason, decisionId);
      await this.store.putNode(rt.record);
      await this.audit(rt, 'NodeReturned', rt.decisionActor, reason, decisionId, {
        ...details,
        alreadyActive: change.already,
      });
      return;
    }
    await this.retryAfterDispatcherError(rt, now, 'UndrainFailed', change);
  }

  private toActive(rt: Runtime, now: number, reason: string, decisionId: string | null): void {
    rt.record = { ...rt.record, state: 'active', since: now, reason, decisionId };
    rt.pendingApply = false;
    rt.stalled = null;
    rt.failures = 0;
    rt.retryAt = now;
    rt.restartIssuedAt = null;
    rt.riskStreak = 0;
    rt.recoverStreak = 0;
    rt.lastRefusal = null;
    rt.drainExtended = false;
    if (rt.dest) rt.dest = { ...rt.dest, state: 'active' };
  }

  // ---------------------------------------------------------------- resume and reconcile

  private async restoreInFlight(rt: Runtime, now: number): Promise<void> {
    const history = await this.store.queryAudit({ nodeId: rt.record.nodeId, limit: 200 });
    const starting = history.find((r) => r.kind === 'DrainStarting' && r.decisionId === rt.record.decisionId);
    rt.plan = starting?.details.plan === 'hold' ? 'hold' : 'cycle';
    rt.decisionActor = starting?.actor ?? 'auto';
    const latest = (kinds: AuditKind[]) => history.find((r) => kinds.includes(r.kind));
    if (rt.record.state === 'draining') {
      const last = latest(['DrainStarting', 'DrainSucceeded', 'DrainFailed', 'StateReapplied', 'Resumed']);
      rt.pendingApply = last?.kind === 'DrainStarting' || last?.kind === 'DrainFailed';
    } else if (rt.record.state === 'restarting') {
      const last = latest(['RestartStarting', 'RestartFailed']);
      if (last?.kind === 'RestartFailed') rt.stalled = rt.record.reason;
      // A restart recorded as starting is assumed issued: restarting a node twice is worse than waiting for it.
      else rt.restartIssuedAt = rt.record.since;
    } else if (rt.record.state === 'recovering') {
      const last = latest(['RecoveryStarted', 'UndrainFailed']);
      if (last?.kind === 'UndrainFailed' && last.details.stalled === true) rt.stalled = rt.record.reason;
    }
    await this.audit(
      rt,
      'Resumed',
      'auto',
      `resumed in ${rt.record.state} after a Foresight restart`,
      rt.record.decisionId,
      {
        state: rt.record.state,
        since: rt.record.since,
        plan: rt.plan,
        drainUnconfirmed: rt.pendingApply,
        stalled: rt.stalled,
        downtimeMs: now - rt.record.since,
      },
    );
  }

  private async reconcile(now: number): Promise<void> {
    this.lastReconcileAt = now;
    let list: DispatcherDestination[];
    try {
      list = await this.timed(this.dispatcher.list(), this.timeouts.dispatcherCallMs, 'dispatcher.list');
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'reconcile skipped: dispatcher list failed');
      return;
    }
    const index = new Map(list.map((d) => [destKey(d.setId, d.uri), d]));
    const lost: Runtime[] = [];
    const handDisabled: Runtime[] = [];
    let drainedByUs = 0;
    for (const rt of this.runtimes.values()) {
      const d = index.get(destKey(rt.record.setId, rt.record.uri)) ?? null;
      if (d === null && rt.dest !== null) {
        this.logger.warn({ nodeId: rt.record.nodeId, uri: rt.record.uri }, 'destination missing from the dispatcher');
      }
      rt.dest = d;
      if (d === null || rt.record.manualOverride !== null) continue;
      const disabled = d.state === 'disabled';
      if (rt.pendingApply) {
        // A drain that landed although its call reported failure (or a crash hid the answer).
        if (disabled) {
          rt.pendingApply = false;
          rt.record = { ...rt.record, since: now };
          await this.store.putNode(rt.record);
          await this.audit(rt, 'DrainSucceeded', rt.decisionActor, rt.record.reason, rt.record.decisionId, {
            confirmedBy: 'reconcile',
          });
        }
        continue;
      }
      const expectDisabled = rt.record.state !== 'active';
      if (expectDisabled) drainedByUs++;
      if (expectDisabled && !disabled) lost.push(rt);
      else if (!expectDisabled && disabled) handDisabled.push(rt);
    }

    if (lost.length > 0) {
      const matchesDefaults = list.every(
        (d) => (d.state === 'disabled') === this.listDefaults.disabled && d.probing === this.listDefaults.probing,
      );
      const allLost = lost.length === drainedByUs;
      const wholesale = allLost && (lost.length >= 2 || matchesDefaults);
      const heuristic = { lost: lost.length, drainedByUs, matchesListDefaults: matchesDefaults, wholesale };
      for (const rt of lost) {
        if (wholesale) await this.reapply(rt, now, heuristic);
        else await this.markOverride(rt, now, `enabled by hand while ${rt.record.state}`, heuristic);
      }
    }
    for (const rt of handDisabled) {
      await this.markOverride(rt, now, 'disabled by hand', { flags: rt.dest?.flags ?? null });
    }
  }

  private async reapply(rt: Runtime, now: number, heuristic: Record<string, unknown>): Promise<void> {
    const change = await this.setDisabled(rt, true);
    if (change.ok) {
      await this.audit(
        rt,
        'StateReapplied',
        'auto',
        'dispatcher states were reset (reload or restart); drain re-applied',
        rt.record.decisionId,
        {
          ...heuristic,
          state: rt.record.state,
        },
      );
      return;
    }
    // The store keeps saying what Foresight wants; the lifecycle retries until the dispatcher takes it.
    rt.pendingApply = true;
    rt.failures = 1;
    rt.retryAt = now + this.timeouts.lifecycleRetryMs;
    await this.audit(
      rt,
      'DrainFailed',
      'auto',
      `re-applying a reset drain failed: ${errorMessage(change.error)}`,
      rt.record.decisionId,
      {
        ...heuristic,
        error: errorMessage(change.error),
        alert: true,
        willRetry: true,
      },
    );
  }

  private async markOverride(rt: Runtime, now: number, what: string, details: Record<string, unknown>): Promise<void> {
    const previous = rt.record.state;
    const flags = rt.dest?.flags ?? null;
    // The lifecycle ends where the person left it: Foresight records the fact and keeps its hands off.
    rt.record = {
      ...rt.record,
      state: 'active',
      since: now,
      manualOverride: `${what} (dispatcher flags ${flags ?? '?'})`,
      reason: `manual override: ${what}`,
    };
    rt.pendingApply = false;
    rt.stalled = null;
    rt.restartIssuedAt = null;
    rt.riskStreak = 0;
    rt.recoverStreak = 0;
    await this.store.putNode(rt.record);
    await this.audit(rt, 'ManualOverrideDetected', 'auto', rt.record.manualOverride ?? what, rt.record.decisionId, {
      ...details,
      previousState: previous,
      flags,
    });
  }

  // ---------------------------------------------------------------- dispatcher and plumbing

  /** Re-reads the destination and changes it only if needed; "already in that state" is success. */
  private async setDisabled(rt: Runtime, disabled: boolean): Promise<ChangeResult> {
    const { setId, uri, nodeId } = rt.record;
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
      if (rt.record.pinned === pinned) return { decision: null, record: { ...rt.record }, applied: true };
      const now = this.clock.now();
      const decision = this.decision(rt, pinned ? 'pin' : 'unpin', req.actor, req.reason, now);
      rt.record = { ...rt.record, pinned };
      await this.store.putNode(rt.record);
      await this.audit(rt, pinned ? 'Pinned' : 'Unpinned', req.actor, req.reason, decision.id, {});
      return { decision, record: { ...rt.record }, applied: true };
    });
  }

  private decision(rt: Runtime, action: DrainAction, actor: string, reason: string, now: number): DrainDecision {
    const id = this.newId();
    this.decisions.set(id, rt.record.nodeId);
    if (this.decisions.size > MAX_REMEMBERED_DECISIONS) {
      const oldest = this.decisions.keys().next().value;
      if (oldest !== undefined) this.decisions.delete(oldest);
    }
    return {
      id,
      nodeId: rt.record.nodeId,
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
      nodeId: rt.record.nodeId,
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
    return {
      record: { ...record },
      plan: 'cycle',
      decisionActor: 'auto',
      lastScore: null,
      riskStreak: 0,
      recoverStreak: 0,
      pendingApply: false,
      failures: 0,
      retryAt: Number.NEGATIVE_INFINITY,
      restartIssuedAt: null,
      stalled: null,
      dest: null,
      lastRefusal: null,
      lastAuto: null,
      drainExtended: false,
      crashForecastStreak: 0,
    };
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
