import type { DestinationState } from '../actions/ports.js';
import type { Clock } from '../clock.js';
import { ForesightError } from '../errors.js';
import { FAILURE_MODES, type FailureMode, type IncidentLabel, type TelemetrySample } from '../messages.js';
import { EpisodeStream } from './episodes.js';
import { applyFailure, applyIncident, type Incident, KEEPS_CALLS, LOAD_DRIVEN, resetEffects } from './incidents.js';
import { dailyLoad } from './load-curve.js';
import { createNode, INVITE_SAMPLES_PER_TICK, type ProbeState, type SimNode, type SimNodeStatus } from './node.js';
import {
  MODE_DURATION_MS,
  resolveOptions,
  type SimulatedClusterInput,
  type SimulatedClusterOptions,
} from './options.js';
import { Rng } from './rng.js';
import { emitNode, type TelemetryContext } from './telemetry.js';

export type { ProbeState, SimNodeStatus };

/** What an operator (or the simulated dispatcher) can see of one node. Ground truth about incidents is not here. */
export interface SimNodeView {
  nodeId: string;
  setId: number;
  uri: string;
  status: SimNodeStatus;
  up: boolean;
  /** False once drained (`setAccepting(id, false)`, Kamailio flag D). */
  accepting: boolean;
  probe: ProbeState;
  /** The state `dispatcher.list` would show: disabled > inactive > trying > active. */
  dispatcherState: DestinationState;
  activeCalls: number;
  /** EWMA of answered OPTIONS round-trips, like Kamailio's LATENCY AVG. ms */
  latencyAvgMs: number | null;
}

export type IncidentOutcomeKind = 'active' | 'crashed' | 'failed' | 'prevented';

export interface IncidentOutcome {
  label: IncidentLabel;
  magnitude: number;
  /**
   * `active` while the precursor runs, then `prevented` (restarted before crashAt), `crashed` (the process died:
   * memory_leak, taskprocessor_backlog, sudden_crash) or `failed` (db_degradation, retransmission_storm: from crashAt
   * new calls failed while established calls went on).
   */
  outcome: IncidentOutcomeKind;
  /** Calls established on the node when it crashed (0 unless crashed). */
  droppedAtCrash: number;
  /** Calls established on the node when a restart ended the incident (a drain that timed out, or no drain at all). */
  droppedAtRestart: number;
  /** Every call this incident dropped: droppedAtCrash + droppedAtRestart. */
  callsDropped: number;
  /** Call setups that failed on the node because of the incident (precursor, failure, down time). */
  callsFailed: number;
  /** When it crashed, failed or was prevented, epoch ms. */
  resolvedAt: number | null;
  /**
   * When the node stopped suffering from it, epoch ms: resolvedAt for crashed and prevented incidents; for failed ones
   * the restart or self-recovery that ended the failing. Null while it lasts.
   */
  endedAt: number | null;
}

export interface SimulatorStats {
  /** Virtual time reached, epoch ms. */
  now: number;
  /** Calls offered by callers. */
  callsOffered: number;
  /** Calls established on a node. */
  callsStarted: number;
  /** Established calls that ended normally. */
  callsCompleted: number;
  /** Offered calls that never got established (node down, timed out, 5xx, or no destination), rejected included. */
  callsFailed: number;
  /** Part of callsFailed: no destination was eligible (Kamailio `503 No backend available`). */
  callsRejected: number;
  /** Established calls torn down by a crash or a restart. */
  callsDropped: number;
  droppedByCrash: number;
  droppedByRestart: number;
  restarts: number;
  crashes: number;
  /** Incidents that ended in the `failed` state (new calls failed, established calls went on). */
  failures: number;
  /** Every incident whose onset has passed, in onset order. */
  incidents: IncidentOutcome[];
}

/** Kamailio tm `fr_timer` in the reference config: an OPTIONS slower than this is a timeout (408). ms */
const PING_TIMEOUT_MS = 2000;
/** Timer E retransmissions of one unanswered request within `fr_timer` (0.5 s, 1.5 s; domain F). */
const RETRANS_PER_TIMEOUT = 2;
const LATENCY_ALPHA = 0.9;

