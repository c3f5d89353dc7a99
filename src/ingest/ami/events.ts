import type { MetricName, TelemetrySample } from '../../messages.js';
import type { AmiFrame } from './frame.js';

/** Q.850 causes of a normal end of call: normal clearing, busy, no answer, rejected. */
export const NORMAL_CAUSES: ReadonlySet<number> = new Set([16, 17, 19, 21]);
/**
 * Causes that mean the node (or its network) failed rather than the caller or callee: destination out of order,
 * no circuit, network out of order, temporary failure, switching equipment congestion.
 */
export const NODE_FAILURE_CAUSES: ReadonlySet<number> = new Set([27, 34, 38, 41, 42]);
/** ChannelState 6 = Up (answered). */
const STATE_UP = '6';

export interface EventMappingOptions {
  nodeId: string;
  /** Only channels whose name starts with this count as calls (e.g. `PJSIP/kamailio-`); default: every channel. */
  callChannelPrefix?: string;
  /** RTP clock rate used to turn RTCP interarrival jitter (timestamp units) into ms. Default 8000 (G.711). */
  rtpClockRateHz?: number;
}

/**
 * Maps one AMI event to telemetry samples (possibly none).
 *
 * Hangup cause mapping (documented in docs/ami.md), on the cause `causes` resolves (else the Hangup's own):
 * - 16/17/19/21 → calls.completed
 * - anything else → hangup.abnormal, and in addition for 27/34/38/41/42: calls.dropped when the channel was Up,
 *   calls.failed when it was still being set up.
 */
export function samplesFromEvent(
  frame: AmiFrame,
  ts: number,
  options: EventMappingOptions,
  causes?: HangupCauses,
): TelemetrySample[] {
  const f = frame.fields;
  const name = f.event;
  // No closures here: this runs once per event on the hot path.
  switch (name === undefined ? '' : name.toLowerCase()) {
    case 'newchannel':
      return isCall(f, options) ? [mk(options, ts, 'calls.started', 1)] : [];
    case 'hanguprequest':
    case 'softhanguprequest':
      causes?.request(f);
      return [];
    case 'hangup': {
      const cause = causes ? causes.take(f) : toInt(f.cause);
      if (!isCall(f, options)) return [];
      if (cause !== null && NORMAL_CAUSES.has(cause)) return [mk(options, ts, 'calls.completed', 1)];
      const out = [mk(options, ts, 'hangup.abnormal', 1)];
      if (cause !== null && NODE_FAILURE_CAUSES.has(cause)) {
        out.push(mk(options, ts, f.channelstate === STATE_UP ? 'calls.dropped' : 'calls.failed', 1));
      }
      return out;
    }
    case 'fullybooted':
      return [mk(options, ts, 'node.up', 1)];
    case 'shutdown':
      return [mk(options, ts, 'node.up', 0)];
    case 'contactstatus': {
      // RoundtripUsec is 0 unless the contact is reachable; a 0 is not a measurement.
      const usec = toNumber(f.roundtripusec);
      return usec !== null && usec > 0 ? [mk(options, ts, 'sip.options_rtt_ms', usec / 1000)] : [];
    }
    case 'rtcpreceived':
      return rtcpSamples(f, ts, options);
    default:
      return [];
  }
}

/** Channels whose hangup requests are remembered at most; the oldest is forgotten first. */
const MAX_PENDING_HANGUPS = 10_000;

/**
 * Where a channel's hangup cause really is. Asterisk 22 reports a caller's BYE as HangupRequest, SoftHangupRequest
 * `Cause: 16`, then Hangup `Cause: 0` (Unknown): the cause travels on the request only (captured: test/fixtures/ami/asterisk22-caller-bye.ami). A hang-up by the
 * dialplan carries 16 on the Hangup itself (asterisk22-callee-hangup.ami). So the last non-zero cause of a request for
 * the channel stands in for a Hangup's missing or 0 cause. One instance per AMI session (Uniqueids are per node).
 */
export class HangupCauses {
  private readonly requested = new Map<string, number>();

  /** Notes the cause of a HangupRequest / SoftHangupRequest, if it has one. */
  request(f: Record<string, string>): void {
    const cause = toInt(f.cause);
    const key = channelKey(f);
    if (cause === null || cause === 0 || key === '') return;
    this.requested.delete(key);
    this.requested.set(key, cause);
    if (this.requested.size > MAX_PENDING_HANGUPS) {
      const oldest = this.requested.keys().next().value;
      if (oldest !== undefined) this.requested.delete(oldest);
    }
  }

  /** The cause to classify a Hangup by; forgets the channel. Null when neither the Hangup nor a request had one. */
  take(f: Record<string, string>): number | null {
    const key = channelKey(f);
    const requested = this.requested.get(key);
    this.requested.delete(key);
    const own = toInt(f.cause);
    if (own !== null && own !== 0) return own;
    return requested ?? own;
  }

  get size(): number {
    return this.requested.size;
  }
}

function channelKey(f: Record<string, string>): string {
  return f.uniqueid ?? f.channel ?? '';
}

function mk(options: EventMappingOptions, ts: number, metric: MetricName, value: number): TelemetrySample {
  return { nodeId: options.nodeId, ts, metric, value, source: 'ami' };
}

function isCall(f: Record<string, string>, options: EventMappingOptions): boolean {
  return !options.callChannelPrefix || (f.channel ?? '').startsWith(options.callChannelPrefix);
}

function rtcpSamples(f: Record<string, string>, ts: number, options: EventMappingOptions): TelemetrySample[] {
  const out: TelemetrySample[] = [];
  const clockRateHz = options.rtpClockRateHz ?? 8000;
  const count = Math.min(toInt(f.reportcount) ?? 0, 31); // RTCP report count is a 5-bit field
  for (let i = 0; i < count; i++) {
    const jitter = toNumber(f[`report${i}iajitter`]);
    if (jitter !== null && jitter >= 0) out.push(mk(options, ts, 'rtcp.jitter_ms', (jitter * 1000) / clockRateHz));
    const fraction = toNumber(f[`report${i}fractionlost`]);
    if (fraction !== null && fraction >= 0 && fraction <= 255) {
      out.push(mk(options, ts, 'rtcp.loss_pct', (fraction / 256) * 100));
    }
  }
  return out;
}

function toNumber(value: string | undefined): number | null {
  if (value === undefined || value.trim() === '') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function toInt(value: string | undefined): number | null {
  const n = toNumber(value);
  return n !== null && Number.isInteger(n) ? n : null;
}
