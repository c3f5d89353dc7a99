import { type ChildProcess, fork } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/api/app.js';
import { ClusterView } from '../src/api/cluster-view.js';
import type { NodeScore } from '../src/messages.js';

// API benchmarks. The server runs in its own process (this file, forked with FORESIGHT_BENCH_API_ROLE=server), so the
// load generator does not steal its core.
//   api.nodes.req_per_s       GET /api/nodes with 100 nodes, keep-alive, 32 concurrent requests, bounded count and time
//   api.sse_100_clients.ms_p99 from asking the server to apply a score to every one of 100 SSE clients receiving it

const NODES = 100;
const FEATURES = 40;
const TOKEN = 'bench-token';

function benchScore(nodeId: string, ts: number, risk: number): NodeScore {
  return {
    nodeId,
    setId: 1,
    ts,
    risk,
    timeToFailureS: 1800,
    explanation: [
      { feature: 'memory_rss_slope', weight: 0.4, value: 12 },
      { feature: 'taskprocessor_max_queue_z', weight: 0.2, value: 3.1 },
    ],
    scorer: 'stat-v1',
    observed: true,
    activeCalls: 42,
    activeCallsSource: 'ami',
    evidence: { calls: { count: 42, source: 'ami' }, upReported: true, probe: null },
    up: true,
  };
}

async function serve(): Promise<void> {
  const cluster = new ClusterView();
  const t0 = Date.UTC(2025, 0, 1);
  for (let i = 0; i < NODES; i++) {
    const nodeId = `ast${i + 1}`;
    const features: Record<string, number> = {};
    for (let f = 0; f < FEATURES; f++) features[`feature_${f}`] = Math.round(Math.random() * 1e4) / 100;
    cluster.applyFeatures([
      {
        nodeId,
        setId: 1,
        windowStart: t0,
        windowEnd: t0 + 10_000,
        sampleCount: 50,
        observed: true,
        features,
        evidence: { calls: null, upReported: null, probe: null },
      },
    ]);
    cluster.applyScores([benchScore(nodeId, t0 + 10_000, 0.1)]);
  }
  const fail = async () => {
    throw new Error('not used in the benchmark');
  };
  const app = buildApp(
    {
      cluster,
      actions: {
        drain: fail,
        undrain: fail,
        restart: fail,
        pin: fail,
        unpin: fail,
        clearOverride: fail,
        verdict: fail,
      },
      audit: { query: async () => [] },
      model: { info: () => ({ name: 'bench', version: '0' }) },
      config: () => ({}),
      health: () => [],
    },
    { tokens: [{ name: 'bench', token: TOKEN, role: 'viewer' }], docs: false },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  let ts = t0 + 10_000;
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'score') {
      ts += 10_000;
      cluster.applyScores([benchScore('ast1', ts, 0.5)]);
    } else if (msg.type === 'cpu') {
      const usage = process.cpuUsage();
      process.send?.({ type: 'cpu', micros: usage.user + usage.system });
    } else if (msg.type === 'stop') {
      void app.close().then(() => process.exit(0));
    }
  });
  process.send?.({ type: 'ready', port });
}

function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, FORESIGHT_BENCH_API_ROLE: 'server' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bench server did not start in 20 s')), 20_000);
    child.once('error', reject);
    child.on('message', (msg: { type: string; port: number }) => {
      if (msg.type === 'ready') {
        clearTimeout(timer);
        resolve({ child, port: msg.port });
      }
    });
  });
}

function serverCpuMicros(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (msg: { type: string; micros: number }) => {
      if (msg.type !== 'cpu') return;
      child.off('message', onMessage);
      resolve(msg.micros);
    };
    child.on('message', onMessage);
    child.send({ type: 'cpu' });
  });
}

/**
 * A minimal keep-alive HTTP/1.1 client on raw sockets: it finds Content-Length and skips the body without parsing it,
 * so the load generator spends little CPU per 100 KB response and the figure measures the server.
 */
