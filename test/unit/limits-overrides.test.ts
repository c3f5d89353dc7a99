/**
 * Per-set and per-node limits (model.limits.sets / .nodes) over the cluster-wide model.limits: a node's override
 * changes that node's forecasts, risk and drain, and nothing of its neighbours'.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { slopeFeature } from '../../src/features/names.js';
import { silentLogger } from '../../src/log.js';
import type { FeatureVector, NodeScore } from '../../src/messages.js';
import { loadModelArtefact } from '../../src/models/artefact/format.js';
import { createScorerWithInfo } from '../../src/models/scorers/factory.js';
import { NodeLimits } from '../../src/models/scorers/limits.js';
import { TfjsScorer } from '../../src/models/scorers/tfjs-scorer.js';
import { DEFAULT_TREND_LIMITS } from '../../src/models/scorers/trend.js';
import { harness, makeNodes, STEP, T0 } from '../helpers/action-harness.js';

const NODES = [1, 2, 3, 4, 5, 6].map((i) => ({
  id: `ast${i}`,
  setId: i <= 3 ? 1 : 2,
  uri: `sip:127.0.0.1:${5070 + i}`,
}));

function sidecar(limits: Record<string, unknown>) {
  return parseConfig({
    mode: 'sidecar',
    nodes: NODES,
    model: { limits },
    actions: { dispatcher: { kind: 'simulated' } },
  });
}

/** Every node leaks alike: RSS 1500 MiB and growing 12 MiB/min. Only where the memory runs out differs. */
function windowOf(w: number): FeatureVector[] {
  const ts = T0 + (w + 1) * STEP;
  return NODES.map((n) => ({
    nodeId: n.id,
    setId: n.setId,
    windowStart: ts - STEP,
    windowEnd: ts,
    sampleCount: 10,
    observed: true,
    features: { 'host.memory_rss_mb.last': 1500 + w, [slopeFeature('memory_rss_mb')]: 12, 'node.up.last': 1 },
    evidence: { calls: null, upReported: true, probe: null },
  }));
}

async function scoresWith(limits: Record<string, unknown>, windows = 10): Promise<NodeScore[][]> {
  const { scorer } = await createScorerWithInfo(sidecar(limits), silentLogger());
  const out: NodeScore[][] = [];
  for (let w = 0; w < windows; w++) out.push(await scorer.score(windowOf(w)));
  return out;
}

const byNode = (scores: NodeScore[]) => new Map(scores.map((s) => [s.nodeId, s]));

