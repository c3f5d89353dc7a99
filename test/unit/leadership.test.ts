import { describe, expect, it } from 'vitest';
import { SimulatedDispatcher } from '../../src/actions/dispatcher/simulated.js';
import { ActionEngine } from '../../src/actions/engine.js';
import { SimulatedRestarter } from '../../src/actions/restarter/simulated.js';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { ForesightError } from '../../src/errors.js';
import { SimulatedCluster } from '../../src/ingest/simulator/cluster.js';
import { silentLogger } from '../../src/log.js';
import { type LeaderElection, Leadership } from '../../src/pipeline/sidecar.js';
import { ActionStage } from '../../src/pipeline/stages.js';

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
});
