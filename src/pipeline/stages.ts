import { type Bus, type DeliveredRecord, partitionForKey, type Subscription } from '../bus/port.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditRecord, FeatureVector, NodeScore, TelemetrySample } from '../messages.js';

/** What the feature stage needs from the extractor (src/features). */
export interface WindowExtractor {
  ingest(samples: TelemetrySample[]): FeatureVector[];
  advance(nowMs: number): FeatureVector[];
}

/** What the score stage needs from a scorer (src/models). */
export interface BatchScorer {
  readonly name: string;
  score(vectors: FeatureVector[]): NodeScore[] | Promise<NodeScore[]>;
}

/** What the action stage needs from the action engine (src/actions). */
export interface ScoreConsumer {
  onScores(scores: NodeScore[]): Promise<void>;
}

export interface RejectedSample {
  sample: unknown;
  reason: string;
}

export interface StageOptions {
  bus: Bus;
  groupId: string;
  logger: Logger;
}

/** Counters every stage exposes for /metrics and the bench. */
export interface StageCounters {
  in: number;
  out: number;
  deadLettered: number;
}

/** Dead-letters samples or records that never became a bus message, with the reason; payloads are truncated. */
export async function deadLetter(
  bus: Bus,
  topic: 'telemetry' | 'features' | 'scores',
  rejected: RejectedSample[],
  now: number,
) {
  if (rejected.length === 0) return;
  await bus.publish(
    'deadletter',
    rejected.map((r) => {
      const nodeId = (r.sample as { nodeId?: unknown } | null)?.nodeId;
      return {
        key: typeof nodeId === 'string' ? nodeId : 'unknown',
        value: {
          topic,
          partition: -1,
          offset: '-1',
          code: 'FORESIGHT_ERR_BAD_MESSAGE',
          reason: r.reason,
          payload: (() => {
            try {
              return JSON.stringify(r.sample).slice(0, 4096);
            } catch {
              return String(r.sample).slice(0, 4096);
            }
          })(),
          ts: now,
        },
      };
    }),
  );
}

export interface FeatureStageOptions extends StageOptions {
  extractor: WindowExtractor;
  /** Partitions of the telemetry topic; with several replicas each emits only the nodes it owns. */
  partitions?: number;
  /**
   * Builds a fresh extractor with the same settings (rejects wired to reject()). Given it and `partitions`, the stage
   * rebuilds window state whenever it gains partitions (see rebuild()); without it, a replica that takes over a
   * partition starts those nodes' windows from the committed offset (the window open at the move is partial).
   */
  createExtractor?: () => WindowExtractor;
  /** How far back the previous owner's last vectors are looked for in the features topic. Default 120 s. */
  recoveryLookbackMs?: number;
  /**
   * Telemetry re-read before the resume point so rebuilt nodes' EWMA, slopes and baselines start warm; their windows
   * are recomputed but not emitted again. Default 0: baselines of rebuilt nodes start cold.
   */
  recoveryWarmupMs?: number;
}

/** What the last rebuild did, for logs, /metrics and tests. */
export interface RebuildReport {
  partitions: number[];
  /** Start of the telemetry re-read, epoch ms. */
  fromTs: number;
  samples: number;
  vectors: number;
  ms: number;
}

/** Closed windows kept across a bus outage: 10 000 nodes for a minute of 10 s windows. */
const MAX_UNPUBLISHED_VECTORS = 60_000;

/** telemetry → windows → features. Late, future and non-finite samples are dead-lettered by the extractor's callback. */
export class FeatureStage {
  readonly counters: StageCounters = { in: 0, out: 0, deadLettered: 0 };
  /** Records skipped because a rebuild had already replayed them, and the last rebuild. */
  readonly recovery: { skipped: number; rebuilds: number; last: RebuildReport | null } = {
    skipped: 0,
    rebuilds: 0,
    last: null,
  };
  private subscription: Subscription | null = null;
  private pendingRejects: RejectedSample[] = [];
  /** Vectors whose publish failed, sent again first on the next emit. */
  private unpublished: FeatureVector[] = [];
  /** Telemetry partitions this replica owns; null until the first assignment. */
  private owned: Set<number> | null = null;
  private extractor: WindowExtractor;
  /** windowEnd of the newest vector emitted per node (here or, after a rebuild, by the previous owner). */
  private readonly lastEmitted = new Map<string, number>();
  /** Per rebuilt partition: vectors of its nodes ending at or before this were emitted by the previous owner. */
  private readonly floors = new Map<number, number>();
  /** Per rebuilt partition: delivered records below this offset were already replayed into the extractor. */
  private readonly replayedTo = new Map<number, number>();
  /** Newest event time seen (samples or ticks). */
  private eventTime = Number.NEGATIVE_INFINITY;
  /** Batches, ticks and rebalance hooks run one at a time: a rebuild swaps the extractor under them. */
  private tail: Promise<unknown> = Promise.resolve();
  private stopping = false;

