/**
 * One Foresight-like replica for the leadership test, run as its own process so the test can kill it outright.
 * Every replica reads scores and the audit trail; only the leader drains, once per decision, and records the drain in
 * the audit topic. A new leader first catches up with the audit trail (re-reads the recent past), so a drain its
 * predecessor already executed is not executed again.
 *   argv: <brokers> <topicPrefix> <replicaId> <executionsFile>
 * stdout: one JSON object a line: {event:'ready'|'leader'|'drained', ...}.
 */
import { appendFileSync } from 'node:fs';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { KafkaLeaderElection } from '../../src/bus/leader.js';

const [brokers = '', prefix = '', replicaId = '', executionsFile = ''] = process.argv.slice(2);
const say = (event: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...event, replicaId, at: Date.now() })}\n`);

const bus = new KafkajsBus({ brokers: brokers.split(','), topicPrefix: prefix, sessionTimeoutMs: 6_000 });
const pending = new Map<string, string>(); // decisionId -> nodeId
const done = new Set<string>();
const auditGroup = `${prefix}.audit-${replicaId}`;
let catchingUp: Promise<void> | null = null;

await bus.subscribe(
  'scores',
  async (batch) => {
    for (const r of batch) {
      if (r.value.risk >= 0.9) pending.set(`drain-${r.value.nodeId}-${r.value.ts}`, r.value.nodeId);
    }
  },
  { groupId: `${prefix}.scores-${replicaId}`, fromBeginning: true },
);
await bus.subscribe(
  'actions',
  async (batch) => {
    for (const r of batch) if (r.value.kind === 'DrainSucceeded' && r.value.decisionId) done.add(r.value.decisionId);
  },
  { groupId: auditGroup, fromBeginning: true },
);

async function catchUp(): Promise<void> {
  while ((await bus.lag('actions', auditGroup)) > 0) await new Promise((r) => setTimeout(r, 50));
}

const election = new KafkaLeaderElection({
  brokers: brokers.split(','),
  topicPrefix: prefix,
  replicaId,
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 500,
  onChange: (leader) => {
    say({ event: 'leader', leader });
    catchingUp = leader ? catchUp() : null;
  },
});
await election.start();
say({ event: 'ready' });

let acting = false;
setInterval(async () => {
  if (acting || !election.isLeader() || catchingUp === null) return;
  acting = true;
  try {
    await catchingUp;
    for (const [decisionId, nodeId] of pending) {
      if (done.has(decisionId) || !election.isLeader()) continue;
      appendFileSync(executionsFile, `${JSON.stringify({ decisionId, nodeId, replicaId, at: Date.now() })}\n`);
      await bus.publish('actions', [
        {
          key: nodeId,
          value: {
            seq: 0,
            ts: Date.now(),
            nodeId,
            kind: 'DrainSucceeded',
            actor: 'auto',
            reason: 'risk above threshold',
            decisionId,
            dryRun: true,
            details: { replicaId },
          },
        },
      ]);
      done.add(decisionId);
      say({ event: 'drained', decisionId });
    }
  } finally {
    acting = false;
  }
}, 100);
