import type { FailureMode, IncidentLabel } from '../messages.js';

/**
 * Where an incident stands. `discarded` incidents (onset while the node was down or already failing) are never
 * labelled. `failed` is the end of a mode that keeps established calls (see KEEPS_CALLS): from crashAt the node
 * fails every new call setup while its established calls go on, until it is restarted or recovers by itself.
 */
export type IncidentStatus = 'scheduled' | 'active' | 'crashed' | 'failed' | 'prevented' | 'discarded';

/**
 * Modes whose failure does not tear down established calls. A slow or unreachable realtime DB breaks new call setups
 * (lookups fail: 5xx), but an established call never touches the DB again. Packet loss makes INVITE transactions time
 * out (408), but Asterisk does not hang up a call for lost packets (RTP has no transaction; only an RTP timeout would,
 * and that is not configured by default). Memory leaks (OOM kill) and taskprocessor deadlocks (watchdog restart) end
 * with the process gone, and its calls with it.
 */
export const KEEPS_CALLS: Readonly<Record<FailureMode, boolean>> = {
  memory_leak: false,
  taskprocessor_backlog: false,
  db_degradation: true,
  retransmission_storm: true,
  sudden_crash: false,
};

export interface Incident {
  readonly label: IncidentLabel;
  /** Precursor strength, 1 = typical. */
  readonly magnitude: number;
  /** Down time after the crash. ms */
  readonly recoveryMs: number;
  status: IncidentStatus;
  /** Calls established on the node when it crashed. */
  droppedAtCrash: number;
  /** Calls established on the node when a restart (Foresight's or an operator's) ended the incident. */
  droppedAtRestart: number;
  /** Call setups that failed on the node because of this incident (precursor, failure, or the node being down). */
  callsFailed: number;
  /** When it crashed, failed or was prevented, epoch ms. */
  resolvedAt: number | null;
  /** For `failed` incidents: when the node stops failing new calls by itself, epoch ms. */
  failedUntil: number;
  /** When the node stopped suffering from the incident (crash, prevention, restart or recovery of a failed node). */
  endedAt: number | null;
  /** How far the precursor has gone, 0 at onset, 1 at the failure. */
  progress: number;
  /** Virtual time `progress` was last advanced to. epoch ms */
  progressAt: number;
  /** Calls on the node when it stopped receiving new ones, while it receives none (see LOAD_DRIVEN). */
  callsWhenCut: number | null;
}

/**
 * Modes whose precursor is the node falling behind its own call traffic, so it advances only as fast as that traffic
 * comes: undisturbed it reaches the failure at crashAt, but once the node gets no new calls (drained, or taken out by
 * probing) it slows in proportion to the calls still up. This is why operators drain an Asterisk whose taskprocessor
 * queues grow (Asterisk itself sheds new requests at the queue high-water mark for the same reason). A leak, a slow DB,
 * a lossy path and a crash go on whatever the node's load.
 */
export const LOAD_DRIVEN: Readonly<Record<FailureMode, boolean>> = {
  memory_leak: false,
  taskprocessor_backlog: true,
  db_degradation: false,
  retransmission_storm: false,
  sudden_crash: false,
};

/** What an incident, a hiccup or a cluster blip does to one node during one tick. Reset every tick, then summed. */
export interface Effects {
  /** Fraction of the way from the healthy footprint to the memory limit, in [0, 1]. */
  leakFraction: number;
  /** Extra taskprocessor queue depth. tasks */
  queueAdd: number;
  /** Extra INVITE setup latency. ms */
  inviteAddMs: number;
  /** Extra retransmissions per new call. */
  retransPerCall: number;
  /** Extra retransmissions per second, from in-dialog and keepalive traffic. */
  retransPerS: number;
  /** Extra OPTIONS round-trip. ms */
  rttAddMs: number;
  /** Extra CPU. percent */
  cpuAdd: number;
  /** Multiplier on realtime DB latency. */
  dbMult: number;
  /** DB probe failures per second. */
  probeFailPerS: number;
  /** Probability that a new call fails with a 5xx (e.g. realtime lookup failed). */
  fail5xxProb: number;
  /** Probability that a new call times out (408). */
  fail408Prob: number;
  /** Extra RTCP loss. percent */
  lossAdd: number;
  /** Extra RTCP jitter. ms */
  jitterAddMs: number;
  /** Probability that an OPTIONS ping is lost (no answer within fr_timer). */
  pingLossProb: number;
}

