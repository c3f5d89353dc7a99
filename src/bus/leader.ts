import { type Admin, type Consumer, Kafka, type LogEntry, logLevel } from 'kafkajs';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';

export interface LeaderElectionOptions {
  brokers: string[];
  /** The control topic is `<topicPrefix>.control` and the group `<topicPrefix>.leader`. */
  topicPrefix: string;
  /** Names this replica in logs and in the group's client id. */
  replicaId: string;
  /** A dead leader is replaced after about this long. Default 6 s. */
  sessionTimeoutMs?: number;
  /** Default 500 ms. */
  heartbeatIntervalMs?: number;
  /** Called on every change of leadership, in order. */
  onChange?: (leader: boolean) => void | Promise<void>;
  logger?: Logger;
}

/**
 * Leadership held through Kafka: every replica joins one consumer group on a single-partition control topic, and
 * the member the coordinator assigns partition 0 to is the leader. When the leader dies its session expires, the
 * group rebalances and a standby receives the partition.
 *
 * A leader that loses contact with the coordinator (a long GC pause, a network split) keeps believing it owns the
 * partition; isLeader() therefore also requires a heartbeat acknowledged within the session timeout less a margin,
 * so a cut-off leader stands down before the coordinator can hand the partition to someone else. Actions must still
 * be idempotent by decision id: a leader can die between acting and recording that it acted.
 */
export class KafkaLeaderElection {
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly logger: Logger;
  private readonly topic: string;
  private readonly sessionTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly onChange: ((leader: boolean) => void | Promise<void>) | undefined;
  private ownsPartition = false;
  private lastHeartbeatAt = 0;
  private reported = false;
  private notifications: Promise<void> = Promise.resolve();
  private watchdog: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(options: LeaderElectionOptions) {
    this.logger = (options.logger ?? silentLogger()).child({ component: 'leader', replica: options.replicaId });
    this.topic = `${options.topicPrefix}.control`;
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? 6_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 500;
    this.onChange = options.onChange;
    this.kafka = new Kafka({
      clientId: `foresight-leader-${options.replicaId}`,
      brokers: options.brokers,
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => this.logger.debug({ ns: entry.namespace }, entry.log.message),
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 3_000 },
    });
    this.admin = this.kafka.admin();
    this.consumer = this.kafka.consumer({
      groupId: `${options.topicPrefix}.leader`,
      sessionTimeout: this.sessionTimeoutMs,
      heartbeatInterval: this.heartbeatIntervalMs,
      rebalanceTimeout: this.sessionTimeoutMs,
      // Fetches return at least this often, so heartbeats go out on time on an idle topic.
      maxWaitTimeInMs: Math.min(this.heartbeatIntervalMs, 500),
      allowAutoTopicCreation: false,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 3_000 },
    });
  }

  /** Creates the control topic if missing and joins the election. Resolves once this replica is a member. */
  async start(): Promise<void> {
    await this.admin.connect();
    try {
      const existing = await this.admin.listTopics();
      if (!existing.includes(this.topic)) {
        await this.admin
          .createTopics({
            waitForLeaders: true,
            topics: [{ topic: this.topic, numPartitions: 1, replicationFactor: 1 }],
          })
          .catch((err: unknown) => {
            if (!errorMessage(err).includes('already exists')) throw err;
          });
      }
    } finally {
      await this.admin.disconnect();
    }
    const { GROUP_JOIN, HEARTBEAT, REBALANCING, CRASH, STOP, DISCONNECT } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (event) => {
      this.lastHeartbeatAt = Date.now();
      this.ownsPartition = (event.payload.memberAssignment[this.topic] ?? []).includes(0);
      this.update();
    });
    this.consumer.on(HEARTBEAT, () => {
      this.lastHeartbeatAt = Date.now();
      this.update();
    });
    for (const lost of [REBALANCING, CRASH, STOP, DISCONNECT]) {
      this.consumer.on(lost, () => {
        this.ownsPartition = false;
        this.update();
      });
    }
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: false });
    await this.consumer.run({ eachMessage: async () => {} });
    // Leadership also lapses by silence, with no event to announce it.
    this.watchdog = setInterval(() => this.update(), Math.max(50, Math.floor(this.heartbeatIntervalMs / 2)));
    this.watchdog.unref();
  }

  /** True while this replica owns the control partition and the coordinator has recently confirmed its membership. */
  isLeader(): boolean {
    if (this.stopped || !this.ownsPartition) return false;
    // Stand down two heartbeats before the coordinator could declare this member dead.
    const margin = Math.max(2 * this.heartbeatIntervalMs, 1_000);
    return Date.now() - this.lastHeartbeatAt < this.sessionTimeoutMs - margin;
  }

  /** Resolves when this replica becomes leader, or rejects after timeoutMs. */
  async waitForLeadership(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.isLeader()) {
      if (Date.now() > deadline) throw new Error(`not leader after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Leaves the group, so a standby takes over at once rather than after the session timeout. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.update();
    await this.consumer.disconnect();
    await this.notifications;
  }

  private update(): void {
    const now = this.isLeader();
    if (now === this.reported) return;
    this.reported = now;
    this.logger.info({ leader: now }, now ? 'became leader' : 'no longer leader');
    const callback = this.onChange;
    if (!callback) return;
    this.notifications = this.notifications
      .then(() => callback(now))
      .catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, 'leadership callback failed'));
  }
}
