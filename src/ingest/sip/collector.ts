/**
 * UDP listener for the HEP v3 packets Kamailio's siptrace mirrors (trace_mode=1, domain README F). Emits per node, every
 * flush interval, sip.retransmissions / sip.replies_5xx / sip.replies_408 counters, sip.invite_setup_ms /
 * sip.options_rtt_ms latencies and the sip.dialogs_active / sip.dialogs_seen gauges (dialogs.ts). Garbage datagrams
 * are counted, never fatal.
 */
import dgram from 'node:dgram';
import { type Clock, systemClock } from '../../clock.js';
import { errorMessage, ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { TelemetrySample } from '../../messages.js';
import { DialogCounter, type DialogCounterOptions, type DialogCounterStats, type NodeDialogView } from './dialogs.js';
import { decodeHep, type HepRejectReason, hepTimestampMs } from './hep.js';
import { parseSipHead } from './sip-message.js';
import { SipTracker, type SipTrackerStats } from './tracker.js';

export type SampleSink = (samples: TelemetrySample[]) => Promise<void> | void;

export interface HepCollectorOptions {
  /** Node id -> dispatcher destination URI (as in Kamailio's dispatcher list). */
  nodes: Record<string, string>;
  /** Receives each flush's samples, e.g. `(s) => bus.publish('telemetry', s.map((v) => ({ key: v.nodeId, value: v })))`. */
  sink: SampleSink;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 9060; 0 picks a free port (see address()). */
  port?: number;
  flushIntervalMs?: number;
  reorderWindowMs?: number;
  transactionTimeoutMs?: number;
  maxTracked?: number;
  /** Session timer, warm-up and caps of the dialog counter. */
  dialogs?: Omit<DialogCounterOptions, 'nodes'>;
  clock?: Clock;
  logger?: Logger;
}

export interface HepCollectorStats extends SipTrackerStats {
  datagrams: number;
  rejected: Record<HepRejectReason, number>;
  /** HEP packets whose payload is not SIP (proto type other than 1) or not a parsable SIP head. */
  notSip: number;
  sinkErrors: number;
  dialogs: DialogCounterStats;
}

export class HepCollector {
  private readonly tracker: SipTracker;
  private readonly dialogCounter: DialogCounter;
  private readonly opts: Required<Pick<HepCollectorOptions, 'host' | 'port' | 'flushIntervalMs'>>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sink: SampleSink;
  private socket: dgram.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private datagrams = 0;
  private notSip = 0;
  private sinkErrors = 0;
  private readonly rejected: Record<HepRejectReason, number> = {
    short: 0,
    magic: 0,
    truncated: 0,
    bad_chunk: 0,
    incomplete: 0,
  };

  constructor(options: HepCollectorOptions) {
    const dialogCounter = new DialogCounter({ ...options.dialogs, nodes: Object.keys(options.nodes) });
    this.dialogCounter = dialogCounter;
    this.tracker = new SipTracker({
      nodes: options.nodes,
      onPacket: (pkt, route) => dialogCounter.observe(pkt, route),
      ...(options.reorderWindowMs !== undefined && { reorderWindowMs: options.reorderWindowMs }),
      ...(options.transactionTimeoutMs !== undefined && { transactionTimeoutMs: options.transactionTimeoutMs }),
      ...(options.maxTracked !== undefined && { maxTracked: options.maxTracked }),
    });
    this.opts = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 9060,
      flushIntervalMs: options.flushIntervalMs ?? 1000,
    };
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger()).child({ component: 'hep-collector' });
    this.sink = options.sink;
  }

  /** Binds the UDP socket and starts the flush timer. */
  async start(): Promise<void> {
    if (this.socket) return;
    const family = this.opts.host.includes(':') ? 'udp6' : 'udp4';
    const socket = dgram.createSocket({ type: family, recvBufferSize: 4 * 1024 * 1024 });
    socket.on('message', (buf) => this.ingest(buf, this.clock.now()));
    socket.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'HEP socket error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new ForesightError('FORESIGHT_ERR_CONFIG', `cannot bind HEP listener ${this.opts.host}:${this.opts.port}`, {
            cause: err,
          }),
        );
      socket.once('error', onError);
      socket.bind(this.opts.port, this.opts.host, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    this.socket = socket;
    this.timer = setInterval(() => {
      this.flushing = this.flushing.then(() => this.flush(false));
    }, this.opts.flushIntervalMs);
    this.timer.unref();
    this.log.info({ host: this.opts.host, port: this.address().port }, 'HEP listener started');
  }

  /** Stops listening, then processes and emits everything still buffered. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    await this.flushing;
    await this.flush(true);
  }

  /** Whether the UDP listener is bound: a port held by another process leaves it unbound, and nothing arrives. */
  get listening(): boolean {
    return this.socket !== null;
  }

  address(): { host: string; port: number } {
    const a = this.socket?.address();
    return a ? { host: a.address, port: a.port } : { host: this.opts.host, port: this.opts.port };
  }

  /** Feeds one datagram (the socket does this; replay and tests may call it directly). */
  ingest(buf: Buffer, arrivedAt: number): void {
    this.datagrams++;
    const r = decodeHep(buf);
    if (!r.ok) {
      this.rejected[r.reason]++;
      // Sampled: a flood of garbage must not flood the log.
      if ((this.rejected[r.reason] & (this.rejected[r.reason] - 1)) === 0) {
        this.log.warn({ reason: r.reason, bytes: buf.length, count: this.rejected[r.reason] }, 'HEP datagram rejected');
      }
      return;
    }
    const p = r.packet;
    const sip = p.protoType === 1 ? parseSipHead(p.payload) : null;
    if (!sip) {
      this.notSip++;
      return;
    }
    this.tracker.offer(
      {
        ts: hepTimestampMs(p) ?? arrivedAt,
        srcIp: p.srcIp,
        srcPort: p.srcPort,
        dstIp: p.dstIp,
        dstPort: p.dstPort,
        sip,
      },
      arrivedAt,
    );
  }

  /** Processes what is due and hands the samples to the sink. `all` drains the reorder buffer. */
  async flush(all = false): Promise<void> {
    const now = this.clock.now();
    const samples = this.tracker.flush(now, all);
    this.dialogCounter.expire(now);
    samples.push(...this.dialogCounter.samples(now));
    if (samples.length === 0) return;
    try {
      await this.sink(samples);
    } catch (err) {
      this.sinkErrors++;
      this.log.error({ err: errorMessage(err), samples: samples.length }, 'telemetry sink failed; samples dropped');
    }
  }

  stats(): HepCollectorStats {
    return {
      ...this.tracker.stats(),
      datagrams: this.datagrams,
      rejected: { ...this.rejected },
      notSip: this.notSip,
      sinkErrors: this.sinkErrors,
      dialogs: this.dialogCounter.stats(),
    };
  }

  /** Active dialogs per node and how far each count can be trusted (dialogs.ts). */
  dialogs(): NodeDialogView[] {
    return this.dialogCounter.view(this.clock.now());
  }
}
