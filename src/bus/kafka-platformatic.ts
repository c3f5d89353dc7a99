import {
  Admin,
  Consumer,
  type Message,
  type MessagesStream,
  type MessageToProduce,
  Producer,
} from '@platformatic/kafka';
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
  type RawRecord,
  type ResolvedKafkaOptions,
  rangesFrom,
  resolveOptions,
  sleep,
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

type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>;

interface Outgoing {
  messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Record batch attribute bit of transaction markers, which carry no messages. */
const CONTROL_BATCH = 0x20;

/** Most records coalesced into one produce request. */
const MAX_SEND = 20_000;

/** Largest batch handed to a handler; the stream is paused while this many times four records wait. */
const MAX_BATCH = 8192;
const PAUSE_AT = MAX_BATCH * 4;

/**
 * Bus over Kafka with @platformatic/kafka. Same topics, wire format and partitioning as KafkajsBus, so the two
 * can be swapped (or mixed during a migration) without moving any node to another partition.
 */
export class PlatformaticBus implements Bus {
  private readonly options: ResolvedKafkaOptions;
  private readonly logger: Logger;
  private readonly producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  private readonly admin: Admin;
  private readonly partitionCounts = new PartitionCounts(async (topics) => {
    const meta = await this.admin.metadata({ topics, forceUpdate: true });
    return [...meta.topics].map(([name, t]) => [name, t.partitionsCount] as const);
  });
  private readonly subscriptions = new Set<Subscription>();
  private closed = false;
  private readonly outbox: Outgoing[] = [];
  /** Fetches for readRange; it never joins a group (plain Fetch requests to the partition leaders). */
  private reader: Consumer<Buffer, Buffer, Buffer, Buffer> | null = null;
  private flushing = false;

  constructor(options: KafkaBusOptions) {
    this.logger = (options.logger ?? silentLogger()).child({ component: 'kafka-bus', client: 'platformatic' });
    this.options = resolveOptions(options, this.logger);
    this.producer = new Producer({
      clientId: this.options.clientId,
      bootstrapBrokers: this.options.brokers,
      idempotent: true,
      acks: -1,
      compression: this.options.compression,
      autocreateTopics: false,
      retries: 8,
      retryDelay: 500,
    });
    this.admin = new Admin({ clientId: `${this.options.clientId}-admin`, bootstrapBrokers: this.options.brokers });
  }

  async ensureTopics(): Promise<void> {
    this.assertOpen();
    await ensureKafkaTopics({
      topicPrefix: this.options.topicPrefix,
      listTopics: () => this.admin.listTopics(),
      createTopics: async (missing, configs) => {
        await this.admin.createTopics({
          topics: missing,
          partitions: this.options.partitions,
          replicas: this.options.replicationFactor,
          configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
        });
      },
      describeError: describe,
      counts: this.partitionCounts,
      logger: this.logger,
    });
  }

  async publish<K extends TopicName>(topic: K, records: OutgoingRecord<TopicMap[K]>[]): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const partitions = await this.partitionCount(name);
    const now = Date.now();
    const messages = toWire(topic, records, this.options, now).map((w) => ({
      topic: name,
      key: Buffer.from(w.key, 'utf8'),
      value: w.value,
      partition: partitionForKey(w.key, partitions),
      timestamp: BigInt(w.timestamp),
    }));
    await this.send(messages);
  }

