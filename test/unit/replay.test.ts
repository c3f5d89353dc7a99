import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderReportHtml } from '../../src/eval/html.js';
import { readLabels } from '../../src/eval/labels.js';
import { recordSimulation } from '../../src/eval/record.js';
import { pipelineFromConfig, replayFile, settingsFromConfig } from '../../src/eval/replay.js';
import { REPORT_SCHEMA } from '../../src/eval/report.js';
import { newReadStats, readTelemetry } from '../../src/eval/telemetry-io.js';
import { enforceScoreContract } from '../../src/models/scorers/scorer.js';
import { StatScorer } from '../../src/models/scorers/stat-scorer.js';

const FIXTURE = 'test/fixtures/replay';

function replayFixture() {
  return replayFile({
    input: `${FIXTURE}/telemetry.jsonl.gz`,
    labels: `${FIXTURE}/labels.json`,
    scorer: enforceScoreContract(new StatScorer()),
    settings: settingsFromConfig(null),
    pipeline: pipelineFromConfig(null),
  });
}

describe('replay', () => {
  it('end to end: the recorded taskprocessor backlog is drained before its crash, unlike the reactive baseline', async () => {
    const report = await replayFixture();
    expect(report.schema).toBe(REPORT_SCHEMA);
    expect(report.input?.badLines).toBe(0);
    expect(report.span.nodes).toEqual(['ast1', 'ast2', 'ast3']);
    const incident = report.incidents[0]!;
    expect(incident).toMatchObject({ nodeId: 'ast2', mode: 'taskprocessor_backlog', censored: false });
    expect(incident.drainedAt).not.toBeNull();
    expect(incident.drainedAt!).toBeGreaterThanOrEqual(incident.onsetAt);
    expect(incident.leadS!).toBeGreaterThan(60);
    expect(report.model.recall).toBe(1);
    expect(report.baselines.reactive.recall).toBe(0);
    expect(report.baselines.reactive.callsSaved).toBe(0);
    expect(report.model.callsSaved).toBeGreaterThan(0);
    // The sweep runs from permissive to strict: recall can only fall, false drains can only fall.
    const sweep = report.sweep;
    for (let i = 1; i < sweep.length; i++) {
      expect(sweep[i]!.falseDrainsPer100NodeDays).toBeLessThanOrEqual(sweep[i - 1]!.falseDrainsPer100NodeDays + 1e-9);
    }
    const html = renderReportHtml(report);
    expect(html).toContain('<svg');
    expect(html).toContain('Risk over time — ast2');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('is deterministic: the same input gives the same report', async () => {
    const a = await replayFixture();
    const b = await replayFixture();
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it('replays batches from elsewhere (a Kafka range) exactly as the file they came from', async () => {
    const fromFile = await replayFixture();
    const samples = [];
    for await (const batch of readTelemetry(`${FIXTURE}/telemetry.jsonl.gz`, newReadStats())) samples.push(...batch);
    const fromSamples = await replayFile({
      input: 'kafka t.telemetry@0..1',
      batches: [samples.slice(0, 5000), samples.slice(5000)],
      labels: `${FIXTURE}/labels.json`,
      scorer: enforceScoreContract(new StatScorer()),
      settings: settingsFromConfig(null),
      pipeline: pipelineFromConfig(null),
    });
    expect(fromSamples.input?.samples).toBe(fromFile.input?.samples);
    expect(fromSamples.input?.telemetry).toBe('kafka t.telemetry@0..1');
    expect(fromSamples.incidents).toEqual(fromFile.incidents);
    expect(fromSamples.model).toEqual(fromFile.model);
    expect(fromSamples.series).toEqual(fromFile.series);
  });

  it('simulate records every sample and the labels; the recording reads back whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'foresight-sim-'));
    const out = join(dir, 't.jsonl.gz');
    const labelsPath = join(dir, 'l.json');
    const result = await recordSimulation({
      seed: 3,
      durationMs: 20 * 60_000,
      nodes: 2,
      incidentsPerNodeDay: 0,
      incidents: [{ nodeId: 'ast1', mode: 'sudden_crash', onsetAt: Date.UTC(2024, 0, 1, 0, 10) }],
      out,
      labels: labelsPath,
    });
    const stats = newReadStats();
    let n = 0;
    for await (const batch of readTelemetry(out, stats)) n += batch.length;
    expect(n).toBe(result.samples);
    expect(stats.badLines).toBe(0);
    expect(await readLabels(labelsPath)).toEqual(result.labels);
    expect(JSON.parse(readFileSync(labelsPath, 'utf8'))[0]).toMatchObject({ mode: 'sudden_crash', predictable: false });
  });
});