export function newEffects(): Effects {
  return {
    leakFraction: 0,
    queueAdd: 0,
    inviteAddMs: 0,
    retransPerCall: 0,
    retransPerS: 0,
    rttAddMs: 0,
    cpuAdd: 0,
    dbMult: 1,
    probeFailPerS: 0,
    fail5xxProb: 0,
    fail408Prob: 0,
    lossAdd: 0,
    jitterAddMs: 0,
    pingLossProb: 0,
  };
}

export function resetEffects(e: Effects): void {
  e.leakFraction = 0;
  e.queueAdd = 0;
  e.inviteAddMs = 0;
  e.retransPerCall = 0;
  e.retransPerS = 0;
  e.rttAddMs = 0;
  e.cpuAdd = 0;
  e.dbMult = 1;
  e.probeFailPerS = 0;
  e.fail5xxProb = 0;
  e.fail408Prob = 0;
  e.lossAdd = 0;
  e.jitterAddMs = 0;
  e.pingLossProb = 0;
}

/**
 * Adds the precursor of an active incident at `progress` f in [0, 1] (0 at onset, 1 at the failure). Each mode moves
 * its own metrics first and most, and the signal grows with f, so early warning is possible but not free.
 */
export function applyIncident(e: Effects, mode: FailureMode, magnitude: number, progress: number): void {
  const f = Math.min(1, Math.max(0, progress));
  const m = magnitude;
  switch (mode) {
    case 'memory_leak': {
      // RSS reaches the limit exactly at crashAt (OOM kill). A strong leak climbs steadily from the onset; a weak one
      // starts slowly and accelerates (f^p, p up to 3), so its early slope hides in the noise for longer.
      const p = Math.min(3, Math.max(1, 1.6 / m));
      e.leakFraction = f ** p;
      e.cpuAdd += 3 * f;
      break;
    }
    case 'taskprocessor_backlog': {
      // Queue growth accelerates as the node falls behind; setup latency and Timer A retransmissions follow.
      const g = f * f;
      e.queueAdd += m * 1500 * g + m * 20 * f;
      e.inviteAddMs += m * 1800 * g;
      e.retransPerCall += m * 4 * g;
      e.retransPerS += m * 2 * g;
      e.rttAddMs += m * 900 * g;
      e.cpuAdd += m * 45 * g;
      e.fail408Prob += 0.25 * g * g;
      break;
    }
    case 'db_degradation': {
      // Realtime DB latency grows exponentially; probes start to fail, then lookups fail and calls get 5xx.
      e.dbMult *= Math.exp(Math.log(1 + m * 150) * f);
      const late = Math.max(0, (f - 0.5) / 0.5);
      e.probeFailPerS += m * 0.6 * late * late;
      const end = Math.max(0, (f - 0.7) / 0.3);
      e.fail5xxProb += 0.45 * end * end;
      e.inviteAddMs += m * 250 * f * f;
      e.cpuAdd += m * 4 * f;
      break;
    }
    case 'retransmission_storm': {
      // Packet loss on the node's path: RTCP loss and jitter, retransmissions of everything, slow pings.
      e.lossAdd += m * 10 * f;
      e.jitterAddMs += m * 35 * f;
      e.retransPerCall += m * 6 * f;
      e.retransPerS += m * 12 * f;
      e.rttAddMs += m * 250 * f * f;
      e.inviteAddMs += m * 400 * f * f;
      e.fail408Prob += 0.2 * f * f * f;
      break;
    }
    case 'sudden_crash':
      break;
  }
}

/**
 * What a failed node of a KEEPS_CALLS mode does after crashAt: every new call fails (DB lookups fail with 5xx; INVITEs
 * time out with 408 under heavy loss, and most OPTIONS pings are lost so Kamailio's probing may take the node out).
 * Added on top of the precursor at full strength.
 */
export function applyFailure(e: Effects, mode: FailureMode): void {
  if (mode === 'db_degradation') e.fail5xxProb = 1;
  else if (mode === 'retransmission_storm') {
    e.fail408Prob = 1;
    e.pingLossProb = 0.7;
  }
}
