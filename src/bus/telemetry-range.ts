/**
 * Telemetry of a bus time range, read back in a total order one slice at a time: shared by `foresight train` and
 * `replay` (src/cli) and the model lifecycle's recordings (src/pipeline).
 */

import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';
import type { Bus } from './port.js';

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
  range: { fromTs: number; toTs: number },
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
