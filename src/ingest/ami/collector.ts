import { type Clock, systemClock } from '../../clock.js';
import { errorMessage, ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { MetricName, TelemetrySample } from '../../messages.js';
import { commandOutput, maxTaskprocessorQueue } from './command.js';
import { HangupCauses, samplesFromEvent } from './events.js';
import type { AmiDecoderStats, AmiFrame } from './frame.js';
import { type AmiEndpoint, AmiSession } from './session.js';

export interface AmiBackoffOptions {
  /** First retry delay cap. Default 500 ms. */
  initialMs?: number;
  /** Largest delay cap. Default 30 s. */
  maxMs?: number;
}

export interface AmiCollectorOptions extends AmiEndpoint {
  nodeId: string;
  onSamples: (samples: TelemetrySample[]) => void;
  /** CoreStatus / CoreShowChannels / taskprocessors period. Default 10 s. */
  pollIntervalMs?: number;
  /** Ping period; a Ping left unanswered past actionTimeoutMs marks the node as not answering. Default 5 s. */
  keepAliveIntervalMs?: number;
  actionTimeoutMs?: number;
  connectTimeoutMs?: number;
  backoff?: AmiBackoffOptions;
  /** Event classes asked for with the `Events` action. Default `system,call,reporting`. */
  eventMask?: string;
  callChannelPrefix?: string;
  rtpClockRateHz?: number;
  maxFrameChars?: number;
  clock?: Clock;
  logger?: Logger;
  /** Source of jitter in [0, 1); tests pin it. */
  random?: () => number;
}

export type AmiConnectionState = 'idle' | 'connecting' | 'up' | 'backoff' | 'stopped';

export interface AmiCollectorStats {
  nodeId: string;
  state: AmiConnectionState;
  /** Connected, logged in and FullyBooted seen (what node.up reports). */
  up: boolean;
  connects: number;
  connectFailures: number;
  loginFailures: number;
  disconnects: number;
  /** Pings left unanswered: the node stopped answering while its socket stayed open. */
  stalls: number;
  actionTimeouts: number;
  actionErrors: number;
  events: number;
  samples: number;
  /** Delay before the next connection attempt, while in `backoff`. ms */
  nextRetryMs: number | null;
  lastError: string | null;
  lastEventAt: number | null;
  /** Decoder counters summed over every session. */
  decoder: AmiDecoderStats;
  /** Last DeviceStateChange state per device (e.g. `PJSIP/kamailio` → `INUSE`). */
  deviceStates: Record<string, string>;
}

const TASKPROCESSORS = 'core show taskprocessors';

/**
 * One AMI connection to one Asterisk node, turned into TelemetrySamples (source `ami`). See docs/ami.md.
 * A node that cannot be reached, refuses login or stops answering Ping reports node.up 0 on every attempt.
 */
export class AmiCollector {
  private readonly options: AmiCollectorOptions;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly random: () => number;
  private session: AmiSession | null = null;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;
  private timers: NodeJS.Timeout[] = [];
  private attempt = 0;
  private polling = false;
  /** Hangup causes carried by requests, per session (see HangupCauses). */
  private hangupCauses = new HangupCauses();
  private readonly closedDecoders: AmiDecoderStats = emptyDecoderStats();
  private readonly counters: Omit<AmiCollectorStats, 'decoder' | 'nodeId'> = {
    state: 'idle',
    up: false,
    connects: 0,
    connectFailures: 0,
    loginFailures: 0,
    disconnects: 0,
    stalls: 0,
    actionTimeouts: 0,
    actionErrors: 0,
    events: 0,
    samples: 0,
    nextRetryMs: null,
    lastError: null,
    lastEventAt: null,
    deviceStates: {},
  };

  constructor(options: AmiCollectorOptions) {
    if (!options.nodeId) throw new ForesightError('FORESIGHT_ERR_CONFIG', 'AMI collector needs a nodeId');
    if (!Number.isInteger(options.port) || options.port <= 0 || options.port > 65535) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `AMI port for ${options.nodeId} is invalid`);
    }
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'ami', nodeId: options.nodeId });
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    this.session?.close();
    await this.loopDone;
    this.counters.state = 'stopped';
  }

  stats(): AmiCollectorStats {
    const live = this.session?.decoderStats;
    const decoder = { ...this.closedDecoders };
    if (live) for (const k of Object.keys(decoder) as (keyof AmiDecoderStats)[]) decoder[k] += live[k];
    return { nodeId: this.options.nodeId, ...this.counters, deviceStates: { ...this.counters.deviceStates }, decoder };
  }

  /** Delay before retry n (0-based): "equal jitter", half fixed and half random, under an exponential cap. */
  backoffDelay(attempt: number): number {
    const initial = this.options.backoff?.initialMs ?? 500;
    const max = this.options.backoff?.maxMs ?? 30_000;
    const cap = Math.min(max, initial * 2 ** Math.min(attempt, 30));
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.counters.state = 'connecting';
      let session: AmiSession;
      // Requests seen on a lost session never get their Hangup here: start afresh (events flow from the login on).
      this.hangupCauses = new HangupCauses();
      try {
        session = await this.connect();
      } catch (err) {
        this.onConnectFailure(err);
        await this.sleepBackoff();
        continue;
      }
      if (!this.running) {
        session.close();
        break;
      }
      this.session = session;
      this.attempt = 0;
      this.counters.connects++;
      this.counters.state = 'up';
      this.logger.info(
        { host: this.options.host, port: this.options.port, banner: session.banner },
        'AMI session open',
      );
      const closed = session.closedPromise();
      this.startTimers(session);
      void this.setEventMask(session).then(() => this.poll(session));
      await closed;
      this.stopTimers();
      this.addDecoderStats(session.decoderStats);
      this.session = null;
      this.counters.disconnects++;
      this.markDown();
      if (this.running) await this.sleepBackoff();
    }
  }

  private connect(): Promise<AmiSession> {
    return AmiSession.open(this.options, {
      connectTimeoutMs: this.options.connectTimeoutMs,
      actionTimeoutMs: this.options.actionTimeoutMs,
      maxFrameChars: this.options.maxFrameChars,
      loginEvents: this.options.eventMask ?? 'system,call,reporting',
      logger: this.logger,
      onEvent: (frame) => this.onEvent(frame),
      onClose: (reason) => this.logger.warn({ reason }, 'AMI session closed'),
    });
  }

  private onConnectFailure(err: unknown): void {
    if (err instanceof ForesightError && err.code === 'FORESIGHT_ERR_CONFIG') this.counters.loginFailures++;
    else this.counters.connectFailures++;
    this.counters.lastError = errorMessage(err);
    this.logger.warn({ err: errorMessage(err), attempt: this.attempt }, 'AMI connect failed');
    this.markDown();
  }

  /** node.up 0 on every loss and every failed attempt, so a dead node keeps reporting that it is down. */
  private markDown(): void {
    this.counters.up = false;
    this.emit([this.sample('node.up', 0)]);
  }

  private async sleepBackoff(): Promise<void> {
    if (!this.running) return;
    const delay = this.backoffDelay(this.attempt++);
    this.counters.state = 'backoff';
    this.counters.nextRetryMs = delay;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = null;
    this.counters.nextRetryMs = null;
  }

  private startTimers(session: AmiSession): void {
    const keepAlive = this.options.keepAliveIntervalMs ?? 5000;
    const poll = this.options.pollIntervalMs ?? 10_000;
    this.timers.push(setInterval(() => void this.ping(session), keepAlive));
    this.timers.push(setInterval(() => void this.poll(session), poll));
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private async setEventMask(session: AmiSession): Promise<void> {
    await this.run(session, { Action: 'Events', EventMask: this.options.eventMask ?? 'system,call,reporting' });
  }

  private async ping(session: AmiSession): Promise<void> {
    try {
      await session.action({ Action: 'Ping' });
    } catch (err) {
      if (!session.isOpen) return;
      if (err instanceof ForesightError && err.code === 'FORESIGHT_ERR_TIMEOUT') {
        this.counters.stalls++;
        this.counters.actionTimeouts++;
        this.counters.lastError = 'node stopped answering Ping';
        this.logger.warn('AMI node stopped answering Ping; reconnecting');
        // Closing makes the loop report node.up 0 and reconnect with backoff.
        session.close();
      }
    }
  }

  /** One poll cycle: CoreStatus, CoreShowChannels, taskprocessors; then node.up. Overlapping cycles are skipped. */
  private async poll(session: AmiSession): Promise<void> {
    if (this.polling || !session.isOpen) return;
    this.polling = true;
    try {
      const out: TelemetrySample[] = [];
      const status = await this.run(session, { Action: 'CoreStatus' });
      const channels = await this.run(session, { Action: 'CoreShowChannels' });
      // channels.active is in channels: the channel list count is exact; CoreCurrentCalls (calls) is the fallback.
      const listed = channels ? channelCount(channels.events, channels.complete) : null;
      const calls = status ? toFiniteInt(status.response.fields.corecurrentcalls) : null;
      const active = listed ?? calls;
      if (active !== null) out.push(this.sample('channels.active', active));
      const cmd = await this.run(session, { Action: 'Command', Command: TASKPROCESSORS });
      const depth = cmd ? maxTaskprocessorQueue(commandOutput(cmd.response)) : null;
      if (depth !== null) out.push(this.sample('taskprocessor.max_queue', depth));
      if (session.isOpen) out.push(this.sample('node.up', this.counters.up ? 1 : 0));
      this.emit(out);
    } finally {
      this.polling = false;
    }
  }

  /** Runs one action; null on error response, timeout or lost connection (counted, logged). */
  private async run(session: AmiSession, fields: Record<string, string>) {
    try {
      const result = await session.action(fields);
      if ((result.response.fields.response ?? '').toLowerCase() === 'error') {
        this.counters.actionErrors++;
        this.logger.warn({ action: fields.Action, message: result.response.fields.message }, 'AMI action refused');
        return null;
      }
      return result;
    } catch (err) {
      if (err instanceof ForesightError && err.code === 'FORESIGHT_ERR_TIMEOUT') this.counters.actionTimeouts++;
      else this.counters.actionErrors++;
      if (session.isOpen) this.logger.warn({ action: fields.Action, err: errorMessage(err) }, 'AMI action failed');
      return null;
    }
  }

  private onEvent(frame: AmiFrame): void {
    this.counters.events++;
    this.counters.lastEventAt = this.clock.now();
    const name = (frame.fields.event ?? '').toLowerCase();
    if (name === 'fullybooted') this.counters.up = true;
    else if (name === 'shutdown') this.counters.up = false;
    else if (name === 'devicestatechange' && frame.fields.device) {
      this.counters.deviceStates[frame.fields.device] = frame.fields.state ?? '';
    }
    const samples = samplesFromEvent(
      frame,
      this.clock.now(),
      {
        nodeId: this.options.nodeId,
        callChannelPrefix: this.options.callChannelPrefix,
        rtpClockRateHz: this.options.rtpClockRateHz,
      },
      this.hangupCauses,
    );
    if (samples.length > 0) this.emit(samples);
  }

  private sample(metric: MetricName, value: number): TelemetrySample {
    return { nodeId: this.options.nodeId, ts: this.clock.now(), metric, value, source: 'ami' };
  }

  private emit(samples: TelemetrySample[]): void {
    if (samples.length === 0) return;
    this.counters.samples += samples.length;
    try {
      this.options.onSamples(samples);
    } catch (err) {
      // A failing consumer must not take the connection down with it.
      this.logger.error({ err: errorMessage(err) }, 'onSamples handler threw');
    }
  }

  private addDecoderStats(s: AmiDecoderStats): void {
    for (const k of Object.keys(this.closedDecoders) as (keyof AmiDecoderStats)[]) this.closedDecoders[k] += s[k];
  }
}

function channelCount(events: AmiFrame[], complete: AmiFrame | undefined): number {
  const items = toFiniteInt(complete?.fields.listitems);
  return items ?? events.length;
}

function toFiniteInt(value: string | undefined): number | null {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return null;
  return Number(value);
}

function emptyDecoderStats(): AmiDecoderStats {
  return { frames: 0, malformedFrames: 0, badLines: 0, oversizedFrames: 0, truncatedFrames: 0, garbageChars: 0 };
}