  /**
   * The idempotent producer numbers each partition's batches; two sends in flight at once can reach the broker out of
   * order (OUT_OF_ORDER_SEQUENCE_NUMBER). Sends therefore go one at a time, and publishes that arrive meanwhile are
   * coalesced into the next send, which keeps batches large.
   */
  private send(messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.outbox.push({ messages, resolve, reject });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.outbox.length > 0) {
        const group: Outgoing[] = [];
        let count = 0;
        while (this.outbox.length > 0 && count < MAX_SEND) {
          const next = this.outbox.shift() as Outgoing;
          group.push(next);
          count += next.messages.length;
        }
        try {
          await this.producer.send({
            messages: group.length === 1 ? (group[0]?.messages ?? []) : group.flatMap((g) => g.messages),
          });
          for (const g of group) g.resolve();
        } catch (err) {
          for (const g of group) g.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  async subscribe<K extends TopicName>(
    topic: K,
    handler: BatchHandler<TopicMap[K]>,
    options: SubscribeOptions,
  ): Promise<Subscription> {
    this.assertOpen();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const logger = this.logger.child({ topic: name, groupId: options.groupId });
    const createConsumer = () =>
      new Consumer({
        clientId: this.options.clientId,
        bootstrapBrokers: this.options.brokers,
        groupId: options.groupId,
        sessionTimeout: this.options.sessionTimeoutMs,
        heartbeatInterval: this.options.heartbeatIntervalMs,
        rebalanceTimeout: Math.max(this.options.sessionTimeoutMs, 10_000),
        autocommit: false,
        maxWaitTime: 200,
        maxBytesPerPartition: 4 * 1024 * 1024,
        autocreateTopics: false,
        retries: 8,
        retryDelay: 500,
      });
    let consumer = createConsumer();
    const hooks = new HookChain(logger);
    const pending = new Map<number, RawMessage[]>();
    /** Highest offset queued per partition: a rejoin refetches from the committed offset, which may repeat some. */
    const queuedUpTo = new Map<number, bigint>();
    let assigned = new Set<number>();
    let queued = 0;
    let stopping = false;
    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | null = null;
    let working: Promise<void> | null = null;
    let recovering = false;
    /** Last processed record per partition, not yet committed. */
    const processed = new Map<number, RawMessage>();
    let commitTimer: NodeJS.Timeout | null = null;

    const onJoin = (payload: { assignments?: { topic: string; partitions: number[] }[] }): void => {
      const next = (payload.assignments ?? []).filter((a) => a.topic === name).flatMap((a) => a.partitions);
      next.sort((a, b) => a - b);
      const previous = [...assigned].sort((a, b) => a - b);
      assigned = new Set(next);
      const revoked = hooks.reassign(options, previous, next);
      for (const p of revoked) {
        queued -= pending.get(p)?.length ?? 0;
        pending.delete(p);
        queuedUpTo.delete(p);
      }
      kick();
    };

    const work = async (): Promise<void> => {
      await hooks.settled();
      while (!stopping) {
        const partition = [...pending.keys()].find((p) => (pending.get(p)?.length ?? 0) > 0);
        if (partition === undefined) break;
        const list = pending.get(partition) ?? [];
        const batch = list.splice(0, MAX_BATCH);
        queued -= batch.length;
        if (list.length === 0) pending.delete(partition);
        if (stream?.isPaused() && queued < MAX_BATCH) stream.resume();
        const records = batch.map((m) => ({
          partition,
          offset: m.offset.toString(),
          key: m.key ?? null,
          value: m.value ?? null,
          timestamp: Number(m.timestamp),
        }));
        const isActive = () => !stopping && assigned.has(partition);
        for (let attempt = 1; isActive(); attempt++) {
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
              },
              records,
            );
            const last = batch[batch.length - 1];
            if (last) processed.set(partition, last);
            if (this.options.commitIntervalMs === 0) await flushCommits();
            else commitTimer ??= setTimeout(() => void flushCommits(), this.options.commitIntervalMs);
            break;
          } catch (err) {
            // Left uncommitted: the new owner of the partition resumes from the last commit.
            if (err instanceof ConsumerInactiveError) break;
            // E.g. the broker is away while dead-lettering: the batch is processed again (at-least-once).
            logger.warn({ partition, attempt, err: describe(err) }, 'batch failed; retrying');
            await sleep(Math.min(this.options.maxBackoffMs, 100 * attempt));
          }
        }
      }
    };

    /**
     * Committing a partition's last processed record commits everything before it (its offset + 1). Commits are
     * coalesced per partition; a broker restart makes them fail for a while, so they are retried while the
     * partition is still ours (a lost partition is resumed by its new owner from the previous commit).
     */
    const flushCommits = async (): Promise<void> => {
      if (commitTimer) clearTimeout(commitTimer);
      commitTimer = null;
      const due = [...processed.entries()];
      processed.clear();
      for (const [partition, last] of due) {
        for (
          let attempt = 1;
          assigned.has(partition) && attempt <= (stopping ? 3 : Number.MAX_SAFE_INTEGER);
          attempt++
        ) {
          try {
            await last.commit();
            break;
          } catch (err) {
            logger.warn({ partition, attempt, err: describe(err) }, 'commit failed; retrying');
            await sleep(Math.min(this.options.maxBackoffMs, 100 * attempt));
          }
        }
      }
    };

    const kick = (): void => {
      if (working || stopping) return;
      working = work().finally(() => {
        working = null;
        if (!stopping && queued > 0) kick();
      });
    };

