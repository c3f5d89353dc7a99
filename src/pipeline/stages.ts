import { type Bus, type DeliveredRecord, partitionForKey, type Subscription } from '../bus/port.js';
import { errorMessage } from '../errors.js';
import type { NodeFeatureState } from '../features/extractor.js';
import type { PeerBoard } from '../features/peer-board.js';
import type { Logger } from '../log.js';
import type {
  AuditRecord,
  FeatureVector,
  NodeScore,
  StateCheckpoint,
  StateImport,
  TelemetrySample,
} from '../messages.js';
import type { ScorerNodeState } from '../models/scorers/scorer.js';
import { type CheckpointLog, CheckpointSchedule } from './checkpoints.js';

/** What the feature stage needs from the extractor (src/features). */
export interface WindowExtractor {
  /** `from`: the partition the samples came from and their arrival time, for per-partition watermarks. */
  ingest(samples: TelemetrySample[], from?: { source: number; at: number }): FeatureVector[];
  advance(nowMs: number, options?: { waitForSources?: boolean }): FeatureVector[];
  /** Counts the active sources as heard from at `nowMs`: silence while the bus is unreachable is the bus's. */
  holdSources?(nowMs: number): void;
  /** Windows wait for samples a producer still holds unsent from this event time on; null: nothing waits. */
  holdUpstream?(oldestUnsentTs: number | null): void;
  /** Learnt per-node history for checkpoints (FeatureExtractor has both); without them nodes move cold. */
  exportStates?(include?: (nodeId: string) => boolean): NodeFeatureState[];
  importState?(state: NodeFeatureState): StateImport;
}

/** How often a stage checkpoints the nodes it owns, where, and how old a checkpoint may be to be restored. */
export interface CheckpointSettings {
  log: CheckpointLog;
  /** Event time between a node's checkpoints (CheckpointSchedule spreads the nodes over it). */
  everyMs: number;
  /** Older checkpoints are not read back; telemetry is re-read from a checkpoint at most this far back. */
  maxAgeMs: number;
}

/** What the checkpoints of a stage did, for /metrics, logs and tests. */
export interface CheckpointCounters {
  written: number;
  writeFailures: number;
  restored: number;
  refused: number;
}

/**
 * Writes per-node checkpoints. A failed write is counted and logged, never fatal: the next boundary writes again, and
 * until then a takeover restores the previous checkpoint.
 */
async function writeCheckpoints(
  stage: StageOptions & { checkpoints?: CheckpointSettings },
  counters: CheckpointCounters,
  states: Array<{ key: string; kind: StateCheckpoint['kind']; nodeId: string; state: { windowEnd: number } }>,
): Promise<void> {
  if (states.length === 0 || !stage.checkpoints) return;
  const now = Date.now();
  try {
    await stage.checkpoints.log.write(
      states.map(({ key, kind, nodeId, state }) => ({
        key,
        checkpoint: { kind, nodeId, windowEnd: state.windowEnd, ts: now, state },
      })),
    );
    counters.written += states.length;
  } catch (err) {
    counters.writeFailures++;
    stage.logger.warn(
      { err: errorMessage(err), nodes: states.length, kind: states[0]!.kind },
      'checkpoint not written',
    );
  }
}

/**
 * Imports every checkpoint of `kind` within maxAgeMs, at a start without partitions to rebuild. A checkpoint that
 * claims windows ahead of the clock (another clock, a virtual one) is refused: it would mark future windows as learnt.
 */
async function restoreCheckpointsAtStart(
  stage: StageOptions & { checkpoints?: CheckpointSettings },
  counters: CheckpointCounters,
  kind: StateCheckpoint['kind'],
  importOne: (cp: StateCheckpoint) => StateImport,
): Promise<void> {
  const settings = stage.checkpoints;
  if (!settings) return;
  const now = Date.now();
  let found: Map<string, StateCheckpoint>;
  try {
    found = await settings.log.read(kind, now - settings.maxAgeMs, () => true);
  } catch (err) {
    stage.logger.warn({ err: errorMessage(err), kind }, 'checkpoints not read; nodes start cold');
    return;
  }
  const restored = importCheckpoints(found, stage.logger, counters, (cp) =>
    cp.windowEnd > now + 60_000 ? { ok: false, reason: 'ahead of the clock' } : importOne(cp),
  );
  if (found.size > 0)
    stage.logger.info({ kind, restored: restored.size, refused: counters.refused }, 'restored checkpoints');
}

