import { errorMessage, ForesightError, isRetriable } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeadLetter } from '../messages.js';
import {
  DEAD_LETTER_PAYLOAD_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeMany,
  encode,
  encodeMany,
  payloadExcerpt,
} from './codec.js';
import {
  type BatchHandler,
  type DeliveredRecord,
  type OutgoingRecord,
  type SubscribeOptions,
  TOPIC_NAMES,
  type TopicMap,
  type TopicName,
} from './port.js';

/** Options shared by both Kafka adapters. */
export interface KafkaBusOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** Topic names are `<topicPrefix>.<topic>`, e.g. `foresight.telemetry`. */
  topicPrefix: string;
  clientId?: string;
  /** Partitions of each topic created by ensureTopics. Default 6. */
  partitions?: number;
  /** Replication factor of each topic created by ensureTopics. Default 1 (single broker). */
  replicationFactor?: number;
  /** Producer compression. gzip is built into both clients; none trades bandwidth for CPU. Default gzip. */
  compression?: 'gzip' | 'none';
  /** Messages larger than this are refused by publish and dead-lettered by consumers. Default 256 KiB. */
  maxMessageBytes?: number;
  /** Consumer session timeout: a dead member's partitions move after this. Default 10 s. */
  sessionTimeoutMs?: number;
  /** Heartbeat interval; a third of the session timeout or less. Default 1 s. */
  heartbeatIntervalMs?: number;
  /**
   * Telemetry samples of one key (and one timestamp) published together are packed into one Kafka record of up to
   * this many, as a JSON array; consumers unpack them, and every sample of a pack carries the pack's Kafka offset, so
   * telemetry lag counts packs. 1 turns packing off. Default 64. Other topics are never packed.
   */
  maxPackRecords?: number;
  /**
   * Processed offsets are committed at most this often (and on every rebalance), never before the handler resolved.
   * Longer means fewer commit round trips and more redelivered records after a crash. Default 200 ms; 0 commits
   * after every batch.
   */
  commitIntervalMs?: number;
  /** Attempts of a batch whose handler fails with a non-retriable error before records are isolated and dead-lettered. */
  maxAttempts?: number;
  /** Upper bound of the backoff between attempts of a failing batch. Default 5 s. */
  maxBackoffMs?: number;
  logger?: Logger;
}

export interface ResolvedKafkaOptions extends Required<Omit<KafkaBusOptions, 'logger'>> {
  logger: Logger;
}

export function resolveOptions(options: KafkaBusOptions, logger: Logger): ResolvedKafkaOptions {
  return {
    brokers: options.brokers,
    topicPrefix: options.topicPrefix,
    clientId: options.clientId ?? 'foresight',
    partitions: options.partitions ?? 6,
    replicationFactor: options.replicationFactor ?? 1,
    compression: options.compression ?? 'gzip',
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    sessionTimeoutMs: options.sessionTimeoutMs ?? 10_000,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000,
    maxPackRecords: Math.max(1, Math.floor(options.maxPackRecords ?? 64)),
    commitIntervalMs: Math.max(0, options.commitIntervalMs ?? 200),
    maxAttempts: options.maxAttempts ?? 3,
    maxBackoffMs: options.maxBackoffMs ?? 5_000,
    logger,
  };
}

/**
 * Only telemetry is packed: it is the one high-rate topic. The others keep one message per Kafka record, so their
 * offsets and lag count messages exactly (the audit trail and dead letters are read record by record).
 */
const PACKED_TOPICS: ReadonlySet<TopicName> = new Set<TopicName>(['telemetry']);

/** One Kafka record to produce: a message or a pack of messages of one key. */
export interface WireRecord {
  key: string;
  value: Buffer;
  timestamp: number;
}

/**
 * Encodes records for the wire, packing consecutive records of one key and timestamp. A key's packs come out in the
 * key's order and all go to one partition, so per-key order survives packing.
 */