function rawClient(port: number, onResponse: () => void): { send(): void; close(): void } {
  const request = Buffer.from(
    `GET /api/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nAccept: application/json\r\n\r\n`,
  );
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  let pending: Buffer = Buffer.alloc(0);
  let bodyLeft = -1;
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (bodyLeft < 0) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 200')) throw new Error(`bench: unexpected answer ${head.split('\r\n')[0]}`);
        bodyLeft = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        pending = pending.subarray(end + 4);
      }
      if (pending.length < bodyLeft) {
        bodyLeft -= pending.length;
        pending = Buffer.alloc(0);
        return;
      }
      pending = pending.subarray(bodyLeft);
      bodyLeft = -1;
      onResponse();
    }
  });
  return { send: () => socket.write(request), close: () => socket.destroy() };
}

async function nodesThroughput(child: ChildProcess, port: number): Promise<{ rate: number; serverCpuPct: number }> {
  const run = (maxRequests: number, maxMs: number) =>
    new Promise<number>((resolve) => {
      let sent = 0;
      let done = 0;
      const start = performance.now();
      const clients: { send(): void; close(): void }[] = [];
      const finish = () => {
        for (const c of clients) c.close();
        resolve(done / ((performance.now() - start) / 1000));
      };
      for (let i = 0; i < 32; i++) {
        const client = rawClient(port, () => {
          done++;
          if (done === sent && (sent >= maxRequests || performance.now() - start >= maxMs)) finish();
          else if (sent < maxRequests && performance.now() - start < maxMs) {
            sent++;
            client.send();
          }
        });
        clients.push(client);
        sent++;
        client.send();
      }
    });
  await run(2_000, 3_000); // warm-up: JIT and connections
  const cpuBefore = await serverCpuMicros(child);
  const wallBefore = performance.now();
  const rate = await run(200_000, 8_000);
  // Whether the server's core was the limit, or the load generator's.
  const serverCpuPct = ((await serverCpuMicros(child)) - cpuBefore) / 10 / (performance.now() - wallBefore);
  return { rate, serverCpuPct };
}

async function sseLatency(child: ChildProcess, port: number): Promise<{ p50: number; p99: number }> {
  const clients = 100;
  const rounds = 50;
  const latencies: number[] = [];
  let sentAt = 0;
  let received = 0;
  let roundDone: () => void = () => {};
  const requests: http.ClientRequest[] = [];
  await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<void>((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: `/api/events?token=${TOKEN}`, agent: false }, (res) => {
            res.setEncoding('utf8');
            let connected = false;
            res.on('data', (chunk: string) => {
              if (!connected && chunk.includes('event: snapshot')) {
                connected = true;
                resolve();
              }
              if (chunk.includes('event: scores')) {
                latencies.push(performance.now() - sentAt);
                if (++received === clients) roundDone();
              }
            });
          });
          req.on('error', reject);
          requests.push(req);
        }),
    ),
  );
  const deadline = performance.now() + 30_000;
  for (let r = 0; r < rounds && performance.now() < deadline; r++) {
    received = 0;
    const done = new Promise<void>((resolve) => {
      roundDone = resolve;
    });
    sentAt = performance.now();
    child.send({ type: 'score' });
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  }
  for (const req of requests) req.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99) };
}

export async function run(): Promise<{ name: string; value: number; unit: string }[]> {
  const { child, port } = await startServer();
  try {
    const nodes = await nodesThroughput(child, port);
    const sse = await sseLatency(child, port);
    const ms = (v: number) => Math.round(v * 100) / 100;
    return [
      { name: 'api.nodes.req_per_s', value: Math.round(nodes.rate), unit: 'req/s' },
      { name: 'api.nodes.server_cpu_pct', value: Math.round(nodes.serverCpuPct), unit: '%' },
      { name: 'api.sse_100_clients.ms_p50', value: ms(sse.p50), unit: 'ms' },
      { name: 'api.sse_100_clients.ms_p99', value: ms(sse.p99), unit: 'ms' },
    ];
  } finally {
    child.send({ type: 'stop' });
    setTimeout(() => child.kill(), 3_000).unref();
  }
}

if (process.env.FORESIGHT_BENCH_API_ROLE === 'server') {
  void serve();
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.table(await run());
}
