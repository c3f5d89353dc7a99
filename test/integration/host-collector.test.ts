import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { HostCollector } from '../../src/ingest/host/collector.js';
import type { TelemetrySample } from '../../src/messages.js';

// Real prometheus-node-exporter (Debian) on 127.0.0.1:9100, started by scripts/services/node-exporter.sh (left running:
// the script is idempotent; `node-exporter.sh stop` stops it by PID file).
const URL_ = 'http://127.0.0.1:9100/metrics';

beforeAll(() => {
  execFileSync('bash', ['scripts/services/node-exporter.sh', 'start'], { stdio: 'inherit' });
});

describe('HostCollector against prometheus-node-exporter', () => {
  it('reads node-level memory, fds, and CPU as a rate over two scrapes', async () => {
    const samples: TelemetrySample[] = [];
    const c = new HostCollector({
      nodeId: 'ast1',
      url: URL_,
      profile: 'node-exporter',
      onSamples: (s) => samples.push(...s),
    });
    await c.scrapeOnce();
    // Burn some CPU so the rate has something to measure, then scrape again.
    const until = Date.now() + 300;
    while (Date.now() < until) Math.sqrt(Math.random());
    await c.scrapeOnce();
    const of = (m: string) => samples.filter((s) => s.metric === m).map((s) => s.value);
    expect(of('host.memory_rss_mb')).toHaveLength(2);
    expect(of('host.memory_rss_mb')[0]).toBeGreaterThan(1);
    expect(of('host.open_fds')[0]).toBeGreaterThan(0);
    expect(of('host.cpu_pct')).toHaveLength(1);
    expect(of('host.cpu_pct')[0]).toBeGreaterThan(0);
    expect(samples.every((s) => s.source === 'host' && s.nodeId === 'ast1')).toBe(true);
    expect(c.stats()).toMatchObject({ scrapes: 2, failures: 0 });
  });

  it("reads the exporter's own process metrics with the process profile", async () => {
    const c = new HostCollector({ nodeId: 'ast1', url: URL_, profile: 'process', onSamples: () => {} });
    const samples = await c.scrapeOnce();
    const rss = samples.find((s) => s.metric === 'host.memory_rss_mb')?.value ?? 0;
    expect(rss).toBeGreaterThan(1);
    expect(rss).toBeLessThan(1024);
  });

  it('counts a refused connection and a stalled endpoint (timeout) as failures', async () => {
    const closed = new HostCollector({ nodeId: 'ast1', url: 'http://127.0.0.1:9/metrics', onSamples: () => {} });
    expect(await closed.scrapeOnce()).toEqual([]);
    expect(closed.stats()).toMatchObject({ failures: 1, timeouts: 0 });

    // Accepts TCP and never answers: what a wedged exporter looks like.
    const sockets: net.Socket[] = [];
    const blackhole = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const { port } = blackhole.address() as net.AddressInfo;
    const stalled = new HostCollector({
      nodeId: 'ast1',
      url: `http://127.0.0.1:${port}/metrics`,
      timeoutMs: 200,
      onSamples: () => {},
    });
    expect(await stalled.scrapeOnce()).toEqual([]);
    expect(stalled.stats()).toMatchObject({ failures: 1, timeouts: 1 });
    for (const s of sockets) s.destroy();
    await new Promise((r) => blackhole.close(r));
  });
});
