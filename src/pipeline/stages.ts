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

async function deadLetter(
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

/** telemetry → windows → features. Late, future and non-finite samples are dead-lettered by the extractor's callback. */
export class FeatureStage {
  readonly counters: StageCounters = { in: 0, out: 0, deadLettered: 0 };
  private subscription: Subscription | null = null;
  private pendingRejects: RejectedSample[] = [];
  /** Telemetry partitions this replica owns; null until the first assignment. */
  private owned: Set<number> | null = null;

  constructor(
    private readonly options: StageOptions & {
      extractor: WindowExtractor;
      /** Partitions of the telemetry topic; with several replicas each emits only the nodes it owns. */
      partitions?: number;
    },
  ) {}

  /** The extractor reports rejected samples here (wired by the factory that builds it). */
  reject(sample: unknown, reason: string): void {
    this.pendingRejects.push({ sample, reason });
  }

  async start(): Promise<void> {
    this.subscription = await this.options.bus.subscribe(
      'telemetry',
      async (batch: DeliveredRecord<TelemetrySample>[]) => {
        this.counters.in += batch.length;
        const samples = new Array<TelemetrySample>(batch.length);
        for (let i = 0; i < batch.length; i++) samples[i] = batch[i]!.value;
        await this.emit(this.options.extractor.ingest(samples));
      },
      {
        groupId: `${this.options.groupId}.features`,
        fromBeginning: true,
        onAssigned: (partitions) => {
          this.owned = new Set(partitions);
        },
      },
    );
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
    await this.emit(this.options.extractor.advance(nowMs));
  }

  private async emit(all: FeatureVector[]): Promise<void> {
    const vectors = this.owned === null ? all : all.filter((v) => this.ownsNode(v.nodeId));
    if (vectors.length > 0) {
      this.counters.out += vectors.length;
      await this.options.bus.publish(
        'features',
        vectors.map((v) => ({ key: v.nodeId, value: v, timestamp: v.windowEnd })),
      );
    }
    if (this.pendingRejects.length > 0) {
      const rejects = this.pendingRejects.splice(0);
      this.counters.deadLettered += rejects.length;
      await deadLetter(this.options.bus, 'telemetry', rejects, Date.now());
    }
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }
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