export function toWire<K extends TopicName>(
  topic: K,
  records: OutgoingRecord<TopicMap[K]>[],
  options: Pick<ResolvedKafkaOptions, 'maxPackRecords' | 'maxMessageBytes'>,
  now: number,
): WireRecord[] {
  const { maxPackRecords, maxMessageBytes } = options;
  if (maxPackRecords <= 1 || !PACKED_TOPICS.has(topic)) {
    return records.map((r) => ({
      key: r.key,
      value: encode(topic, r.value, maxMessageBytes),
      timestamp: wireTimestamp(r.timestamp ?? now),
    }));
  }
  const out: WireRecord[] = [];
  const open = new Map<string, { timestamp: number; values: TopicMap[K][] }>();
  const emit = (key: string, timestamp: number, values: TopicMap[K][]): void => {
    if (values.length === 1) {
      out.push({ key, value: encode(topic, values[0] as TopicMap[K], maxMessageBytes), timestamp });
      return;
    }
    const packed = encodeMany(topic, values, maxMessageBytes);
    if (packed !== null) {
      out.push({ key, value: packed, timestamp });
      return;
    }
    const half = Math.ceil(values.length / 2);
    emit(key, timestamp, values.slice(0, half));
    emit(key, timestamp, values.slice(half));
  };
  for (const r of records) {
    const timestamp = wireTimestamp(r.timestamp ?? now);
    const pack = open.get(r.key);
    if (pack && pack.timestamp === timestamp && pack.values.length < maxPackRecords) {
      pack.values.push(r.value);
      continue;
    }
    if (pack) emit(r.key, pack.timestamp, pack.values);
    open.set(r.key, { timestamp, values: [r.value] });
  }
  for (const [key, pack] of open) emit(key, pack.timestamp, pack.values);
  return out;
}

export function kafkaTopic(prefix: string, topic: TopicName): string {
  return `${prefix}.${topic}`;
}

/** One record as fetched, before decoding. */
export interface RawRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
}

export interface BatchContext {
  topic: TopicName;
  kafkaTopic: string;
  handler: BatchHandler<unknown>;
  options: ResolvedKafkaOptions;
  logger: Logger;
  /** Publishes dead letters and resolves once they are durable. */
  deadLetter: (letters: OutgoingRecord<DeadLetter>[]) => Promise<void>;
  /** False once the consumer is stopping or lost the partition: stop retrying and leave the batch uncommitted. */
  isActive: () => boolean;
  /** Keeps the group membership alive while a failing batch is retried. */
  heartbeat?: () => Promise<void>;
}

/**
 * Decodes a fetched batch, dead-letters poison records, and hands the rest to the handler until it succeeds.
 * Resolves when every record of the batch is accounted for (handled or dead-lettered), so the caller may commit;
 * rejects when the consumer stopped first, so the caller must not commit.
 */
export async function processBatch(ctx: BatchContext, raw: RawRecord[]): Promise<void> {
  const good: DeliveredRecord<unknown>[] = [];
  const poison: OutgoingRecord<DeadLetter>[] = [];
  for (const r of raw) {
    const decoded = decodeMany(ctx.topic, r.value, ctx.options.maxMessageBytes);
    const key = r.key === null ? '' : r.key.toString('utf8');
    if (!decoded.ok) {
      poison.push(deadLetterFor(ctx, r, key, decoded.code, decoded.reason, payloadExcerpt(r.value)));
      continue;
    }
    for (const value of decoded.values) {
      good.push({ topic: ctx.topic, partition: r.partition, offset: r.offset, key, value, timestamp: r.timestamp });
    }
    for (const bad of decoded.rejected) {
      poison.push(deadLetterFor(ctx, r, key, 'FORESIGHT_ERR_BAD_MESSAGE', bad.reason, bad.payload));
    }
  }
  if (poison.length > 0) {
    ctx.logger.warn(
      { topic: ctx.kafkaTopic, count: poison.length, reason: poison[0]?.value.reason },
      'dead-lettering poison messages',
    );
    await ctx.deadLetter(poison);
  }
  if (good.length === 0) return;
  await handleWithRetry(ctx, good);
}

async function handleWithRetry(ctx: BatchContext, batch: DeliveredRecord<unknown>[]): Promise<void> {
  let attempt = 0;
  let failures = 0;
  for (;;) {
    attempt++;
    try {
      await ctx.handler(batch);
      return;
    } catch (err) {
      assertActive(ctx);
      const retriable = isRetriable(err);
      if (!retriable) failures++;
      ctx.logger.warn({ topic: ctx.kafkaTopic, attempt, retriable, err: errorMessage(err) }, 'batch handler failed');
      // A retriable failure (a store or a network down) is waited out: dead-lettering it would lose good data.
      if (!retriable && failures >= ctx.options.maxAttempts) break;
      await sleep(Math.min(ctx.options.maxBackoffMs, 50 * 2 ** Math.min(attempt, 10)));
      assertActive(ctx);
      await ctx.heartbeat?.().catch(() => undefined);
    }
  }
  // Isolate the record(s) the handler keeps failing on: retry one by one and dead-letter only those.
  const letters: OutgoingRecord<DeadLetter>[] = [];
  for (const record of batch) {
    try {
      await ctx.handler([record]);
    } catch (err) {
      assertActive(ctx);
      letters.push({
        key: record.key,
        value: {
          topic: ctx.topic,
          partition: record.partition,
          offset: record.offset,
          code: 'FORESIGHT_ERR_HANDLER',
          reason: errorMessage(err).slice(0, MAX_REASON_CHARS),
          payload: safeExcerpt(record.value).slice(0, excerptChars(ctx)),
          ts: Date.now(),
        },
      });
    }
  }
  if (letters.length === 0) return;
  if (ctx.topic === 'deadletter') {
    // Never dead-letter a dead letter: that could loop forever.
    ctx.logger.error({ count: letters.length }, 'dead-letter handler failed; records skipped');
    return;
  }
  await ctx.deadLetter(letters);
}