  constructor(private readonly options: FeatureStageOptions) {
    this.extractor = options.extractor;
  }

  /** The extractor reports rejected samples here (wired by the factory that builds it). */
  reject(sample: unknown, reason: string): void {
    this.pendingRejects.push({ sample, reason });
  }

  async start(): Promise<void> {
    this.subscription = await this.options.bus.subscribe(
      'telemetry',
      (batch: DeliveredRecord<TelemetrySample>[]) => this.serial(() => this.handle(batch)),
      {
        groupId: `${this.options.groupId}.features`,
        fromBeginning: true,
        onAssigned: (partitions) => this.serial(() => this.assign(partitions)),
        onRevoked: (partitions) =>
          this.serial(() => {
            for (const p of partitions) {
              this.owned?.delete(p);
              this.replayedTo.delete(p);
              this.floors.delete(p);
            }
          }),
      },
    );
  }

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async handle(batch: DeliveredRecord<TelemetrySample>[]): Promise<void> {
    let records = batch;
    const first = batch[0];
    if (first !== undefined && this.replayedTo.size > 0) {
      const upto = this.replayedTo.get(first.partition);
      if (upto !== undefined) {
        // The consumer resumes from the committed offset, behind what the rebuild already replayed.
        records = batch.filter((r) => Number(r.offset) >= upto);
        this.recovery.skipped += batch.length - records.length;
        if (records.length > 0) this.replayedTo.delete(first.partition);
      }
    }
    this.counters.in += records.length;
    const samples = new Array<TelemetrySample>(records.length);
    let newest = this.eventTime;
    for (let i = 0; i < records.length; i++) {
      const value = records[i]!.value;
      samples[i] = value;
      if (value.ts > newest) newest = value.ts;
    }
    this.eventTime = newest;
    await this.emit(this.extractor.ingest(samples));
  }

  private async assign(partitions: number[]): Promise<void> {
    const previous = this.owned ?? new Set<number>();
    const gained = partitions.filter((p) => !previous.has(p));
    this.owned = new Set(partitions);
    if (gained.length === 0 || this.stopping) return;
    if (!this.options.createExtractor || this.options.partitions === undefined) return;
    await this.rebuild(partitions);
  }

