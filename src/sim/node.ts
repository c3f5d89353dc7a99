import { EpisodeStream } from './episodes.js';
import { type Effects, type Incident, newEffects } from './incidents.js';
import type { SimulatedClusterOptions } from './options.js';
import type { Rng } from './rng.js';

/** Process state of a simulated Asterisk. */
export type SimNodeStatus = 'up' | 'crashed' | 'restarting';

/** Kamailio's view of a destination from its own OPTIONS probing (the `A`/`T`/`I` letter). */
export type ProbeState = 'active' | 'trying' | 'inactive';

/** Latency samples of new calls reported per node and tick: enough for percentiles, bounded for speed. */
export const INVITE_SAMPLES_PER_TICK = 4;

/** Mutable state of one simulated node. Plain fields, allocated once: the tick loop must not allocate per sample. */
export interface SimNode {
  readonly id: string;
  readonly uri: string;
  /** Noise, completions: one stream per node. */
  readonly rng: Rng;
  /** Random incidents of this node: a stream of its own, so actions never move the schedule. */
  readonly incidentRng: Rng;
  readonly hiccups: EpisodeStream;
  readonly baseRssMb: number;
  readonly baseFds: number;
  readonly baseCpu: number;
  status: SimNodeStatus;
  downUntil: number;
  accepting: boolean;
  probe: ProbeState;
  probeFails: number;
  probeOks: number;
  latencyAvgMs: number | null;
  active: number;
  incident: Incident | null;
  /** The incident that crashed the node, while it is down: the calls that fail meanwhile are its cost too. */
  downCause: Incident | null;
  /** Planned incidents not yet started, by onset. */
  planned: Incident[];
  nextRandom: Incident | null;
  readonly effects: Effects;
  // Counters of the current tick, reset after emission.
  started: number;
  completed: number;
  failed: number;
  dropped: number;
  abnormal: number;
  retrans: number;
  r5xx: number;
  r408: number;
  /** Round-trip of the ping answered this tick, or -1. */
  pingRtt: number;
  readonly inviteMs: Float64Array;
  inviteCount: number;
}

export function createNode(id: string, uri: string, rng: Rng, incidentRng: Rng, o: SimulatedClusterOptions): SimNode {
  return {
    id,
    uri,
    rng,
    incidentRng,
    hiccups: new EpisodeStream(rng.fork(), o.disturbances.hiccupsPerNodeDay, [5000, 45_000], [0.3, 1.2], o.startAt),
    baseRssMb: rng.range(320, 480),
    baseFds: Math.round(rng.range(150, 230)),
    baseCpu: rng.range(2, 5),
    status: 'up',
    downUntil: 0,
    accepting: true,
    probe: 'active',
    probeFails: 0,
    probeOks: 0,
    latencyAvgMs: null,
    active: 0,
    incident: null,
    downCause: null,
    planned: [],
    nextRandom: null,
    effects: newEffects(),
    started: 0,
    completed: 0,
    failed: 0,
    dropped: 0,
    abnormal: 0,
    retrans: 0,
    r5xx: 0,
    r408: 0,
    pingRtt: -1,
    inviteMs: new Float64Array(INVITE_SAMPLES_PER_TICK),
    inviteCount: 0,
  };
}
