import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMany, encodeMany } from '../../src/bus/codec.js';
import { resolveOptions, toWire } from '../../src/bus/kafka-common.js';
import type { OutgoingRecord } from '../../src/bus/port.js';
import { ForesightError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { TelemetrySample } from '../../src/messages.js';

const sample = (nodeId: string, ts: number, value = 1): TelemetrySample => ({
  nodeId,
  ts,
  metric: 'channels.active',
  value,
  source: 'sim',
});

function unpack(wire: { key: string; value: Buffer; timestamp: number }[]) {
  return wire.flatMap((w) => {
    const decoded = decodeMany('telemetry', w.value);
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(decoded.rejected).toEqual([]);
    return decoded.values.map((value) => ({ key: w.key, value, timestamp: w.timestamp }));
  });
}

const options = (maxPackRecords: number, maxMessageBytes = 256 * 1024) =>
  resolveOptions({ brokers: [], topicPrefix: 'x', maxPackRecords, maxMessageBytes }, silentLogger());

describe('telemetry packs', () => {
  it('keeps every record and each key’s order, whatever the pack size and timestamps', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c', 'd'), ts: fc.integer({ min: 0, max: 3 }) }), {
          maxLength: 200,
        }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 600, max: 20_000 }),
        (items, maxPack, maxBytes) => {
          const records: OutgoingRecord<TelemetrySample>[] = items.map((it, i) => ({
            key: it.key,
            value: sample(it.key, it.ts, i),
            timestamp: it.ts,
          }));
          const wire = toWire('telemetry', records, options(maxPack, maxBytes), 0);
          for (const w of wire) expect(w.value.length).toBeLessThanOrEqual(maxBytes);
          const back = unpack(wire);
          for (const key of ['a', 'b', 'c', 'd']) {
            const want = records
              .filter((r) => r.key === key)
              .map((r) => ({ key, value: r.value, timestamp: r.timestamp }));
            expect(back.filter((r) => r.key === key)).toEqual(want);
          }
          expect(back).toHaveLength(records.length);
        },
      ),
    );
  });

  it('packs the samples of one node and timestamp into one record', () => {
    const records = [1, 2, 3].map((v) => ({ key: 'ast1', value: sample('ast1', 10, v), timestamp: 10 }));
    const wire = toWire('telemetry', records, options(64), 0);
    expect(wire).toHaveLength(1);
    expect(JSON.parse(wire[0]?.value.toString() ?? '')).toHaveLength(3);
    expect(toWire('telemetry', records, options(1), 0)).toHaveLength(3);
  });

  it('packs telemetry only', () => {
    const letter = { topic: 'telemetry', partition: 0, offset: '1', code: 'X', reason: 'r', payload: '', ts: 1 };
    const wire = toWire(
      'deadletter',
      [1, 2].map(() => ({ key: 'k', value: letter, timestamp: 5 })),
      options(64),
      0,
    );
    expect(wire).toHaveLength(2);
  });

  it('refuses a pack holding an invalid sample at the producer', () => {
    expect(() => encodeMany('telemetry', [sample('a', 1), { ...sample('a', 1), value: Number.NaN }])).toThrow(
      ForesightError,
    );
  });

  it('reports the bad elements of a pack one by one and keeps the good ones', () => {
    const bytes = Buffer.from(JSON.stringify([sample('a', 1), { ...sample('a', 2), metric: 'nope' }, sample('a', 3)]));
    const decoded = decodeMany('telemetry', bytes);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.values.map((v) => v.ts)).toEqual([1, 3]);
    expect(decoded.rejected).toEqual([
      expect.objectContaining({ index: 1, reason: expect.stringContaining('unknown metric') }),
    ]);
    expect(decodeMany('telemetry', Buffer.from('[]'))).toMatchObject({ ok: false, reason: 'empty pack' });
  });

  it('decodes any bytes without throwing', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '')),
        ),
        (bytes) => {
          const decoded = decodeMany('telemetry', bytes);
          expect(typeof decoded.ok).toBe('boolean');
        },
      ),
    );
  });
});