  /**
   * Rebuilds the window state of every owned node after gaining partitions, so the window open at the move is
   * complete and no window is emitted twice:
   * 1. the newest vector per owned node is looked up in the features topic (the previous owner's output) — windows up
   *    to it are done;
   * 2. a fresh extractor re-reads the owned partitions' telemetry from the oldest such point up to the current end,
   *    merged across partitions in event-time order, and emits only windows after each node's last emitted one;
   * 3. records the consumer then delivers from the committed offset below that end are skipped, being in already.
   * Kept nodes are rebuilt too (one extractor holds every owned node); with recoveryWarmupMs 0 their baselines start
   * cold. When no owned node has a vector within the lookback (no window closed yet), telemetry is re-read from the
   * lookback's start.
   */
  private async rebuild(owned: number[]): Promise<void> {
    const started = performance.now();
    const { bus, partitions: count, logger } = this.options;
    const partitionOf = (nodeId: string) => partitionForKey(nodeId, count ?? 1);
    const ownedSet = new Set(owned);
    const reference = Math.min(Date.now(), Number.isFinite(this.eventTime) ? this.eventTime : Date.now());
    const last = new Map<string, number>();
    for (const [nodeId, end] of this.lastEmitted) if (ownedSet.has(partitionOf(nodeId))) last.set(nodeId, end);
    const lookback = this.options.recoveryLookbackMs ?? 120_000;
    await bus.readRange('features', { partitions: owned, fromTs: reference - lookback }, (batch) => {
      for (const r of batch) {
        const v = r.value;
        if (!ownedSet.has(partitionOf(v.nodeId))) continue;
        if (v.windowEnd > (last.get(v.nodeId) ?? Number.NEGATIVE_INFINITY)) last.set(v.nodeId, v.windowEnd);
      }
    });
    this.floors.clear();
    for (const [nodeId, end] of last) {
      const p = partitionOf(nodeId);
      this.floors.set(p, Math.min(this.floors.get(p) ?? end, end));
      this.lastEmitted.set(nodeId, end);
    }
    const fresh = this.options.createExtractor!();
    // With a resume point, every owned partition is re-read from the oldest one (a node the previous owner had not yet
    // reported has no sample it accepted before that point). Without any (no window closed yet, e.g. a fresh start),
    // from the lookback, and the extractor starts its windows at the first sample as it would on a fresh start.
    const floor = this.floors.size > 0 ? Math.min(...this.floors.values()) : null;
    const fromTs = floor === null ? reference - lookback : floor - Math.max(0, this.options.recoveryWarmupMs ?? 0);
    const report: RebuildReport = { partitions: [...owned], fromTs, samples: 0, vectors: 0, ms: 0 };
    this.replayedTo.clear();
    const perPartition = new Map<number, TelemetrySample[]>();
    const ends = await bus.readRange('telemetry', { partitions: owned, fromTs }, (batch) => {
      const first = batch[0];
      if (!first) return;
      let list = perPartition.get(first.partition);
      if (!list) {
        list = [];
        perPartition.set(first.partition, list);
      }
      for (const r of batch) list.push(r.value);
    });
    // Windows from the resume point on are closed even if they stay empty (every known node gets its vector).
    if (floor !== null) await this.emit(fresh.advance(fromTs));
    for (const chunk of mergeByTime([...perPartition.values()], 4096)) {
      report.samples += chunk.length;
      const vectors = fresh.ingest(chunk);
      report.vectors += vectors.length;
      await this.emit(vectors);
    }
    for (const [p, end] of ends) this.replayedTo.set(p, Number(end));
    this.extractor = fresh;
    this.recovery.rebuilds++;
    report.ms = Math.round(performance.now() - started);
    this.recovery.last = report;
    logger.info({ ...report, owned }, 'feature state rebuilt after rebalance');
  }

  /**
   * A node on a partition another replica owns would look unobserved here; its owner reports it, so this replica
   * stays silent about it rather than claiming it went quiet.
   */
  private ownsNode(nodeId: string): boolean {
    if (this.owned === null || this.options.partitions === undefined) return true;
    return this.owned.has(partitionForKey(nodeId, this.options.partitions));
  }

  /** Closes windows by time even when no telemetry arrives (a silent cluster must still show as unobserved). */
  async tick(nowMs: number): Promise<void> {
    await this.serial(async () => {
      if (nowMs > this.eventTime) this.eventTime = nowMs;
      await this.emit(this.extractor.advance(nowMs));
    });
  }

