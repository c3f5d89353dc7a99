import { type ChildProcess, fork } from 'node:child_process';
import http from 'node:http';
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
    cluster.applyFeatures([{ nodeId, setId: 1, windowStart: t0, windowEnd: t0 + 10_000, sampleCount: 50, observed: true, features }]);
    cluster.applyScores([benchScore(nodeId, t0 + 10_000, 0.1)]);
  }
  const fail = async () => {
    throw new Error('not used in the benchmark');
  };
  const app = buildApp(
    {
      cluster,
      actions: { drain: fail, undrain: fail, restart: fail, pin: fail, unpin: fail, verdict: fail },
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

async function nodesThroughput(child: ChildProcess, port: number): Promise<{ rate: number; serverCpuPct: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const get = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(
        { host: '127.0.0.1', port, path: '/api/nodes', agent, headers: { authorization: `Bearer ${TOKEN}` } },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.on('data', () => {});
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
    });
  const run = async (maxRequests: number, maxMs: number) => {
    let done = 0;
    const start = performance.now();
    const worker = async () => {
      while (done < maxRequests && performance.now() - start < maxMs) {
        await get();
        done++;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    return done / ((performance.now() - start) / 1000);
  };
  await run(2_000, 3_000); // warm-up: JIT and connections
  const cpuBefore = await serverCpuMicros(child);
  const wallBefore = performance.now();
  const rate = await run(100_000, 8_000);
  // Whether the server's core was the limit, or the load generator's.
  const serverCpuPct = ((await serverCpuMicros(child)) - cpuBefore) / 10 / (performance.now() - wallBefore);
  agent.destroy();
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
          const req = http.get(
            { host: '127.0.0.1', port, path: `/api/events?token=${TOKEN}`, agent: false },
            (res) => {
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
            },
          );
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
