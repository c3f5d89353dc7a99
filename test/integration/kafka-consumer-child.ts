/**
 * A consumer-group member in its own process, so a test can kill it without a goodbye (no LeaveGroup).
 *   argv: <client kafkajs|platformatic> <brokers> <topicPrefix> <groupId> <sessionTimeoutMs>
 * stdout: one JSON object a line: {event:'assigned', partitions} | {event:'got', keys} | {event:'ready'}.
 */
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { PlatformaticBus } from '../../src/bus/kafka-platformatic.js';

const [client = 'kafkajs', brokers = '', prefix = '', groupId = '', session = '6000'] = process.argv.slice(2);
const say = (event: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...event, at: Date.now() })}\n`);
const options = {
  brokers: brokers.split(','),
  topicPrefix: prefix,
  sessionTimeoutMs: Number(session),
  heartbeatIntervalMs: 500,
};
const bus = client === 'platformatic' ? new PlatformaticBus(options) : new KafkajsBus(options);

await bus.subscribe(
  'telemetry',
  async (batch) => {
    say({ event: 'got', keys: batch.map((r) => `${r.key}:${r.value.ts}`) });
  },
  { groupId, fromBeginning: true, onAssigned: (partitions) => void say({ event: 'assigned', partitions }) },
);
say({ event: 'ready' });
