import { describe, expect, it } from 'vitest';
import { ActionEngine } from '../../src/actions/engine.js';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { ForesightError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { type LeaderElection, Leadership, warmFromScores } from '../../src/pipeline/leadership.js';
import { ActionStage } from '../../src/pipeline/stages.js';
import { SimulatedCluster } from '../../src/sim/cluster.js';
import { SimulatedDispatcher } from '../../src/sim/dispatcher.js';
import { SimulatedRestarter } from '../../src/sim/restarter.js';

/** An election the test drives by hand: the real one (Kafka) is covered by the Kafka integration tests. */
class ManualElection implements LeaderElection {
  private listener: (leader: boolean) => void | Promise<void> = () => {};
  leader = false;
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  isLeader(): boolean {
    return this.leader;
  }
  onChange(listener: (leader: boolean) => void | Promise<void>): void {
    this.listener = listener;
  }
  async set(leader: boolean): Promise<void> {
    this.leader = leader;
    await this.listener(leader);
  }
}

describe('leadership terms', () => {
  it('acts only while leader, with a fresh engine per term that reloads the shared store', async () => {
    const cluster = new SimulatedCluster({ nodes: 4, seed: 1 });
    const store = new SqliteStore({ path: ':memory:' });
    await store.init();
    const bus = new MemoryBus();
    const nodes = cluster.nodes().map((n) => ({ nodeId: n.nodeId, setId: n.setId, uri: n.uri }));
    const engines: ActionEngine[] = [];
    const leadership = new Leadership(
      () => {
        const engine = new ActionEngine({
          dispatcher: new SimulatedDispatcher(cluster),
          restarter: new SimulatedRestarter(cluster),
          store,
          nodes,
          clock: cluster,
          guardrails: { minActivePerSet: 0 },
        });
        engines.push(engine);
        return engine;
      },
      (engine) => new ActionStage({ bus, groupId: 'g', logger: silentLogger(), engine }),
      silentLogger(),
    );
    const election = new ManualElection();
    await leadership.follow(election);
    const actions = leadership.apiActions(store);

    // A standby refuses manual actions with a conflict that says why.
    await expect(actions.drain('ast1', { actor: 'alice', reason: 'test', force: true })).rejects.toSatisfy(
      (err: unknown) => err instanceof ForesightError && err.code === 'FORESIGHT_ERR_CONFLICT',
    );

    await election.set(true);
    expect(leadership.engine).not.toBeNull();
    const record = await actions.drain('ast1', { actor: 'alice', reason: 'maintenance', force: true });
    expect(record.actor).toBe('alice');
    expect(cluster.nodeView('ast1').accepting).toBe(false);

    await election.set(false);
    expect(leadership.engine).toBeNull();
    await expect(actions.undrain('ast1', { actor: 'alice', reason: 'done' })).rejects.toThrow(/standby/);

    // The next term starts from what the store says: ast1 is still drained, by alice.
    await election.set(true);
    expect(engines).toHaveLength(2);
    const ast1 = leadership.engine!.nodeRecords().find((r) => r.nodeId === 'ast1');
    expect(ast1?.state).toBe('draining');
    await leadership.lose();
    await store.close();
    await bus.close();
  });

  it("warms each term's engine from the recent scores before its stage consumes; a failed read leaves it cold", async () => {
    const cluster = new SimulatedCluster({ nodes: 4, seed: 1 });
    const store = new SqliteStore({ path: ':memory:' });
    await store.init();
    // The scores topic keeps what its consumers committed, so a new term can read the recent past back.
    const bus = new MemoryBus({ retainCommitted: 1000 });
    const nodes = cluster.nodes().map((n) => ({ nodeId: n.nodeId, setId: n.setId, uri: n.uri }));
    const now = cluster.now();
    const high = (ts: number) => ({
      nodeId: 'ast1',
      setId: 1,
      ts,
      risk: 0.95,
      timeToFailureS: null,
      explanation: [],
      scorer: 'stat-v1',
      observed: true,
      activeCalls: 2,
      activeCallsSource: 'ami' as const,
      evidence: { calls: { count: 2, source: 'ami' as const }, upReported: true, probe: null },
      up: true,
    });
    await bus.publish(
      'scores',
      [1, 2].map((i) => ({ key: 'ast1', value: high(now - 3000 + i * 1000) })),
    );
    let fail = false;
    const events: string[] = [];
    let warmedStreak: number | null = null;
    const leadership = new Leadership(
      () =>
        new ActionEngine({
          dispatcher: new SimulatedDispatcher(cluster),
          restarter: new SimulatedRestarter(cluster),
          store,
          nodes,
          clock: cluster,
        }),
      (engine) => {
        events.push('stage');
        return new ActionStage({ bus, groupId: 'g', logger: silentLogger(), engine });
      },
      silentLogger(),
      async (engine) => {
        events.push('warm');
        if (fail) throw new Error('broker unreachable');
        await warmFromScores(bus, engine, { lookbackMs: 60_000, now: cluster.now(), logger: silentLogger() });
        warmedStreak = engine.explain('ast1').riskStreak;
      },
    );
    await leadership.gain();
    // Two of K = 3 high windows counted by "the previous leader" carry over, before any score is consumed.
    expect(events).toEqual(['warm', 'stage']);
    expect(warmedStreak).toBe(2);
    expect(leadership.engine!.nodeRecords().find((r) => r.nodeId === 'ast1')?.state).toBe('active');
    await leadership.lose();
    fail = true;
    await leadership.gain();
    // The next term still leads, cold.
    expect(events).toEqual(['warm', 'stage', 'warm', 'stage']);
    expect(leadership.engine).not.toBeNull();
    await leadership.lose();
    await store.close();
    await bus.close();
  });
});
