/**
 * Turns mirrored SIP packets into per-destination health counters (domain README E, F).
 *
 * - Retransmission: a request toward a node seen again with the same (src, dst, first line, Call-ID, CSeq, top Via
 *   branch). The first line belongs to the key, or 100/180/200 of one transaction would look like copies.
 * - 408/5xx: first copy of each such reply from a node; a request toward a node left without any reply for
 *   `transactionTimeoutMs` (Timer B/F = 64*T1) also counts as a 408.
 * - INVITE setup / OPTIONS round trip: first transmission of the request toward a node to its first reply from it.
 *
 * Several Kamailio processes mirror packets, so arrival order differs from wire order: packets wait
 * `reorderWindowMs` in a buffer and are processed sorted by capture time. Memory is bounded by expiring keys after
 * `transactionTimeoutMs` and by hard caps on the buffer and the key tables.
 */
import { ForesightError } from '../../errors.js';
import type { MetricName, TelemetrySample } from '../../messages.js';
import type { SipSummary } from './sip-message.js';

/** One mirrored SIP message. */
export interface SipPacket {
  /** Capture time, epoch ms. */
  ts: number;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  sip: SipSummary;
}

export interface SipTrackerOptions {
  /** Node id -> dispatcher destination URI, e.g. `{ ast1: 'sip:127.0.0.1:5071' }`. */
  nodes: Record<string, string>;
  /** RFC 3261 T1 = 500 ms; keys expire after 64*T1. */
  transactionTimeoutMs?: number;
  /** How long a packet waits for earlier packets that arrive late. */
  reorderWindowMs?: number;
  /** Cap on remembered keys (copies and transactions each); the oldest are evicted beyond it. */
  maxTracked?: number;
  /** Cap on buffered packets; beyond it packets are processed at once, unsorted. */
  maxPending?: number;
  /**
   * Sees every packet to or from a configured destination, in the order the tracker processes them (capture-time
   * order within the reorder window), so other per-destination state (dialogs.ts) shares the reorder buffer.
   */
  onPacket?: (pkt: SipPacket, route: PacketRoute) => void;
}

/** Which configured destination a packet goes to or comes from (at least one is set). */
export interface PacketRoute {
  toNode: string | undefined;
  fromNode: string | undefined;
}

export interface SipTrackerStats {
  processed: number;
  /** Packets neither from nor to a configured destination. */
  unrelated: number;
  /** Packets that arrived after later packets had already been processed (beyond the reorder window). */
  late: number;
  evicted: number;
  pending: number;
  tracked: number;
}

interface NodeCounts {
  retransmissions: number;
  replies5xx: number;
  replies408: number;
}

interface Transaction {
  nodeId: string;
  method: string;
  reqTs: number;
  replied: boolean;
}

interface Pending {
  pkt: SipPacket;
  arrivedAt: number;
}

/** `host:port` as the tracker keys destinations; IPv6 hosts in brackets. */
export function endpointKey(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * Extracts `host:port` from a dispatcher URI (`sip:127.0.0.1:5071;transport=udp`, `sip:[::1]:5071`). The port
 * defaults to 5060 (5061 for sips). Hosts are compared literally: use IP addresses, as HEP carries addresses.
 */
export function dispatcherEndpoint(uri: string): string {
  const m = /^(sips?):(?:[^@;]*@)?(\[[0-9A-Fa-f:.]+\]|[^:;?>]+)(?::(\d+))?/.exec(uri.trim());
  if (!m) throw new ForesightError('FORESIGHT_ERR_CONFIG', `not a SIP URI: ${uri}`);
  let host = m[2] as string;
  if (host.startsWith('[')) {
    try {
      host = new URL(`http://${host}`).hostname;
    } catch (cause) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `bad IPv6 address in ${uri}`, { cause });
    }
  } else {
    host = host.toLowerCase();
  }
  const port = m[3] ? Number(m[3]) : m[1] === 'sips' ? 5061 : 5060;
  if (!(port > 0 && port < 65536)) throw new ForesightError('FORESIGHT_ERR_CONFIG', `bad port in ${uri}`);
  return host.startsWith('[') ? `${host}:${port}` : endpointKey(host, port);
}

export class SipTracker {
  private readonly byEndpoint = new Map<string, string>();
  private readonly counts = new Map<string, NodeCounts>();
  private readonly timeoutMs: number;
  private readonly reorderMs: number;
  private readonly maxTracked: number;
  private readonly maxPending: number;
  /** Copy key -> capture time of the first copy. Insertion order is roughly time order, so expiry sweeps the front. */
  private readonly copies = new Map<string, number>();
  private readonly transactions = new Map<string, Transaction>();
  private pending: Pending[] = [];
  private latencies: TelemetrySample[] = [];
  private maxSeenTs = Number.NEGATIVE_INFINITY;
  private processedUpTo = Number.NEGATIVE_INFINITY;
  private readonly stat = { processed: 0, unrelated: 0, late: 0, evicted: 0 };
  private readonly onPacket: SipTrackerOptions['onPacket'];

  constructor(options: SipTrackerOptions) {
    for (const [nodeId, uri] of Object.entries(options.nodes)) {
      const ep = dispatcherEndpoint(uri);
      const other = this.byEndpoint.get(ep);
      if (other !== undefined) {
        throw new ForesightError('FORESIGHT_ERR_CONFIG', `nodes ${other} and ${nodeId} share the destination ${ep}`);
      }
      this.byEndpoint.set(ep, nodeId);
      this.counts.set(nodeId, { retransmissions: 0, replies5xx: 0, replies408: 0 });
    }
    this.timeoutMs = options.transactionTimeoutMs ?? 32_000;
    this.reorderMs = options.reorderWindowMs ?? 500;
    this.maxTracked = options.maxTracked ?? 200_000;
    this.maxPending = options.maxPending ?? 100_000;
    this.onPacket = options.onPacket;
  }