/**
 * Imports each checkpoint, counting and logging the refused ones; returns, per node taken over, the earliest window
 * end among its restored checkpoints (the point its history continues from).
 */
function importCheckpoints(
  found: Map<string, StateCheckpoint>,
  logger: Logger,
  counters: CheckpointCounters,
  importOne: (cp: StateCheckpoint) => StateImport,
): Map<string, number> {
  const restoredFrom = new Map<string, number>();
  for (const cp of found.values()) {
    const result = importOne(cp);
    if (result.ok) {
      counters.restored++;
      restoredFrom.set(cp.nodeId, Math.min(cp.windowEnd, restoredFrom.get(cp.nodeId) ?? Number.POSITIVE_INFINITY));
    } else {
      counters.refused++;
      logger.warn(
        { nodeId: cp.nodeId, kind: cp.kind, reason: result.reason },
        'checkpoint refused; the node starts cold',
      );
    }
  }
  return restoredFrom;
}

/** Batches, ticks and rebalance hooks of one stage, one at a time in arrival order. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** Whether a node's key falls on one of the owned partitions; before the first assignment, or with one consumer, yes. */
function ownsKey(owned: ReadonlySet<number> | null, partitions: number | undefined, nodeId: string): boolean {
  if (owned === null || partitions === undefined) return true;
  return owned.has(partitionForKey(nodeId, partitions));
}

/** What the score stage needs from a scorer (src/models). */
export interface BatchScorer {
  readonly name: string;
  score(vectors: FeatureVector[]): NodeScore[] | Promise<NodeScore[]>;
  /** Per-node learnt state for checkpoints (the Scorer contract's optional pair). */
  exportStates?(include?: (nodeId: string) => boolean): ScorerNodeState[];
  importState?(state: ScorerNodeState): StateImport;
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
  /**
   * The clock tick() is given (wall time in the sidecar). With it, each telemetry partition has a watermark of its
   * own (see FeatureExtractor.ingest): windows close only as far as every active partition has delivered, so the
   * catch-up after a broker outage does not close windows another partition has yet to deliver.
   */
  arrivalClock?: () => number;
  /**
   * Event time of the oldest sample this process's own collectors hold back because the bus did not take it (the
   * outbox's spool after a broker outage); null while samples flow. With per-partition watermarks no window closes
   * past it until the group has read what was held: another producer on the same partition (another replica's
   * collector) may drain its spool first and move the partition on. And while anything is held, the group's lag of 0
   * is no evidence that nothing is left to read.
   */
  upstreamBacklogTs?: () => number | null;
  /**
   * How long an unreachable bus keeps the partitions active (holding windows open for what producers spool), ms.
   * Past it the idle rule applies again. Default 600 000 (bus.outbox.maxOutageMs: what is older is not kept anyway).
   */
  outageHoldMs?: number;
  /**
   * Checkpoints of the owned nodes' learnt history to the `state` topic, restored by the rebuild after a takeover or
   * a restart (with `createExtractor`). Without them, moved nodes start cold (or warm from recoveryWarmupMs).
   */
  checkpoints?: CheckpointSettings;
  /**
   * With several replicas (needs `partitions`): the board the extractor takes remote peers from, fed here with the
   * vectors other replicas publish, read through a consumer group of this replica's own (`<groupId>.peers.<replicaId>`)
   * so that every replica sees every node. Absent: peers are the nodes of this replica's partitions only.
   */
  peers?: { board: PeerBoard; replicaId: string };
}

/** What the last rebuild did, for logs, /metrics and tests. */
export interface RebuildReport {
  partitions: number[];
  /** Start of the telemetry re-read, epoch ms. */
  fromTs: number;
  samples: number;
  vectors: number;
  /** Nodes whose history came from a checkpoint, and checkpoints refused (other layout, bad values). */
  restored: number;
  /** Nodes whose history this replica held itself (it fed them until the rebalance, and no one emitted past it). */
  kept: number;
  refused: number;
  ms: number;
}