describe('limits per node and per set', () => {
  it('resolves node over set over cluster over the scorer default', () => {
    const limits = new NodeLimits(
      { ...DEFAULT_TREND_LIMITS, memoryLimitMb: 8192 },
      { sets: { '2': { memoryLimitMb: 1600, queueLimit: 50 } }, nodes: { ast5: { memoryLimitMb: 4096 } } },
    );
    expect(limits.of('ast1', 1)).toEqual({ ...DEFAULT_TREND_LIMITS, memoryLimitMb: 8192 });
    expect(limits.of('ast4', 2)).toEqual({ ...DEFAULT_TREND_LIMITS, memoryLimitMb: 1600, queueLimit: 50 });
    expect(limits.of('ast5', 2)).toEqual({ ...DEFAULT_TREND_LIMITS, memoryLimitMb: 4096, queueLimit: 50 });
    expect(limits.sourceOf('ast5', 2, 'memoryLimitMb')).toBe('node');
    expect(limits.sourceOf('ast5', 2, 'queueLimit')).toBe('set');
    expect(limits.sourceOf('ast1', 1, 'queueLimit')).toBe('cluster');
  });

  it("a node's override changes its risk and forecast, and its neighbours' scores not at all", async () => {
    const base = await scoresWith({ memoryLimitMb: 8192 });
    const over = await scoresWith({
      memoryLimitMb: 8192,
      nodes: { ast2: { memoryLimitMb: 1600 }, ast5: { memoryLimitMb: 8192 } },
      sets: { '2': { memoryLimitMb: 1600 } },
    });
    const last = byNode(over.at(-1)!);
    // ast2 (its own limit) and set 2 (ast4, ast6) run out within minutes; ast5's own limit beats its set's.
    for (const id of ['ast2', 'ast4', 'ast6']) {
      expect(last.get(id)!.risk).toBeGreaterThan(0.9);
      expect(last.get(id)!.timeToFailureS).toBeLessThan(600);
    }
    for (const id of ['ast1', 'ast3', 'ast5']) expect(last.get(id)!.risk).toBeLessThan(0.1);
    // Neighbours without an override score exactly as with no overrides at all, window by window.
    for (let w = 0; w < base.length; w++) {
      const b = byNode(base[w]!);
      const o = byNode(over[w]!);
      for (const id of ['ast1', 'ast3', 'ast5']) expect(o.get(id)).toEqual(b.get(id));
    }
  });

  it('a per-node limit drains that node and leaves its set neighbours in rotation', async () => {
    const scores = await scoresWith({ memoryLimitMb: 8192, nodes: { ast2: { memoryLimitMb: 1600 } } }, 12);
    const h = await harness({ nodes: makeNodes([3, 3]) });
    await h.start();
    for (const [w, batch] of scores.entries()) await h.step(T0 + (w + 1) * STEP, batch);
    const drained = h.audits.filter((a) => a.kind === 'DrainStarting').map((a) => a.nodeId);
    expect(drained).toEqual(['ast2']);
    expect(h.engine.explain('ast1').lastAutoDecision).toMatchObject({ outcome: 'below_threshold' });
    expect(h.engine.explain('ast3').state).toBe('active');
  });

  it('the TF.js scorer reads the same per-node limits', async () => {
    const artefact = await loadModelArtefact(path.resolve(import.meta.dirname, '../../models/default'));
    const plain = new TfjsScorer(artefact, { limits: { memoryLimitMb: 8192 } });
    const over = new TfjsScorer(artefact, {
      limits: { memoryLimitMb: 8192 },
      limitOverrides: { nodes: { ast2: { memoryLimitMb: 1600 } } },
    });
    const a = byNode(plain.score(windowOf(0)));
    const b = byNode(over.score(windowOf(0)));
    const memory = (s: NodeScore | undefined) => s?.explanation.find((e) => e.feature === 'forecast.memory_s');
    expect(memory(b.get('ast2'))?.value).toBeCloseTo(((1600 - 1500) / 12) * 60, 0);
    expect(memory(a.get('ast2'))?.value ?? Number.POSITIVE_INFINITY).toBeGreaterThan(3600);
    for (const id of ['ast1', 'ast3', 'ast4', 'ast5', 'ast6']) expect(b.get(id)).toEqual(a.get(id));
  });

  it('refuses overrides for nodes or sets the configuration does not have, naming what it has', () => {
    expect(() => sidecar({ nodes: { ast9: { memoryLimitMb: 4096 } } })).toThrow(
      /\/model\/limits\/nodes\/ast9: no node ast9 in this sidecar configuration \(nodes: ast1, ast2, ast3, ast4, ast5, ast6\)/,
    );
    expect(() => sidecar({ sets: { '7': { queueLimit: 100 } } })).toThrow(
      /\/model\/limits\/sets\/7: no node is in dispatcher set 7 \(sets: 1, 2\)/,
    );
    expect(() => parseConfig({ model: { limits: { nodes: { ast5: { memoryLimitMb: 1 } } } } })).toThrow(
      /no node ast5 in this embedded configuration \(nodes: ast1, ast2, ast3, ast4\)/,
    );
    expect(() => sidecar({ nodes: { ast1: { memoryLimitMb: 0 } } })).toThrow(/nodes\/ast1\/memoryLimitMb/);
    expect(() => sidecar({ sets: { one: { memoryLimitMb: 4096 } } })).toThrow(/sets\/one/);
  });
});
