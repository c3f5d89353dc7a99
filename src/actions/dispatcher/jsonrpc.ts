import { createSocket, type Socket } from 'node:dgram';
import { ForesightError } from '../../errors.js';

/**
 * JSON-RPC 2.0 clients for Kamailio's jsonrpcs module: HTTP (through xhttp) and UDP datagrams. They only move one
 * request and its answer; retries and the meaning of errors belong to the caller (KamailioDispatcher).
 */
export interface JsonRpcTransport {
  readonly name: string;
  call(method: string, params: readonly unknown[], timeoutMs: number): Promise<unknown>;
  close(): Promise<void>;
}

/** Kamailio answered with a JSON-RPC error object (e.g. code 500 "State Update Failed"): the request arrived. */
export class JsonRpcRemoteError extends Error {
  constructor(
    readonly method: string,
    readonly rpcCode: number,
    readonly rpcMessage: string,
  ) {
    super(`${method}: ${rpcCode} ${rpcMessage}`);
    this.name = 'JsonRpcRemoteError';
  }
}

function timeoutError(method: string, timeoutMs: number, transport: string, cause?: unknown): ForesightError {
  return new ForesightError('FORESIGHT_ERR_TIMEOUT', `${method} over ${transport}: no answer within ${timeoutMs} ms`, {
    cause,
    details: { method, timeoutMs, transport },
  });
}

function unreachable(method: string, transport: string, cause: unknown): ForesightError {
  const reason = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : '';
  return new ForesightError(
    'FORESIGHT_ERR_DISPATCHER',
    `${method} over ${transport} failed: ${reason || 'unreachable'}`,
    {
      cause,
      details: { method, transport },
    },
  );
}

/** Validates an envelope and returns `result`, or throws JsonRpcRemoteError / a dispatcher error for garbage. */
export function unwrapResponse(method: string, body: unknown, expectedId?: number): unknown {
  if (typeof body !== 'object' || body === null) {
    throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `${method}: answer is not a JSON-RPC object`, {
      details: { method },
    });
  }
  const envelope = body as { result?: unknown; error?: unknown; id?: unknown };
  if (expectedId !== undefined && envelope.id !== expectedId) {
    throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `${method}: answer for another request id`, {
      details: { method, expectedId, id: envelope.id },
    });
  }
  if (envelope.error !== undefined && envelope.error !== null) {
    const err = envelope.error as { code?: unknown; message?: unknown };
    const code = typeof err.code === 'number' ? err.code : -1;
    const message = typeof err.message === 'string' ? err.message : JSON.stringify(envelope.error);
    throw new JsonRpcRemoteError(method, code, message);
  }
  if (!('result' in envelope)) {
    throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `${method}: answer has neither result nor error`, {
      details: { method },
    });
  }
  return envelope.result;
}

export interface HttpJsonRpcOptions {
  /** e.g. `http://127.0.0.1:5080/RPC` */
  url: string;
}

/** One POST per call; keep-alive connections are reused by undici, so a call costs well under a millisecond on loopback. */
export class HttpJsonRpc implements JsonRpcTransport {
  readonly name = 'http';
  private nextId = 1;

  constructor(private readonly options: HttpJsonRpcOptions) {}

  async call(method: string, params: readonly unknown[], timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', method, params, id }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (err) {
      const name = (err as { name?: unknown } | null)?.name;
      if (name === 'TimeoutError' || name === 'AbortError') throw timeoutError(method, timeoutMs, this.name, err);
      throw unreachable(method, this.name, err);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw new ForesightError(
        'FORESIGHT_ERR_DISPATCHER',
        `${method}: HTTP ${response.status}, body is not JSON: ${text.slice(0, 120)}`,
        { cause: err, details: { method, httpStatus: response.status } },
      );
    }
    return unwrapResponse(method, body, id);
  }

  async close(): Promise<void> {}
}

export interface DatagramJsonRpcOptions {
  host: string;
  /** jsonrpcs `dgram_socket` port, e.g. 5081 for `udp:127.0.0.1:5081`. */
  port: number;
}

/**
 * JSON-RPC over UDP (jsonrpcs `dgram_socket`): Kamailio answers to the sender's address, so one bound socket serves
 * every call and answers are matched by id. A lost datagram shows up as a timeout, which the caller retries.
 */
export class DatagramJsonRpc implements JsonRpcTransport {
  readonly name = 'udp';
  private socket: Socket | null = null;
  private ready: Promise<Socket> | null = null;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { method: string; resolve: (v: unknown) => void; reject: (e: unknown) => void }
  >();

  constructor(private readonly options: DatagramJsonRpcOptions) {}

  private open(): Promise<Socket> {
    this.ready ??= new Promise<Socket>((resolve, reject) => {
      const socket = createSocket('udp4');
      socket.once('error', reject);
      socket.on('message', (msg) => this.onMessage(msg));
      socket.bind(0, this.options.host, () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.failAll(err));
        socket.unref();
        this.socket = socket;
        resolve(socket);
      });
    });
    return this.ready;
  }

  private onMessage(msg: Buffer): void {
    let body: unknown;
    try {
      body = JSON.parse(msg.toString('utf8'));
    } catch {
      return; // not ours to interpret; the waiting call times out
    }
    const id = (body as { id?: unknown } | null)?.id;
    if (typeof id !== 'number') return;
    const waiter = this.pending.get(id);
    if (!waiter) return; // late answer to a call that already timed out
    this.pending.delete(id);
    try {
      waiter.resolve(unwrapResponse(waiter.method, body, id));
    } catch (err) {
      waiter.reject(err);
    }
  }

  private failAll(err: unknown): void {
    for (const [id, waiter] of this.pending) {
      this.pending.delete(id);
      waiter.reject(unreachable(waiter.method, this.name, err));
    }
  }

  async call(method: string, params: readonly unknown[], timeoutMs: number): Promise<unknown> {
    const socket = await this.open();
    const id = this.nextId++;
    const payload = Buffer.from(JSON.stringify({ jsonrpc: '2.0', method, params, id }));
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(timeoutError(method, timeoutMs, this.name));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      socket.send(payload, this.options.port, this.options.host, (err) => {
        if (!err) return;
        const waiter = this.pending.get(id);
        this.pending.delete(id);
        waiter?.reject(unreachable(method, this.name, err));
      });
    });
  }

  async close(): Promise<void> {
    this.failAll(new Error('transport closed'));
    const socket = this.socket;
    this.socket = null;
    this.ready = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
