import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HostCollector } from '../../src/ingest/host/collector.js';
import { profileMetrics, readHostMetrics } from '../../src/ingest/host/metrics.js';

// Shape of process-exporter output (ncabatoff/process-exporter README: namedprocess_namegroup_* families, one
// series per group and label); values illustrative.
const PROCESS_EXPORTER = `# HELP namedprocess_namegroup_cpu_seconds_total Cpu user usage in seconds
# TYPE namedprocess_namegroup_cpu_seconds_total counter
namedprocess_namegroup_cpu_seconds_total{groupname="asterisk",mode="system"} 120.5
namedprocess_namegroup_cpu_seconds_total{groupname="asterisk",mode="user"} 300.25
namedprocess_namegroup_cpu_seconds_total{groupname="kamailio",mode="user"} 999
# HELP namedprocess_namegroup_memory_bytes number of bytes of memory in use
# TYPE namedprocess_namegroup_memory_bytes gauge
namedprocess_namegroup_memory_bytes{groupname="asterisk",memtype="resident"} 4.194304e+08
namedprocess_namegroup_memory_bytes{groupname="asterisk",memtype="virtual"} 2.147483648e+09
# HELP namedprocess_namegroup_num_threads Number of threads
# TYPE namedprocess_namegroup_num_threads gauge
namedprocess_namegroup_num_threads{groupname="asterisk"} 87
# HELP namedprocess_namegroup_open_filedesc Number of open file descriptors for this group
# TYPE namedprocess_namegroup_open_filedesc gauge
namedprocess_namegroup_open_filedesc{groupname="asterisk"} 312
`;

const NODE_EXPORTER = `# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 672.8
node_cpu_seconds_total{cpu="0",mode="iowait"} 1.76
node_cpu_seconds_total{cpu="0",mode="system"} 36.25
node_cpu_seconds_total{cpu="0",mode="user"} 176.75
node_cpu_seconds_total{cpu="1",mode="idle"} 600
node_cpu_seconds_total{cpu="1",mode="user"} 10
# TYPE node_filefd_allocated gauge
node_filefd_allocated 2338
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 2.0e+09
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 3.0e+09
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 1e-05
go_gc_duration_seconds_sum 0.1
go_gc_duration_seconds_count 10
`;

describe('readHostMetrics', () => {
  it('reads the Asterisk group from process-exporter output', () => {
    expect(readHostMetrics(PROCESS_EXPORTER, profileMetrics('process-exporter'))).toEqual({
      rssBytes: 419430400,
      cpuSecondsTotal: 420.75,
      openFds: 312,
      threads: 87,
    });
  });

  it('honours another group name', () => {
    expect(readHostMetrics(PROCESS_EXPORTER, profileMetrics('process-exporter', 'kamailio'))).toEqual({
      cpuSecondsTotal: 999,
    });
  });

  it('reads node-level used memory, non-idle CPU over all CPUs and allocated fds from node_exporter', () => {
    expect(readHostMetrics(NODE_EXPORTER, profileMetrics('node-exporter'))).toEqual({
      rssBytes: 1e9,
      cpuSecondsTotal: 36.25 + 176.75 + 10,
      openFds: 2338,
    });
  });

  it('returns nothing for absent series and never returns non-finite values on random text', () => {
    expect(readHostMetrics('up 1\n', profileMetrics('process-exporter'))).toEqual({});
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        let readings = {};
        try {
          readings = readHostMetrics(text, profileMetrics('process'));
        } catch {
          return; // the parser rejects the text; the collector counts that as a failed scrape
        }
        for (const v of Object.values(readings)) expect(Number.isFinite(v)).toBe(true);
      }),
    );
  });
});

describe('HostCollector', () => {
  it('rejects an invalid URL at construction', () => {
    expect(() => new HostCollector({ nodeId: 'ast1', url: 'not a url', onSamples: () => {} })).toThrow(/invalid/);
  });

  it('maps a scrape to host samples (data: URL, no server involved)', async () => {
    const url = `data:text/plain,${encodeURIComponent(PROCESS_EXPORTER)}`;
    const got: unknown[] = [];
    const c = new HostCollector({ nodeId: 'ast1', url, onSamples: (s) => got.push(...s), clock: { now: () => 5000 } });
    const samples = await c.scrapeOnce();
    expect(samples).toEqual([
      { nodeId: 'ast1', ts: 5000, metric: 'host.memory_rss_mb', value: 400, source: 'host' },
      { nodeId: 'ast1', ts: 5000, metric: 'host.open_fds', value: 312, source: 'host' },
    ]);
    expect(got).toEqual(samples);
    expect(c.stats().last.threads).toBe(87);
  });
});
