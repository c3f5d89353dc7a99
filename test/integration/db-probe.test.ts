import { afterEach, describe, expect, it } from 'vitest';
import { DbCollector, DbProber } from '../../src/ingest/db/collector.js';
import type { DbKind, DbProbeTarget } from '../../src/ingest/db/probe.js';
import type { TelemetrySample } from '../../src/messages.js';

// The machine's shared servers: PostgreSQL (trust auth) and MariaDB (root, empty password), database `test`.
const URLS: Record<DbKind, string> = {
  postgres: 'postgres://postgres@127.0.0.1:5432/test',
  mysql: 'mysql://root@127.0.0.1:3306/test',
};
const SLEEP: Record<DbKind, (s: number) => string> = {
  postgres: (s) => `SELECT pg_sleep(${s})`,
  mysql: (s) => `SELECT SLEEP(${s})`,
};
// Nothing listens here: stands for a stopped server without stopping the shared ones.
const DOWN_PORT = 5999;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
});

function prober(t: Omit<DbProbeTarget, 'nodeId'>): DbProber {
  const p = new DbProber({ nodeId: 'ast1', ...t });
  open.push(p);
  return p;
}

describe.each(['postgres', 'mysql'] as const)('%s probe', (kind) => {
  it('measures connect, SELECT 1 and the representative query on a healthy server', async () => {
    const r = await prober({ kind, url: URLS[kind], query: SLEEP[kind](0) }).probe();
    expect(r.connect.ok && r.select1.ok && r.query.ok).toBe(true);
    expect(r.up).toBe(true);
    console.log(kind, 'healthy ms', r.connect.ms.toFixed(1), r.select1.ms.toFixed(1), r.query.ms.toFixed(1));
  });

  it('shows latency rising with a slow query, and a timeout as a failure', async () => {
    const slow = await prober({ kind, url: URLS[kind], query: SLEEP[kind](0.4), timeoutMs: 3000 }).probe();
    expect(slow.query.ok).toBe(true);
    expect(slow.query.ms).toBeGreaterThanOrEqual(380);
    expect(slow.select1.ms).toBeLessThan(slow.query.ms);

    const p = prober({ kind, url: URLS[kind], query: SLEEP[kind](3), timeoutMs: 500 });
    const timedOut = await p.probe();
    expect(timedOut.query).toMatchObject({ ok: false, timedOut: true });
    expect(timedOut.query.ms).toBeLessThan(1500);
    expect(timedOut.select1.ok).toBe(true);
    // The timed-out connection was discarded: the pool still answers.
    const again = await p.probe();
    expect(again.select1.ok).toBe(true);
  });

  it('makes pool saturation visible as waiting probes', async () => {
    const p = prober({ kind, url: URLS[kind], query: SLEEP[kind](0.5), timeoutMs: 3000, poolSize: 1 });
    const runs = [p.representativeQuery(), p.representativeQuery(), p.representativeQuery()];
    await new Promise((r) => setTimeout(r, 150));
    const during = p.poolStats();
    const results = await Promise.all(runs);
    expect(during).toMatchObject({ size: 1, inUse: 1, waiting: 2 });
    expect(results.every((r) => r.ok)).toBe(true);
    expect(p.poolStats().waiting).toBe(0);
  });

  it('reports a stopped server as down through the collector, without throwing', async () => {
    const got: TelemetrySample[] = [];
    const c = new DbCollector({
      targets: [
        {
          nodeId: 'down',
          kind,
          url: URLS[kind].replace(/:\d+\//, `:${DOWN_PORT}/`),
          timeoutMs: 1000,
          password: 'hunter2',
        },
        { nodeId: 'up', kind, url: URLS[kind] },
      ],
      sink: (s) => void got.push(...s),
    });
    open.push({ close: () => c.stop() });
    const results = await c.probeAll();
    const down = results.find((r) => r.nodeId === 'down');
    expect(down?.up).toBe(false);
    expect(down?.connect.error).toMatch(/ECONNREFUSED/);
    expect(JSON.stringify(results)).not.toContain('hunter2');
    expect(got.find((s) => s.nodeId === 'down' && s.metric === 'db.probe_failures')?.value).toBe(3);
    expect(got.find((s) => s.nodeId === 'up' && s.metric === 'db.probe_failures')?.value).toBe(0);
    expect(got.filter((s) => s.nodeId === 'up' && s.metric === 'db.query_ms')).toHaveLength(3);
  });
});
