/** Training data from the simulator: a run with maintenance drills, fed into a WindowCollector. */
import type { Hash } from 'node:crypto';
import type { IncidentLabel, TelemetrySample } from '../../messages.js';
import type { SimulatedCluster } from '../../sim/cluster.js';
import { hashSamples } from './digest.js';
import type { WindowCollector } from './windows.js';

/**
 * Maintenance drills for training data: each node in turn is drained for `drainMs` (no new calls, its calls finish),
 * restarted, and put back `settleMs` after it is up, every `everyMs`. A model trained only on nodes in rotation finds
 * a drained or freshly restarted node odd (no new calls, an empty node at the busy hour), and would keep every node it
 * drained out of rotation after the restart. Nodes with an incident running are skipped.
 */
export interface DrillSchedule {
  everyMs: number;
  drainMs: number;
  settleMs: number;
}

export const DEFAULT_DRILLS: DrillSchedule = { everyMs: 4 * 3_600_000, drainMs: 8 * 60_000, settleMs: 2 * 60_000 };

/** Returns a step function that moves every node's drill along; call it before each simulator step. */
function drillDriver(sim: SimulatedCluster, drills: DrillSchedule, startAt: number): () => void {
  const ids = sim.nodeIds;
  /** Per node: the cycle whose drill was started, and the cycle whose restart was done. */
  const started = new Map<string, number>();
  const restarted = new Map<string, number>();
  return () => {
    const now = sim.now();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      // Staggered so that one node at a time is out.
      const t = now - startAt - (i * drills.everyMs) / ids.length;
      if (t < 0) continue;
      const cycle = Math.floor(t / drills.everyMs);
      const phase = t - cycle * drills.everyMs;
      const view = sim.nodeView(id);
      if (started.get(id) !== cycle) {
        if (phase > 60_000 || !view.up || !view.accepting) continue;
        if (sim.labels().some((l) => l.nodeId === id && l.crashAt > now)) continue;
        started.set(id, cycle);
        sim.setAccepting(id, false);
      } else if (restarted.get(id) !== cycle) {
        if (phase >= drills.drainMs) {
          restarted.set(id, cycle);
          sim.restart(id);
        }
      } else if (!view.accepting && phase >= drills.drainMs + sim.options.restartMs + drills.settleMs) {
        sim.setAccepting(id, true);
      }
    }
  };
}

/**
 * Feeds `sim` for `durationMs` into `collector`, hashing every sample into `hash` (the training-data digest); with
 * `drills`, runs maintenance drills (DrillSchedule) on the way.
 */
export function collectFromSimulator(
  sim: SimulatedCluster,
  durationMs: number,
  collector: WindowCollector,
  hash?: Hash,
  drills?: DrillSchedule,
): IncidentLabel[] {
  const startAt = sim.now();
  const end = startAt + durationMs;
  const batch: TelemetrySample[] = [];
  const stepMs = drills ? 10_000 : 600_000;
  const drill = drills ? drillDriver(sim, drills, startAt) : null;
  while (sim.now() < end) {
    batch.length = 0;
    drill?.();
    sim.step(Math.min(end, sim.now() + stepMs), batch);
    if (hash) hashSamples(hash, batch);
    collector.add(batch);
  }
  collector.finish(end);
  return sim.labels();
}
