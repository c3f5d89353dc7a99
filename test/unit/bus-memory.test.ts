import { MemoryBus } from '../../src/bus/memory.js';
import { registerBusConformance } from '../helpers/bus-conformance.js';

registerBusConformance('memory', {
  create: async () => new MemoryBus({ partitions: 4 }),
  partitions: 4,
  timeoutMs: 5_000,
});
