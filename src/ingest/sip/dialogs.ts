/**
 * Counts confirmed SIP dialogs per destination from the mirrored SIP stream, so "no active calls" is something seen,
 * not something assumed (an unreachable AMI used to read as 0 calls).
 *
 * - A 2xx to an INVITE between the proxy and a node (either direction) opens a dialog keyed by node, Call-ID and the
 *   two tags (in sorted order: requests from the node carry them swapped). A retransmitted 2xx, or the 2xx of a
 *   re-INVITE, finds the dialog open and only refreshes it.
 * - A BYE from either side starts its end; the final response to that BYE closes it. Until then the call still
 *   counts: a BYE lost on the path to the node (mirrored as it left the proxy) leaves the node's call up, and a
 *   restart in that gap would cut a call the count had already let go. A BYE left unanswered for `byeTimeoutMs`
 *   (the transaction's lifetime) closes it anyway, counted as `byeUnanswered`. A 481 or 408 to a request inside the
 *   dialog closes it at once (RFC 3261 12.2.1.2). CANCEL does not: once a 2xx is sent the call is up and ends with a
 *   BYE (RFC 3261 9.1); a cancelled INVITE never had a 2xx.
 * - Closed keys are remembered for `closedTtlMs`, so a 2xx retransmitted (or mirrored late) after the BYE does not
 *   reopen the dialog.
 * - Any other message of an open dialog refreshes it. A dialog silent for its session interval (Session-Expires of
 *   its last 2xx plus a grace, else `sessionTimerMs`) expires and is counted as expired: a call without session
 *   timers and without in-dialog traffic for that long drops out, so long calls make the count a lower bound.
 *
 * Completeness: dialogs set up before the node's traffic was first seen are invisible. A node's count is trusted
 * only after `warmupMs` of uninterrupted observation (no gap in its mirrored traffic longer than `staleAfterMs`;
 * Kamailio's keepalive pings keep an idle node's stream alive). A gap, or an evicted dialog of the node, restarts the
 * warm-up. Before that the count is only a lower bound: above 0 it proves calls are up, 0 proves nothing.
 *
 * Packets must arrive in capture-time order: feed it from SipTracker's onPacket hook (its reorder buffer).
 */
import type { TelemetrySample } from '../../messages.js';
import type { PacketRoute, SipPacket } from './tracker.js';

export interface DialogCounterOptions {
  /** Node ids to report, the same ids as the tracker's `nodes`. */
  nodes: readonly string[];
  /** Silence after which a dialog without Session-Expires expires. Default 1 800 000 ms (30 min). */
  sessionTimerMs?: number;
  /** Added to a Session-Expires interval: the refresher may send its refresh late (RFC 4028 10). Default 32 000 ms. */
  sessionGraceMs?: number;
  /** Uninterrupted observation needed before a node's count is complete. Default: `sessionTimerMs`. */
  warmupMs?: number;
  /** A node without any mirrored packet for this long is no longer observed. Default 60 000 ms. */
  staleAfterMs?: number;
  /** Cap on open dialogs; beyond it the least recently active one is evicted. Default 100 000. */
  maxDialogs?: number;
  /** How long a BYE may go unanswered before its dialog closes anyway. Default 32 000 ms (64*T1, RFC 3261 17.1.2.2). */
  byeTimeoutMs?: number;
  /** How long a closed dialog's key is remembered. Default 64 000 ms (past 64*T1 of 2xx retransmissions). */
  closedTtlMs?: number;
  /** Cap on remembered closed keys. Default 100 000. */
  maxClosed?: number;
}

/** How far a node's count can be trusted. */
export type DialogCountState =
  /** No packet of the node seen yet: nothing is known. */
  | 'unseen'
  /** Observed for less than the warm-up: the count is a lower bound. */
  | 'warming_up'
  /** Its traffic stopped for longer than `staleAfterMs`: nothing current is known. */
  | 'stale'
  /** Observed without a gap for at least the warm-up: the count is complete (up to expired silent dialogs). */
  | 'trusted';

