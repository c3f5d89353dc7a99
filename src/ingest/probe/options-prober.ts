/**
 * Foresight's own SIP OPTIONS prober: evidence that a node's SIP stack answers, independent of Kamailio's keepalives
 * and of traffic (a drained node carries none, so "no bad signal" from calls says nothing about it).
 *
 * Every `intervalMs` it sends one OPTIONS over UDP to each node's dispatcher URI from its own socket, and matches final
 * replies by top-Via branch, Call-ID and CSeq. Any final reply (200, 404, 405, ...) means the path and the node's SIP
 * stack answered; a 5xx is answered-but-unhealthy (Asterisk answers 503 while a graceful shutdown is pending). No final
 * reply within `timeoutMs` is a lost probe. There are deliberately no retransmissions (RFC 3261 Timer E): one
 * datagram per probe, so the lost share measures the path and the node directly.
 *
 * Emits per probeable node, every interval: probe.options_sent, probe.options_lost, probe.options_5xx (counts since
 * the previous emit) and one probe.options_rtt_ms per answered probe, source `probe`. Datagrams that are not a reply
 * to an outstanding probe are counted by reason, kept in a short list and handed to `onRejected`; never fatal.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { type Clock, systemClock } from '../../clock.js';
import { errorMessage, ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { MetricName, TelemetrySample } from '../../messages.js';
import type { SampleSink } from '../sip/collector.js';
import { parseSipHead } from '../sip/sip-message.js';
import { dispatcherEndpoint } from '../sip/tracker.js';

export interface OptionsProberOptions {
  /** Node id -> dispatcher destination URI (`sip:host:port`), as in Kamailio's dispatcher list. */
  nodes: Record<string, string>;
  sink: SampleSink;
  /** One probe per node per interval. Default 1000 ms. */
  intervalMs?: number;
  /** A probe without a final reply after this long is lost. Default 2000 ms. */
  timeoutMs?: number;
  /** Address of the prober's socket, also written into Via, From and Contact. Default 127.0.0.1. */
  bindHost?: string;
  /** Default 0: any free port. */
  bindPort?: number;
  /** Called for every datagram that is not a final reply to an outstanding probe (a dead-letter hook). */
  onRejected?: (rejected: RejectedDatagram) => void;
  /** Called once per probe when it ends (answered or lost), e.g. for an audit of the evidence or a test. */
  onOutcome?: (outcome: ProbeOutcome) => void;
  clock?: Clock;
  logger?: Logger;
}

export type ProbeRejectReason =
  /** Not a SIP message (no parsable first line, Call-ID and CSeq). */
  | 'unparsable'
  /** A SIP request sent to the prober's socket; it answers nothing. */
  | 'not_a_response'
  /** A reply whose branch, Call-ID or CSeq matches no probe sent. */
  | 'unmatched'
  /** A final reply to a probe already counted as lost. */
  | 'late'
  /** Another final reply to a probe already answered. */
  | 'duplicate';

export const PROBE_REJECT_REASONS: readonly ProbeRejectReason[] = [
  'unparsable',
  'not_a_response',
  'unmatched',
  'late',
  'duplicate',
];

export interface RejectedDatagram {
  reason: ProbeRejectReason;
  /** `host:port` it came from. */
  from: string;
  bytes: number;
  /** The first bytes, latin1, control characters escaped. */
  excerpt: string;
  ts: number;
}

/** How one probe ended. */
export interface ProbeOutcome {
  nodeId: string;
  /** Clock time the probe was sent. */
  sentAt: number;
  answered: boolean;
  /** Final status, or null when lost. */
  status: number | null;
  /** Round trip in ms, or null when lost. */
  rttMs: number | null;
}

/** Why a node is not probed. */
export type UnprobeableReason = 'sips' | 'transport' | 'address_family' | 'bad_uri';