function deadLetterFor(
  ctx: BatchContext,
  r: RawRecord,
  key: string,
  code: string,
  reason: string,
  payload: string,
): OutgoingRecord<DeadLetter> {
  return {
    key,
    value: {
      topic: ctx.topic,
      partition: r.partition,
      offset: r.offset,
      code,
      reason: reason.slice(0, MAX_REASON_CHARS),
      payload: payload.slice(0, excerptChars(ctx)),
      ts: Date.now(),
    },
  };
}

const MAX_REASON_CHARS = 1024;

/** A dead letter must fit the message size limit itself, or the poison could not be parked anywhere. */
function excerptChars(ctx: BatchContext): number {
  // Characters may take up to 3 bytes in UTF-8, and JSON escaping can double them again.
  return Math.max(0, Math.min(DEAD_LETTER_PAYLOAD_BYTES, Math.floor((ctx.options.maxMessageBytes - 2048) / 6)));
}

function safeExcerpt(value: unknown): string {
  try {
    return (JSON.stringify(value) ?? String(value)).slice(0, 4096);
  } catch {
    return String(value).slice(0, 4096);
  }
}

/** Thrown when a consumer stops or loses its partition mid-batch: the batch stays uncommitted and is redelivered. */
export class ConsumerInactiveError extends Error {
  constructor() {
    super('consumer stopped or lost the partition before the batch was processed');
    this.name = 'ConsumerInactiveError';
  }
}

function assertActive(ctx: BatchContext): void {
  if (!ctx.isActive()) throw new ConsumerInactiveError();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Serialises callbacks that must not overlap (rebalance hooks), and lets batches wait for the latest one. */
export class HookChain {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly logger: Logger) {}
  run(fn: () => Promise<void> | void): Promise<void> {
    this.tail = this.tail.then(fn).catch((err: unknown) => {
      this.logger.error({ err: errorMessage(err) }, 'rebalance hook failed');
    });
    return this.tail;
  }
  settled(): Promise<void> {
    return this.tail;
  }

  /**
   * Tells the subscriber what a rebalance changed: the partitions it lost first, then its new assignment if that
   * differs. Returns the lost ones, whose queued records the consumer drops.
   */
  reassign(
    options: Pick<SubscribeOptions, 'onAssigned' | 'onRevoked'>,
    previous: readonly number[],
    next: number[],
  ): number[] {
    const revoked = previous.filter((p) => !next.includes(p));
    const changed = revoked.length > 0 || next.some((p) => !previous.includes(p));
    void this.run(async () => {
      if (revoked.length > 0) await options.onRevoked?.(revoked);
      if (changed) await options.onAssigned?.(next);
    });
    return revoked;
  }

  /** Tells the subscriber that every partition it held is gone (its consumer stopped). */
  revokeAll(options: Pick<SubscribeOptions, 'onRevoked'>, lost: number[]): Promise<void> {
    return this.run(async () => {
      if (lost.length > 0) await options.onRevoked?.(lost);
    });
  }
}

/**
 * Partitions per Kafka topic, cached: publish needs the count for every batch (partitionForKey), and it changes only
 * when an operator adds partitions. `fetch` is the client's metadata call.
 */
export class PartitionCounts {
  private readonly known = new Map<string, number>();

  constructor(private readonly fetch: (names: string[]) => Promise<Iterable<readonly [string, number]>>) {}

  async load(names: string[]): Promise<void> {
    for (const [name, count] of await this.fetch(names)) if (count > 0) this.known.set(name, count);
  }

  async of(name: string): Promise<number> {
    const known = this.known.get(name);
    if (known !== undefined) return known;
    await this.load([name]);
    const count = this.known.get(name);
    if (count === undefined) throw new ForesightError('FORESIGHT_ERR_CONFIG', `topic ${name} does not exist`);
    return count;
  }
}

