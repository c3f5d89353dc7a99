import { DEFAULT_SLICE_MS, telemetrySlices } from '../bus/telemetry-range.js';
import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';
import { type KafkaTopicRange, parseKafkaRange } from './kafka-range.js';

export interface KafkaTelemetry {
  range: KafkaTopicRange;
  /** e.g. `kafka foresight.telemetry@2026-11-20T00:00:00.000Z..2026-11-21T00:00:00.000Z` */
  source: string;
  slices(onProgress?: (doneMs: number) => void): AsyncGenerator<TelemetrySample[]>;
  close(): Promise<void>;
}

/**
 * Opens the config's Kafka client (its bus.kafka: client, and brokers unless `brokerOverride` names others) on the
 * topic `spec` names (TOPIC@FROM..TO, see parseKafkaRange).
 */
export async function openKafkaTelemetry(
  spec: string,
  base: Readonly<ForesightConfig>,
  brokerOverride: readonly string[] | undefined,
  logger: Logger,
  sliceMs = DEFAULT_SLICE_MS,
): Promise<KafkaTelemetry> {
  const range = parseKafkaRange(spec);
  const { createKafkaBus } = await import('../bus/kafka-factory.js');
  const brokers = brokerOverride && brokerOverride.length > 0 ? [...brokerOverride] : base.bus.kafka.brokers;
  const config = {
    ...base,
    bus: { ...base.bus, kafka: { ...base.bus.kafka, topicPrefix: range.topicPrefix, brokers } },
  };
  const bus = await createKafkaBus(config, logger);
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    range,
    source: `kafka ${range.topic}@${iso(range.fromTs)}..${iso(range.toTs)}`,
    async *slices(onProgress) {
      try {
        yield* telemetrySlices(bus, range, { sliceMs, logger, ...(onProgress ? { onProgress } : {}) });
      } catch (err) {
        if (err instanceof ForesightError) throw err;
        throw new ForesightError(
          'FORESIGHT_ERR_SOURCE',
          `reading ${range.topic} from ${brokers.join(',')} failed: ${(err as Error).message}`,
        );
      }
    },
    close: () => bus.close().catch(() => undefined),
  };
}
