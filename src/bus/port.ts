import { fnv1a32 } from '../hash.js';
import type {
  AuditRecord,
  DeadLetter,
  FeatureVector,
  NodeScore,
  StateCheckpoint,
  TelemetrySample,
} from '../messages.js';

/** Logical topics and the one message type each carries. Adapters add the configured prefix. */
export interface TopicMap {
  telemetry: TelemetrySample;
  features: FeatureVector;
  scores: NodeScore;
  actions: AuditRecord;
  deadletter: DeadLetter;
  /** Per-node learnt state (feature history, scorer streaks), compacted: the newest per key. */
  state: StateCheckpoint;
}
export type TopicName = keyof TopicMap;
export const TOPIC_NAMES: readonly TopicName[] = ['telemetry', 'features', 'scores', 'actions', 'deadletter', 'state'];

export interface OutgoingRecord<T> {
  /** Partitioning key: the node id for per-node topics. Records with one key keep their order. */
  key: string;
  value: T;
  /** Event time, epoch ms; defaults to now. */
  timestamp?: number;
}

export interface DeliveredRecord<T> {
  topic: TopicName;
  partition: number;
  /** Offset within the partition, as a decimal string (Kafka offsets exceed 2^53 in theory). */
  offset: string;
  key: string;
  value: T;
  timestamp: number;
}

/**
 * Called with a batch from one partition, in offset order. The batch's offsets are committed only after the
 * promise resolves (at-least-once): a crash before that redelivers the batch, so handlers must tolerate duplicates.
 */
export type BatchHandler<T> = (batch: DeliveredRecord<T>[]) => Promise<void>;

export interface SubscribeOptions {
  /** Consumer group; consumers in one group share the topic's partitions. */
  groupId: string;
  /** Where a group with no committed offset starts. Default: latest. */
  fromBeginning?: boolean;
  /** Called after partitions are assigned to this consumer (on join and on every rebalance). */
  onAssigned?: (partitions: number[]) => Promise<void> | void;
  /** Called before partitions are taken away. */
  onRevoked?: (partitions: number[]) => Promise<void> | void;
}

export interface ReadRangeOptions {
  /** Partitions to read; every partition of the topic when omitted. */
  partitions?: readonly number[];
  /**
   * Start of the range, epoch ms: each partition is read from its first record whose timestamp is >= this (Kafka's
   * offset-for-time lookup), so records behind it with older timestamps (late arrivals) are included too.
   */
  fromTs: number;
  /**
   * End of the range, epoch ms, exclusive: each partition is read up to its first record whose timestamp is >= this
   * (the same lookup), or to its end when there is none. Records appended after such a record with older timestamps
   * (late arrivals) are not read. Default: the partition's end as of the call.
   */
  toTs?: number;
}

/**
 * Where a range read stopped, per partition read: the offset after the last record the read covered (the partition's
 * end when the read began), as a decimal string. Records at or above it were not read.
 */
export type RangeEnd = Map<number, string>;

export interface Subscription {
  /** Leaves the group; the remaining members take over its partitions. */
  stop(): Promise<void>;
}

/** The bus port: Kafka in production, in-process by default. */
export interface Bus {
  /** Creates the topics if missing. Idempotent. */
  ensureTopics(): Promise<void>;
  publish<K extends TopicName>(topic: K, records: OutgoingRecord<TopicMap[K]>[]): Promise<void>;
  subscribe<K extends TopicName>(
    topic: K,
    handler: BatchHandler<TopicMap[K]>,
    options: SubscribeOptions,
  ): Promise<Subscription>;
  /**
   * Reads the records of some partitions from a point in time up to their end as of the call, outside any consumer
   * group: nothing is committed and no group member is affected. Batches come per partition in offset order; records
   * that do not decode are skipped (the group's consumer dead-letters them). For rebuilding state after a rebalance.
   */
  readRange<K extends TopicName>(
    topic: K,
    options: ReadRangeOptions,
    handler: (batch: DeliveredRecord<TopicMap[K]>[]) => void | Promise<void>,
  ): Promise<RangeEnd>;
  /** Messages not yet committed by a group, summed over partitions. */
  lag(topic: TopicName, groupId: string): Promise<number>;
  close(): Promise<void>;
}

/** FNV-1a of the key: stable across processes, so a node always lands on one partition. */
export function partitionForKey(key: string, partitions: number): number {
  return fnv1a32(key) % partitions;
}
