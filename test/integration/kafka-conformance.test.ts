import { afterAll, beforeAll } from 'vitest';
import { KafkajsBus } from '../../src/bus/kafka-kafkajs.js';
import { PlatformaticBus } from '../../src/bus/kafka-platformatic.js';
import { registerBusConformance } from '../helpers/bus-conformance.js';
import { deleteTestTopics, KAFKA_BROKERS, kafkaService, uniquePrefix } from './kafka-support.js';

beforeAll(async () => {
  await kafkaService('start');
});

afterAll(async () => {
  await deleteTestTopics();
});

const common = { brokers: KAFKA_BROKERS, partitions: 4, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 };

registerBusConformance('kafkajs', {
  create: async () => new KafkajsBus({ ...common, topicPrefix: uniquePrefix('kjs') }),
  partitions: 4,
  timeoutMs: 30_000,
});

registerBusConformance('platformatic', {
  create: async () => new PlatformaticBus({ ...common, topicPrefix: uniquePrefix('plt') }),
  partitions: 4,
  timeoutMs: 30_000,
});
