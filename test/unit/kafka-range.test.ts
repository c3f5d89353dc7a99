import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseKafkaRange } from '../../src/cli/kafka-range.js';
import { ForesightError } from '../../src/errors.js';

const NOW = Date.parse('2026-11-26T12:00:00Z');

describe('parseKafkaRange (foresight train --kafka)', () => {
  it('reads ISO times, epoch ms, ages and now, and derives the bus prefix from the topic', () => {
    expect(parseKafkaRange('foresight.telemetry@2026-11-20T00:00Z..2026-11-21T00:00:00.500Z', NOW)).toEqual({
      topic: 'foresight.telemetry',
      topicPrefix: 'foresight',
      fromTs: Date.parse('2026-11-20T00:00Z'),
      toTs: Date.parse('2026-11-21T00:00:00.500Z'),
    });
    expect(parseKafkaRange('prod.pbx.telemetry@1764000000000..1764003600000', NOW)).toMatchObject({
      topicPrefix: 'prod.pbx',
      fromTs: 1_764_000_000_000,
      toTs: 1_764_003_600_000,
    });
    expect(parseKafkaRange('foresight.telemetry@1d12h..now', NOW)).toMatchObject({
      fromTs: NOW - 36 * 3_600_000,
      toTs: NOW,
    });
    // TO left out: up to now.
    expect(parseKafkaRange('foresight.telemetry@2026-11-26..', NOW)).toMatchObject({
      fromTs: Date.parse('2026-11-26'),
      toTs: NOW,
    });
  });

  it.each([
    ['2026-11-20..2026-11-21', /no TOPIC@/],
    ['foresight.features@24h..now', /<prefix>\.telemetry/],
    ['bad topic!.telemetry@24h..now', /not a Kafka topic name/],
    ['foresight.telemetry@24h', /no "\.\."/],
    ['foresight.telemetry@now..24h', /must be before TO/],
    ['foresight.telemetry@yesterday..now', /cannot read the time "yesterday"/],
    ['foresight.telemetry@May..now', /cannot read the time "May"/],
    ['foresight.telemetry@99999999999999999999..now', /cannot read the time/],
  ])('refuses %s with a message saying why', (spec, why) => {
    expect(() => parseKafkaRange(spec, NOW)).toThrow(why);
    expect(() => parseKafkaRange(spec, NOW)).toThrow(ForesightError);
  });

  it('any input either parses to a non-empty range of a telemetry topic or fails with a ForesightError', () => {
    const piece = fc.oneof(
      fc.string(),
      fc.constantFrom('now', '24h', '90m', '1d12h', '2026-11-20T00:00Z', '1764000000000', '..', '@', '.telemetry'),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }), (parts) => {
        const spec = parts.join('');
        try {
          const r = parseKafkaRange(spec, NOW);
          expect(r.topic.endsWith('.telemetry')).toBe(true);
          expect(`${r.topicPrefix}.telemetry`).toBe(r.topic);
          expect(r.fromTs).toBeLessThan(r.toTs);
          expect(Number.isFinite(r.fromTs) && Number.isFinite(r.toTs)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(ForesightError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
