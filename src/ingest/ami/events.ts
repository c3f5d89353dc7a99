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
 * Hangup cause mapping (documented in docs/ami.md):
 * - 16/17/19/21 → calls.completed
 * - anything else → hangup.abnormal, and in addition for 27/34/38/41/42: calls.dropped when the channel was Up,
 *   calls.failed when it was still being set up.
 */
export function samplesFromEvent(frame: AmiFrame, ts: number, options: EventMappingOptions): TelemetrySample[] {
  const f = frame.fields;
  const name = f.event;
  // No closures here: this runs once per event on the hot path.
  switch (name === undefined ? '' : name.toLowerCase()) {
    case 'newchannel':
      return isCall(f, options) ? [mk(options, ts, 'calls.started', 1)] : [];
    case 'hangup': {
      if (!isCall(f, options)) return [];
      const cause = toInt(f.cause);
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
