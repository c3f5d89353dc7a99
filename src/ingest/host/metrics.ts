import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';

/** Series of one metric whose labels match: `labels` exact, `excludeLabels` values rejected. Matching series are summed. */
export interface SeriesSelector {
  name: string;
  labels?: Record<string, string>;
  excludeLabels?: Record<string, readonly string[]>;
}

/** A value read as the sum of `add` series minus the sum of `subtract` series. */
export interface HostMetricSource {
  add: SeriesSelector;
  subtract?: SeriesSelector;
}

/** Where each host reading comes from in the scraped text. A missing entry is not read. */
export interface HostMetricMap {
  rssBytes?: HostMetricSource;
  /** A counter of CPU seconds; the collector turns it into a rate. */
  cpuSecondsTotal?: HostMetricSource;
  openFds?: HostMetricSource;
  threads?: HostMetricSource;
}

export type HostProfile = 'process-exporter' | 'node-exporter' | 'process';

/**
 * Presets.
 * - `process-exporter`: ncabatoff/process-exporter `namedprocess_namegroup_*` series of one group (the Asterisk process).
 * - `node-exporter`: node-level readings (node_exporter has no per-process metrics): used memory
 *   (MemTotal − MemAvailable), CPU of every non-idle mode summed over CPUs, allocated file handles.
 * - `process`: the standard client `process_*` series of the scraped process itself.
 */
export function profileMetrics(profile: HostProfile, processGroup = 'asterisk'): HostMetricMap {
  switch (profile) {
    case 'process-exporter': {
      const group = { groupname: processGroup };
      return {
        rssBytes: { add: { name: 'namedprocess_namegroup_memory_bytes', labels: { ...group, memtype: 'resident' } } },
        cpuSecondsTotal: { add: { name: 'namedprocess_namegroup_cpu_seconds_total', labels: group } },
        openFds: { add: { name: 'namedprocess_namegroup_open_filedesc', labels: group } },
        threads: { add: { name: 'namedprocess_namegroup_num_threads', labels: group } },
      };
    }
    case 'node-exporter':
      return {
        rssBytes: { add: { name: 'node_memory_MemTotal_bytes' }, subtract: { name: 'node_memory_MemAvailable_bytes' } },
        cpuSecondsTotal: { add: { name: 'node_cpu_seconds_total', excludeLabels: { mode: ['idle', 'iowait'] } } },
        openFds: { add: { name: 'node_filefd_allocated' } },
      };
    case 'process':
      return {
        rssBytes: { add: { name: 'process_resident_memory_bytes' } },
        cpuSecondsTotal: { add: { name: 'process_cpu_seconds_total' } },
        openFds: { add: { name: 'process_open_fds' } },
      };
  }
}

export interface HostReadings {
  rssBytes?: number;
  cpuSecondsTotal?: number;
  openFds?: number;
  threads?: number;
}

/** Parses Prometheus text and reads the mapped values. Throws on text the parser rejects. */
export function readHostMetrics(text: string, map: HostMetricMap): HostReadings {
  const families = new Map<string, PrometheusFamily>();
  for (const family of parsePrometheusTextFormat(text)) families.set(family.name, family);
  const out: HostReadings = {};
  for (const key of ['rssBytes', 'cpuSecondsTotal', 'openFds', 'threads'] as const) {
    const source = map[key];
    if (!source) continue;
    const add = sumSeries(families, source.add);
    if (add === null) continue;
    const sub = source.subtract ? sumSeries(families, source.subtract) : 0;
    if (sub === null) continue;
    out[key] = add - sub;
  }
  return out;
}

function sumSeries(families: Map<string, PrometheusFamily>, sel: SeriesSelector): number | null {
  const family = families.get(sel.name);
  if (!family) return null;
  let sum = 0;
  let matched = false;
  for (const sample of family.metrics) {
    if (sample.value === undefined) continue;
    const labels = sample.labels ?? {};
    if (sel.labels && !Object.entries(sel.labels).every(([k, v]) => labels[k] === v)) continue;
    if (sel.excludeLabels && Object.entries(sel.excludeLabels).some(([k, vs]) => vs.includes(labels[k] ?? '')))
      continue;
    const value = Number(sample.value);
    if (!Number.isFinite(value)) continue;
    sum += value;
    matched = true;
  }
  return matched ? sum : null;
}
