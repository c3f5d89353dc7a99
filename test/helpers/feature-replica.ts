import type { Bus } from '../../src/bus/port.js';
import { FeatureExtractor, type NodeRef } from '../../src/features/extractor.js';
import type { PeerBoard } from '../../src/features/peer-board.js';
import { silentLogger } from '../../src/log.js';
import type { FeatureVector } from '../../src/messages.js';
import { FeatureStage } from '../../src/pipeline/stages.js';

export interface FeatureReplicaOptions {
  groupId: string;
  partitions: number;
  windowMs: number;
  allowedLatenessMs: number;
  /** Rebuild window state on gaining partitions (as the sidecar does with Kafka). */
  recover: boolean;
  /** Nodes known up front, as the sidecar's configured ones. */
  nodes?: readonly NodeRef[];
  /** Share peers through the features topic; the extractor a rebuild creates reads the same board. */
  peers?: { board: PeerBoard; replicaId: string };
}

/** One replica's FeatureStage as the sidecar builds it (src/pipeline/assemble.ts), rejects wired to the stage. */
export function featureReplica(bus: Bus, options: FeatureReplicaOptions): FeatureStage {
  let stage: FeatureStage | null = null;
  const make = () =>
    new FeatureExtractor({
      nodes: options.nodes,
      windowMs: options.windowMs,
      allowedLatenessMs: options.allowedLatenessMs,
      remotePeers: options.peers?.board,
      onRejected: (sample, reason) => stage?.reject(sample, reason),
    });
  stage = new FeatureStage({
    bus,
    groupId: options.groupId,
    logger: silentLogger(),
    extractor: make(),
    partitions: options.partitions,
    ...(options.recover ? { createExtractor: make } : {}),
    peers: options.peers,
  });
  return stage;
}

/** Every vector in the features topic, in delivery order, read by a group of its own from the beginning. */
export async function collectFeatures(bus: Bus, groupId = 'check'): Promise<FeatureVector[]> {
  const vectors: FeatureVector[] = [];
  await bus.subscribe(
    'features',
    async (batch) => {
      for (const r of batch) vectors.push(r.value);
    },
    { groupId, fromBeginning: true },
  );
  return vectors;
}