export interface NodeDialogView {
  nodeId: string;
  /** Open dialogs known for the node (a lower bound unless `state` is `trusted`). */
  active: number;
  state: DialogCountState;
  /** Capture time since which the node's traffic has been seen without a gap, or null. */
  observedSince: number | null;
  /** Capture time of the node's latest packet, or null. */
  lastPacketAt: number | null;
  /** When the count becomes trusted if traffic keeps flowing, or null when unseen. */
  trustedFrom: number | null;
  /** Dialogs of this node dropped by the session-timer rule since start. */
  expired: number;
}

export interface DialogCounterStats {
  /** Dialogs opened by a 2xx to an INVITE. */
  opened: number;
  /** Dialogs closed by the final response to their BYE. */
  closed: number;
  /** Dialogs whose BYE went unanswered for `byeTimeoutMs`, closed then. */
  byeUnanswered: number;
  /** Dialogs closed by a 481/408 to an in-dialog request. */
  closedByError: number;
  /** Dialogs dropped after a silent session interval. */
  expired: number;
  /** Dialogs dropped because of `maxDialogs` (the node's warm-up restarts). */
  evicted: number;
  /** 2xx to an INVITE for a dialog already open: retransmissions and re-INVITEs, not counted twice. */
  repeated2xx: number;
  /** 2xx to an INVITE for a dialog closed moments ago (retransmitted or mirrored late): not reopened. */
  reopenRefused: number;
  /** 2xx to an INVITE without a To tag: malformed, ignored. */
  untagged2xx: number;
  /** Remembered closed keys dropped because of `maxClosed`. */
  closedEvicted: number;
  /** Open dialogs now, all nodes. */
  active: number;
}

interface Dialog {
  nodeId: string;
  lastSeen: number;
  /** Silence allowed before expiry. */
  timeoutMs: number;
  /** Capture time of the first BYE, while its final response is awaited; null while the call is up. */
  byeAt: number | null;
}

interface NodeObservation {
  observedSince: number | null;
  lastPacketAt: number | null;
  active: number;
  expired: number;
}

export class DialogCounter {
  private readonly sessionTimerMs: number;
  private readonly sessionGraceMs: number;
  private readonly warmupMs: number;
  private readonly staleAfterMs: number;
  private readonly maxDialogs: number;
  private readonly byeTimeoutMs: number;
  private readonly closedTtlMs: number;
  private readonly maxClosed: number;
  /** Open dialogs in least-recently-active order (a refresh moves one to the end), so eviction takes the first. */
  private readonly dialogs = new Map<string, Dialog>();
  /** Closed key -> capture time of the close; insertion order is close order. */
  private readonly closedKeys = new Map<string, number>();
  /** Key -> capture time of a BYE seen before its dialog's 2xx (mirrored out of order); bounded like closedKeys. */
  private readonly earlyByes = new Map<string, number>();
  private readonly nodes = new Map<string, NodeObservation>();
  private readonly stat = {
    opened: 0,
    closed: 0,
    byeUnanswered: 0,
    closedByError: 0,
    expired: 0,
    evicted: 0,
    repeated2xx: 0,
    reopenRefused: 0,
    untagged2xx: 0,
    closedEvicted: 0,
  };

  constructor(options: DialogCounterOptions) {
    this.sessionTimerMs = options.sessionTimerMs ?? 1_800_000;
    this.sessionGraceMs = options.sessionGraceMs ?? 32_000;
    this.warmupMs = options.warmupMs ?? this.sessionTimerMs;
    this.staleAfterMs = options.staleAfterMs ?? 60_000;
    this.maxDialogs = options.maxDialogs ?? 100_000;
    this.byeTimeoutMs = options.byeTimeoutMs ?? 32_000;
    this.closedTtlMs = options.closedTtlMs ?? 64_000;
    this.maxClosed = options.maxClosed ?? 100_000;
    for (const id of options.nodes) {
      this.nodes.set(id, { observedSince: null, lastPacketAt: null, active: 0, expired: 0 });
    }
  }

