import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INFLUX_SCHEMA } from '../../src/exporters/influx-schema.js';

// The shipped dashboard may only query what InfluxExporter writes: measurements, tags and fields come from the
// exporter's own schema table, so renaming a field there fails here instead of leaving an empty panel in production.
const PATH = new URL('../../deploy/grafana/foresight-influxdb.json', import.meta.url);

interface Target {
  refId?: string;
  query?: string;
  rawQuery?: boolean;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; datasource?: unknown }[] };
  annotations: { list: { name: string; builtIn?: number; query?: string; datasource?: { uid?: string } }[] };
}

const dashboard = JSON.parse(readFileSync(PATH, 'utf8')) as Dashboard;
const DS_VAR = 'DS_INFLUXDB';
const DS_REF = `\${${DS_VAR}}`;

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

const schemaByMeasurement = new Map<string, Set<string>>(
  Object.values(INFLUX_SCHEMA).map((s) => [s.measurement, new Set<string>([...s.tags, ...s.fields])]),
);

/** Every InfluxQL statement in the dashboard, with where it came from. */
function queries(): { where: string; query: string }[] {
  const out: { where: string; query: string }[] = [];
  for (const p of allPanels(dashboard.panels)) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, query: t.query ?? '' });
  }
  for (const a of dashboard.annotations.list) {
    if (!a.builtIn) out.push({ where: `annotation "${a.name}"`, query: a.query ?? '' });
  }
  for (const v of dashboard.templating.list) {
    if (v.type === 'query') out.push({ where: `variable $${v.name}`, query: String(v.query ?? '') });
  }
  return out;
}

/**
 * The measurement a statement reads and the identifiers it names. InfluxQL quotes identifiers in double quotes;
 * regex literals (/.../), $variables and Grafana macros are not identifiers, so they are stripped first.
 */
function identifiers(query: string): { measurements: string[]; names: string[] } {
  const stripped = query.replace(/\/(?:[^/\\]|\\.)*\//g, '//');
  const measurements = [...stripped.matchAll(/\bFROM\s+"([^"]+)"/gi)].map((m) => m[1]!);
  const names = [...stripped.matchAll(/"([^"]+)"/g)].map((m) => m[1]!).filter((n) => !measurements.includes(n));
  return { measurements, names };
}

describe('deploy/grafana/foresight-influxdb.json', () => {
  it('is a dashboard with a uid, a title and panels', () => {
    expect(dashboard.uid).toBeTruthy();
    expect(dashboard.title).toBeTruthy();
    expect(allPanels(dashboard.panels).length).toBeGreaterThan(5);
  });

  it('defines the InfluxDB datasource variable, and every panel, target and annotation uses it', () => {
    const ds = dashboard.templating.list.find((v) => v.name === DS_VAR);
    expect(ds).toMatchObject({ type: 'datasource', query: 'influxdb' });
    for (const p of allPanels(dashboard.panels).filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid, `panel "${p.title}"`).toBe(DS_REF);
      expect(p.targets?.length, `panel "${p.title}" has no query`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid, `panel "${p.title}" ${t.refId}`).toBe(DS_REF);
        expect(t.rawQuery).toBe(true);
      }
    }
    for (const a of dashboard.annotations.list.filter((x) => !x.builtIn)) {
      expect(a.datasource?.uid, `annotation "${a.name}"`).toBe(DS_REF);
    }
  });

  it('has unique panel ids', () => {
    const ids = allPanels(dashboard.panels).map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('queries only measurements, tags and fields the exporter writes', () => {
    const qs = queries();
    expect(qs.length).toBeGreaterThan(0);
    for (const { where, query } of qs) {
      const { measurements, names } = identifiers(query);
      expect(measurements.length, `${where}: no FROM "<measurement>" in ${query}`).toBe(1);
      const known = schemaByMeasurement.get(measurements[0]!);
      expect(known, `${where}: unknown measurement ${measurements[0]}`).toBeDefined();
      for (const n of names) expect(known!.has(n), `${where}: "${n}" is not written to ${measurements[0]}`).toBe(true);
    }
  });

  it('shows risk with a threshold, active calls, and drains as annotations', () => {
    const panels = allPanels(dashboard.panels);
    const uses = (p: Panel, measurement: string, field: string) =>
      (p.targets ?? []).some((t) => t.query?.includes(`FROM "${measurement}"`) && t.query.includes(`"${field}"`));
    const risk = panels.find((p) => uses(p, INFLUX_SCHEMA.scores.measurement, 'risk')) as
      | (Panel & { fieldConfig?: { defaults?: { thresholds?: { steps?: { value: number | null }[] } } } })
      | undefined;
    expect(risk).toBeDefined();
    const steps = risk?.fieldConfig?.defaults?.thresholds?.steps ?? [];
    expect(steps.some((s) => typeof s.value === 'number' && s.value > 0 && s.value < 1)).toBe(true);
    expect(panels.some((p) => uses(p, INFLUX_SCHEMA.scores.measurement, 'active_calls'))).toBe(true);
    expect(panels.some((p) => uses(p, INFLUX_SCHEMA.features.measurement, 'host.memory_rss_mb.last'))).toBe(true);
    const drains = dashboard.annotations.list.filter(
      (a) => a.query?.includes(`FROM "${INFLUX_SCHEMA.actions.measurement}"`) && /Drain/.test(a.query),
    );
    expect(drains.length).toBeGreaterThan(0);
  });

  it('catches a query naming a field the exporter does not write', () => {
    // Guards the checker itself: a misspelt field must be reported.
    const { measurements, names } = identifiers('SELECT mean("rsik") FROM "foresight_scores" WHERE "node" =~ /^"x"$/');
    expect(measurements).toEqual(['foresight_scores']);
    expect(names).toEqual(['rsik', 'node']);
    expect(schemaByMeasurement.get('foresight_scores')!.has('rsik')).toBe(false);
  });
});
