import { ForesightError } from '../errors.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';
import { parseKafkaRange } from './kafka-range.js';

/** Where `--kafka TOPIC@FROM..TO` finds the broker: the config's bus.kafka, brokers overridable. */
export interface KafkaSourceOptions {
  config?: string;
  brokers?: string[];
}

/**
 * Reads the telemetry samples of a topic's time range. Kafka may hold samples of one event time in any order across
 * partitions, and two reads may interleave partitions differently, so the samples are put in a total order (time,
 * node, metric, value): one range always gives the same samples in the same order, so one digest and one model.
 */
export async function readKafkaTelemetry(
  spec: string,
  opts: KafkaSourceOptions,
  logger: Logger,
  progress: { start(total: number): void; increment(n: number): void },
): Promise<{ samples: TelemetrySample[]; source: string }> {
  const range = parseKafkaRange(spec);
  const { loadConfig } = await import('../config/load.js');
  const { createKafkaBus } = await import('../bus/kafka-factory.js');
  const base = loadConfig(opts.config);
  const config = {
    ...base,
    bus: {
      ...base.bus,
      kafka: {
        ...base.bus.kafka,
        topicPrefix: range.topicPrefix,
        ...(opts.brokers && opts.brokers.length > 0 ? { brokers: opts.brokers } : {}),
      },
    },
  };
  const bus = await createKafkaBus(config, logger);
  const samples: TelemetrySample[] = [];
  let outside = 0;
  const read = new Map<number, bigint>();
  try {
    await bus.readRange(
      'telemetry',
      {
        fromTs: range.fromTs,
        toTs: range.toTs,
        onRanges: (ranges) => {
          for (const r of ranges) read.set(r.partition, BigInt(r.start));
          progress.start(ranges.reduce((n, r) => n + Number(BigInt(r.end) - BigInt(r.start)), 0));
        },
      },
      (batch) => {
        for (const r of batch) {
          // Offset-for-time bounds the read by record time; the sample's own time decides what is in the range.
          if (r.value.ts >= range.fromTs && r.value.ts < range.toTs) samples.push(r.value);
          else outside++;
        }
        const last = batch[batch.length - 1];
        if (last) {
          const next = BigInt(last.offset) + 1n;
          progress.increment(Number(next - (read.get(last.partition) ?? next)));
          read.set(last.partition, next);
        }
      },
    );
  } catch (err) {
    if (err instanceof ForesightError) throw err;
    throw new ForesightError(
      'FORESIGHT_ERR_SOURCE',
      `reading ${range.topic} from ${config.bus.kafka.brokers.join(',')} failed: ${(err as Error).message}`,
    );
  } finally {
    await bus.close().catch(() => undefined);
  }
  samples.sort(
    (a, b) =>
      a.ts - b.ts ||
      (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0) ||
      (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0) ||
      a.value - b.value,
  );
  if (outside > 0) logger.info({ outside }, 'samples read around the range boundaries and left out');
  const iso = (ms: number) => new Date(ms).toISOString();
  return { samples, source: `kafka ${range.topic}@${iso(range.fromTs)}..${iso(range.toTs)}` };
}