export interface ProbeNodeStatus {
  nodeId: string;
  uri: string;
  /** `host:port` probed, or null when the node is not probeable over this UDP socket. */
  target: string | null;
  unprobeable: UnprobeableReason | null;
  sent: number;
  /** Probes with a final reply in time. */
  answered: number;
  lost: number;
  replies5xx: number;
  /** Status of the latest final reply, or null before the first. */
  lastStatus: number | null;
  lastRttMs: number | null;
  /** Clock time of the latest final reply, or null. */
  lastAnsweredAt: number | null;
  /** Lost probes since the latest answer. */
  consecutiveLost: number;
  /** True while the latest final reply was a 5xx (503: the node refuses new work). */
  unhealthy: boolean;
  /** Probes awaiting a reply. */
  outstanding: number;
}

export interface OptionsProberStats {
  datagrams: number;
  /** 1xx replies: ignored, a probe waits for its final reply. */
  provisional: number;
  rejected: Record<ProbeRejectReason, number>;
  /** The latest rejected datagrams (at most 16), newest last. */
  recentRejects: RejectedDatagram[];
  sendErrors: number;
  sinkErrors: number;
}

interface Outstanding {
  node: NodeState;
  callId: string;
  cseq: string;
  /** performance.now() at send, for the round trip. */
  sentAt: number;
  /** Clock time at send. */
  sentTs: number;
}

interface NodeState {
  nodeId: string;
  uri: string;
  host: string;
  port: number;
  status: ProbeNodeStatus;
  /** Since the previous emit. */
  window: { sent: number; lost: number; replies5xx: number; rtts: TelemetrySample[] };
}

const MAX_RECENT_REJECTS = 16;
const EXCERPT_BYTES = 200;
/** Finished probes remembered to tell a late or duplicate reply from a stray one. */
const MAX_FINISHED = 4096;

export class OptionsProber {
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly bindHost: string;
  private readonly bindPort: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sink: SampleSink;
  private readonly onRejected: OptionsProberOptions['onRejected'];
  private readonly onOutcome: OptionsProberOptions['onOutcome'];
  private readonly nodes: NodeState[] = [];
  private readonly unprobeable: ProbeNodeStatus[] = [];
  /** Branch -> probe awaiting its final reply; insertion order is send order. */
  private readonly outstanding = new Map<string, Outstanding>();
  /** Branch -> how the probe ended, for classifying replies that come after. */
  private readonly finished = new Map<string, 'answered' | 'lost'>();
  /** Per-instance prefix so two probers (or a restarted one) never share Call-IDs or branches. */
  private readonly instance = randomBytes(4).toString('hex');
  private seq = 0;
  private socket: dgram.Socket | null = null;
  private localPort = 0;
  private timer: NodeJS.Timeout | null = null;
  private emitting: Promise<void> = Promise.resolve();
  private readonly stat: Omit<OptionsProberStats, 'rejected' | 'recentRejects'> = {
    datagrams: 0,
    provisional: 0,
    sendErrors: 0,
    sinkErrors: 0,
  };
  private readonly rejected: Record<ProbeRejectReason, number> = {
    unparsable: 0,
    not_a_response: 0,
    unmatched: 0,
    late: 0,
    duplicate: 0,
  };
  private recentRejects: RejectedDatagram[] = [];

