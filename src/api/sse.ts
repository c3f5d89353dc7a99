import type { ServerResponse } from 'node:http';
import type { ClusterEvent, ClusterView } from './cluster-view.js';

/** A slow client is dropped once this much is queued for it, so one stalled browser cannot grow our memory. */
const MAX_BUFFERED_BYTES = 1 << 20;

/**
 * Fans cluster events out to Server-Sent Events clients. Each event is serialised once for all clients; a heartbeat
 * comment keeps proxies from closing idle streams.
 */
export class SseHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private seq = 0;

  constructor(
    private readonly cluster: ClusterView,
    heartbeatMs = 15_000,
  ) {
    this.unsubscribe = cluster.subscribe((event) => this.broadcast(event));
    this.heartbeat = setInterval(() => this.writeAll(': ping\n\n'), heartbeatMs);
    // The heartbeat alone must not keep the process alive.
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Takes over a response: writes the SSE headers and a `snapshot` event with every node, then streams updates. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    res.write(frame('snapshot', ++this.seq, { threshold: this.cluster.threshold, nodes: this.cluster.list() }));
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    res.on('close', drop);
    res.on('error', drop);
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.heartbeat);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private broadcast(event: ClusterEvent): void {
    if (this.clients.size === 0) return;
    this.writeAll(frame(event.type, ++this.seq, event.data));
  }

  private writeAll(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  }
}

function frame(type: string, id: number, data: unknown): string {
  // JSON.stringify never emits a raw newline, so the payload fits on one `data:` line.
  return `event: ${type}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}