/** How long the consumer must be seen caught up before silence closes windows on the clock alone. */
const CAUGHT_UP_MS = 3000;

/**
 * How long windows still wait for this process's backlog after the outbox has sent it, when the group is not seen
 * caught up (lag 0) meanwhile: a consumer that far behind has the partition's newer samples yet to read anyway.
 */
const UPSTREAM_RELEASE_MAX_MS = 10_000;

/** Closed windows kept across a bus outage: 10 000 nodes for a minute of 10 s windows. */
const MAX_UNPUBLISHED_VECTORS = 60_000;

/** telemetry → windows → features. Late, future and non-finite samples are dead-lettered by the extractor's callback. */
export class FeatureStage {
  readonly counters: StageCounters = { in: 0, out: 0, deadLettered: 0 };
  /**
   * Records skipped because a rebuild had already replayed them; records delivered again after they were ingested
   * (a commit lost in a broker outage: Kafka delivers at least once); the last rebuild.
   */
  readonly recovery: { skipped: number; redelivered: number; rebuilds: number; last: RebuildReport | null } = {
    skipped: 0,
    redelivered: 0,
    rebuilds: 0,
    last: null,
  };
  private subscription: Subscription | null = null;
  private peerSubscription: Subscription | null = null;
  private pendingRejects: RejectedSample[] = [];
  /** Vectors whose publish failed, sent again first on the next emit. */
  private unpublished: FeatureVector[] = [];
  /** Telemetry partitions this replica owns; null until the first assignment. */
  private owned: Set<number> | null = null;
  private extractor: WindowExtractor;
  /** windowEnd of the newest vector emitted per node (here or, after a rebuild, by the previous owner). */
  private readonly lastEmitted = new Map<string, number>();
  /** windowEnd of the newest vector this stage itself emitted per node (never another owner's). */
  private readonly ownEmitted = new Map<string, number>();
  /** Per rebuilt partition: vectors of its nodes ending at or before this were emitted by the previous owner. */
  private readonly floors = new Map<number, number>();
  /**
   * Per partition: records below this offset are in the extractor already, read by a rebuild's replay or delivered
   * before (Kafka delivers again from a commit lost in an outage); a record below it is not new telemetry.
   */
  private readonly ingestedTo = new Map<number, number>();
  /** Partitions whose ingestedTo a rebuild's replay set and no delivery has passed yet (their skips count apart). */
  private readonly replayed = new Set<number>();
  /** Newest event time seen (samples or ticks). */
  private eventTime = Number.NEGATIVE_INFINITY;
  /** Batches, ticks and rebalance hooks run one at a time: a rebuild swaps the extractor under them. */
  private readonly queue = new SerialQueue();
  private stopping = false;
  /** Since when (tick clock) the group was seen with no telemetry left to read; null: lagging or unknown. */
  private lagZeroSince: number | null = null;
  /** When (tick clock) the newest lag query that answered 0 was asked. */
  private lagZeroAskedAt: number | null = null;
  /**
   * Event time windows wait at for this process's backlog; once the outbox has sent it (`upstreamSentAt`), until a
   * lag query asked after that answers 0: sent is not yet read.
   */
  private upstreamHold: number | null = null;
  private upstreamSentAt: number | null = null;
  private lagPolling = false;
  /**
   * The bus was unreachable (a lag query failed) and nothing has been delivered since: producers may still hold what
   * they spooled meanwhile, so a lag of 0 proves nothing until records flow again.
   */
  private awaitingDelivery = false;
  /** Since when (tick clock) lag queries fail; null while the bus answers. */
  private unreachableSince: number | null = null;
  readonly checkpoints: CheckpointCounters = { written: 0, writeFailures: 0, restored: 0, refused: 0 };
  /** Which nodes are due for a checkpoint; while a rebuild replays, none is written (another extractor runs). */
  private readonly schedule: CheckpointSchedule | null;
  private rebuilding = false;

