import net from 'node:net';
import { ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import { type AmiDecoderStats, type AmiFrame, AmiFrameDecoder } from './frame.js';

/** Where one Asterisk node's AMI listens, and who we log in as. The secret is never logged. */
export interface AmiEndpoint {
  host: string;
  port: number;
  username: string;
  secret: string;
}

export interface AmiSessionOptions {
  connectTimeoutMs?: number;
  /** Default timeout of every action, login included. */
  actionTimeoutMs?: number;
  maxFrameChars?: number;
  /** Sent with Login (`Events:`); the collector also sends an `Events` action. Default `off`. */
  loginEvents?: string;
  /** Events not claimed by a pending list action. */
  onEvent?: (frame: AmiFrame) => void;
  /** Called once when the socket closes, whoever closed it. */
  onClose?: (reason: string) => void;
  /** Called after each chunk that added malformed, oversized or bad-line counts. */
  onGarbage?: (stats: AmiDecoderStats) => void;
  logger?: Logger;
}

export interface AmiActionResult {
  response: AmiFrame;
  /** List items (CoreShowChannel, …) carrying this action's ActionID, up to the `…Complete` event (excluded). */
  events: AmiFrame[];
  /** The `…Complete` event of a list action, if any. */
  complete?: AmiFrame;
}

interface Pending {
  resolve: (r: AmiActionResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  response?: AmiFrame;
  events: AmiFrame[];
}

function connectionLost(message: string): Error {
  // A plain network-style error: isRetriable() in src/errors.ts treats ECONNRESET as transient.
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

/**
 * One AMI session on our own socket and decoder (see docs/ami.md for why not asterisk-manager's): every action has a
 * timeout, an action to a dead socket fails at once instead of being lost, list actions resolve with their items.
 */
export class AmiSession {
  private readonly pending = new Map<string, Pending>();
  private readonly decoder: AmiFrameDecoder;
  private readonly logger: Logger;
  private readonly actionTimeoutMs: number;
  private seq = 0;
  private closed = false;
  private closeReason = '';
  banner: string | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly options: AmiSessionOptions,
  ) {
    this.decoder = new AmiFrameDecoder({ maxFrameChars: options.maxFrameChars });
    this.logger = options.logger ?? silentLogger();
    this.actionTimeoutMs = options.actionTimeoutMs ?? 5000;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.closeReason = err.message;
    });
    socket.on('close', () => this.onSocketClose());
  }

  /** Connects and logs in. Rejects with FORESIGHT_ERR_TIMEOUT, FORESIGHT_ERR_CONFIG (bad credentials) or a socket error. */
  static async open(endpoint: AmiEndpoint, options: AmiSessionOptions = {}): Promise<AmiSession> {
    const socket = await connectSocket(endpoint.host, endpoint.port, options.connectTimeoutMs ?? 5000);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const session = new AmiSession(socket, options);
    try {
      const { response } = await session.action({
        Action: 'Login',
        Username: endpoint.username,
        Secret: endpoint.secret,
        Events: options.loginEvents ?? 'off',
      });
      if ((response.fields.response ?? '').toLowerCase() !== 'success') {
        throw new ForesightError(
          'FORESIGHT_ERR_CONFIG',
          `AMI login refused: ${response.fields.message ?? 'no message'}`,
          {
            details: { host: endpoint.host, port: endpoint.port, username: endpoint.username },
          },
        );
      }
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get decoderStats(): AmiDecoderStats {
    return this.decoder.stats;
  }

  /**
   * Sends an action and resolves with its response (and list items). Resolves also for `Response: Error`: the caller
   * reads `response.fields.response`. Rejects on timeout (FORESIGHT_ERR_TIMEOUT) or when the connection is gone.
   */
  action(fields: Record<string, string>, timeoutMs = this.actionTimeoutMs): Promise<AmiActionResult> {
    if (this.closed || !this.socket.writable) {
      return Promise.reject(connectionLost(`AMI connection closed${this.closeReason ? `: ${this.closeReason}` : ''}`));
    }
    let text = '';
    for (const [key, value] of Object.entries(fields)) {
      if (/[\r\n]/.test(key) || /[\r\n]/.test(value) || key.toLowerCase() === 'actionid') {
        return Promise.reject(new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `invalid AMI action field ${key}`));
      }
      text += `${key}: ${value}\r\n`;
    }
    const id = `fs-${++this.seq}`;
    const name = fields.Action ?? '?';
    return new Promise<AmiActionResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ForesightError('FORESIGHT_ERR_TIMEOUT', `AMI action ${name} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, events: [] });
      this.socket.write(`${text}ActionID: ${id}\r\n\r\n`);
    });
  }

  /** Closes the socket now; pending actions reject. Idempotent. */
  close(): void {
    if (!this.closeReason) this.closeReason = 'closed by client';
    this.socket.destroy();
  }

  /** Resolves when the socket has closed. */
  closedPromise(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  private onData(chunk: Buffer): void {
    const before = this.garbageCount();
    const frames = this.decoder.push(chunk);
    for (const frame of frames) this.onFrame(frame);
    if (this.garbageCount() !== before) {
      this.logger.warn({ decoder: this.decoder.stats }, 'AMI stream had malformed or oversized frames');
      this.options.onGarbage?.(this.decoder.stats);
    }
  }

  private garbageCount(): number {
    const s = this.decoder.stats;
    return s.malformedFrames + s.oversizedFrames + s.badLines;
  }

  private onFrame(frame: AmiFrame): void {
    if (frame.kind === 'banner') {
      this.banner = frame.fields.banner ?? null;
      return;
    }
    const id = frame.fields.actionid;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (frame.kind === 'response') {
      if (!pending || id === undefined) return;
      const listStarts = (frame.fields.eventlist ?? '').toLowerCase() === 'start';
      const ok = (frame.fields.response ?? '').toLowerCase() !== 'error';
      if (listStarts && ok) {
        pending.response = frame;
        return;
      }
      this.settle(id, pending, { response: frame, events: [] });
      return;
    }
    if (frame.kind === 'event') {
      if (pending?.response && id !== undefined) {
        const name = frame.fields.event ?? '';
        if ((frame.fields.eventlist ?? '').toLowerCase() === 'complete' || name.endsWith('Complete')) {
          this.settle(id, pending, { response: pending.response, events: pending.events, complete: frame });
        } else {
          pending.events.push(frame);
        }
        return;
      }
      this.options.onEvent?.(frame);
    }
  }

  private settle(id: string, pending: Pending, result: AmiActionResult): void {
    clearTimeout(pending.timer);
    this.pending.delete(id);
    pending.resolve(result);
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.decoder.end();
    const reason = this.closeReason || 'closed by server';
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(connectionLost(`AMI connection closed: ${reason}`));
    }
    this.options.onClose?.(reason);
  }
}

function connectSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ForesightError('FORESIGHT_ERR_TIMEOUT', `AMI connect to ${host}:${port} timed out after ${timeoutMs} ms`),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