/**
 * A deterministic Asterisk cluster behind a Kamailio dispatcher, on a virtual clock it owns.
 * Same seed and same sequence of calls (step, setAccepting, restart) give the same samples and labels.
 * Incident, disturbance and arrival times come from streams that actions never touch, so a run with Foresight
 * draining and a run without it face the same incidents and the same callers.
 */
export class SimulatedCluster implements Clock {
  readonly options: SimulatedClusterOptions;
  readonly nodeIds: readonly string[];
  private readonly list: SimNode[] = [];
  private readonly byId = new Map<string, SimNode>();
  private readonly arrivalsRng: Rng;
  private readonly dbBlips: EpisodeStream;
  private readonly netBlips: EpisodeStream;
  private readonly dbBlipNode: Float64Array;
  private readonly modeWeights: number[];
  private readonly incidentLog: Incident[] = [];
  private readonly tickS: number;
  /** Probability that an established call ends within one tick: exponential durations in discrete time. */
  private readonly pEnd: number;
  private readonly nominalActive: number;
  private readonly telemetry: TelemetryContext;
  private _now: number;
  private nextPingAt: number;
  private rr = 0;
  private readonly eligible: SimNode[] = [];
  private readonly totals = {
    callsOffered: 0,
    callsStarted: 0,
    callsCompleted: 0,
    callsFailed: 0,
    callsRejected: 0,
    droppedByCrash: 0,
    droppedByRestart: 0,
    restarts: 0,
    crashes: 0,
    failures: 0,
  };

  constructor(input: SimulatedClusterInput = {}) {
    const o = resolveOptions(input);
    this.options = o;
    this._now = o.startAt;
    this.tickS = o.tickMs / 1000;
    this.pEnd = 1 - Math.exp(-o.tickMs / o.meanCallMs);
    this.nominalActive = Math.max(1, o.callRatePerNode * (o.meanCallMs / 1000));
    this.nextPingAt = o.startAt + o.pingIntervalMs;
    this.telemetry = { tickS: this.tickS, nominalActive: this.nominalActive, memoryLimitMb: o.memoryLimitMb };
    this.modeWeights = FAILURE_MODES.map((m) => o.randomIncidents.modeWeights[m] ?? 0);

    const root = Rng.fromSeed(o.seed);
    this.arrivalsRng = root.fork();
    const planRng = root.fork();
    const clusterRng = root.fork();
    this.dbBlips = new EpisodeStream(
      clusterRng.fork(),
      o.disturbances.dbBlipsPerDay,
      [5000, 40_000],
      [4, 25],
      o.startAt,
    );
    this.netBlips = new EpisodeStream(
      clusterRng.fork(),
      o.disturbances.networkBlipsPerDay,
      [10_000, 60_000],
      [0.5, 2],
      o.startAt,
    );
    this.dbBlipNode = new Float64Array(o.nodes);

    const ids: string[] = [];
    for (let i = 0; i < o.nodes; i++) {
      const id = `ast${i + 1}`;
      const node = createNode(id, `sip:127.0.0.1:${5071 + i}`, root.fork(), root.fork(), o);
      ids.push(id);
      this.list.push(node);
      this.byId.set(id, node);
    }
    this.nodeIds = ids;

    for (const plan of o.incidents) {
      const node = this.byId.get(plan.nodeId)!;
      const sudden = plan.mode === 'sudden_crash';
      const [dMin, dMax] = MODE_DURATION_MS[plan.mode];
      // Draw every optional field, used or not, so that one plan's fields never shift another's draws.
      const drawnDuration = planRng.range(dMin, dMax);
      const drawnMagnitude = planRng.range(o.randomIncidents.magnitude[0], o.randomIncidents.magnitude[1]);
      const [rMin, rMax] = KEEPS_CALLS[plan.mode] ? o.failedRecoveryMs : o.crashRecoveryMs;
      const drawnRecovery = planRng.range(rMin, rMax);
      const crashAt = sudden ? plan.onsetAt : (plan.crashAt ?? plan.onsetAt + Math.round(drawnDuration));
      node.planned.push(
        this.makeIncident(
          plan.nodeId,
          plan.mode,
          plan.onsetAt,
          crashAt,
          plan.magnitude ?? drawnMagnitude,
          plan.recoveryMs ?? drawnRecovery,
        ),
      );
    }
    for (const node of this.list) {
      node.planned.sort((a, b) => a.label.onsetAt - b.label.onsetAt);
      node.nextRandom = this.drawRandomIncident(node, o.startAt + o.randomIncidents.warmupMs);
    }
  }

