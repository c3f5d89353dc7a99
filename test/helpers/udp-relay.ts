import dgram from 'node:dgram';

/**
 * A user-space UDP relay for fault injection on loopback: datagrams from any client to the listen port go to the
 * target, the target's answers go back to that client. Loss and added delay can be changed while it runs, per
 * direction (`forward` = client -> target, `backward` = target -> client). Each client gets its own upstream socket,
 * like a NAT, so the target sees one source per client and its replies find their way back.
 *
 * Limits: only flows the client starts are relayed (the target cannot open a flow towards a client it has not
 * heard from); at most `maxClients` clients. With Kamailio as the client and a SIPp backend as the target, only what
 * Kamailio sends to the relay's address crosses it: in-dialog requests follow the backend's Contact (its own port)
 * and Record-Route, so put the relay's port in the backend's Contact if those must cross too. Loss draws come from a seeded generator, one stream per direction, so
 * the drop pattern of a direction does not depend on the traffic in the other one.
 */

export type RelayDirection = 'forward' | 'backward' | 'both';

export interface UdpRelayOptions {
  /** Listen address, default 127.0.0.1. */
  host?: string;
  /** Seed of the loss draws, default 1. */
  seed?: number;
  /** Default 64. */
  maxClients?: number;
}

interface PerDirection {
  forward: number;
  backward: number;
}

export interface UdpRelayStats {
  /** Datagrams received from clients (forward) and from the target (backward). */
  received: PerDirection;
  /** Datagrams sent on (after any delay). */
  relayed: PerDirection;
  /** Datagrams dropped by the loss setting. */
  dropped: PerDirection;
  /** Datagrams waiting out a delay now. */
  inFlight: number;
  clients: number;
  /** Datagrams refused because `maxClients` was reached. */
  refusedClients: number;
  /** Send or socket errors. */
  errors: number;
}

/** Marsaglia's xorshift32: small, seedable, good enough to decide drops. Returns floats in [0, 1). */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 0x2545f491;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

export class UdpRelay {
  private readonly listen: dgram.Socket;
  private readonly upstream = new Map<string, dgram.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly loss: PerDirection = { forward: 0, backward: 0 };
  private readonly delayMs: PerDirection = { forward: 0, backward: 0 };
  private readonly draw: { forward: () => number; backward: () => number };
  private readonly maxClients: number;
  private readonly stat = {
    received: { forward: 0, backward: 0 },
    relayed: { forward: 0, backward: 0 },
    dropped: { forward: 0, backward: 0 },
    refusedClients: 0,
    errors: 0,
  };
  private closed = false;

  private constructor(
    listen: dgram.Socket,
    private readonly targetHost: string,
    private readonly targetPort: number,
    options: UdpRelayOptions,
  ) {
    this.listen = listen;
    const seed = options.seed ?? 1;
    this.draw = { forward: xorshift32(seed), backward: xorshift32(seed ^ 0x5bd1e995) };
    this.maxClients = options.maxClients ?? 64;
    listen.on('message', (buf, rinfo) => this.fromClient(buf, rinfo));
    listen.on('error', () => this.stat.errors++);
  }

  /** Listens on `listenPort` (0: any free port, see `port`) and relays to `targetHost:targetPort`. */
  static async start(
    listenPort: number,
    targetHost: string,
    targetPort: number,
    options: UdpRelayOptions = {},
  ): Promise<UdpRelay> {
    const host = options.host ?? '127.0.0.1';
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(listenPort, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    return new UdpRelay(sock, targetHost, targetPort, options);
  }

  /** The port clients send to. */
  get port(): number {
    return this.listen.address().port;
  }

  /** Drop probability in [0, 1] for each datagram from now on. */
  setLoss(p: number, direction: RelayDirection = 'both'): void {
    if (!(p >= 0 && p <= 1)) throw new Error(`loss must be in [0, 1], got ${p}`);
    this.apply(this.loss, p, direction);
  }

  /** Delay added to each datagram from now on (datagrams already waiting keep theirs). */
  setDelayMs(ms: number, direction: RelayDirection = 'both'): void {
    if (!(ms >= 0)) throw new Error(`delay must be >= 0, got ${ms}`);
    this.apply(this.delayMs, ms, direction);
  }

  stats(): UdpRelayStats {
    return {
      received: { ...this.stat.received },
      relayed: { ...this.stat.relayed },
      dropped: { ...this.stat.dropped },
      inFlight: this.timers.size,
      clients: this.upstream.size,
      refusedClients: this.stat.refusedClients,
      errors: this.stat.errors,
    };
  }

  /** Closes every socket and discards delayed datagrams. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const sockets = [this.listen, ...this.upstream.values()];
    this.upstream.clear();
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private apply(target: PerDirection, value: number, direction: RelayDirection): void {
    if (direction !== 'backward') target.forward = value;
    if (direction !== 'forward') target.backward = value;
  }

  private fromClient(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    this.stat.received.forward++;
    const key = `${rinfo.address}|${rinfo.port}`;
    let up = this.upstream.get(key);
    if (!up) {
      if (this.upstream.size >= this.maxClients) {
        this.stat.refusedClients++;
        return;
      }
      up = dgram.createSocket(this.targetHost.includes(':') ? 'udp6' : 'udp4');
      up.on('message', (reply) => this.fromTarget(reply, rinfo.address, rinfo.port));
      up.on('error', () => this.stat.errors++);
      this.upstream.set(key, up);
    }
    const sock = up;
    this.pass('forward', () => sock.send(buf, this.targetPort, this.targetHost, (err) => this.sent('forward', err)));
  }

  private fromTarget(buf: Buffer, clientHost: string, clientPort: number): void {
    this.stat.received.backward++;
    this.pass('backward', () => this.listen.send(buf, clientPort, clientHost, (err) => this.sent('backward', err)));
  }

  /** Applies loss, then delay, then sends. */
  private pass(dir: 'forward' | 'backward', send: () => void): void {
    if (this.closed) return;
    if (this.loss[dir] > 0 && this.draw[dir]() < this.loss[dir]) {
      this.stat.dropped[dir]++;
      return;
    }
    const delay = this.delayMs[dir];
    if (delay <= 0) {
      send();
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) send();
    }, delay);
    this.timers.add(t);
  }

  private sent(dir: 'forward' | 'backward', err: Error | null): void {
    if (err) this.stat.errors++;
    else this.stat.relayed[dir]++;
  }
}
