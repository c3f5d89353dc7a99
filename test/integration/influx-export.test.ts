import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfluxExporter, type InfluxExporterOptions } from '../../src/exporters/influx.js';
import type { AuditRecord, FeatureVector, NodeScore } from '../../src/messages.js';

// Real victoria-metrics (Debian) on 127.0.0.1:8428, started by scripts/services/victoria-metrics.sh (idempotent; left
// running). It accepts the InfluxDB v2 write API and names each series `<measurement>_<field>`.
const VM = 'http://127.0.0.1:8428';
// Node names unique to this run, so points from earlier runs (VM keeps its data under var/) never match.
const RUN = `it${Date.now().toString(36)}`;

interface ExportedSeries {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

async function exportSeries(selector: string): Promise<ExportedSeries[]> {
  // Makes just-written points searchable now instead of after VM's periodic flush.
  await fetch(`${VM}/internal/force_flush`);
  const res = await fetch(`${VM}/api/v1/export?${new URLSearchParams({ 'match[]': selector })}`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as ExportedSeries);
}

/** Polls until `ok` holds for the exported series (VM makes fresh points searchable within about a second). */
async function waitForSeries(
  selector: string,
  ok: (s: ExportedSeries[]) => boolean,
  timeoutMs = 15_000,
): Promise<ExportedSeries[]> {
  const until = Date.now() + timeoutMs;
  let last: ExportedSeries[] = [];
  while (Date.now() < until) {
    last = await exportSeries(selector);
    if (ok(last)) return last;
    await sleep(250);
  }
  return last;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}

/** A TCP forwarder to VM that can be shut and reopened on the same port: the target going down and coming back. */
class Gate {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  async open(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(8428, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async shut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

function score(nodeId: string, ts: number, risk: number, extra: Partial<NodeScore> = {}): NodeScore {
  return {
    nodeId,
    setId: 1,
    ts,
    risk,
    timeToFailureS: 300,
    explanation: [],
    scorer: 'stat-v1',
    observed: true,
    activeCalls: 12,
    activeCallsSource: 'ami',
    evidence: { calls: { count: 12, source: 'ami' }, upReported: true, probe: null },
    up: true,
    ...extra,
  };
}

function exporter(url: string, over: Partial<InfluxExporterOptions> = {}): InfluxExporter {
  return new InfluxExporter({
    url,
    org: 'foresight',
    bucket: 'foresight',
    maxBufferLines: 10_000,
    flushIntervalMs: 100,
    minRetryDelayMs: 50,
    maxRetryDelayMs: 200,
    ...over,
  });
}

const exporters: InfluxExporter[] = [];
function track(e: InfluxExporter): InfluxExporter {
  exporters.push(e);
  return e;
}

beforeAll(() => {
  execFileSync('bash', ['scripts/services/victoria-metrics.sh', 'start'], { stdio: 'inherit' });
});

afterAll(async () => {
  await Promise.all(exporters.map((e) => e.close(500)));
});

describe('InfluxExporter against victoria-metrics (InfluxDB v2 write API)', () => {
  it('writes scores, features and actions that read back with their values and tags', async () => {
    const node = `${RUN}-a`;
    const t0 = Date.now() - 60_000;
    const ex = track(exporter(VM));
    ex.exportScores(score(node, t0, 0.25));
    ex.exportScores(score(node, t0 + 10_000, 0.91, { timeToFailureS: null, activeCalls: 3, up: false, setId: 2 }));
    const vector: FeatureVector = {
      nodeId: node,
      setId: 1,
      windowStart: t0 - 10_000,
      windowEnd: t0,
      sampleCount: 40,
      observed: true,

      features: { 'host.memory_rss_mb.last': 512.5, 'z.peer.invite_setup_p95': -1.25, 'calls.fail_ratio': Number.NaN },

      evidence: { calls: null, upReported: null, probe: null },
    };
    ex.exportFeatures(vector);
    const audit: AuditRecord = {
      seq: 42,
      ts: t0 + 10_500,
      nodeId: node,
      kind: 'DrainStarting',
      actor: 'alice smith',
      reason: 'risk 0.91 above 0.8, "really"',
      decisionId: 'd1',
      dryRun: true,
      details: {},
    };
    ex.exportAudit(audit);
    const stats = await ex.close(5000);
    expect(stats).toMatchObject({ written: 4, dropped: 0, buffered: 0, failedWrites: 0, invalid: 0 });

    const series = await waitForSeries(`{node="${node}"}`, (s) => s.length >= 10);
    const byName = (name: string, labels: Record<string, string> = {}) =>
      series.filter((s) => s.metric.__name__ === name && Object.entries(labels).every(([k, v]) => s.metric[k] === v));

    const risk = byName('foresight_scores_risk');
    expect(risk.map((s) => s.metric.set).sort()).toEqual(['1', '2']);
    const risk1 = byName('foresight_scores_risk', { set: '1', scorer: 'stat-v1' })[0]!;
    expect(risk1.values).toEqual([0.25]);
    expect(risk1.timestamps).toEqual([t0]);
    const risk2 = byName('foresight_scores_risk', { set: '2' })[0]!;
    expect(risk2.values).toEqual([0.91]);
    expect(risk2.timestamps).toEqual([t0 + 10_000]);
    // time_to_failure_s is omitted, not written as 0, when the scorer has no estimate.
    expect(byName('foresight_scores_time_to_failure_s').map((s) => [s.metric.set, s.values])).toEqual([['1', [300]]]);
    expect(byName('foresight_scores_up', { set: '2' })[0]!.values).toEqual([0]);
    expect(byName('foresight_scores_up', { set: '1' })[0]!.values).toEqual([1]);
    expect(byName('foresight_scores_active_calls', { set: '2' })[0]!.values).toEqual([3]);
    expect(byName('foresight_scores_observed', { set: '1' })[0]!.values).toEqual([1]);

    const mem = byName('foresight_features_host.memory_rss_mb.last', { set: '1' })[0]!;
    expect(mem.values).toEqual([512.5]);
    expect(mem.timestamps).toEqual([t0]);
    expect(byName('foresight_features_z.peer.invite_setup_p95')[0]!.values).toEqual([-1.25]);
    // A non-finite feature is left out rather than failing the whole point.
    expect(byName('foresight_features_calls.fail_ratio')).toHaveLength(0);

    const seq = byName('foresight_actions_seq')[0]!;
    expect(seq.metric).toMatchObject({ kind: 'DrainStarting', actor: 'alice smith', dry_run: 'true' });
    expect(seq.values).toEqual([42]);
    expect(seq.timestamps).toEqual([t0 + 10_500]);
    // VM has no string fields: it accepted the line and stores the reason as 0; InfluxDB keeps the text.
    expect(byName('foresight_actions_reason')).toHaveLength(1);
  });

  it('keeps a bounded buffer while the target is down, never blocks the caller, and resumes when it is back', async () => {
    const node = `${RUN}-b`;
    const gate = new Gate();
    await gate.open();
    const maxBufferLines = 1000;
    const ex = track(exporter(`http://127.0.0.1:${gate.port}`, { maxBufferLines, batchSize: 100 }));
    await gate.shut();

    const t0 = Date.now() - 3_600_000;
    const total = 5000;
    let maxBuffered = 0;
    const started = Date.now();
    for (let i = 0; i < total; i++) {
      const returned: unknown = ex.exportScores(score(node, t0 + i * 100, (i % 100) / 100));
      expect(returned).toBeUndefined(); // nothing to await: the network never sits on the caller's path
      maxBuffered = Math.max(maxBuffered, ex.stats().buffered);
    }
    const elapsed = Date.now() - started;
    // Generous bound: 5000 exports against a dead target must not wait on connection attempts or retries.
    expect(elapsed).toBeLessThan(2000);
    expect(maxBuffered).toBeLessThanOrEqual(maxBufferLines);

    await waitFor(() => ex.stats().failedWrites >= 2);
    const down = ex.stats();
    expect(down.buffered).toBeLessThanOrEqual(maxBufferLines);
    expect(down.dropped).toBeGreaterThanOrEqual(total - maxBufferLines);
    expect(down.written).toBe(0);
    expect(down.dropped + down.buffered).toBe(total);

    // Back up: the retry loop empties the buffer into VM.
    await gate.open();
    await waitFor(() => ex.stats().buffered === 0 && ex.stats().written > 0);
    const up = ex.stats();
    expect(up.written + up.dropped).toBe(total);
    expect(up.written).toBe(total - down.dropped);

    // New points after the outage go straight through.
    ex.exportScores(score(node, t0 + total * 100, 0.5));
    await waitFor(() => ex.stats().written === up.written + 1);

    // The newest points survived, the oldest were the ones dropped.
    const series = await waitForSeries(
      `foresight_scores_risk{node="${node}"}`,
      (s) => (s[0]?.timestamps.length ?? 0) >= up.written + 1,
    );
    const ts = series[0]!.timestamps;
    expect(ts).toHaveLength(up.written + 1);
    expect(Math.min(...ts)).toBe(t0 + down.dropped * 100);
    expect(Math.max(...ts)).toBe(t0 + total * 100);
    await gate.shut();
  });

  it('bounds memory and returns from close() when the target accepts connections but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const hung = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    const port = (hung.address() as net.AddressInfo).port;
    try {
      const ex = exporter(`http://127.0.0.1:${port}`, { maxBufferLines: 500, batchSize: 50, requestTimeoutMs: 300 });
      for (let i = 0; i < 3000; i++) {
        ex.exportScores(score(`${RUN}-c`, Date.now(), 0.1));
        expect(ex.stats().buffered).toBeLessThanOrEqual(500);
      }
      await waitFor(() => ex.stats().failedWrites >= 1);
      // One request at a time: a hung server never collects parallel batches.
      expect(sockets.size).toBeLessThanOrEqual(2);
      const stats = await ex.close(200);
      expect(stats.buffered).toBe(0);
      expect(stats.written).toBe(0);
      expect(stats.dropped).toBe(3000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => hung.close(() => r()));
    }
  });
});