/** Creates the bus's topics that do not exist yet, then loads their partition counts. */
export async function ensureKafkaTopics(args: {
  topicPrefix: string;
  listTopics: () => Promise<string[]>;
  /** Creates the topics, each with the given topic configs (Kafka names, e.g. cleanup.policy). */
  createTopics: (missing: string[], configs: Record<string, string>) => Promise<void>;
  describeError: (err: unknown) => string;
  counts: PartitionCounts;
  logger: Logger;
}): Promise<void> {
  const wanted = TOPIC_NAMES.map((t) => kafkaTopic(args.topicPrefix, t));
  const existing = new Set(await args.listTopics());
  // Checkpoints keep only the newest record per key: compaction bounds the topic however long Foresight runs. Only
  // closed segments are compacted, so segments roll every 10 min: a takeover reads about that much superseded history.
  const groups: Array<[TopicName[], Record<string, string>]> = [
    [TOPIC_NAMES.filter((t) => !COMPACTED_TOPICS.has(t)), {}],
    [[...COMPACTED_TOPICS], { 'cleanup.policy': 'compact', 'segment.ms': '600000' }],
  ];
  for (const [topics, configs] of groups) {
    const missing = topics.map((t) => kafkaTopic(args.topicPrefix, t)).filter((t) => !existing.has(t));
    if (missing.length === 0) continue;
    try {
      await args.createTopics(missing, configs);
      args.logger.info({ topics: missing, configs }, 'created topics');
    } catch (err) {
      // Another replica may have created them at the same moment. A client that waits for the new partitions'
      // leaders may also give up while the broker still elects them (seen: "does not host this topic-partition"):
      // the topics exist then, and the partition counts below are retried. Anything else is real.
      if (/already exists/i.test(args.describeError(err))) continue;
      const listed = new Set(await args.listTopics());
      if (!missing.every((t) => listed.has(t))) throw err;
      args.logger.info(
        { topics: missing, err: args.describeError(err) },
        'created topics; leaders still being elected',
      );
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await args.counts.load(wanted);
      return;
    } catch (err) {
      if (attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Topics that keep only the newest record per key. */
const COMPACTED_TOPICS: ReadonlySet<TopicName> = new Set<TopicName>(['state']);

/**
 * Kafka record timestamps are whole milliseconds (int64). Collectors may carry sub-millisecond event times (HEP has
 * microseconds); both clients reject a fraction and fail the whole batch, so the wire timestamp is truncated. The
 * payload keeps the exact time.
 */
function wireTimestamp(ts: number): number {
  return Number.isFinite(ts) ? Math.trunc(ts) : Date.now();
}

/**
 * Decodes records read outside the group (readRange). Poison is skipped, not dead-lettered: the group's consumer
 * meets the same records and dead-letters them once.
 */
export function decodeRange<T>(topic: TopicName, raw: RawRecord[], maxMessageBytes: number): DeliveredRecord<T>[] {
  const out: DeliveredRecord<T>[] = [];
  for (const r of raw) {
    const decoded = decodeMany(topic, r.value, maxMessageBytes);
    if (!decoded.ok) continue;
    const key = r.key === null ? '' : r.key.toString('utf8');
    for (const value of decoded.values) {
      out.push({ topic, partition: r.partition, offset: r.offset, key, value: value as T, timestamp: r.timestamp });
    }
  }
  return out;
}

/** Kafka's ListOffsets treats -1 and -2 as "end" and "start": a time lookup must stay at or above 0. */
export function lookupTimestamp(fromTs: number): number {
  return Number.isFinite(fromTs) ? Math.max(0, Math.floor(fromTs)) : 0;
}

/** One partition's range to read: [start, end). */
export interface PartitionRange {
  partition: number;
  start: bigint;
  end: bigint;
}

/**
 * Ranges from the offset-for-time lookups and the end offsets. A partition with no record at or after the start time
 * (the lookup answers -1, or an offset past the end) has an empty range; one with no record at or after the stop
 * time is read to its end.
 */
export function rangesFrom(
  partitions: readonly number[],
  starts: Map<number, bigint>,
  ends: Map<number, bigint>,
  stops?: Map<number, bigint>,
): PartitionRange[] {
  return partitions.map((partition) => {
    const high = ends.get(partition) ?? 0n;
    const stop = stops?.get(partition);
    const end = stop === undefined || stop < 0n || stop > high ? high : stop;
    const found = starts.get(partition);
    const start = found === undefined || found < 0n || found > end ? end : found;
    return { partition, start, end };
  });
}
