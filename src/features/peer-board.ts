import type { FeatureVector } from '../messages.js';
import { Z_SIGNALS } from './names.js';

/** A node another replica observed: the values of its Z signal sources, in Z_SIGNALS order. */
export interface RemotePeer {
  nodeId: string;
  windowEnd: number;
  values: Float64Array;
}

/** Where the extractor finds peers that other replicas hold (see FeatureExtractorOptions.remotePeers). */
export interface RemotePeerSource {
  /** Observed nodes of `setId` recent enough to stand as peers in the window ending at `windowEnd`. */
  peersOf(setId: number, windowEnd: number): readonly RemotePeer[];
}

export interface PeerBoardOptions {
  /** The feature window, to count freshness in windows. */
  windowMs: number;
  /**
   * A remote node counts as a peer while its newest vector is at most this many windows away from the window being
   * closed. Replicas close the same window at about the same time without waiting for each other, so the newest one
   * seen is usually one window behind; a node whose replica went quiet stops counting after this. Default 3.
   */
  maxAgeWindows?: number;
  /** Cap on remote nodes kept; the least recently updated one makes room. Default 10000 (the extractor's own cap). */
  maxNodes?: number;
}

interface Entry extends RemotePeer {
  setId: number;
}

const NO_PEERS: readonly RemotePeer[] = [];

/**
 * The newest observed vector of each node other replicas own, read from the features topic. Telemetry is keyed by
 * node, so a replica's extractor sees only the nodes of its partitions; this board lets it compare them with the rest
 * of their dispatcher set.
 */
export class PeerBoard implements RemotePeerSource {
  private readonly maxAgeMs: number;
  private readonly maxNodes: number;
  /** By node, least recently updated first (re-inserted on update), so eviction takes the first key. */
  private readonly entries = new Map<string, Entry>();
  private readonly bySet = new Map<number, Map<string, Entry>>();

  constructor(options: PeerBoardOptions) {
    this.maxAgeMs = (options.maxAgeWindows ?? 3) * options.windowMs;
    this.maxNodes = options.maxNodes ?? 10_000;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Records a vector a remote replica emitted. An unobserved one removes its node (a node without telemetry is no
   * peer); one without a finite value for every Z signal source is ignored, so garbage cannot skew the median.
   */
  record(vector: FeatureVector): void {
    const { nodeId, setId, windowEnd, features } = vector;
    if (typeof nodeId !== 'string' || !Number.isFinite(setId) || !Number.isFinite(windowEnd)) return;
    if (!vector.observed) {
      this.forget(nodeId);
      return;
    }
    const previous = this.entries.get(nodeId);
    // Redelivery after a rebalance of this board's own consumer: an older window must not replace a newer one.
    if (previous !== undefined && previous.windowEnd > windowEnd) return;
    const values = new Float64Array(Z_SIGNALS.length);
    for (let j = 0; j < Z_SIGNALS.length; j++) {
      const v = features?.[Z_SIGNALS[j]!.source];
      if (typeof v !== 'number' || !Number.isFinite(v)) return;
      values[j] = v;
    }
    this.forget(nodeId);
    if (this.entries.size >= this.maxNodes) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
    const entry: Entry = { nodeId, setId, windowEnd, values };
    this.entries.set(nodeId, entry);
    let members = this.bySet.get(setId);
    if (members === undefined) {
      members = new Map();
      this.bySet.set(setId, members);
    }
    members.set(nodeId, entry);
  }

  /** Drops a node: it is unobserved, or this replica owns it now and reports it itself. */
  forget(nodeId: string): void {
    const entry = this.entries.get(nodeId);
    if (entry === undefined) return;
    this.entries.delete(nodeId);
    const members = this.bySet.get(entry.setId);
    members?.delete(nodeId);
    if (members?.size === 0) this.bySet.delete(entry.setId);
  }

  peersOf(setId: number, windowEnd: number): readonly RemotePeer[] {
    const members = this.bySet.get(setId);
    if (members === undefined) return NO_PEERS;
    const fresh: RemotePeer[] = [];
    for (const entry of members.values()) {
      if (Math.abs(entry.windowEnd - windowEnd) <= this.maxAgeMs) fresh.push(entry);
    }
    return fresh;
  }
}
