import type { Bus } from '../bus/port.js';
import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';
import { type KafkaTopicRange, parseKafkaRange } from './kafka-range.js';

/** Slices of one hour: a slice's samples are held (and sorted) at once, the range's never are. */
export const DEFAULT_SLICE_MS = 3_600_000;

/** Total order of samples: time, node, metric, value. */
export function compareSamples(a: TelemetrySample, b: TelemetrySample): number {
  return (
    a.ts - b.ts ||
    (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0) ||
    (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0) ||
    a.value - b.value
  );
}

/**
 * The telemetry of a topic's time range, in time order, one slice at a time. Each slice is read by offset-for-time on
 * both ends, so consecutive slices cover consecutive offsets and every record is read once. Kafka may hold samples of
 * one event time in any order across partitions, and two reads may interleave partitions differently, so each slice
 * is put in a total order (time, node, metric, value): one range always gives the same samples in the same order,
 * hence one digest and one model. Samples outside the range are left out; a sample written after the next slice began
 * with an older time (a late arrival) comes in that next slice, as late to the consumer as it was on the bus.
 */
export async function* telemetrySlices(
  bus: Bus,
  range: Pick<KafkaTopicRange, 'fromTs' | 'toTs'>,
  options: { sliceMs?: number; onProgress?: (doneMs: number) => void; logger?: Logger } = {},
): AsyncGenerator<TelemetrySample[]> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  let outside = 0;
  for (let from = range.fromTs; from < range.toTs; from += sliceMs) {
    const to = Math.min(range.toTs, from + sliceMs);
    const slice: TelemetrySample[] = [];
    await bus.readRange('telemetry', { fromTs: from, toTs: to }, (batch) => {
      for (const r of batch) {
        if (r.value.ts >= range.fromTs && r.value.ts < range.toTs) slice.push(r.value);
        else outside++;
      }
    });
    slice.sort(compareSamples);
    options.onProgress?.(to - range.fromTs);
    if (slice.length > 0) yield slice;
  }
  if (outside > 0) options.logger?.info({ outside }, 'samples read around the range boundaries and left out');
}

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