  constructor(options: OptionsProberOptions) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.bindHost = options.bindHost ?? '127.0.0.1';
    this.bindPort = options.bindPort ?? 0;
    if (!(this.intervalMs > 0) || !(this.timeoutMs > 0)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'probe intervalMs and timeoutMs must be > 0');
    }
    const family = isIP(this.bindHost);
    if (family === 0 || this.bindHost === '0.0.0.0' || this.bindHost === '::') {
      // Via, From and Contact carry this address: a wildcard or a name would not route replies back.
      throw new ForesightError(
        'FORESIGHT_ERR_CONFIG',
        `probe bindHost must be a specific IP address: ${this.bindHost}`,
      );
    }
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger()).child({ component: 'options-prober' });
    this.sink = options.sink;
    this.onRejected = options.onRejected;
    this.onOutcome = options.onOutcome;
    for (const [nodeId, uri] of Object.entries(options.nodes)) this.addNode(nodeId, uri, family);
  }

  /** Binds the socket, sends the first round at once, then one every interval. */
  async start(): Promise<void> {
    if (this.socket) return;
    const socket = dgram.createSocket(this.bindHost.includes(':') ? 'udp6' : 'udp4');
    socket.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo));
    socket.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'probe socket error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new ForesightError('FORESIGHT_ERR_CONFIG', `cannot bind probe socket ${this.bindHost}:${this.bindPort}`, {
            cause: err,
          }),
        );
      socket.once('error', onError);
      socket.bind(this.bindPort, this.bindHost, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    this.socket = socket;
    this.localPort = socket.address().port;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.log.info(
      { bind: `${this.bindHost}:${this.localPort}`, nodes: this.nodes.length, unprobeable: this.unprobeable.length },
      'OPTIONS prober started',
    );
  }

  /** Stops probing, emits what the last window holds, closes the socket. Probes still out are neither lost nor answered. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    this.expire(performance.now());
    this.emit();
    await this.emitting;
    this.outstanding.clear();
  }

  address(): { host: string; port: number } {
    return { host: this.bindHost, port: this.localPort };
  }

  status(): ProbeNodeStatus[] {
    return [
      ...this.nodes.map((n) => ({ ...n.status, outstanding: this.outstandingOf(n) })),
      ...this.unprobeable.map((s) => ({ ...s })),
    ];
  }

  /**
   * One line per node for /readyz. `ok` says the prober runs, not that the node answers: a node failing is what
   * Foresight exists to handle, and must not make Foresight itself unready. The node's state is in `detail`.
   */
  health(): { name: string; ok: boolean; detail: string }[] {
    const running = this.socket !== null;
    return this.status().map((s) => {
      let detail: string;
      if (s.unprobeable) detail = `not probed: ${s.unprobeable}`;
      else if (s.lastStatus === null) detail = `no answer yet, ${s.lost} lost`;
      else {
        detail = `last ${s.lastStatus}${s.unhealthy ? ' (unhealthy)' : ''} in ${s.lastRttMs?.toFixed(1)} ms, ${s.consecutiveLost} lost since`;
      }
      return { name: `probe:${s.nodeId}`, ok: running, detail: running ? detail : `prober stopped; ${detail}` };
    });
  }

  stats(): OptionsProberStats {
    return { ...this.stat, rejected: { ...this.rejected }, recentRejects: [...this.recentRejects] };
  }

  /** Feeds one datagram (the socket does this; tests may call it directly). */
  onDatagram(buf: Buffer, rinfo: { address: string; port: number }): void {
    this.stat.datagrams++;
    const at = performance.now();
    const sip = parseSipHead(buf);
    if (!sip) {
      this.reject('unparsable', buf, rinfo);
      return;
    }
    if (sip.status === null) {
      this.reject('not_a_response', buf, rinfo);
      return;
    }
    const probe = this.outstanding.get(sip.branch);
    if (!probe) {
      const ended = this.finished.get(sip.branch);
      if (sip.status < 200) return; // A 100 after the end is harmless; not worth a reject.
      this.reject(ended === 'answered' ? 'duplicate' : ended === 'lost' ? 'late' : 'unmatched', buf, rinfo);
      return;
    }
    if (probe.callId !== sip.callId || probe.cseq !== sip.cseq) {
      this.reject('unmatched', buf, rinfo);
      return;
    }
    if (sip.status < 200) {
      this.stat.provisional++;
      return;
    }
    const rttMs = at - probe.sentAt;
    if (rttMs > this.timeoutMs) {
      // Answered, but after the deadline: lost by definition, whenever the sweep would have noticed.
      this.finish(sip.branch, probe, 'lost');
      this.reject('late', buf, rinfo);
      return;
    }
    this.finish(sip.branch, probe, 'answered', sip.status, rttMs);
    const s = probe.node.status;
    s.answered++;
    s.lastStatus = sip.status;
    s.lastRttMs = rttMs;
    s.lastAnsweredAt = this.clock.now();
    s.consecutiveLost = 0;
    s.unhealthy = sip.status >= 500;
    if (sip.status >= 500) {
      s.replies5xx++;
      probe.node.window.replies5xx++;
    }
    probe.node.window.rtts.push(sample(probe.node.nodeId, s.lastAnsweredAt, 'probe.options_rtt_ms', rttMs));
  }

  private addNode(nodeId: string, uri: string, family: number): void {
    const status: ProbeNodeStatus = {
      nodeId,
      uri,
      target: null,
      unprobeable: null,
      sent: 0,
      answered: 0,
      lost: 0,
      replies5xx: 0,
      lastStatus: null,
      lastRttMs: null,
      lastAnsweredAt: null,
      consecutiveLost: 0,
      unhealthy: false,
      outstanding: 0,
    };
    const transport = /;\s*transport\s*=\s*([a-z]+)/i.exec(uri)?.[1]?.toLowerCase();
    let endpoint: string | null = null;
    try {
      endpoint = dispatcherEndpoint(uri);
    } catch {
      status.unprobeable = 'bad_uri';
    }
    if (status.unprobeable === null && /^\s*sips:/i.test(uri)) status.unprobeable = 'sips';
    else if (status.unprobeable === null && transport !== undefined && transport !== 'udp') {
      status.unprobeable = 'transport';
    }
    if (status.unprobeable !== null || endpoint === null) {
      this.log.warn({ nodeId, uri, reason: status.unprobeable }, 'node not probed over UDP');
      this.unprobeable.push(status);
      return;
    }
    const colon = endpoint.lastIndexOf(':');
    const host = endpoint.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(endpoint.slice(colon + 1));
    const hostFamily = isIP(host);
    if (hostFamily !== 0 && hostFamily !== family) {
      status.unprobeable = 'address_family';
      this.unprobeable.push(status);
      return;
    }
    status.target = endpoint;
    this.nodes.push({ nodeId, uri: uri.trim(), host, port, status, window: newWindow() });
  }

  private tick(): void {
    this.expire(performance.now());
    for (const n of this.nodes) this.send(n);
    this.emit();
  }

  private send(n: NodeState): void {
    const socket = this.socket;
    if (!socket) return;
    this.seq++;
    const branch = `z9hG4bK-fs${this.instance}-${this.seq}`;
    const callId = `${this.instance}-${this.seq}@foresight`;
    const cseq = `${this.seq} OPTIONS`;
    const msg = Buffer.from(this.request(n, branch, callId, cseq), 'latin1');
    this.outstanding.set(branch, { node: n, callId, cseq, sentAt: performance.now(), sentTs: this.clock.now() });
    n.status.sent++;
    n.window.sent++;
    socket.send(msg, n.port, n.host, (err) => {
      // The probe stays outstanding and is counted lost at its deadline: an unusable path is a lost probe.
      if (err) {
        this.stat.sendErrors++;
        if ((this.stat.sendErrors & (this.stat.sendErrors - 1)) === 0) {
          this.log.warn({ nodeId: n.nodeId, err: errorMessage(err), count: this.stat.sendErrors }, 'probe send failed');
        }
      }
    });
  }

  /** RFC 3261 8.1.1: the mandatory headers, rport (RFC 3581) so the reply comes back to this socket's port. */
  private request(n: NodeState, branch: string, callId: string, cseq: string): string {
    const host = this.bindHost.includes(':') ? `[${this.bindHost}]` : this.bindHost;
    const target = n.uri.replace(/^<|>$/g, '');
    return [
      `OPTIONS ${target} SIP/2.0`,
      `Via: SIP/2.0/UDP ${host}:${this.localPort};rport;branch=${branch}`,
      'Max-Forwards: 70',
      `From: <sip:foresight@${host}>;tag=${randomBytes(5).toString('hex')}`,
      `To: <${target}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq}`,
      `Contact: <sip:foresight@${host}:${this.localPort}>`,
      'Accept: application/sdp',
      'User-Agent: foresight-options-prober',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
  }

  /** Probes past their deadline are lost. Outstanding is in send order, so the sweep stops at the first young one. */
  private expire(at: number): void {
    for (const [branch, p] of this.outstanding) {
      if (at - p.sentAt <= this.timeoutMs) break;
      this.finish(branch, p, 'lost');
    }
  }

  private finish(branch: string, p: Outstanding, how: 'answered' | 'lost', status = 0, rttMs = 0): void {
    this.outstanding.delete(branch);
    this.finished.set(branch, how);
    if (this.finished.size > MAX_FINISHED) {
      const first = this.finished.keys().next();
      if (!first.done) this.finished.delete(first.value);
    }
    if (how === 'lost') {
      p.node.status.lost++;
      p.node.status.consecutiveLost++;
      p.node.window.lost++;
    }
    if (!this.onOutcome) return;
    const answered = how === 'answered';
    try {
      this.onOutcome({
        nodeId: p.node.nodeId,
        sentAt: p.sentTs,
        answered,
        status: answered ? status : null,
        rttMs: answered ? rttMs : null,
      });
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'onOutcome callback failed');
    }
  }

  private emit(): void {
    const now = this.clock.now();
    const out: TelemetrySample[] = [];
    for (const n of this.nodes) {
      const w = n.window;
      out.push(sample(n.nodeId, now, 'probe.options_sent', w.sent));
      out.push(sample(n.nodeId, now, 'probe.options_lost', w.lost));
      out.push(sample(n.nodeId, now, 'probe.options_5xx', w.replies5xx));
      out.push(...w.rtts);
      n.window = newWindow();
    }
    if (out.length === 0) return;
    this.emitting = this.emitting.then(async () => {
      try {
        await this.sink(out);
      } catch (err) {
        this.stat.sinkErrors++;
        this.log.error({ err: errorMessage(err), samples: out.length }, 'telemetry sink failed; samples dropped');
      }
    });
  }

  private outstandingOf(n: NodeState): number {
    let k = 0;
    for (const p of this.outstanding.values()) if (p.node === n) k++;
    return k;
  }

  private reject(reason: ProbeRejectReason, buf: Buffer, rinfo: { address: string; port: number }): void {
    this.rejected[reason]++;
    const r: RejectedDatagram = {
      reason,
      from: rinfo.address.includes(':') ? `[${rinfo.address}]:${rinfo.port}` : `${rinfo.address}:${rinfo.port}`,
      bytes: buf.length,
      // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point.
      excerpt: buf.toString('latin1', 0, EXCERPT_BYTES).replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : '.')),
      ts: this.clock.now(),
    };
    this.recentRejects.push(r);
    if (this.recentRejects.length > MAX_RECENT_REJECTS)
      this.recentRejects = this.recentRejects.slice(-MAX_RECENT_REJECTS);
    // Sampled: a flood of garbage must not flood the log.
    if ((this.rejected[reason] & (this.rejected[reason] - 1)) === 0) {
      this.log.warn({ reason, from: r.from, bytes: r.bytes, count: this.rejected[reason] }, 'probe datagram rejected');
    }
    try {
      this.onRejected?.(r);
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'onRejected callback failed');
    }
  }
}

function newWindow(): NodeState['window'] {
  return { sent: 0, lost: 0, replies5xx: 0, rtts: [] };
}

function sample(nodeId: string, ts: number, metric: MetricName, value: number): TelemetrySample {
  return { nodeId, ts, metric, value, source: 'probe' };
}
