import { randomUUID } from 'node:crypto';
import { type Admin, CompressionTypes, type Consumer, Kafka, type LogEntry, logLevel, type Producer } from 'kafkajs';
import { errorMessage, ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { DeadLetter } from '../messages.js';
import {
  ConsumerInactiveError,
  decodeRange,
  ensureKafkaTopics,
  HookChain,
  type KafkaBusOptions,
  kafkaTopic,
  lookupTimestamp,
  PartitionCounts,
  processBatch,
  type ResolvedKafkaOptions,
  rangesFrom,
  resolveOptions,
  toWire,
} from './kafka-common.js';
import {
  type BatchHandler,
  type Bus,
  type DeliveredRecord,
  type OutgoingRecord,
  partitionForKey,
  type RangeEnd,
  type ReadRangeOptions,
  type SubscribeOptions,
  type Subscription,
  type TopicMap,
  type TopicName,
} from './port.js';

/**
 * Bus over Kafka with kafkajs. Records are partitioned with the port's partitionForKey (not the client's default
 * murmur2), so this adapter and the @platformatic/kafka one place a node on the same partition and can be mixed.
 */
export class KafkajsBus implements Bus {
  private readonly options: ResolvedKafkaOptions;
  private readonly logger: Logger;
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly admin: Admin;
  private connecting: Promise<void> | null = null;
  private readonly partitionCounts = new PartitionCounts(async (topics) => {
    const meta = await this.admin.fetchTopicMetadata({ topics });
    return meta.topics.map((t) => [t.name, t.partitions.length] as const);
  });
  private readonly subscriptions = new Set<Subscription>();
  private closed = false;

  constructor(options: KafkaBusOptions) {
    this.logger = (options.logger ?? silentLogger()).child({ component: 'kafka-bus', client: 'kafkajs' });
    this.options = resolveOptions(options, this.logger);
    this.kafka = new Kafka({
      clientId: this.options.clientId,
      brokers: this.options.brokers,
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => this.logKafkajs(entry),
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
    // Idempotence makes producer retries safe (no duplicate, no reordering); one request in flight keeps that true.
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    this.admin = this.kafka.admin();
  }

  async ensureTopics(): Promise<void> {
    await this.connect();
    await ensureKafkaTopics({
      topicPrefix: this.options.topicPrefix,
      listTopics: () => this.admin.listTopics(),
      createTopics: async (missing, configs) => {
        await this.admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({
            topic,
            numPartitions: this.options.partitions,
            replicationFactor: this.options.replicationFactor,
            configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
          })),
        });
      },
      describeError: errorMessage,
      counts: this.partitionCounts,
      logger: this.logger,
    });
  }

  async publish<K extends TopicName>(topic: K, records: OutgoingRecord<TopicMap[K]>[]): Promise<void> {
    if (records.length === 0) return;
    if (this.closed) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'bus closed');
    await this.connect();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const partitions = await this.partitionCount(name);
    const now = Date.now();
    const messages = toWire(topic, records, this.options, now).map((w) => ({
      key: w.key,
      value: w.value,
      partition: partitionForKey(w.key, partitions),
      timestamp: String(w.timestamp),
    }));
    await this.producer.send({
      topic: name,
      messages,
      acks: -1,
      compression: this.options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
    });
  }

  async subscribe<K extends TopicName>(
    topic: K,
    handler: BatchHandler<TopicMap[K]>,
    options: SubscribeOptions,
  ): Promise<Subscription> {
    await this.connect();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const logger = this.logger.child({ topic: name, groupId: options.groupId });
    const consumer: Consumer = this.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: this.options.sessionTimeoutMs,
      heartbeatInterval: this.options.heartbeatIntervalMs,
      rebalanceTimeout: Math.max(this.options.sessionTimeoutMs, 10_000),
      maxWaitTimeInMs: 200,
      maxBytesPerPartition: 4 * 1024 * 1024,
      allowAutoTopicCreation: false,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
    const hooks = new HookChain(logger);
    let assigned: number[] = [];
    let stopping = false;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const next = [...(event.payload.memberAssignment[name] ?? [])].sort((a, b) => a - b);
      hooks.reassign(options, assigned, next);
      assigned = next;
    });
    consumer.on(consumer.events.CRASH, (event) => {
      logger.warn({ err: event.payload.error.message, restart: event.payload.restart }, 'consumer crashed');
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [name], fromBeginning: options.fromBeginning ?? false });
    await consumer.run({
      // kafkajs commits only offsets passed to resolveOffset, i.e. records whose handler resolved (at-least-once).
      autoCommit: true,
      autoCommitInterval: this.options.commitIntervalMs > 0 ? this.options.commitIntervalMs : null,
      autoCommitThreshold: this.options.commitIntervalMs > 0 ? null : 1,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary }) => {
        // Rebuilding state for newly assigned partitions comes before their first batch.
        await hooks.settled();
        if (batch.isEmpty()) return;
        const isActive = () => !stopping && isRunning() && !isStale();
        try {
          await processBatch(
            {
              topic,
              kafkaTopic: name,
              handler: handler as BatchHandler<unknown>,
              options: this.options,
              logger,
              deadLetter: (letters: OutgoingRecord<DeadLetter>[]) => this.publish('deadletter', letters),
              isActive,
              heartbeat,
            },
            batch.messages.map((m) => ({
              partition: batch.partition,
              offset: m.offset,
              key: m.key,
              value: m.value,
              timestamp: Number(m.timestamp),
            })),
          );
        } catch (err) {
          // Leaving the batch unresolved and uncommitted makes Kafka deliver it again, here or to the new owner.
          if (err instanceof ConsumerInactiveError) return;
          throw err;
        }
        const last = batch.lastOffset();
        resolveOffset(last);
        await commitOffsetsIfNecessary();
      },
    });
    const subscription: Subscription = {
      stop: async () => {
        if (stopping) return;
        stopping = true;
        this.subscriptions.delete(subscription);
        await consumer.disconnect();
        const lost = assigned;
        assigned = [];
        await hooks.revokeAll(options, lost);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /**
   * kafkajs has no group-less fetch, so the range is read by a throwaway consumer in a group of its own that seeks to
   * the start offsets, never commits, and leaves as soon as every partition reached its end. No member of any real
   * group is affected. A group of one with no committed offsets joins in well under a second.
   */
  async readRange<K extends TopicName>(
    topic: K,
    options: ReadRangeOptions,
    handler: (batch: DeliveredRecord<TopicMap[K]>[]) => void | Promise<void>,
  ): Promise<RangeEnd> {
    await this.connect();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const count = await this.partitionCount(name);
    const partitions = options.partitions ?? Array.from({ length: count }, (_, p) => p);
    const [starts, ends, stops] = await Promise.all([
      this.admin.fetchTopicOffsetsByTimestamp(name, lookupTimestamp(options.fromTs)),
      this.admin.fetchTopicOffsets(name),
      options.toTs === undefined ? [] : this.admin.fetchTopicOffsetsByTimestamp(name, lookupTimestamp(options.toTs)),
    ]);
    const ranges = rangesFrom(
      partitions,
      new Map(starts.map((p) => [p.partition, BigInt(p.offset)])),
      new Map(ends.map((p) => [p.partition, BigInt(p.high)])),
      options.toTs === undefined ? undefined : new Map(stops.map((p) => [p.partition, BigInt(p.offset)])),
    );
    const result: RangeEnd = new Map(ranges.map((r) => [r.partition, r.end.toString()]));
    const open = new Map(ranges.filter((r) => r.start < r.end).map((r) => [r.partition, r]));
    if (open.size === 0) return result;

    const consumer = this.kafka.consumer({
      groupId: `${this.options.clientId}.replay.${randomUUID()}`,
      sessionTimeout: Math.max(this.options.sessionTimeoutMs, 6_000),
      heartbeatInterval: this.options.heartbeatIntervalMs,
      maxWaitTimeInMs: 100,
      maxBytesPerPartition: 4 * 1024 * 1024,
      allowAutoTopicCreation: false,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
    let finish: (err?: unknown) => void = () => undefined;
    let lastProgress = Date.now();
    const finished = new Promise<void>((resolve, reject) => {
      finish = (err?: unknown) => (err === undefined ? resolve() : reject(err));
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [name], fromBeginning: false });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch }) => {
          const range = open.get(batch.partition);
          if (!range) return;
          const first = batch.messages[0];
          // A fetch issued before the seek took effect starts elsewhere (at the end): wait for the seeked one.
          if (!first || BigInt(first.offset) > range.start) return;
          lastProgress = Date.now();
          const raw = batch.messages
            .filter((m) => BigInt(m.offset) >= range.start && BigInt(m.offset) < range.end)
            .map((m) => ({
              partition: batch.partition,
              offset: m.offset,
              key: m.key,
              value: m.value,
              timestamp: Number(m.timestamp),
            }));
          try {
            const records = decodeRange<TopicMap[K]>(topic, raw, this.options.maxMessageBytes);
            if (records.length > 0) await handler(records);
          } catch (err) {
            finish(err);
            return;
          }
          const last = batch.messages[batch.messages.length - 1];
          if (last) range.start = BigInt(last.offset) + 1n;
          if (range.start >= range.end) {
            open.delete(batch.partition);
            if (open.size === 0) finish();
          }
        },
      });
      for (const range of open.values()) {
        consumer.seek({ topic: name, partition: range.partition, offset: range.start.toString() });
      }
      const others = Array.from({ length: count }, (_, p) => p).filter((p) => !open.has(p));
      if (others.length > 0) consumer.pause([{ topic: name, partitions: others }]);
      // A stall, not a long read, is the failure: a large range (a day of telemetry for training) takes minutes.
      const stalled = setInterval(() => {
        if (Date.now() - lastProgress > 120_000) {
          finish(new ForesightError('FORESIGHT_ERR_TIMEOUT', `reading ${name}: no records for 120 s`));
        }
      }, 5_000);
      try {
        await finished;
      } finally {
        clearInterval(stalled);
      }
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
    return result;
  }

  async lag(topic: TopicName, groupId: string): Promise<number> {
    await this.connect();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const [ends, committed] = await Promise.all([
      this.admin.fetchTopicOffsets(name),
      this.admin.fetchOffsets({ groupId, topics: [name] }),
    ]);
    const byPartition = new Map<number, bigint>();
    for (const p of committed[0]?.partitions ?? []) byPartition.set(p.partition, BigInt(p.offset));
    let lag = 0n;
    for (const p of ends) {
      const done = byPartition.get(p.partition) ?? -1n;
      // A group with no commit on a partition has everything still retained ahead of it.
      const from = done >= 0n ? done : BigInt(p.low);
      lag += BigInt(p.high) - from;
    }
    return Number(lag);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.subscriptions]) await s.stop();
    if (this.connecting) {
      await this.connecting.catch(() => undefined);
      await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
    }
  }

  private connect(): Promise<void> {
    if (this.closed) return Promise.reject(new ForesightError('FORESIGHT_ERR_CONFLICT', 'bus closed'));
    if (!this.connecting) {
      this.connecting = Promise.all([this.producer.connect(), this.admin.connect()]).then(() => undefined);
      this.connecting.catch(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  private partitionCount(name: string): Promise<number> {
    return this.partitionCounts.of(name);
  }

  private logKafkajs(entry: LogEntry): void {
    const { message, ...extra } = entry.log;
    const fields = { ns: entry.namespace, ...extra };
    if (entry.level === logLevel.ERROR) this.logger.error(fields, message);
    else if (entry.level === logLevel.WARN) this.logger.warn(fields, message);
    else this.logger.debug(fields, message);
  }
}

export const kafkajsBusSatisfiesPort = KafkajsBus satisfies new (options: KafkaBusOptions) => Bus;
