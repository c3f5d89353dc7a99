/**
 * Per-window evidence for the decision core: what the window itself reported about a node's calls, liveness and
 * Foresight's probes of it. Unlike features, nothing is carried forward or defaulted: a window in which nobody
 * counted the calls says `calls: null`, and the core treats that as unknown, never as zero.
 */
import type { CallsSource, MetricName, TelemetrySample, WindowEvidence } from '../messages.js';

/** Metrics that feed the evidence, and what each one tells. */
const EVIDENCE_ROLE: ReadonlyMap<
  MetricName,
  'amiCalls' | 'sipCalls' | 'sipSeen' | 'up' | 'sent' | 'lost' | '5xx' | 'rtt'
> = new Map([
  ['channels.active', 'amiCalls'],
  ['sip.dialogs_active', 'sipCalls'],
  ['sip.dialogs_seen', 'sipSeen'],
  ['node.up', 'up'],
  ['probe.options_sent', 'sent'],
  ['probe.options_lost', 'lost'],
  ['probe.options_5xx', '5xx'],
  ['probe.options_rtt_ms', 'rtt'],
]);

/** A gauge's latest reading in the window (latest event time wins; ties go to the later arrival). */
class Latest {
  value = 0;
  ts = Number.NEGATIVE_INFINITY;
  seen = false;
  put(value: number, ts: number): void {
    if (!this.seen || ts >= this.ts) {
      this.value = value;
      this.ts = ts;
      this.seen = true;
    }
  }
  reset(): void {
    this.seen = false;
    this.ts = Number.NEGATIVE_INFINITY;
  }
}

export class EvidenceWindow {
  private readonly amiCalls = new Latest();
  private readonly sipCalls = new Latest();
  /** SIP dialogs seen during the counter's warm-up: a lower bound, so only a count above 0 is evidence. */
  private readonly sipSeen = new Latest();
  private readonly up = new Latest();
  private sent = 0;
  private lost = 0;
  private replies5xx = 0;
  private readonly rtts: number[] = [];

  reset(): void {
    this.amiCalls.reset();
    this.sipCalls.reset();
    this.sipSeen.reset();
    this.up.reset();
    this.sent = 0;
    this.lost = 0;
    this.replies5xx = 0;
    this.rtts.length = 0;
  }

  /** Takes one accepted sample; returns false when the metric is no evidence. */
  add(s: Pick<TelemetrySample, 'metric' | 'value' | 'ts' | 'source'>): boolean {
    const role = EVIDENCE_ROLE.get(s.metric);
    switch (role) {
      case undefined:
        return false;
      case 'amiCalls':
        // Only the node's own count (AMI, or the simulator standing in for it) is the AMI source.
        if (s.source === 'ami' || s.source === 'sim') this.amiCalls.put(s.value, s.ts);
        return true;
      case 'sipCalls':
        this.sipCalls.put(s.value, s.ts);
        return true;
      case 'sipSeen':
        this.sipSeen.put(s.value, s.ts);
        return true;
      case 'up':
        this.up.put(s.value, s.ts);
        return true;
      case 'sent':
        this.sent += s.value;
        return true;
      case 'lost':
        this.lost += s.value;
        return true;
      case '5xx':
        this.replies5xx += s.value;
        return true;
      case 'rtt':
        this.rtts.push(s.value);
        return true;
    }
  }

  close(): WindowEvidence {
    let calls: { count: number; source: CallsSource } | null = null;
    if (this.amiCalls.seen) calls = { count: Math.max(0, this.amiCalls.value), source: 'ami' };
    else if (this.sipCalls.seen) calls = { count: Math.max(0, this.sipCalls.value), source: 'sip' };
    // Calls seen before the count can be trusted prove that calls are up (never that none are).
    else if (this.sipSeen.seen && this.sipSeen.value > 0) calls = { count: this.sipSeen.value, source: 'sip' };
    let rttMsP50: number | null = null;
    if (this.rtts.length > 0) {
      const sorted = this.rtts.slice().sort((a, b) => a - b);
      rttMsP50 = sorted[(sorted.length - 1) >> 1]!;
    }
    return {
      calls,
      upReported: this.up.seen ? this.up.value >= 0.5 : null,
      probe:
        this.sent > 0 || this.lost > 0
          ? { sent: this.sent, lost: this.lost, replies5xx: this.replies5xx, rttMsP50 }
          : null,
    };
  }
}

/** The evidence of a window in which nothing was reported. */
export const NO_EVIDENCE: WindowEvidence = Object.freeze({ calls: null, upReported: null, probe: null });
