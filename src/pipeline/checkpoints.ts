import type { Store } from '../actions/ports.js';
import type { Bus } from '../bus/port.js';
import { fnv1a32 } from '../hash.js';
import type { FeatureVector, StateCheckpoint } from '../messages.js';

/**
 * Where the stages keep per-node checkpoints of what they learnt (docs/reliability.md, "State across replicas"): the
 * compacted `state` topic with Kafka, the store (SQLite, PostgreSQL) with the in-process bus.
 */
export interface CheckpointLog {
  readonly kind: 'bus' | 'store';
  write(records: Array<{ key: string; checkpoint: StateCheckpoint }>): Promise<void>;
  /** The newest checkpoint of `kind` per key written at or after `fromTs`, for the nodes `wanted` picks. */
  read(
    kind: StateCheckpoint['kind'],
    fromTs: number,
    wanted: (nodeId: string) => boolean,
  ): Promise<Map<string, StateCheckpoint>>;
}

/** The newest per key wins, whatever order the records come in (the topic's uncompacted tail repeats keys). */
function keepNewest(into: Map<string, StateCheckpoint>, key: string, cp: StateCheckpoint): void {
  const seen = into.get(key);
  if (seen === undefined || cp.windowEnd >= seen.windowEnd) into.set(key, cp);
}

export function busCheckpoints(bus: Bus): CheckpointLog {
  return {
    kind: 'bus',
    write: (records) =>
      bus.publish(
        'state',
        records.map(({ key, checkpoint }) => ({ key, value: checkpoint, timestamp: checkpoint.ts })),
      ),
    async read(kind, fromTs, wanted) {
      const newest = new Map<string, StateCheckpoint>();
      await bus.readRange('state', { fromTs }, (batch) => {
        for (const r of batch) {
          if (r.value.kind === kind && wanted(r.value.nodeId)) keepNewest(newest, r.key, r.value);
        }
      });
      return newest;
    },
  };
}

export function storeCheckpoints(store: Pick<Store, 'putCheckpoints' | 'listCheckpoints'>): CheckpointLog {
  return {
    kind: 'store',
    write: (records) => store.putCheckpoints(records),
    async read(kind, fromTs, wanted) {
      const newest = new Map<string, StateCheckpoint>();
      for (const { key, checkpoint } of await store.listCheckpoints(kind)) {
        if (checkpoint.ts >= fromTs && wanted(checkpoint.nodeId)) keepNewest(newest, key, checkpoint);
      }
      return newest;
    },
  };
}

/**
 * When each node's checkpoint is due: once per `everyMs` of its windows' event time, at an offset of its own (a hash
 * of its id), so that a large cluster's checkpoints spread over the interval instead of stalling one window. A node is
 * first checkpointed at its first boundary after it was seen.
 */
export class CheckpointSchedule {
  /** Per node: its offset within the interval (hashed once) and the newest window end seen. */
  private readonly nodes = new Map<string, { offset: number; last: number }>();

  constructor(private readonly everyMs: number) {}

  /** The nodes among `vectors` whose checkpoint is due as of their newest window here; marks them done. */
  due(vectors: readonly FeatureVector[]): Set<string> {
    const out = new Set<string>();
    for (const v of vectors) {
      const node = this.nodes.get(v.nodeId);
      if (node === undefined) {
        this.nodes.set(v.nodeId, { offset: fnv1a32(v.nodeId) % this.everyMs, last: v.windowEnd });
        continue;
      }
      if (v.windowEnd <= node.last) continue;
      const interval = (t: number) => Math.floor((t + node.offset) / this.everyMs);
      if (interval(v.windowEnd) > interval(node.last)) out.add(v.nodeId);
      node.last = v.windowEnd;
    }
    return out;
  }

  /** Forgets nodes this replica no longer owns, so the map stays as large as the nodes it has. */
  keepOnly(owns: (nodeId: string) => boolean): void {
    for (const nodeId of this.nodes.keys()) if (!owns(nodeId)) this.nodes.delete(nodeId);
  }
}