  /** Current virtual time: the end of the last tick simulated. epoch ms */
  now(): number {
    return this._now;
  }

  /**
   * Advances tick by tick while the next tick ends at or before `untilTs`, and returns the samples produced
   * (appended to `out` when given). A tick ending at t reports what happened in (t - tickMs, t], stamped t.
   */
  step(untilTs: number, out: TelemetrySample[] = []): TelemetrySample[] {
    if (!Number.isFinite(untilTs)) {
      throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `step: untilTs must be epoch ms, got ${untilTs}`);
    }
    const tickMs = this.options.tickMs;
    while (this._now + tickMs <= untilTs) {
      this._now += tickMs;
      this.tick(this._now, out);
    }
    return out;
  }

  /** Drains (false) or re-activates (true) a node in the simulated dispatcher. Re-activating resets probing, as `ap` does. */
  setAccepting(nodeId: string, accepting: boolean): void {
    const node = this.node(nodeId);
    if (node.accepting === accepting) return;
    node.accepting = accepting;
    node.probeFails = 0;
    node.probeOks = 0;
    if (accepting) node.probe = 'active';
  }

  /**
   * Restarts the node now: down for `restartMs`, then up and healthy. Established calls are dropped (and charged to
   * the incident the restart ends, if any). An incident in its precursor is cleared (prevented); a failed node stops
   * failing. Restarting a node that is already restarting does nothing.
   */
  restart(nodeId: string): void {
    const node = this.node(nodeId);
    if (node.status === 'restarting') return;
    const t = this._now;
    this.totals.restarts++;
    const inc = node.incident;
    if (node.active > 0) {
      node.dropped += node.active;
      this.totals.droppedByRestart += node.active;
      if (inc) inc.droppedAtRestart += node.active;
      node.active = 0;
    }
    // An incident still active has not failed yet (a load-driven one may run past its nominal crashAt).
    if (inc && inc.status === 'active') {
      inc.status = 'prevented';
      inc.resolvedAt = t;
      inc.endedAt = t;
      node.incident = null;
    } else if (inc && inc.status === 'failed') {
      inc.endedAt = t;
      node.incident = null;
    }
    node.downCause = null;
    const upAt = t + this.options.restartMs;
    node.downUntil = node.status === 'crashed' ? Math.min(node.downUntil, upAt) : upAt;
    node.status = 'restarting';
  }

  activeCalls(nodeId: string): number {
    return this.node(nodeId).active;
  }

  isUp(nodeId: string): boolean {
    return this.node(nodeId).status === 'up';
  }

  hasNode(nodeId: string): boolean {
    return this.byId.has(nodeId);
  }

  /** The node whose dispatcher URI matches (case-insensitive, as Kamailio compares), or undefined. */
  nodeIdByUri(uri: string): string | undefined {
    const wanted = uri.toLowerCase();
    return this.list.find((n) => n.uri.toLowerCase() === wanted)?.id;
  }

  nodeView(nodeId: string): SimNodeView {
    return this.view(this.node(nodeId));
  }

  nodes(): SimNodeView[] {
    return this.list.map((n) => this.view(n));
  }

  /** Ground truth of every incident whose onset has passed, in onset order. Never feed this to the pipeline. */
  labels(): IncidentLabel[] {
    return this.incidentLog.map((i) => ({ ...i.label }));
  }

  stats(): SimulatorStats {
    const t = this.totals;
    return {
      now: this._now,
      ...t,
      callsDropped: t.droppedByCrash + t.droppedByRestart,
      incidents: this.incidentLog.map((i) => ({
        label: { ...i.label },
        magnitude: i.magnitude,
        outcome: i.status === 'active' || i.status === 'crashed' || i.status === 'failed' ? i.status : 'prevented',
        droppedAtCrash: i.droppedAtCrash,
        droppedAtRestart: i.droppedAtRestart,
        callsDropped: i.droppedAtCrash + i.droppedAtRestart,
        callsFailed: i.callsFailed,
        resolvedAt: i.resolvedAt,
        endedAt: i.endedAt,
      })),
    };
  }

  private node(nodeId: string): SimNode {
    const node = this.byId.get(nodeId);
    if (!node)
      throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown simulated node ${nodeId}`, { details: { nodeId } });
    return node;
  }

  private view(n: SimNode): SimNodeView {
    return {
      nodeId: n.id,
      setId: this.options.setId,
      uri: n.uri,
      status: n.status,
      up: n.status === 'up',
      accepting: n.accepting,
      probe: n.probe,
      dispatcherState: !n.accepting ? 'disabled' : n.probe,
      activeCalls: n.active,
      latencyAvgMs: n.latencyAvgMs,
    };
  }

  private makeIncident(
    nodeId: string,
    mode: FailureMode,
    onsetAt: number,
    crashAt: number,
    magnitude: number,
    recoveryMs: number,
  ): Incident {
    return {
      label: { nodeId, mode, predictable: mode !== 'sudden_crash', onsetAt, crashAt },
      magnitude,
      recoveryMs,
      status: 'scheduled',
      droppedAtCrash: 0,
      droppedAtRestart: 0,
      callsFailed: 0,
      resolvedAt: null,
      failedUntil: 0,
      endedAt: null,
      progress: 0,
      progressAt: onsetAt,
      callsWhenCut: null,
    };
  }

  /** Next random incident after `from`; all its properties come from the node's incident stream. */
  private drawRandomIncident(node: SimNode, from: number): Incident | null {
    const r = this.options.randomIncidents;
    if (r.perNodeDay <= 0) return null;
    const rng = node.incidentRng;
    const onsetAt = Math.round(from + rng.exponential(86_400_000 / r.perNodeDay));
    const mode = FAILURE_MODES[rng.weighted(this.modeWeights)] ?? 'sudden_crash';
    const [dMin, dMax] = MODE_DURATION_MS[mode];
    const duration = Math.round(rng.range(dMin, dMax));
    const magnitude = rng.range(r.magnitude[0], r.magnitude[1]);
    const [rMin, rMax] = KEEPS_CALLS[mode] ? this.options.failedRecoveryMs : this.options.crashRecoveryMs;
    const recoveryMs = rng.range(rMin, rMax);
    return this.makeIncident(node.id, mode, onsetAt, onsetAt + duration, magnitude, recoveryMs);
  }

  private tick(t: number, out: TelemetrySample[]): void {
    const o = this.options;
    const dbBlip = this.dbBlips.activeAt(t);
    const netBlip = this.netBlips.activeAt(t);
    for (let i = 0; i < this.list.length; i++) {
      const node = this.list[i]!;
      this.advanceNode(node, t);
      this.computeEffects(node, i, t, dbBlip, netBlip);
      if (node.status === 'up' && node.active > 0) {
        const ended = node.rng.binomial(node.active, this.pEnd);
        node.active -= ended;
        node.completed += ended;
        this.totals.callsCompleted += ended;
        // A small share of calls end with an abnormal cause on any healthy PBX.
        node.abnormal += ended > 0 && node.rng.uniform() < 0.01 * ended ? 1 : 0;
      }
    }
    this.arrivals(t);
    if (t >= this.nextPingAt) {
      while (this.nextPingAt <= t) this.nextPingAt += o.pingIntervalMs;
      for (const node of this.list) this.ping(node);
    }
    for (const node of this.list) emitNode(node, t, this.telemetry, out);
  }

  /** Recovery, incident onsets and crashes due by time t. */
  private advanceNode(node: SimNode, t: number): void {
    if (node.status !== 'up' && t >= node.downUntil) {
      node.status = 'up';
      node.downCause = null;
    }
    const failing = node.incident;
    // A failed node whose cause cleared by itself (the DB is fast again, the path stops losing packets).
    if (failing && failing.status === 'failed' && t >= failing.failedUntil) {
      failing.endedAt = failing.failedUntil;
      node.incident = null;
    }
    for (;;) {
      const planned = node.planned[0];
      const random = node.nextRandom;
      let next: Incident | null = null;
      if (planned && planned.label.onsetAt <= t) next = planned;
      if (random && random.label.onsetAt <= t && (!next || random.label.onsetAt < next.label.onsetAt)) next = random;
      if (!next) break;
      if (next === planned) node.planned.shift();
      else
        node.nextRandom = this.drawRandomIncident(node, next.label.crashAt + next.recoveryMs + this.options.restartMs);
      // One failure at a time: an onset while the node is down or already failing is dropped, never labelled.
      if (node.status !== 'up' || node.incident) {
        next.status = 'discarded';
        continue;
      }
      next.status = 'active';
      node.incident = next;
      this.incidentLog.push(next);
    }
    const inc = node.incident;
    if (inc && inc.status === 'active') this.advanceProgress(node, inc, t);
    if (inc && inc.status === 'active' && inc.progress >= 1 - 1e-9) {
      if (KEEPS_CALLS[inc.label.mode]) this.fail(inc, t);
      else this.crash(node, inc, t);
    }
  }

  /**
   * Moves an active incident's precursor on to t. Time-driven modes are at (t - onset) / (crashAt - onset); a
   * LOAD_DRIVEN one advances at that pace while the node receives new calls, and at (calls up / calls when new ones
   * stopped) of it while it receives none, so a node drained early enough outlives its remaining calls.
   */
  private advanceProgress(node: SimNode, inc: Incident, t: number): void {
    const { onsetAt, crashAt, mode } = inc.label;
    const span = crashAt - onsetAt;
    if (!LOAD_DRIVEN[mode] || span <= 0) {
      inc.progress = span > 0 ? Math.max(0, (t - onsetAt) / span) : 1;
      inc.progressAt = t;
      return;
    }
    const receivesCalls = node.accepting && node.probe !== 'inactive';
    if (receivesCalls) inc.callsWhenCut = null;
    else if (inc.callsWhenCut === null) inc.callsWhenCut = Math.max(1, node.active);
    const pace = inc.callsWhenCut === null ? 1 : Math.min(1, node.active / inc.callsWhenCut);
    inc.progress += (Math.max(0, t - inc.progressAt) / span) * pace;
    inc.progressAt = t;
  }

  /** A failure that keeps established calls: the node stays up, new calls fail until restart or failedUntil. */
  private fail(inc: Incident, t: number): void {
    inc.status = 'failed';
    inc.resolvedAt = t;
    inc.failedUntil = inc.label.crashAt + inc.recoveryMs;
    this.totals.failures++;
  }

  private crash(node: SimNode, inc: Incident, t: number): void {
    node.downCause = inc;
    inc.status = 'crashed';
    inc.resolvedAt = t;
    inc.endedAt = t;
    inc.droppedAtCrash = node.active;
    node.incident = null;
    node.dropped += node.active;
    this.totals.droppedByCrash += node.active;
    this.totals.crashes++;
    node.active = 0;
    node.status = 'crashed';
    // A load-driven incident may crash after its nominal crashAt; the watchdog restart counts from the crash.
    node.downUntil =
      (LOAD_DRIVEN[inc.label.mode] ? Math.max(inc.label.crashAt, t) : inc.label.crashAt) + inc.recoveryMs;
  }

  private computeEffects(node: SimNode, index: number, t: number, dbBlip: boolean, netBlip: boolean): void {
    const e = node.effects;
    resetEffects(e);
    const inc = node.incident;
    if (inc) {
      applyIncident(e, inc.label.mode, inc.magnitude, inc.progress);
      if (inc.status === 'failed') applyFailure(e, inc.label.mode);
    }
    if (node.hiccups.activeAt(t)) {
      const m = node.hiccups.magnitude;
      e.queueAdd += 250 * m;
      e.inviteAddMs += 200 * m;
      e.cpuAdd += 20 * m;
      e.rttAddMs += 15 * m;
    }
    if (dbBlip) {
      // The same DB serves every node: one blip, slightly different on each.
      if (this.dbBlipNode[index] === 0) this.dbBlipNode[index] = node.rng.range(0.7, 1.3);
      const m = this.dbBlips.magnitude * (this.dbBlipNode[index] ?? 1);
      e.dbMult *= m;
      e.probeFailPerS += m > 15 ? 0.15 : 0;
      e.inviteAddMs += 3 * m;
    } else {
      this.dbBlipNode[index] = 0;
    }
    if (netBlip) {
      const m = this.netBlips.magnitude;
      e.lossAdd += 1.2 * m;
      e.jitterAddMs += 9 * m;
      e.retransPerCall += 0.3 * m;
      e.retransPerS += 0.5 * m;
      e.rttAddMs += 4 * m;
    }
  }

  /** Poisson arrivals for the whole cluster, routed round-robin over eligible destinations (Kamailio alg 4). */
  private arrivals(t: number): void {
    const o = this.options;
    const load = dailyLoad(t, o.nightLoad, o.weekendLoad, o.utcOffsetHours);
    const n = this.arrivalsRng.poisson(o.callRatePerNode * o.nodes * load * this.tickS);
    if (n === 0) return;
    const eligible = this.eligible;
    eligible.length = 0;
    for (const node of this.list) if (node.accepting && node.probe !== 'inactive') eligible.push(node);
    this.totals.callsOffered += n;
    if (eligible.length === 0) {
      this.totals.callsFailed += n;
      this.totals.callsRejected += n;
      return;
    }
    for (let k = 0; k < n; k++) {
      const node = eligible[this.rr++ % eligible.length]!;
      if (this.rr > 1e9) this.rr = 0;
      this.offerCall(node);
    }
  }

  private offerCall(node: SimNode): void {
    if (node.status !== 'up') {
      // Kamailio still selects it until probing notices: the INVITE times out (408) after Timer A retransmissions.
      node.failed++;
      node.r408++;
      node.retrans += RETRANS_PER_TIMEOUT;
      this.totals.callsFailed++;
      if (node.downCause) node.downCause.callsFailed++;
      return;
    }
    const e = node.effects;
    const rng = node.rng;
    if (e.fail408Prob > 0 && rng.uniform() < e.fail408Prob) {
      node.failed++;
      node.r408++;
      node.retrans += RETRANS_PER_TIMEOUT;
      this.totals.callsFailed++;
      if (node.incident) node.incident.callsFailed++;
      return;
    }
    // The channel exists (Newchannel) before a realtime lookup can fail, so a 5xx call also counts as started.
    node.started++;
    if (e.fail5xxProb > 0 && rng.uniform() < e.fail5xxProb) {
      node.failed++;
      node.r5xx++;
      node.abnormal++;
      this.totals.callsFailed++;
      if (node.incident) node.incident.callsFailed++;
      return;
    }
    node.active++;
    this.totals.callsStarted++;
    if (node.inviteCount < INVITE_SAMPLES_PER_TICK) {
      const load = node.active / this.nominalActive;
      const setup = rng.logNormal(9 * (1 + 0.8 * load * load), 0.35) + e.inviteAddMs * rng.range(0.6, 1.4);
      node.inviteMs[node.inviteCount++] = setup;
    }
  }

  /** One dispatcher OPTIONS ping (probing mode 1: every non-disabled destination). */
  private ping(node: SimNode): void {
    if (!node.accepting) return;
    const o = this.options;
    let answered = false;
    const lost = node.effects.pingLossProb > 0 && node.rng.uniform() < node.effects.pingLossProb;
    if (node.status === 'up' && !lost) {
      const rtt = node.rng.logNormal(1.2, 0.3) + node.effects.rttAddMs * node.rng.range(0.6, 1.4);
      if (rtt < PING_TIMEOUT_MS) {
        answered = true;
        node.pingRtt = rtt;
        node.latencyAvgMs =
          node.latencyAvgMs === null ? rtt : LATENCY_ALPHA * node.latencyAvgMs + (1 - LATENCY_ALPHA) * rtt;
      }
    }
    if (answered) {
      node.probeFails = 0;
      if (node.probe === 'trying') node.probe = 'active';
      else if (node.probe === 'inactive' && ++node.probeOks >= o.inactiveThreshold) {
        node.probe = 'active';
        node.probeOks = 0;
      }
      return;
    }
    node.r408++;
    node.retrans += RETRANS_PER_TIMEOUT;
    node.probeOks = 0;
    if (node.probe === 'active') {
      node.probe = 'trying';
      node.probeFails = 1;
    } else if (node.probe === 'trying') {
      node.probeFails++;
    }
    if (node.probe === 'trying' && node.probeFails >= o.probingThreshold) node.probe = 'inactive';
  }
}
