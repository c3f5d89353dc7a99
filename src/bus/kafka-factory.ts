import type { ForesightConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { KafkaBusOptions } from './kafka-common.js';
import type { Bus } from './port.js';

export function kafkaOptions(config: Readonly<ForesightConfig>, logger: Logger): KafkaBusOptions {
  const k = config.bus.kafka;
  return {
    brokers: [...k.brokers],
    topicPrefix: k.topicPrefix,
    clientId: k.clientId,
    partitions: config.bus.partitions,
    replicationFactor: k.replicationFactor,
    logger: logger.child({ component: `kafka-${k.client}` }),
  };
}

/** Loads only the configured client: kafkajs (default) or @platformatic/kafka. Both implement the same port. */
export async function createKafkaBus(config: Readonly<ForesightConfig>, logger: Logger): Promise<Bus> {
  const options = kafkaOptions(config, logger);
  if (config.bus.kafka.client === 'platformatic') {
    const { PlatformaticBus } = await import('./kafka-platformatic.js');
    return new PlatformaticBus(options);
  }
  const { KafkajsBus } = await import('./kafka-kafkajs.js');
  return new KafkajsBus(options);
}