  /** Takes one packet to or from a configured node, in capture-time order. */
  observe(pkt: SipPacket, route: PacketRoute): void {
    const { toNode, fromNode } = route;
    if (toNode !== undefined) this.observeFor(toNode, pkt);
    if (fromNode !== undefined && fromNode !== toNode) this.observeFor(fromNode, pkt);
  }

  /** Drops dialogs silent for their session interval and forgets old closed keys. `now` is in capture time. */
  expire(now: number): void {
    for (const [key, d] of this.dialogs) {
      if (d.byeAt !== null && d.byeAt + this.byeTimeoutMs < now) {
        this.stat.byeUnanswered++;
        const obs = this.nodes.get(d.nodeId);
        if (obs) this.close(key, obs, now);
        continue;
      }
      if (d.lastSeen + d.timeoutMs >= now) continue;
      this.dialogs.delete(key);
      this.stat.expired++;
      const obs = this.nodes.get(d.nodeId);
      if (obs) {
        obs.active--;
        obs.expired++;
      }
    }
    for (const [key, closedAt] of this.closedKeys) {
      if (closedAt + this.closedTtlMs >= now) break;
      this.closedKeys.delete(key);
    }
    for (const [key, byeAt] of this.earlyByes) {
      if (byeAt + this.closedTtlMs >= now) break;
      this.earlyByes.delete(key);
    }
  }

  /** Per-node view at `now` (capture time). */
  view(now: number): NodeDialogView[] {
    const out: NodeDialogView[] = [];
    for (const [nodeId, obs] of this.nodes) {
      out.push({
        nodeId,
        active: obs.active,
        state: this.stateOf(obs, now),
        observedSince: obs.observedSince,
        lastPacketAt: obs.lastPacketAt,
        trustedFrom: obs.observedSince === null ? null : obs.observedSince + this.warmupMs,
        expired: obs.expired,
      });
    }
    return out;
  }

  /**
   * Samples at `now`: `sip.dialogs_active` for each trusted node, `sip.dialogs_seen` (the lower bound) for each node
   * observed now (trusted or warming up). Nothing for an unseen or stale node: unknown is not 0.
   */
  samples(now: number): TelemetrySample[] {
    const out: TelemetrySample[] = [];
    for (const v of this.view(now)) {
      if (v.state === 'unseen' || v.state === 'stale') continue;
      out.push({ nodeId: v.nodeId, ts: now, metric: 'sip.dialogs_seen', value: v.active, source: 'sip' });
      if (v.state === 'trusted') {
        out.push({ nodeId: v.nodeId, ts: now, metric: 'sip.dialogs_active', value: v.active, source: 'sip' });
      }
    }
    return out;
  }

  stats(): DialogCounterStats {
    return { ...this.stat, active: this.dialogs.size };
  }

  private stateOf(obs: NodeObservation, now: number): DialogCountState {
    if (obs.observedSince === null || obs.lastPacketAt === null) return 'unseen';
    if (now - obs.lastPacketAt > this.staleAfterMs) return 'stale';
    return now - obs.observedSince >= this.warmupMs ? 'trusted' : 'warming_up';
  }