    const onData = (m: RawMessage): void => {
      if (stopping || !assigned.has(m.partition)) return;
      const last = queuedUpTo.get(m.partition);
      if (last !== undefined && m.offset <= last) return;
      queuedUpTo.set(m.partition, m.offset);
      let list = pending.get(m.partition);
      if (!list) {
        list = [];
        pending.set(m.partition, list);
      }
      list.push(m);
      queued++;
      if (queued >= PAUSE_AT) stream?.pause();
      kick();
    };

    const open = async (): Promise<void> => {
      const current = createConsumer();
      consumer = current;
      current.on('consumer:group:join', (payload) => {
        if (current === consumer) onJoin(payload);
      });
      const opened = await current.consume({
        topics: [name],
        mode: 'committed',
        fallbackMode: options.fromBeginning ? 'earliest' : 'latest',
        autocommit: false,
      });
      stream = opened;
      opened.on('data', onData);
      opened.on('error', (err: Error) => void recover(opened, err));
      opened.on('close', () => void recover(opened, null));
      if (current.assignments) onJoin({ assignments: current.assignments });
    };

    /**
     * The client gives up on a stream after its retries (e.g. while the broker restarts). Start over with a new
     * consumer: everything not yet committed is fetched again from the committed offsets.
     */
    const recover = async (
      failed: MessagesStream<Buffer, Buffer, Buffer, Buffer>,
      err: Error | null,
    ): Promise<void> => {
      if (stopping || recovering || failed !== stream) return;
      recovering = true;
      logger.warn({ err: err ? describe(err) : 'stream closed' }, 'consumer stream failed; reconnecting');
      onJoin({ assignments: [] });
      const old = consumer;
      await Promise.resolve(failed.close()).catch(() => undefined);
      // force: do not wait for the failed stream to drain.
      await (old.close as (force: boolean) => Promise<void>).call(old, true).catch(() => undefined);
      for (let attempt = 1; !stopping; attempt++) {
        try {
          await open();
          break;
        } catch (openErr) {
          logger.warn({ attempt, err: describe(openErr) }, 'reconnect failed');
          await sleep(Math.min(this.options.maxBackoffMs, 250 * attempt));
        }
      }
      recovering = false;
    };

    await open();