  /** Emits each node's window once: a window at or before the node's last emitted one is a replay or a redelivery. */
  private async emit(all: FeatureVector[]): Promise<void> {
    const vectors: FeatureVector[] = [];
    // Once stopping, nothing more is emitted: the partitions' next owner rebuilds from what was emitted before.
    if (!this.stopping) {
      for (const v of all) {
        if (this.owned !== null && !this.ownsNode(v.nodeId)) continue;
        const last = this.lastEmitted.get(v.nodeId);
        if (last !== undefined && v.windowEnd <= last) continue;
        if (this.floors.size > 0 && this.options.partitions !== undefined) {
          const floor = this.floors.get(partitionForKey(v.nodeId, this.options.partitions));
          if (floor !== undefined && v.windowEnd <= floor) continue;
        }
        this.lastEmitted.set(v.nodeId, v.windowEnd);
        vectors.push(v);
      }
    }
    // Closed windows cannot be rebuilt from the extractor: what a failed publish (broker down) did not send goes out
    // first on the next emit, bounded so a long outage cannot grow memory without limit.
    const toSend = this.unpublished.length > 0 ? [...this.unpublished.splice(0), ...vectors] : vectors;
    if (toSend.length > 0) {
      try {
        await this.options.bus.publish(
          'features',
          toSend.map((v) => ({ key: v.nodeId, value: v, timestamp: v.windowEnd })),
        );
        this.counters.out += toSend.length;
      } catch (err) {
        this.unpublished = toSend.slice(-MAX_UNPUBLISHED_VECTORS);
        throw err;
      }
    }
    if (this.pendingRejects.length > 0) {
      const rejects = this.pendingRejects.splice(0);
      this.counters.deadLettered += rejects.length;
      await deadLetter(this.options.bus, 'telemetry', rejects, Date.now());
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.serial(() => undefined);
    await this.subscription?.stop();
  }
}

/**
 * Merges per-partition sample lists into event-time order, in chunks, keeping each partition's own order (a sample
 * that arrived late in its partition stays late). Partitions are few, so a linear pick of the smallest head is enough.
 */
function* mergeByTime(lists: TelemetrySample[][], chunkSize: number): Generator<TelemetrySample[]> {
  const heads = lists.map(() => 0);
  let chunk: TelemetrySample[] = [];
  for (;;) {
    let pick = -1;
    let pickTs = Number.POSITIVE_INFINITY;
    for (let i = 0; i < lists.length; i++) {
      const s = lists[i]![heads[i]!];
      if (s !== undefined && (pick < 0 || s.ts < pickTs)) {
        pick = i;
        pickTs = s.ts;
      }
    }
    if (pick < 0) break;
    chunk.push(lists[pick]![heads[pick]!]!);
    heads[pick]!++;
    if (chunk.length >= chunkSize) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** features → scores. */
export class ScoreStage {
  readonly counters: StageCounters = { in: 0, out: 0, deadLettered: 0 };
  /** Scoring time per batch, ms, for /metrics (bounded ring). */
  readonly latenciesMs: number[] = [];
  private subscription: Subscription | null = null;

  constructor(private readonly options: StageOptions & { scorer: BatchScorer }) {}

  async start(): Promise<void> {
    this.subscription = await this.options.bus.subscribe(
      'features',
      async (batch) => {
        this.counters.in += batch.length;
        const started = performance.now();
        const scores = await this.options.scorer.score(batch.map((r) => r.value));
        this.latenciesMs.push(performance.now() - started);
        if (this.latenciesMs.length > 1000) this.latenciesMs.splice(0, 500);
        this.counters.out += scores.length;
        await this.options.bus.publish(
          'scores',
          scores.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
        );
      },
      { groupId: `${this.options.groupId}.scores`, fromBeginning: true },
    );
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }
}

/** scores → action engine and any observers (dashboard view, exporters). */
export class ActionStage {
  readonly counters: StageCounters = { in: 0, out: 0, deadLettered: 0 };
  private subscription: Subscription | null = null;

  constructor(
    private readonly options: StageOptions & {
      engine: ScoreConsumer;
      observers?: Array<(scores: NodeScore[]) => void>;
    },
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.options.bus.subscribe(
      'scores',
      async (batch) => {
        this.counters.in += batch.length;
        const scores = batch.map((r) => r.value);
        for (const observe of this.options.observers ?? []) {
          try {
            observe(scores);
          } catch (err) {
            this.options.logger.warn({ err: errorMessage(err) }, 'score observer failed');
          }
        }
        await this.options.engine.onScores(scores);
      },
      { groupId: `${this.options.groupId}.actions`, fromBeginning: true },
    );
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }
}

/** Publishes audit records to the actions topic so other replicas and exporters see them. */
export function auditPublisher(bus: Bus, logger: Logger): (record: AuditRecord) => void {
  return (record) => {
    bus.publish('actions', [{ key: record.nodeId, value: record, timestamp: record.ts }]).catch((err: unknown) => {
      logger.error({ err: errorMessage(err), seq: record.seq }, 'cannot publish audit record; it is in the store');
    });
  };
}
