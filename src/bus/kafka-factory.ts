import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Bus } from './port.js';

export async function createKafkaBus(_config: Readonly<ForesightConfig>, _logger: Logger): Promise<Bus> {
  throw new ForesightError('FORESIGHT_ERR_CONFIG', 'Kafka bus wiring pending');
}
