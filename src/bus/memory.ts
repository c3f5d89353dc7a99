import { errorMessage, ForesightError, isRetriable } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { validate } from './codec.js';
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
  TOPIC_NAMES,
  type TopicMap,
  type TopicName,
} from './port.js';

interface StoredRecord {
  key: string;
  value: unknown;
  timestamp: number;
}

interface Partition {
  /** Offset of records[0]; records below it were trimmed after every group committed them. */
  base: number;
  records: StoredRecord[];
}

interface Member {
  id: number;
  handler: BatchHandler<unknown>;
  options: SubscribeOptions;
  assigned: number[];
  running: boolean;
}

interface Group {
  members: Member[];
  committed: number[];
  /** Partitions being processed right now, so two members never hold one partition at once. */
  busy: Set<number>;
}

export interface MemoryBusOptions {
  partitions?: number;
  /** Largest batch handed to a handler. */
  maxBatch?: number;
  /** Attempts for a failing batch before its records are retried one by one and dead-lettered. */
  maxAttempts?: number;
  /** Records kept per partition of a topic no group reads. */
  retainUnconsumed?: number;
  /**
   * Records kept per partition after every group committed them, so readRange can re-read the recent past (as Kafka's
   * retention allows). Default 0: committed records are dropped, which is all a single in-process replica needs.
   */
  retainCommitted?: number;
  logger?: Logger;
}

/**
 * In-process bus with Kafka's semantics where the stages depend on them: partitions by key, per-key order,
 * consumer groups sharing partitions, at-least-once delivery with commit after the handler resolves, and a
 * dead-letter topic for records a handler keeps failing on. Records every group has committed are trimmed,
 * so memory stays bounded while consumers keep up.
 */
export class MemoryBus implements Bus {
  private readonly topics = new Map<TopicName, Partition[]>();
  private readonly groups = new Map<string, Group>();
  private readonly partitions: number;
  private readonly maxBatch: number;
  private readonly maxAttempts: number;
  private readonly retainUnconsumed: number;
  private readonly retainCommitted: number;
  private readonly logger: Logger;
  private nextMemberId = 1;
  private scheduled = false;
  private pumping = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(options: MemoryBusOptions = {}) {
    this.partitions = options.partitions ?? 8;
    this.maxBatch = options.maxBatch ?? 4096;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.retainUnconsumed = options.retainUnconsumed ?? 10_000;
    this.retainCommitted = Math.max(0, Math.floor(options.retainCommitted ?? 0));
    this.logger = (options.logger ?? silentLogger()).child({ component: 'memory-bus' });
    for (const topic of TOPIC_NAMES) {
      this.topics.set(
        topic,
        Array.from({ length: this.partitions }, () => ({ base: 0, records: [] })),
      );
    }
  }

  async ensureTopics(): Promise<void> {}

  /** Validates like the Kafka adapters' encoder, so a bad message fails at the producer in both. */
  async publish<K extends TopicName>(topic: K, records: OutgoingRecord<TopicMap[K]>[]): Promise<void> {
    for (const record of records) {
      const problem = validate(topic, record.value);
      if (problem) throw new ForesightError('FORESIGHT_ERR_BAD_MESSAGE', `${topic}: ${problem}`);
    }
    this.publishSync(topic, records);
  }

  /** Synchronous publish for trusted hot in-process paths (the simulator driver): no validation, same delivery. */
  publishSync<K extends TopicName>(topic: K, records: OutgoingRecord<TopicMap[K]>[]): void {
    if (this.closed) throw new Error('bus closed');
    const parts = this.topicPartitions(topic);
    const now = Date.now();
    for (const record of records) {
      const partition = parts[partitionForKey(record.key, this.partitions)]!;
      partition.records.push({ key: record.key, value: record.value, timestamp: record.timestamp ?? now });
    }
    this.schedule();
  }

