/** The replay report as one self-contained HTML page (inline SVG, no script, no external resource). */
import { type DetectorSummary, modeClass } from './metrics.js';
import type { ReplayReport } from './report.js';
import { barChart, escapeXml, lineChart, type Span } from './svg.js';

const MODE_COLOR: Record<string, string> = {
  memory_leak: 'rgba(230,120,30,0.25)',
  taskprocessor_backlog: 'rgba(200,60,160,0.25)',
  db_degradation: 'rgba(60,140,220,0.25)',
  retransmission_storm: 'rgba(40,170,120,0.25)',
  sudden_crash: 'rgba(120,120,120,0.5)',
};

function hhmm(ts: number): string {
  return new Date(ts).toISOString().slice(5, 16).replace('T', ' ');
}

function pct(x: number | null): string {
  return x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`;
}

function secs(x: number | null): string {
  return x === null ? 'n/a' : `${Math.round(x)} s`;
}

function detectorRow(d: DetectorSummary): string {
  const cells = [
    d.name,
    pct(d.recall),
    `${d.detected}/${d.predictableIncidents}`,
    pct(d.precision),
    String(d.falseDrains),
    d.falseDrainsPer100NodeDays.toFixed(2),
    secs(d.lead.medianS),
    secs(d.leadSlow.medianS),
    secs(d.leadFast.medianS),
    `${d.callsSaved.toFixed(0)} / ${d.callsAtRisk.toFixed(0)}`,
  ];
  return `<tr>${cells.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`;
}

export function renderReportHtml(r: ReplayReport): string {
  const sections: string[] = [];
  const detectors = [r.model, r.baselines.fixedThreshold, r.baselines.reactive].filter(
    (d): d is DetectorSummary => d !== null,
  );
  sections.push(`<table><tr><th>detector</th><th>recall</th><th>detected</th><th>precision</th><th>false drains</th>
<th>per 100 node-days</th><th>median lead</th><th>slow</th><th>fast</th><th>calls saved / at risk</th></tr>
${detectors.map(detectorRow).join('\n')}</table>`);

  if (r.series) {
    for (const n of r.series.nodes) {
      const incidents = r.incidents.filter((i) => i.nodeId === n.nodeId);
      const spans: Span[] = incidents.map((i) => ({
        x0: i.mode === 'sudden_crash' ? i.crashAt - r.series!.stepMs : i.onsetAt,
        x1: i.crashAt,
        color: MODE_COLOR[i.mode] ?? 'rgba(0,0,0,0.2)',
        label: `${i.mode} ${hhmm(i.onsetAt)} → crash ${hhmm(i.crashAt)}`,
      }));
      const marks = [
        ...incidents.map((i) => ({ x: i.crashAt, color: '#c00', label: `crash (${i.mode}) ${hhmm(i.crashAt)}` })),
        ...r.falseDrains
          .filter((d) => d.nodeId === n.nodeId)
          .map((d) => ({ x: d.ts, color: '#f90', label: `false drain ${hhmm(d.ts)}` })),
        ...incidents
          .filter((i) => i.drainedAt !== null)
          .map((i) => ({ x: i.drainedAt!, color: '#080', label: `drain, lead ${secs(i.leadS)}` })),
      ];
      sections.push(
        lineChart(
          [{ name: `${n.nodeId} risk (max per ${r.series.stepMs / 1000} s)`, xs: n.ts, ys: n.risk, color: '#1f4e9c' }],
          {
            title: `Risk over time — ${n.nodeId} (shaded: incident precursor; red: crash; green: drain; orange: false drain)`,
            yMin: 0,
            yMax: 1,
            spans,
            marks,
            hline: { y: r.settings.threshold, color: '#888', label: `threshold ${r.settings.threshold}` },
            xLabel: hhmm,
          },
        ),
      );
    }
  }

  const leads = r.incidents.filter((i) => i.leadS !== null && !i.censored);
  const edges = [0, 30, 60, 120, 300, 600, 1200, 2400, 3600, Number.POSITIVE_INFINITY];
  const bins = edges.slice(0, -1).map((lo, k) => {
    const hi = edges[k + 1]!;
    const label =
      hi === Number.POSITIVE_INFINITY ? `≥${lo / 60}m` : lo < 60 ? `${lo}-${hi}s` : `${lo / 60}-${hi / 60}m`;
    return {
      label,
      value: leads.filter((i) => i.leadS! >= lo && i.leadS! < hi).length,
    };
  });
  sections.push(barChart(bins, { title: 'Lead time distribution (detected incidents)', width: 700 }));
  const cls = (c: string) => leads.filter((i) => modeClass(i.mode) === c).length;
  sections.push(`<p>Detected slow incidents: ${cls('slow')}, fast: ${cls('fast')}.</p>`);

  const sw = r.sweep;
  sections.push(
    lineChart(
      [
        { name: 'recall', xs: sw.map((s) => s.threshold), ys: sw.map((s) => s.recall ?? 0), color: '#1f4e9c' },
        { name: 'precision', xs: sw.map((s) => s.threshold), ys: sw.map((s) => s.precision ?? 0), color: '#c0392b' },
      ],
      {
        title: 'Precision and recall against the risk threshold',
        yMin: 0,
        yMax: 1,
        width: 700,
        xLabel: (x) => x.toFixed(2),
        marks: [{ x: r.settings.threshold, color: '#888', label: `chosen ${r.settings.threshold}` }],
      },
    ),
  );
  sections.push(`<table><tr><th>threshold</th><th>recall</th><th>precision</th><th>false drains /100 node-days</th>
<th>median lead</th><th>slow</th><th>fast</th><th>drains</th><th>calls saved</th></tr>
${sw
  .map(
    (s) =>
      `<tr><td>${s.threshold}</td><td>${pct(s.recall)}</td><td>${pct(s.precision)}</td><td>${s.falseDrainsPer100NodeDays.toFixed(2)}</td><td>${secs(s.medianLeadS)}</td><td>${secs(s.medianLeadSlowS)}</td><td>${secs(s.medianLeadFastS)}</td><td>${s.drains}</td><td>${s.callsSaved.toFixed(0)}</td></tr>`,
  )
  .join('\n')}</table>`);

  sections.push(`<h2>Incidents</h2><table><tr><th>node</th><th>mode</th><th>onset</th><th>crash</th><th>drained</th>
<th>lead</th><th>active at crash</th><th>calls saved</th></tr>
${r.incidents
  .map(
    (i) =>
      `<tr><td>${escapeXml(i.nodeId)}</td><td>${i.mode}${i.predictable ? '' : ' (unpredictable)'}${i.censored ? ' (after end)' : ''}</td><td>${hhmm(i.onsetAt)}</td><td>${hhmm(i.crashAt)}</td><td>${i.drainedAt === null ? '—' : hhmm(i.drainedAt)}</td><td>${secs(i.leadS)}</td><td>${i.activeAtCrash}</td><td>${i.callsSaved}</td></tr>`,
  )
  .join('\n')}</table>`);

  const bad = r.input && r.input.badLines > 0 ? `<p>Bad input lines skipped: ${r.input.badLines}.</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Foresight replay report — ${escapeXml(r.scorer)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}svg{display:block;margin:12px 0}
.t{font:bold 13px system-ui,sans-serif}.a{font:11px system-ui,sans-serif;fill:#555}.g{stroke:#eee}
</style></head><body>
<h1>Foresight replay report</h1>
<p>Scorer <b>${escapeXml(r.scorer)}</b>, threshold ${r.settings.threshold}, ${r.settings.hysteresisWindows} windows of
${r.settings.windowMs / 1000} s; ${r.span.nodes.length} nodes, ${r.span.nodeDays.toFixed(2)} node-days
${r.span.startTs !== null ? `from ${hhmm(r.span.startTs)} to ${hhmm(r.span.endTs!)}` : ''}.
Unpredictable (sudden) crashes: ${r.unpredictable.incidents} (${r.unpredictable.callsDropped} calls dropped);
censored: ${r.censored}. Mean call duration used for the calls estimate: ${r.settings.meanCallS} s.</p>
${bad}
${sections.join('\n')}
</body></html>
`;
}