  private observeFor(nodeId: string, pkt: SipPacket): void {
    const obs = this.nodes.get(nodeId);
    if (!obs) return;
    // A gap in the node's stream may hide dialogs set up meanwhile: completeness starts over.
    if (obs.lastPacketAt === null || pkt.ts - obs.lastPacketAt > this.staleAfterMs) obs.observedSince = pkt.ts;
    if (obs.lastPacketAt === null || pkt.ts > obs.lastPacketAt) obs.lastPacketAt = pkt.ts;

    const s = pkt.sip;
    const fromTag = s.fromTag ?? '';
    const toTag = s.toTag ?? '';
    const isInviteOk = s.status !== null && s.status >= 200 && s.status < 300 && s.cseqMethod === 'INVITE';
    if (toTag === '') {
      // Outside a dialog (an initial request or its tagless 100). A 2xx always carries a To tag.
      if (isInviteOk) this.stat.untagged2xx++;
      return;
    }
    const key =
      fromTag < toTag ? `${nodeId}|${s.callId}|${fromTag}|${toTag}` : `${nodeId}|${s.callId}|${toTag}|${fromTag}`;
    const open = this.dialogs.get(key);

    if (isInviteOk) {
      const timeoutMs =
        s.sessionExpiresS != null && s.sessionExpiresS > 0
          ? s.sessionExpiresS * 1000 + this.sessionGraceMs
          : this.sessionTimerMs;
      if (open) {
        this.stat.repeated2xx++;
        open.timeoutMs = timeoutMs;
        this.refresh(key, open, pkt.ts);
      } else if (this.closedKeys.has(key)) {
        this.stat.reopenRefused++;
      } else {
        this.stat.opened++;
        obs.active++;
        // A BYE already seen makes it a call that is ending, still counted until that BYE is answered.
        const byeAt = this.earlyByes.get(key) ?? null;
        this.earlyByes.delete(key);
        this.dialogs.set(key, { nodeId, lastSeen: pkt.ts, timeoutMs, byeAt });
        if (this.dialogs.size > this.maxDialogs) this.evictOldest();
      }
      return;
    }
    if (s.method === 'BYE') {
      if (open) {
        // Retransmissions keep the first BYE's time: the transaction's lifetime runs from it.
        if (open.byeAt === null) open.byeAt = pkt.ts;
        this.refresh(key, open, pkt.ts);
      } else if (!this.closedKeys.has(key) && !this.earlyByes.has(key)) {
        // Mirrored before its dialog's (late) 2xx: that 2xx opens the dialog as already ending.
        putBounded(this.earlyByes, key, pkt.ts, this.maxClosed);
      }
      return;
    }
    if (!open) {
      // The answer to a BYE of a dialog not open here (its 2xx or its BYE not seen yet): that call is over, and a
      // late 2xx must not open it.
      if (s.cseqMethod === 'BYE' && s.status !== null && s.status >= 200) {
        this.earlyByes.delete(key);
        this.remember(key, pkt.ts);
      }
      return;
    }
    // A final response to a BYE closes the dialog even when the BYE itself is not seen yet (mirrored out of order):
    // the answer proves it was sent and received.
    if (s.cseqMethod === 'BYE' && s.status !== null && s.status >= 200) {
      this.stat.closed++;
      this.close(key, obs, pkt.ts);
      return;
    }
    if ((s.status === 481 || s.status === 408) && s.cseqMethod !== 'CANCEL') {
      this.stat.closedByError++;
      this.close(key, obs, pkt.ts);
      return;
    }
    this.refresh(key, open, pkt.ts);
  }

  private refresh(key: string, d: Dialog, ts: number): void {
    if (ts > d.lastSeen) d.lastSeen = ts;
    this.dialogs.delete(key);
    this.dialogs.set(key, d);
  }

  private close(key: string, obs: NodeObservation, ts: number): void {
    this.dialogs.delete(key);
    obs.active--;
    this.remember(key, ts);
  }

  private remember(key: string, ts: number): void {
    if (putBounded(this.closedKeys, key, ts, this.maxClosed)) this.stat.closedEvicted++;
  }

  private evictOldest(): void {
    const first = this.dialogs.entries().next();
    if (first.done) return;
    const [key, d] = first.value;
    this.dialogs.delete(key);
    this.stat.evicted++;
    const obs = this.nodes.get(d.nodeId);
    if (!obs) return;
    obs.active--;
    // The node's count just lost a dialog it cannot see again: no longer complete until a new warm-up passes.
    if (obs.lastPacketAt !== null) obs.observedSince = obs.lastPacketAt;
  }
}

/** Sets `key` as the newest entry of an insertion-ordered map capped at `cap`; true when the oldest was dropped. */
function putBounded(map: Map<string, number>, key: string, ts: number, cap: number): boolean {
  map.delete(key);
  map.set(key, ts);
  if (map.size <= cap) return false;
  const first = map.keys().next();
  if (first.done) return false;
  map.delete(first.value);
  return true;
}