  constructor(private readonly options: FeatureStageOptions) {
    this.extractor = options.extractor;
    this.schedule = options.checkpoints ? new CheckpointSchedule(options.checkpoints.everyMs) : null;
  }

  /** The extractor reports rejected samples here (wired by the factory that builds it). */
  reject(sample: unknown, reason: string): void {
    this.pendingRejects.push({ sample, reason });
  }

  async start(): Promise<void> {
    // With one consumer that never moves partitions (the in-process bus), a restart is the only time state is lost:
    // the history comes back from the store before the first sample. With Kafka the rebuild on assignment does it.
    if (this.options.checkpoints && !this.options.createExtractor && this.extractor.importState) {
      const importState = this.extractor.importState.bind(this.extractor);
      await restoreCheckpointsAtStart(this.options, this.checkpoints, 'features', (cp) =>
        importState(cp.state as NodeFeatureState),
      );
    }
    this.subscription = await this.options.bus.subscribe(
      'telemetry',
      (batch: DeliveredRecord<TelemetrySample>[]) => this.queue.run(() => this.handle(batch)),
      {
        groupId: `${this.options.groupId}.features`,
        fromBeginning: true,
        onAssigned: (partitions) => this.queue.run(() => this.assign(partitions)),
        onRevoked: (partitions) =>
          this.queue.run(() => {
            for (const p of partitions) {
              this.owned?.delete(p);
              this.replayed.delete(p);
              // ingestedTo stays: a broker restart revokes and gives back the same partitions, then redelivers from
              // a commit it lost. A partition that really moved comes back only through a rebuild, which clears it.
              this.floors.delete(p);
            }
            this.schedule?.keepOnly((nodeId) => this.ownsNode(nodeId));
          }),
      },
    );
    const peers = this.options.peers;
    if (peers !== undefined && this.options.partitions !== undefined) {
      // From the end: a group of its own per replica start, and only the newest windows make peers.
      this.peerSubscription = await this.options.bus.subscribe(
        'features',
        async (batch: DeliveredRecord<FeatureVector>[]) => this.notePeers(peers.board, batch),
        { groupId: `${this.options.groupId}.peers.${peers.replicaId}`, fromBeginning: false },
      );
    }
  }

  /** Other replicas' nodes go on the board; a node this replica owns (its own output, or one it took over) leaves it. */
  private notePeers(board: PeerBoard, batch: DeliveredRecord<FeatureVector>[]): void {
    for (const r of batch) {
      if (this.ownsNode(r.value.nodeId)) board.forget(r.value.nodeId);
      else board.record(r.value);
    }
  }

