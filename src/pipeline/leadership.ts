import type { ActionEngine } from '../actions/engine.js';
import type { Store } from '../actions/ports.js';
import type { ApiActions } from '../api/deps.js';
import type { Bus } from '../bus/port.js';
import { errorMessage, ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { NodeScore } from '../messages.js';
import { apiActionsFor } from './api-actions.js';
import type { ActionStage } from './stages.js';

/** What a replica needs from a leader election (KafkaLeaderElection with Kafka; none with the in-process bus). */
export interface LeaderElection {
  start(): Promise<void>;
  stop(): Promise<void>;
  isLeader(): boolean;
  onChange(listener: (leader: boolean) => void | Promise<void>): void;
}

/**
 * Exactly one replica acts. Each leadership term gets a fresh engine that reloads desired state from the shared
 * store (another leader may have acted meanwhile), reconciles with the dispatcher and, given `warm`, takes the
 * recent scores' streaks in before it consumes (a leader killed mid-leak leaves its count of high-risk windows only
 * in the scores topic); a standby answers manual actions with a conflict that names the reason.
 */
export class Leadership {
  engine: ActionEngine | null = null;
  private stage: ActionStage | null = null;
  private transition: Promise<void> = Promise.resolve();
  /** Whether an election decides; without one this replica is the only one, and its stopping is no news. */
  private elected = false;

  constructor(
    private readonly newEngine: () => ActionEngine,
    private readonly newStage: (engine: ActionEngine) => ActionStage,
    private readonly logger: Logger,
    /** Warms the term's engine before it consumes scores (see warmFromScores); a failure leaves it cold. */
    private readonly warm?: (engine: ActionEngine) => Promise<void>,
  ) {}

  async gain(): Promise<void> {
    if (this.engine) return;
    const engine = this.newEngine();
    await engine.init();
    await this.warm?.(engine).catch((err: unknown) => {
      this.logger.warn({ err: errorMessage(err) }, 'cannot warm the action engine from recent scores; it starts cold');
    });
    const stage = this.newStage(engine);
    await stage.start();
    this.engine = engine;
    this.stage = stage;
    this.logger.info('this replica now executes actions');
  }

  async lose(): Promise<void> {
    const engine = this.engine;
    const stage = this.stage;
    this.engine = null;
    this.stage = null;
    await stage?.stop();
    await engine?.idle();
    if (!engine) return;
    if (this.elected) this.logger.warn('this replica no longer executes actions');
    else this.logger.info('this replica no longer executes actions');
  }

  async follow(election: LeaderElection): Promise<void> {
    this.elected = true;
    election.onChange((leader) => {
      this.transition = this.transition
        .then(() => (leader ? this.gain() : this.lose()))
        .catch((err: unknown) => {
          this.logger.error({ err: errorMessage(err) }, 'leadership change failed');
        });
      return this.transition;
    });
    await election.start();
  }

  /** The current term's account of a node; a standby has none. */
  explain(nodeId: string): Record<string, unknown> | null {
    if (!this.engine) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'this replica is a standby: ask the leader');
    if (!this.engine.nodeRecords().some((r) => r.nodeId === nodeId)) return null;
    return this.engine.explain(nodeId) as unknown as Record<string, unknown>;
  }

  apiActions(store: Store): ApiActions {
    const current = (): ApiActions => {
      if (!this.engine) {
        throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'this replica is a standby; send actions to the leader');
      }
      return apiActionsFor(this.engine, store);
    };
    return {
      drain: async (id, ctx) => current().drain(id, ctx),
      undrain: async (id, ctx) => current().undrain(id, ctx),
      restart: async (id, ctx) => current().restart(id, ctx),
      pin: async (id, ctx) => current().pin(id, ctx),
      unpin: async (id, ctx) => current().unpin(id, ctx),
      clearOverride: async (id, ctx) => current().clearOverride(id, ctx),
      verdict: async (id, ctx) => current().verdict(id, ctx),
    };
  }
}

/**
 * Reads the scores of the last `lookbackMs` back from the bus (outside any consumer group) and folds them into the
 * engine without acting on them (ActionEngine.warm).
 */
export async function warmFromScores(
  bus: Bus,
  engine: ActionEngine,
  options: { lookbackMs: number; now: number; logger: Logger },
): Promise<void> {
  const scores: NodeScore[] = [];
  await bus.readRange('scores', { fromTs: options.now - options.lookbackMs }, (batch) => {
    for (const r of batch) scores.push(r.value);
  });
  const warmed = await engine.warm(scores);
  options.logger.info({ ...warmed, read: scores.length, lookbackMs: options.lookbackMs }, 'action engine warmed');
}
