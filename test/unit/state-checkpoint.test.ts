import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeatureExtractor, type NodeFeatureState } from '../../src/features/extractor.js';
import type { FeatureVector, TelemetrySample } from '../../src/messages.js';
import { CheckpointSchedule } from '../../src/pipeline/checkpoints.js';

const W = 1000;
const LATENESS = 200;
const T0 = 1_790_000_000_000;
const NODES = ['ast1', 'ast2', 'ast3', 'ast4'];

/** A small deterministic generator, so a failing run can be repeated from its seed. */
function noise(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) / 2 ** 32 - 0.5) * 2;
  };
}

/**
 * A cluster's telemetry, window by window: ast2's memory and taskprocessor queue leak from window `leakFrom`, the
 * others stay level with noise; calls come and go on every node.
 */
function telemetry(windows: number, seed: number, leakFrom = 40): TelemetrySample[][] {
  const rnd = noise(seed);
  const out: TelemetrySample[][] = [];
  for (let w = 0; w < windows; w++) {
    const batch: TelemetrySample[] = [];
    for (const nodeId of NODES) {
      const leak = nodeId === 'ast2' && w >= leakFrom ? w - leakFrom : 0;
      for (let k = 0; k < 4; k++) {
        const ts = T0 + w * W + k * 250 + 10;
        batch.push({ nodeId, ts, metric: 'host.memory_rss_mb', value: 800 + 5 * rnd() + 6 * leak, source: 'sim' });
        batch.push({
          nodeId,
          ts,
          metric: 'taskprocessor.max_queue',
          value: Math.max(0, 3 + 2 * rnd() + leak),
          source: 'sim',
        });
        batch.push({ nodeId, ts, metric: 'calls.started', value: k % 2, source: 'sim' });
        batch.push({ nodeId, ts, metric: 'sip.invite_setup_ms', value: 40 + 10 * rnd(), source: 'sim' });
      }
    }
    out.push(batch);
  }
  return out;
}

const extractor = (windowMs = W) =>
  new FeatureExtractor({ nodes: NODES.map((nodeId) => ({ nodeId })), windowMs, allowedLatenessMs: LATENESS });

function feed(fx: FeatureExtractor, batches: TelemetrySample[][]): FeatureVector[] {
  const out: FeatureVector[] = [];
  for (const b of batches) out.push(...fx.ingest(b));
  return out;
}

const byWindow = (vectors: FeatureVector[], after: number) =>
  vectors.filter((v) => v.windowEnd > after).map((v) => ({ nodeId: v.nodeId, end: v.windowEnd, f: v.features }));

describe('feature state checkpoints', () => {
  it('a replica that imports a checkpoint and replays from it emits exactly the windows the first replica would have', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 5, max: 110 }),
        fc.integer({ min: 0, max: 8 }),
        (seed, cut, overlap) => {
          const batches = telemetry(120, seed);
          const reference = feed(extractor(), batches);

          // The first owner learns up to `cut` windows and checkpoints (through JSON, as the bus carries it).
          const first = extractor();
          feed(first, batches.slice(0, cut));
          const states = JSON.parse(JSON.stringify(first.exportStates())) as NodeFeatureState[];
          expect(states).toHaveLength(NODES.length);
          const cpEnd = states[0]!.windowEnd;

          // The next owner imports, then replays telemetry from `overlap` windows before the checkpoint on: windows the
          // history already holds are passed over, not learnt twice.
          const next = extractor();
          for (const s of states) expect(next.importState(s)).toEqual({ ok: true });
          const replayFrom = Math.max(0, (cpEnd - T0) / W - overlap);
          next.advance(T0 + replayFrom * W + LATENESS);
          const resumed = feed(next, batches.slice(replayFrom));
          expect(byWindow(resumed, cpEnd)).toEqual(byWindow(reference, cpEnd));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('keeps the leak in view: cold, the next owner learns the leak as its baseline; from the checkpoint it does not', () => {
    const batches = telemetry(150, 7, 40);
    const first = extractor();
    feed(first, batches.slice(0, 100));
    const states = first.exportStates();
    const cpEnd = states[0]!.windowEnd;
    const warm = extractor();
    for (const s of states) warm.importState(s);
    warm.advance(cpEnd + LATENESS);
    const cold = extractor();
    cold.advance(cpEnd + LATENESS);
    const z = (vs: FeatureVector[]) => vs.filter((v) => v.nodeId === 'ast2').at(-1)!.features['z.self.max_queue']!;
    const warmZ = z(feed(warm, batches.slice(100)));
    const coldZ = z(feed(cold, batches.slice(100)));
    expect(warmZ).toBeGreaterThan(4);
    expect(warmZ).toBeGreaterThan(coldZ + 2);
  });

  it('refuses a checkpoint of another layout or with values that do not check, and the node starts cold', () => {
    const fx = extractor();
    feed(fx, telemetry(20, 3));
    const [state] = fx.exportStates((id) => id === 'ast1');
    expect(state).toBeDefined();
    expect(extractor(2000).importState(state!)).toMatchObject({ ok: false, reason: expect.stringMatching(/layout/) });
    const broken = { ...state!, baseline: state!.baseline.map((r) => r.map(() => Number.NaN)) };
    expect(extractor().importState(JSON.parse(JSON.stringify(broken)))).toMatchObject({ ok: false });
    const short = { ...state!, ewma: state!.ewma.slice(1) };
    expect(extractor().importState(short)).toMatchObject({ ok: false, reason: expect.stringMatching(/wrong length/) });
    expect(extractor().importState(null as unknown as NodeFeatureState)).toMatchObject({ ok: false });
    // Nothing closed yet: nothing to checkpoint.
    expect(extractor().exportStates()).toEqual([]);
  });
});

describe('checkpoint schedule', () => {
  const vector = (nodeId: string, windowEnd: number): FeatureVector => ({
    nodeId,
    setId: 1,
    windowStart: windowEnd - 10_000,
    windowEnd,
    sampleCount: 1,
    observed: true,
    features: {},
    evidence: { calls: null, upReported: null, probe: null },
  });

  it('checkpoints every node once per interval, spread over the interval rather than all at one window', () => {
    const schedule = new CheckpointSchedule(60_000);
    const nodes = Array.from({ length: 1000 }, (_, i) => `node-${i}`);
    const perWindow: number[] = [];
    const perNode = new Map<string, number>();
    // 30 minutes of 10 s windows.
    for (let w = 1; w <= 180; w++) {
      const due = schedule.due(nodes.map((n) => vector(n, T0 + w * 10_000)));
      perWindow.push(due.size);
      for (const n of due) perNode.set(n, (perNode.get(n) ?? 0) + 1);
    }
    // Every node: 29 or 30 checkpoints in 30 intervals (the first starts once it was seen).
    for (const n of nodes) expect(perNode.get(n)).toBeGreaterThanOrEqual(29);
    for (const n of nodes) expect(perNode.get(n)).toBeLessThanOrEqual(30);
    // Six windows per interval: about a sixth of the nodes each, never all of them at once.
    expect(Math.max(...perWindow.slice(6))).toBeLessThan(300);
    expect(Math.min(...perWindow.slice(6))).toBeGreaterThan(100);
  });

  it('never checkpoints a node on a redelivered or older window', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 200 }), (windows) => {
        const schedule = new CheckpointSchedule(60_000);
        let newest = Number.NEGATIVE_INFINITY;
        for (const w of windows) {
          const end = T0 + w * 10_000;
          const due = schedule.due([vector('ast1', end)]);
          if (end <= newest) expect(due.size).toBe(0);
          newest = Math.max(newest, end);
        }
      }),
    );
  });
});