    const subscription: Subscription = {
      stop: async () => {
        if (stopping) return;
        stopping = true;
        this.subscriptions.delete(subscription);
        await working?.catch(() => undefined);
        await flushCommits();
        await stream?.close().catch((err: unknown) => logger.debug({ err: describe(err) }, 'stream close'));
        await consumer.close().catch((err: unknown) => logger.debug({ err: describe(err) }, 'consumer close'));
        const lost = [...assigned].sort((a, b) => a - b);
        assigned = new Set();
        await hooks.revokeAll(options, lost);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async readRange<K extends TopicName>(
    topic: K,
    options: ReadRangeOptions,
    handler: (batch: DeliveredRecord<TopicMap[K]>[]) => void | Promise<void>,
  ): Promise<RangeEnd> {
    this.assertOpen();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const count = await this.partitionCount(name);
    const partitions = options.partitions ?? Array.from({ length: count }, (_, p) => p);
    const offsetsAt = async (timestamp: bigint): Promise<Map<number, bigint>> => {
      const listed = await this.admin.listOffsets({
        topics: [{ name, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }],
      });
      return new Map((listed[0]?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
    };
    const [starts, ends, stops] = await Promise.all([
      offsetsAt(BigInt(lookupTimestamp(options.fromTs))),
      offsetsAt(-1n),
      options.toTs === undefined ? undefined : offsetsAt(BigInt(lookupTimestamp(options.toTs))),
    ]);
    const result: RangeEnd = new Map();
    for (const range of rangesFrom(partitions, starts, ends, stops)) {
      result.set(range.partition, range.end.toString());
      let next = range.start;
      let idle = 0;
      while (next < range.end) {
        this.assertOpen();
        const raw = await this.fetchFrom(name, range.partition, next);
        if (raw.logStart > next) next = raw.logStart; // trimmed by retention meanwhile
        const inRange = raw.records.filter((r) => BigInt(r.offset) >= next && BigInt(r.offset) < range.end);
        if (raw.nextOffset <= next) {
          // Below the end yet nothing came back (a leader moving): ask again, but not forever.
          if (++idle > 100) {
            throw new ForesightError('FORESIGHT_ERR_SOURCE', `${name}/${range.partition}: no records at ${next}`);
          }
          await sleep(50);
          continue;
        }
        idle = 0;
        next = raw.nextOffset;
        const batch = decodeRange<TopicMap[K]>(topic, inRange, this.options.maxMessageBytes);
        if (batch.length > 0) await handler(batch);
      }
    }
    return result;
  }

  /** One Fetch request for one partition from an offset; control batches (transaction markers) are skipped. */
  private async fetchFrom(
    name: string,
    partition: number,
    offset: bigint,
  ): Promise<{ records: RawRecord[]; nextOffset: bigint; logStart: bigint }> {
    this.reader ??= new Consumer({
      clientId: `${this.options.clientId}-reader`,
      bootstrapBrokers: this.options.brokers,
      groupId: `${this.options.clientId}.reader`,
      retries: 8,
      retryDelay: 500,
    });
    const meta = await this.reader.metadata({ topics: [name] });
    const topicMeta = meta.topics.get(name);
    const leader = topicMeta?.partitions[partition]?.leader;
    if (!topicMeta || leader === undefined) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `no leader for ${name} partition ${partition}`);
    }
    const response = await this.reader.fetch({
      node: leader,
      maxWaitTime: 100,
      topics: [
        {
          topicId: topicMeta.id,
          partitions: [
            {
              partition,
              fetchOffset: offset,
              partitionMaxBytes: 4 * 1024 * 1024,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            },
          ],
        },
      ],
    });
    const part = response.responses[0]?.partitions.find((p) => p.partitionIndex === partition);
    if (!part) return { records: [], nextOffset: offset, logStart: offset };
    if (part.errorCode !== 0) {
      throw new ForesightError('FORESIGHT_ERR_SOURCE', `fetch ${name}/${partition} failed: error ${part.errorCode}`);
    }
    const records: RawRecord[] = [];
    let nextOffset = offset;
    for (const batch of part.records ?? []) {
      const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      if (last + 1n > nextOffset) nextOffset = last + 1n;
      if (batch.attributes & CONTROL_BATCH) continue;
      for (const record of batch.records) {
        records.push({
          partition,
          offset: (batch.firstOffset + BigInt(record.offsetDelta)).toString(),
          key: record.key,
          value: record.value,
          timestamp: Number(batch.firstTimestamp + record.timestampDelta),
        });
      }
    }
    return { records, nextOffset, logStart: part.logStartOffset };
  }

  async lag(topic: TopicName, groupId: string): Promise<number> {
    this.assertOpen();
    const name = kafkaTopic(this.options.topicPrefix, topic);
    const count = await this.partitionCount(name);
    const partitions = Array.from({ length: count }, (_, p) => p);
    const offsetsAt = async (timestamp: bigint): Promise<Map<number, bigint>> => {
      const listed = await this.admin.listOffsets({
        topics: [{ name, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }],
      });
      return new Map((listed[0]?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
    };
    // Kafka's ListOffsets sentinels: -1 is the end of the log, -2 its start.
    const [ends, starts, groups] = await Promise.all([
      offsetsAt(-1n),
      offsetsAt(-2n),
      this.admin.listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name, partitionIndexes: partitions }] }] }),
    ]);
    const committed = new Map<number, bigint>();
    for (const t of groups[0]?.topics ?? []) {
      if (t.name !== name) continue;
      for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
    }
    let lag = 0n;
    for (const p of partitions) {
      const end = ends.get(p) ?? 0n;
      const done = committed.get(p) ?? -1n;
      lag += end - (done >= 0n ? done : (starts.get(p) ?? 0n));
    }
    return Number(lag);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.subscriptions]) await s.stop();
    await Promise.allSettled([this.producer.close(), this.admin.close(), this.reader?.close()]);
  }

  private assertOpen(): void {
    if (this.closed) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'bus closed');
  }

  private partitionCount(name: string): Promise<number> {
    return this.partitionCounts.of(name);
  }
}

/** @platformatic/kafka wraps broker errors in aggregates; their messages carry the useful part. */
function describe(err: unknown): string {
  const nested = (err as { errors?: unknown[] } | null)?.errors;
  if (Array.isArray(nested) && nested.length > 0) return `${errorMessage(err)}: ${nested.map(describe).join('; ')}`;
  return errorMessage(err);
}

export const platformaticBusSatisfiesPort = PlatformaticBus satisfies new (options: KafkaBusOptions) => Bus;