  private async handle(batch: DeliveredRecord<TelemetrySample>[]): Promise<void> {
    let records = batch;
    const first = batch[0];
    if (first !== undefined) {
      const p = first.partition;
      const done = this.ingestedTo.get(p);
      if (done !== undefined && Number(first.offset) < done) {
        // After a rebuild the consumer resumes from the committed offset, behind what the replay read; after a lost
        // commit it delivers again what was ingested.
        records = batch.filter((r) => Number(r.offset) >= done);
        if (this.replayed.has(p)) this.recovery.skipped += batch.length - records.length;
        else this.recovery.redelivered += batch.length - records.length;
      }
      const lastRecord = records[records.length - 1];
      if (lastRecord !== undefined) {
        this.ingestedTo.set(p, Number(lastRecord.offset) + 1);
        this.replayed.delete(p);
        this.awaitingDelivery = false;
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
    const clock = this.options.arrivalClock;
    const from = clock && first !== undefined ? { source: first.partition, at: clock() } : undefined;
    if (from) this.noteUpstream(from.at);
    await this.emit(this.extractor.ingest(samples, from));
  }

  private async assign(partitions: number[]): Promise<void> {
    const previous = this.owned ?? new Set<number>();
    const gained = partitions.filter((p) => !previous.has(p));
    this.owned = new Set(partitions);
    // Partitions that left keep their watermarks until they turn idle (or the group is seen caught up): a broker
    // restart revokes and re-assigns them, sometimes through an empty assignment, and they must hold meanwhile.
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
   * Kept nodes are rebuilt too (one extractor holds every owned node), from the history the old extractor hands over
   * when no one else emitted past it; moved nodes from their checkpoint, or cold (warmer with recoveryWarmupMs). When no owned node has a vector within the lookback (no window closed yet), telemetry is re-read from the
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
    // Checkpointed history of the owned nodes. A checkpoint is written only after its windows were published, so its
    // windowEnd is a point up to which the node's windows are done, as good as a vector found in the features topic.
    const settings = this.options.checkpoints;
    const checkpoints = settings
      ? await settings.log.read('features', reference - settings.maxAgeMs, (nodeId) =>
          ownedSet.has(partitionOf(nodeId)),
        )
      : new Map<string, StateCheckpoint>();
    for (const cp of checkpoints.values()) {
      if (cp.windowEnd > (last.get(cp.nodeId) ?? Number.NEGATIVE_INFINITY)) last.set(cp.nodeId, cp.windowEnd);
    }
    // Nodes this replica fed until the rebalance, and nobody emitted past since (a broker restart or a missed
    // heartbeat gives the same partitions back): their whole history is right here, newer than any checkpoint. Their
    // carried values matter most: a node last heard saying it is down must not come back "up" by default.
    const kept = (
      this.extractor.exportStates?.((nodeId) => {
        const own = this.ownEmitted.get(nodeId);
        return ownedSet.has(partitionOf(nodeId)) && own !== undefined && own >= (last.get(nodeId) ?? own);
      }) ?? []
    ).filter((state) => state.windowEnd >= (last.get(state.nodeId) ?? Number.NEGATIVE_INFINITY));
    for (const state of kept) checkpoints.delete(state.nodeId);
    this.floors.clear();
    for (const [nodeId, end] of last) {
      const p = partitionOf(nodeId);
      this.floors.set(p, Math.min(this.floors.get(p) ?? end, end));
      this.lastEmitted.set(nodeId, end);
    }
    const fresh = this.options.createExtractor!();
    const refusedBefore = this.checkpoints.refused;
    const restoredFrom = importCheckpoints(
      checkpoints,
      logger,
      this.checkpoints,
      (cp) => fresh.importState?.(cp.state as NodeFeatureState) ?? { ok: false, reason: 'no import' },
    );
    let keptImported = 0;
    for (const state of kept) {
      const result = fresh.importState?.(state) ?? { ok: false, reason: 'no import' };
      if (result.ok) {
        restoredFrom.set(state.nodeId, state.windowEnd);
        keptImported++;
      } else logger.warn({ nodeId: state.nodeId, reason: result.reason }, "a kept node's history was refused");
    }
    const oldestRestored = Math.min(...restoredFrom.values());
    // With a resume point, every owned partition is re-read from the oldest one (a node the previous owner had not yet
    // reported has no sample it accepted before that point). Without any (no window closed yet, e.g. a fresh start),
    // from the lookback, and the extractor starts its windows at the first sample as it would on a fresh start. A
    // restored node's history continues from its checkpoint: the re-read starts there (within checkpointMaxAgeMs), so
    // the windows between it and the resume point are learnt, not skipped.
    const floor = this.floors.size > 0 ? Math.min(...this.floors.values()) : null;
    let fromTs = floor === null ? reference - lookback : floor - Math.max(0, this.options.recoveryWarmupMs ?? 0);
    if (settings && oldestRestored < fromTs) fromTs = Math.max(oldestRestored, reference - settings.maxAgeMs);
    const report: RebuildReport = {
      partitions: [...owned],
      fromTs,
      samples: 0,
      vectors: 0,
      restored: restoredFrom.size - keptImported,
      kept: keptImported,
      refused: this.checkpoints.refused - refusedBefore,
      ms: 0,
    };
    // The fresh extractor holds only what the replay gives it; the replay's ends say what to skip.
    this.ingestedTo.clear();
    this.replayed.clear();
    this.rebuilding = true;
    try {
      await this.replayInto(fresh, owned, fromTs, floor, report);
    } finally {
      this.rebuilding = false;
    }
    this.extractor = fresh;
    this.recovery.rebuilds++;
    report.ms = Math.round(performance.now() - started);
    this.recovery.last = report;
    logger.info({ ...report, owned }, 'feature state rebuilt after rebalance');
  }

  /** Re-reads the owned partitions' telemetry from `fromTs` into the fresh extractor, emitting what is new. */
  private async replayInto(
    fresh: WindowExtractor,
    owned: number[],
    fromTs: number,
    floor: number | null,
    report: RebuildReport,
  ): Promise<void> {
    const { bus } = this.options;
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
    for (const [p, end] of ends) {
      this.ingestedTo.set(p, Number(end));
      this.replayed.add(p);
    }
  }

  /**
   * A node on a partition another replica owns would look unobserved here; its owner reports it, so this replica
   * stays silent about it rather than claiming it went quiet.
   */
  private ownsNode(nodeId: string): boolean {
    return ownsKey(this.owned, this.options.partitions, nodeId);
  }

  /**
   * Closes windows by time even when no telemetry arrives (a silent cluster must still show as unobserved). With
   * per-partition watermarks, silence closes windows at once only when it is evidence: the consumer group was seen
   * with nothing left to read for CAUGHT_UP_MS. While the bus cannot say (a broker outage) or records wait, windows
   * wait for the partitions (up to features.idlePartitionMs).
   */
  async tick(nowMs: number): Promise<void> {
    if (this.options.arrivalClock) this.pollLag(nowMs);
    await this.queue.run(async () => {
      if (nowMs > this.eventTime) this.eventTime = nowMs;
      if (this.options.arrivalClock) this.noteUpstream(nowMs);
      const caughtUp =
        this.lagZeroSince !== null && nowMs - this.lagZeroSince >= CAUGHT_UP_MS && this.upstreamHold === null;
      await this.emit(this.extractor.advance(nowMs, { waitForSources: !caughtUp }));
    });
  }

  /** Tells the extractor how far this process's backlog holds windows (per-partition watermarks only). */
  private noteUpstream(nowMs: number): void {
    const backlog = this.options.upstreamBacklogTs?.() ?? null;
    if (backlog !== null) {
      // The oldest held back since the backlog began: part of it may be sent and not yet read. Never older than the
      // outbox keeps samples (outageHoldMs is its maxOutageMs).
      const oldest = Math.min(this.upstreamHold ?? backlog, backlog);
      this.upstreamHold = Math.max(oldest, nowMs - (this.options.outageHoldMs ?? 600_000));
      this.upstreamSentAt = null;
    } else if (this.upstreamHold !== null) {
      this.upstreamSentAt ??= nowMs;
      const read = this.lagZeroAskedAt !== null && this.lagZeroAskedAt > this.upstreamSentAt;
      if (read || nowMs - this.upstreamSentAt > UPSTREAM_RELEASE_MAX_MS) {
        this.upstreamHold = null;
        this.upstreamSentAt = null;
      }
    }
    this.extractor.holdUpstream?.(this.upstreamHold);
  }

  /** Asks the bus for the group's telemetry lag, one question at a time; an error or a lag resets the evidence. */
  private pollLag(nowMs: number): void {
    if (this.lagPolling) return;
    this.lagPolling = true;
    const group = `${this.options.groupId}.features`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('lag query timed out')), 2000);
    });
    Promise.race([this.options.bus.lag('telemetry', group), timeout])
      .then((lag) => {
        this.unreachableSince = null;
        if (lag === 0) this.lagZeroAskedAt = nowMs;
        if (lag > 0 || this.awaitingDelivery) this.lagZeroSince = null;
        else if (this.lagZeroSince === null) this.lagZeroSince = nowMs;
      })
      .catch(() => {
        this.lagZeroSince = null;
        this.awaitingDelivery = true;
        this.unreachableSince ??= nowMs;
        // While the bus cannot be asked, no partition turns idle: what it holds back is the bus's silence (up to
        // outageHoldMs, past which producers drop what they spooled anyway).
        if (nowMs - this.unreachableSince <= (this.options.outageHoldMs ?? 600_000)) {
          void this.queue.run(async () => this.extractor.holdSources?.(nowMs));
        }
      })
      .finally(() => {
        clearTimeout(timer);
        this.lagPolling = false;
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
        this.ownEmitted.set(v.nodeId, v.windowEnd);
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
      await this.checkpoint(vectors);
    }
    if (this.pendingRejects.length > 0) {
      const rejects = this.pendingRejects.splice(0);
      this.counters.deadLettered += rejects.length;
      await deadLetter(this.options.bus, 'telemetry', rejects, Date.now());
    }
  }

  /** After windows were published: the history of the owned nodes whose checkpoint is due goes to the log. */
  private async checkpoint(published: FeatureVector[]): Promise<void> {
    if (!this.schedule || this.rebuilding || this.stopping || published.length === 0) return;
    const due = this.schedule.due(published);
    if (due.size === 0) return;
    const states = this.extractor.exportStates?.((nodeId) => due.has(nodeId) && this.ownsNode(nodeId)) ?? [];
    await writeCheckpoints(
      this.options,
      this.checkpoints,
      states.map((state) => ({ key: `features:${state.nodeId}`, kind: 'features', nodeId: state.nodeId, state })),
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.queue.run(() => undefined);
    await this.subscription?.stop();
    await this.peerSubscription?.stop();
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

export interface ScoreStageOptions extends StageOptions {
  scorer: BatchScorer;
  /** Partitions of the features topic; with checkpoints, which nodes this replica owns. */
  partitions?: number;
  /**
   * Checkpoints of the owned nodes' scorer state (streaks, persistence runs) to the `state` topic. A replica that
   * gains a partition restores its nodes' state, brings it up to the windows the previous owner scored (re-reading
   * the features topic, scoring without publishing), and skips the windows redelivered up to there.
   */
  checkpoints?: CheckpointSettings;
}

/** features → scores. */
export class ScoreStage {
  readonly counters: StageCounters = { in: 0, out: 0, deadLettered: 0 };
  /** Scoring time per batch, ms, for /metrics (bounded ring). */
  readonly latenciesMs: number[] = [];
  readonly checkpoints: CheckpointCounters = { written: 0, writeFailures: 0, restored: 0, refused: 0 };
  private subscription: Subscription | null = null;
  private owned: Set<number> | null = null;
  /** Per taken-over node: windows up to this were scored by the previous owner (and replayed into the scorer here). */
  private readonly scoredThrough = new Map<string, number>();
  private readonly schedule: CheckpointSchedule | null;
  /** Batches and rebalance hooks one at a time: a restore must finish before its partitions' batches are scored. */
  private readonly queue = new SerialQueue();

  constructor(private readonly options: ScoreStageOptions) {
    this.schedule = options.checkpoints ? new CheckpointSchedule(options.checkpoints.everyMs) : null;
  }

  async start(): Promise<void> {
    const { checkpoints, partitions, scorer } = this.options;
    if (checkpoints && partitions === undefined && scorer.importState) {
      const importState = scorer.importState.bind(scorer);
      await restoreCheckpointsAtStart(this.options, this.checkpoints, 'scorer', (cp) =>
        importState(cp.state as ScorerNodeState),
      );
    }
    const restoring = checkpoints !== undefined && partitions !== undefined;
    this.subscription = await this.options.bus.subscribe(
      'features',
      (batch) => this.queue.run(() => this.handle(batch)),
      {
        groupId: `${this.options.groupId}.scores`,
        fromBeginning: true,
        ...(restoring
          ? {
              onAssigned: (partitions: number[]) => this.queue.run(() => this.assign(partitions)),
              onRevoked: (partitions: number[]) =>
                this.queue.run(() => {
                  for (const p of partitions) this.owned?.delete(p);
                  this.schedule?.keepOnly((nodeId) => this.ownsNode(nodeId));
                }),
            }
          : {}),
      },
    );
  }

  private async handle(batch: DeliveredRecord<FeatureVector>[]): Promise<void> {
    this.counters.in += batch.length;
    let vectors = batch.map((r) => r.value);
    if (this.scoredThrough.size > 0) {
      vectors = vectors.filter((v) => {
        const through = this.scoredThrough.get(v.nodeId);
        if (through === undefined) return true;
        if (v.windowEnd <= through) return false;
        this.scoredThrough.delete(v.nodeId);
        return true;
      });
    }
    if (vectors.length === 0) return;
    const started = performance.now();
    const scores = await this.options.scorer.score(vectors);
    this.latenciesMs.push(performance.now() - started);
    if (this.latenciesMs.length > 1000) this.latenciesMs.splice(0, 500);
    this.counters.out += scores.length;
    await this.options.bus.publish(
      'scores',
      scores.map((s) => ({ key: s.nodeId, value: s, timestamp: s.ts })),
    );
    await this.checkpoint(vectors);
  }

  private ownsNode(nodeId: string): boolean {
    return ownsKey(this.owned, this.options.partitions, nodeId);
  }

  /**
   * On gaining partitions: each of their nodes' newest scorer checkpoint is imported, then the features the previous
   * owner scored after it are scored again here without publishing (its scores are on the topic already), so the
   * state is where the previous owner left it. Redelivered windows up to that point are then skipped.
   */
  private async assign(partitions: number[]): Promise<void> {
    const previous = this.owned ?? new Set<number>();
    const gained = partitions.filter((p) => !previous.has(p));
    this.owned = new Set(partitions);
    const { bus, scorer, logger, checkpoints: settings, partitions: count } = this.options;
    if (gained.length === 0 || !settings || count === undefined || !scorer.importState) return;
    const gainedSet = new Set(gained);
    const onGained = (nodeId: string) => gainedSet.has(partitionForKey(nodeId, count));
    const now = Date.now();
    const found = await settings.log.read('scorer', now - settings.maxAgeMs, onGained);
    const importState = scorer.importState.bind(scorer);
    const restoredFrom = importCheckpoints(found, logger, this.checkpoints, (cp) =>
      importState(cp.state as ScorerNodeState),
    );
    if (restoredFrom.size === 0) return;
    const fromTs = Math.min(...restoredFrom.values());
    // What the previous owner published: the newest scored window per restored node.
    const published = new Map<string, number>();
    await bus.readRange('scores', { partitions: gained, fromTs }, (batch) => {
      for (const r of batch) {
        const s = r.value;
        if (restoredFrom.has(s.nodeId) && s.ts > (published.get(s.nodeId) ?? Number.NEGATIVE_INFINITY)) {
          published.set(s.nodeId, s.ts);
        }
      }
    });
    let replayed = 0;
    await bus.readRange('features', { partitions: gained, fromTs }, async (batch) => {
      const redo = batch
        .map((r) => r.value)
        .filter((v) => {
          const from = restoredFrom.get(v.nodeId);
          const to = published.get(v.nodeId);
          return from !== undefined && to !== undefined && v.windowEnd > from && v.windowEnd <= to;
        });
      if (redo.length === 0) return;
      replayed += redo.length;
      await scorer.score(redo);
    });
    for (const [nodeId, end] of published) this.scoredThrough.set(nodeId, end);
    logger.info(
      { partitions: gained, restored: restoredFrom.size, replayed },
      'scorer state restored from checkpoints after rebalance',
    );
  }

  /** After scores were published: the scorer state of the owned nodes whose checkpoint is due goes to the log. */
  private async checkpoint(scored: FeatureVector[]): Promise<void> {
    const exportStates = this.options.scorer.exportStates;
    if (!this.schedule || !exportStates) return;
    const due = this.schedule.due(scored);
    if (due.size === 0) return;
    const states = exportStates.call(this.options.scorer, (nodeId) => due.has(nodeId) && this.ownsNode(nodeId));
    await writeCheckpoints(
      this.options,
      this.checkpoints,
      states.map((state) => ({
        key: `scorer:${state.scorer}:${state.nodeId}`,
        kind: 'scorer',
        nodeId: state.nodeId,
        state,
      })),
    );
  }

  async stop(): Promise<void> {
    await this.queue.run(() => undefined);
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
