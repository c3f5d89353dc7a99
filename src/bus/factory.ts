import type { ForesightConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { MemoryBus } from './memory.js';
import type { Bus } from './port.js';

/** The configured bus adapter; Kafka clients load only when Kafka is configured. */
export async function createBus(config: Readonly<ForesightConfig>, logger: Logger): Promise<Bus> {
  if (config.bus.kind === 'memory') return new MemoryBus({ partitions: config.bus.partitions, logger });
  const { createKafkaBus } = await import('./kafka-factory.js');
  return createKafkaBus(config, logger);
}