  async subscribe<K extends TopicName>(
    topic: K,
    handler: BatchHandler<TopicMap[K]>,
    options: SubscribeOptions,
  ): Promise<Subscription> {
    const groupKey = `${topic}\u0000${options.groupId}`;
    let group = this.groups.get(groupKey);
    if (!group) {
      const parts = this.topicPartitions(topic);
      group = {
        members: [],
        committed: parts.map((p) => (options.fromBeginning ? p.base : p.base + p.records.length)),
        busy: new Set(),
      };
      this.groups.set(groupKey, group);
    }
    const member: Member = {
      id: this.nextMemberId++,
      handler: handler as BatchHandler<unknown>,
      options,
      assigned: [],
      running: true,
    };
    group.members.push(member);
    await this.rebalance(group);
    this.schedule();
    const owner = group;
    return {
      stop: async () => {
        member.running = false;
        owner.members = owner.members.filter((m) => m !== member);
        await member.options.onRevoked?.(member.assigned);
        member.assigned = [];
        await this.rebalance(owner);
        this.schedule();
      },
    };
  }

  async readRange<K extends TopicName>(
    topic: K,
    options: ReadRangeOptions,
    handler: (batch: DeliveredRecord<TopicMap[K]>[]) => void | Promise<void>,
  ): Promise<RangeEnd> {
    if (this.closed) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'bus closed');
    const parts = this.topicPartitions(topic);
    const wanted = options.partitions ?? parts.map((_, i) => i);
    // Kafka's offset-for-time: the first record whose timestamp is >= the time, or the end when there is none.
    const offsetForTime = (records: readonly { timestamp: number }[], ts: number, upto: number): number => {
      const i = records.findIndex((r) => r.timestamp >= ts);
      return i < 0 || i > upto ? upto : i;
    };
    const ranges = wanted.map((p) => {
      const partition = parts[p];
      if (partition === undefined) throw new ForesightError('FORESIGHT_ERR_CONFIG', `${topic} has no partition ${p}`);
      const stop =
        options.toTs === undefined
          ? partition.records.length
          : offsetForTime(partition.records, options.toTs, partition.records.length);
      const first = offsetForTime(partition.records, options.fromTs, stop);
      // A snapshot, because trimming may splice the array while the handler awaits.
      return {
        p,
        base: partition.base + first,
        end: partition.base + stop,
        snapshot: partition.records.slice(first, stop),
      };
    });
    const ends: RangeEnd = new Map();
    for (const { p, base, end, snapshot } of ranges) {
      ends.set(p, String(end));
      for (let i = 0; i < snapshot.length; i += this.maxBatch) {
        const batch: DeliveredRecord<TopicMap[K]>[] = [];
        const upto = Math.min(snapshot.length, i + this.maxBatch);
        for (let j = i; j < upto; j++) {
          const r = snapshot[j]!;
          batch.push({
            topic,
            partition: p,
            offset: String(base + j),
            key: r.key,
            value: r.value as TopicMap[K],
            timestamp: r.timestamp,
          });
        }
        await handler(batch);
      }
    }
    return ends;
  }

  async lag(topic: TopicName, groupId: string): Promise<number> {
    const group = this.groups.get(`${topic}\u0000${groupId}`);
    const parts = this.topicPartitions(topic);
    return parts.reduce((sum, p, i) => sum + (p.base + p.records.length - (group?.committed[i] ?? p.base)), 0);
  }

  /** Resolves once every subscribed group has processed everything published so far. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const group of this.groups.values()) for (const m of group.members) m.running = false;
    this.groups.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private topicPartitions(topic: TopicName): Partition[] {
    const parts = this.topics.get(topic);
    if (!parts) throw new Error(`unknown topic ${topic}`);
    return parts;
  }

  private async rebalance(group: Group): Promise<void> {
    const assignments = group.members.map(() => [] as number[]);
    for (let p = 0; p < this.partitions; p++) {
      if (group.members.length > 0) assignments[p % group.members.length]!.push(p);
    }
    for (const [i, member] of group.members.entries()) {
      const next = assignments[i]!;
      const revoked = member.assigned.filter((p) => !next.includes(p));
      if (revoked.length > 0) await member.options.onRevoked?.(revoked);
      const changed = next.length !== member.assigned.length || next.some((p) => !member.assigned.includes(p));
      member.assigned = next;
      if (changed) await member.options.onAssigned?.(next);
    }
  }

  private isIdle(): boolean {
    for (const [groupKey, group] of this.groups) {
      if (group.members.length === 0) continue;
      const topic = groupKey.split('\u0000')[0] as TopicName;
      const parts = this.topicPartitions(topic);
      if (group.busy.size > 0) return false;
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        if (group.committed[i]! < p.base + p.records.length) return false;
      }
    }
    return true;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.pump(); // errors are handled per batch inside pump
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let progressed = true;
      while (progressed && !this.closed) {
        progressed = false;
        for (const [groupKey, group] of this.groups) {
          const topic = groupKey.split('\u0000')[0] as TopicName;
          const parts = this.topicPartitions(topic);
          for (const member of group.members) {
            for (const p of member.assigned) {
              if (!member.running || group.busy.has(p)) continue;
              const partition = parts[p]!;
              const from = group.committed[p]!;
              const end = partition.base + partition.records.length;
              if (from >= end) continue;
              const upto = Math.min(end, from + this.maxBatch);
              const batch: DeliveredRecord<unknown>[] = [];
              for (let off = from; off < upto; off++) {
                const r = partition.records[off - partition.base]!;
                batch.push({
                  topic,
                  partition: p,
                  offset: String(off),
                  key: r.key,
                  value: r.value,
                  timestamp: r.timestamp,
                });
              }
              group.busy.add(p);
              await this.deliver(topic, member, batch);
              group.busy.delete(p);
              // The member may have lost the partition during the await; the new owner then reprocesses (at-least-once).
              if (member.assigned.includes(p) && member.running) group.committed[p] = upto;
              progressed = true;
            }
          }
        }
        this.trim();
      }
    } finally {
      this.pumping = false;
    }
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
    else this.schedule();
  }

  private async deliver(topic: TopicName, member: Member, batch: DeliveredRecord<unknown>[]): Promise<void> {
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      try {
        await member.handler(batch);
        return;
      } catch (err) {
        this.logger.warn({ topic, attempt, err: errorMessage(err) }, 'batch handler failed');
        // A transient failure (a dependency down) is waited out, as the Kafka adapters do: dead-lettering would lose it.
        if (isRetriable(err) && !this.closed && member.running) {
          await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt, 6))));
          attempt = 0;
        }
      }
    }
    // Isolate the poison record(s): retry one by one and dead-letter only the ones that still fail.
    for (const record of batch) {
      try {
        await member.handler([record]);
      } catch (err) {
        if (topic === 'deadletter') {
          this.logger.error(
            { offset: record.offset, err: errorMessage(err) },
            'dead-letter handler failed; record skipped',
          );
          continue;
        }
        this.publishSync('deadletter', [
          {
            key: record.key,
            value: {
              topic,
              partition: record.partition,
              offset: record.offset,
              code: 'FORESIGHT_ERR_HANDLER',
              reason: errorMessage(err),
              payload: safeStringify(record.value).slice(0, 4096),
              ts: Date.now(),
            },
          },
        ]);
      }
    }
  }

  private trim(): void {
    for (const topic of TOPIC_NAMES) {
      const parts = this.topicPartitions(topic);
      const groups = [...this.groups.entries()].filter(([k]) => k.startsWith(`${topic}\u0000`)).map(([, g]) => g);
      if (groups.length === 0) {
        // Nobody reads this topic in-process (e.g. an exporter is off): keep only a bounded recent tail.
        for (const p of parts) {
          const excess = p.records.length - this.retainUnconsumed;
          if (excess >= 1024) {
            p.records.splice(0, excess);
            p.base += excess;
          }
        }
        continue;
      }
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        const low = Math.min(...groups.map((g) => g.committed[i]!), p.base + p.records.length - this.retainCommitted);
        const drop = low - p.base;
        // Splicing a long array is O(n); trimming in chunks keeps the amortised cost low.
        if (drop >= 1024 || (drop > 0 && drop === p.records.length)) {
          p.records.splice(0, drop);
          p.base = low;
        }
      }
    }
  }
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export const memoryBusSatisfiesPort = MemoryBus satisfies new (options?: MemoryBusOptions) => Bus;