  /** Node id for a destination `host:port`, if configured. */
  nodeFor(ip: string, port: number): string | undefined {
    return this.byEndpoint.get(endpointKey(ip, port));
  }

  /** Buffers one packet; `arrivedAt` is the collector's clock when it came in. */
  offer(pkt: SipPacket, arrivedAt: number): void {
    if (pkt.ts > this.maxSeenTs) this.maxSeenTs = pkt.ts;
    if (this.pending.length >= this.maxPending) {
      this.process(pkt);
      return;
    }
    this.pending.push({ pkt, arrivedAt });
  }

  /**
   * Processes, in capture-time order, the buffered packets that waited long enough (or all of them when `all`), then
   * expires old keys. Returns the samples due: one counter sample per node and metric, and every latency measured.
   */
  flush(now: number, all = false): TelemetrySample[] {
    this.release(now, all);
    if (!all) this.expire(Math.max(this.processedUpTo, now - this.reorderMs) - this.timeoutMs);
    const out = this.latencies;
    this.latencies = [];
    for (const [nodeId, c] of this.counts) {
      out.push(sample(nodeId, now, 'sip.retransmissions', c.retransmissions));
      out.push(sample(nodeId, now, 'sip.replies_5xx', c.replies5xx));
      out.push(sample(nodeId, now, 'sip.replies_408', c.replies408));
      c.retransmissions = 0;
      c.replies5xx = 0;
      c.replies408 = 0;
    }
    return out;
  }

  stats(): SipTrackerStats {
    return {
      ...this.stat,
      pending: this.pending.length,
      tracked: this.copies.size + this.transactions.size,
    };
  }

  private release(now: number, all: boolean): void {
    if (this.pending.length === 0) return;
    const byTs = this.maxSeenTs - this.reorderMs;
    const byArrival = now - this.reorderMs;
    const ready: Pending[] = [];
    const keep: Pending[] = [];
    for (const p of this.pending) {
      if (all || p.pkt.ts <= byTs || p.arrivedAt <= byArrival) ready.push(p);
      else keep.push(p);
    }
    this.pending = keep;
    ready.sort((a, b) => a.pkt.ts - b.pkt.ts);
    for (const p of ready) this.process(p.pkt);
  }

  private process(pkt: SipPacket): void {
    this.stat.processed++;
    if (pkt.ts < this.processedUpTo) this.stat.late++;
    else this.processedUpTo = pkt.ts;
    const toNode = this.byEndpoint.get(endpointKey(pkt.dstIp, pkt.dstPort));
    const fromNode = this.byEndpoint.get(endpointKey(pkt.srcIp, pkt.srcPort));
    if (toNode === undefined && fromNode === undefined) {
      this.stat.unrelated++;
      return;
    }
    this.onPacket?.(pkt, { toNode, fromNode });
    const s = pkt.sip;
    const copyKey = `${pkt.srcIp}|${pkt.srcPort}|${pkt.dstIp}|${pkt.dstPort}|${s.firstLine}|${s.callId}|${s.cseq}|${s.branch}`;
    const isCopy = this.copies.has(copyKey);
    if (!isCopy) {
      this.copies.set(copyKey, pkt.ts);
      if (this.copies.size > this.maxTracked) this.evictOldest(this.copies);
    }

    if (toNode !== undefined && s.method !== null) {
      const c = this.counts.get(toNode);
      if (isCopy) {
        if (c) c.retransmissions++;
        return;
      }
      if (s.method !== 'ACK') {
        this.transactions.set(txKey(toNode, s), { nodeId: toNode, method: s.method, reqTs: pkt.ts, replied: false });
        if (this.transactions.size > this.maxTracked) this.evictOldest(this.transactions);
      }
      return;
    }

    if (fromNode !== undefined && s.status !== null && !isCopy) {
      const c = this.counts.get(fromNode);
      if (c && s.status === 408) c.replies408++;
      else if (c && s.status >= 500 && s.status < 600) c.replies5xx++;
      const tx = this.transactions.get(txKey(fromNode, s));
      if (tx && !tx.replied) {
        tx.replied = true;
        const ms = Math.max(0, pkt.ts - tx.reqTs);
        if (tx.method === 'INVITE') this.latencies.push(sample(fromNode, pkt.ts, 'sip.invite_setup_ms', ms));
        else if (tx.method === 'OPTIONS') this.latencies.push(sample(fromNode, pkt.ts, 'sip.options_rtt_ms', ms));
      }
    }
  }

  private expire(before: number): void {
    for (const [key, ts] of this.copies) {
      if (ts >= before) break;
      this.copies.delete(key);
    }
    for (const [key, tx] of this.transactions) {
      if (tx.reqTs >= before) break;
      this.transactions.delete(key);
      // No reply at all within Timer B/F: the transaction timed out toward the node.
      if (!tx.replied) {
        const c = this.counts.get(tx.nodeId);
        if (c) c.replies408++;
      }
    }
  }

  private evictOldest(map: Map<string, unknown>): void {
    const first = map.keys().next();
    if (!first.done) {
      map.delete(first.value);
      this.stat.evicted++;
    }
  }
}

function txKey(nodeId: string, s: SipSummary): string {
  return `${nodeId}|${s.callId}|${s.cseq}|${s.branch}`;
}

function sample(nodeId: string, ts: number, metric: MetricName, value: number): TelemetrySample {
  return { nodeId, ts, metric, value, source: 'sip' };
}
