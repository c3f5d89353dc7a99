import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { KafkaLeaderElection } from '../../src/bus/leader.js';
import type { NodeScore } from '../../src/messages.js';
import { waitFor } from '../helpers/bus-conformance.js';
import {
  type Child,
  type ChildLine,
  deleteTestTopics,
  KAFKA_BROKERS,
  kafkaService,
  spawnTsChild,
  uniquePrefix,
} from './kafka-support.js';

const SESSION_TIMEOUT_MS = 6_000;

beforeAll(async () => {
  await kafkaService('start');
});

afterAll(async () => {
  await deleteTestTopics();
});

function score(nodeId: string, ts: number): { key: string; value: NodeScore } {
  return {
    key: nodeId,
    value: {
      nodeId,
      setId: 1,
      ts,
      risk: 0.95,
      timeToFailureS: 60,
      explanation: [],
      scorer: 'test-v1',
      observed: true,
      activeCalls: 2,
      activeCallsSource: 'ami',
      evidence: { calls: { count: 2, source: 'ami' }, upReported: true, probe: null },
      up: true,
    },
  };
}

/** Whether any two replicas believed they were leader at the same moment, from their reports and the kill times. */
function overlaps(events: { replicaId: string; at: number; leader: boolean }[]): boolean {
  const sorted = [...events].sort((a, b) => a.at - b.at);
  const leaders = new Set<string>();
  for (const e of sorted) {
    if (e.leader) leaders.add(e.replicaId);
    else leaders.delete(e.replicaId);
    if (leaders.size > 1) return true;
  }
  return false;
}

describe('leadership through a Kafka control topic', () => {
  const children: Child[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill();
    for (const f of cleanups.splice(0)) await f();
  });

  it('elects one replica, and moves leadership when it stops', async () => {
    const prefix = uniquePrefix('elect');
    const changes: string[] = [];
    const make = (id: string) =>
      new KafkaLeaderElection({
        brokers: KAFKA_BROKERS,
        topicPrefix: prefix,
        replicaId: id,
        sessionTimeoutMs: SESSION_TIMEOUT_MS,
        heartbeatIntervalMs: 500,
        onChange: (leader) => void changes.push(`${id}:${leader}`),
      });
    const a = make('a');
    const b = make('b');
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    await a.start();
    await a.waitForLeadership(20_000);
    await b.start();
    await waitFor('one settled leader', () => Number(a.isLeader()) + Number(b.isLeader()) === 1, 20_000);
    const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
    await leader.stop();
    expect(leader.isLeader()).toBe(false);
    // A graceful stop leaves the group, so the standby need not wait for a session timeout.
    await standby.waitForLeadership(SESSION_TIMEOUT_MS);
    expect(changes.length).toBeGreaterThanOrEqual(3);
  });

  it('hands leadership to the standby when the leader dies, and executes each drain once', async () => {
    const prefix = uniquePrefix('leader');
    const dir = mkdtempSync(join(tmpdir(), 'foresight-leader-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const executions = join(dir, 'executions.jsonl');
    const bus = new KafkajsBus({ brokers: KAFKA_BROKERS, topicPrefix: prefix, partitions: 2 });
    cleanups.push(() => bus.close());
    await bus.ensureTopics();

    const replicas = new Map<string, Child>();
    for (const id of ['r1', 'r2']) {
      const child = spawnTsChild('./kafka-leader-child.ts', [KAFKA_BROKERS.join(','), prefix, id, executions]);
      children.push(child);
      replicas.set(id, child);
    }
    const all = (): (ChildLine & { replicaId: string })[] =>
      [...replicas.values()].flatMap((c) => c.lines as (ChildLine & { replicaId: string })[]);
    const currentLeaders = (): string[] =>
      [...replicas.entries()]
        .filter(([, c]) => c.lines.filter((l) => l.event === 'leader').at(-1)?.leader === true)
        .map(([id]) => id);
    await waitFor('both replicas', () => all().filter((l) => l.event === 'ready').length === 2, 60_000);
    await waitFor('a single leader', () => currentLeaders().length === 1, 30_000);

    await bus.publish('scores', [score('ast1', 1_000)]);
    await waitFor(
      'the first drain',
      () => all().some((l) => l.event === 'drained' && l.decisionId === 'drain-ast1-1000'),
      30_000,
    );
    const first = currentLeaders()[0] ?? '';
    const survivor = first === 'r1' ? 'r2' : 'r1';

    const killedAt = Date.now();
    replicas.get(first)?.kill();
    await replicas.get(first)?.exited;
    await waitFor('the standby to lead', () => currentLeaders().includes(survivor), SESSION_TIMEOUT_MS + 10_000);
    const tookOverAt =
      all()
        .filter((l) => l.replicaId === survivor && l.event === 'leader' && l.leader)
        .at(-1)?.at ?? 0;
    expect(tookOverAt - killedAt).toBeLessThan(SESSION_TIMEOUT_MS + 5_000);

    await bus.publish('scores', [score('ast2', 2_000)]);
    await waitFor(
      'the second drain',
      () => all().some((l) => l.event === 'drained' && l.decisionId === 'drain-ast2-2000'),
      30_000,
    );
    // Give a wrongly re-executed first drain a chance to show up.
    await new Promise((r) => setTimeout(r, 1_000));

    const executed = readFileSync(executions, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { decisionId: string; replicaId: string });
    expect(executed).toEqual([
      expect.objectContaining({ decisionId: 'drain-ast1-1000', replicaId: first }),
      expect.objectContaining({ decisionId: 'drain-ast2-2000', replicaId: survivor }),
    ]);
    const leadership = [
      ...all()
        .filter((l) => l.event === 'leader')
        .map((l) => ({ replicaId: l.replicaId, at: l.at, leader: l.leader === true })),
      { replicaId: first, at: killedAt, leader: false },
    ];
    expect(overlaps(leadership)).toBe(false);
  });
});
