import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEAD_LETTER_PAYLOAD_BYTES, decode, encode, payloadExcerpt, validate } from '../../src/bus/codec.js';
import type { TopicMap, TopicName } from '../../src/bus/port.js';
import { TOPIC_NAMES } from '../../src/bus/port.js';
import { ForesightError } from '../../src/errors.js';
import { AUDIT_KINDS, METRIC_NAMES, type TelemetrySample } from '../../src/messages.js';

const valid: { [K in TopicName]: TopicMap[K] } = {
  telemetry: { nodeId: 'ast1', ts: 1_700_000_000_000, metric: 'host.memory_rss_mb', value: 512.5, source: 'host' },
  features: {
    nodeId: 'ast1',
    setId: 1,
    windowStart: 0,
    windowEnd: 10_000,
    sampleCount: 12,
    observed: true,

    features: { 'calls.failed.rate': 0.1, 'memory.slope': 0 },

    evidence: { calls: null, upReported: null, probe: null },
  },
  scores: {
    nodeId: 'ast1',
    setId: 1,
    ts: 10_000,
    risk: 0.7,
    timeToFailureS: 120,
    explanation: [{ feature: 'memory.slope', weight: 0.4, value: 3 }],
    scorer: 'stat-v1',
    observed: true,
    activeCalls: 14,
    activeCallsSource: 'ami',
    evidence: { calls: { count: 14, source: 'ami' }, upReported: true, probe: null },
    up: true,
  },
  actions: {
    seq: 0,
    ts: 10_000,
    nodeId: 'ast1',
    kind: 'DrainStarting',
    actor: 'auto',
    reason: 'risk 0.7 above 0.6',
    decisionId: 'd-1',
    dryRun: false,
    details: { risk: 0.7 },
  },
  deadletter: {
    topic: 'telemetry',
    partition: 2,
    offset: '17',
    code: 'FORESIGHT_ERR_BAD_MESSAGE',
    reason: 'not JSON',
    payload: '{oops',
    ts: 1,
  },
  state: { kind: 'scorer', nodeId: 'ast1', windowEnd: 10_000, ts: 10_050, state: { streak: 3 } },
};

/** One broken variant per topic, each breaking a different rule. */
const broken: { [K in TopicName]: [string, Record<string, unknown>][] } = {
  telemetry: [
    ['unknown metric', { ...valid.telemetry, metric: 'cpu.bogus' }],
    ['NaN as null', { ...valid.telemetry, value: null }],
    ['NaN as string', { ...valid.telemetry, value: 'NaN' }],
    ['empty node id', { ...valid.telemetry, nodeId: '' }],
    ['unknown source', { ...valid.telemetry, source: 'snmp' }],
  ],
  features: [
    ['non-finite feature', { ...valid.features, features: { a: null } }],
    ['fractional setId', { ...valid.features, setId: 1.5 }],
    ['negative count', { ...valid.features, sampleCount: -1 }],
  ],
  scores: [
    ['risk above 1', { ...valid.scores, risk: 1.2 }],
    ['bad explanation', { ...valid.scores, explanation: [{ feature: 'x' }] }],
    ['ttf as string', { ...valid.scores, timeToFailureS: '12' }],
  ],
  actions: [
    ['unknown kind', { ...valid.actions, kind: 'Exploded' }],
    ['details missing', { ...valid.actions, details: undefined }],
  ],
  deadletter: [['offset as number', { ...valid.deadletter, offset: 17 }]],
  state: [
    ['unknown kind', { ...valid.state, kind: 'engine' }],
    ['state missing', { ...valid.state, state: null }],
    ['windowEnd NaN', { ...valid.state, windowEnd: null }],
  ],
};

const sampleArb: fc.Arbitrary<TelemetrySample> = fc.record({
  nodeId: fc.string({ minLength: 1, maxLength: 40 }),
  ts: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  metric: fc.constantFrom(...METRIC_NAMES),
  value: fc.double({ noNaN: true, noDefaultInfinity: true }),
  source: fc.constantFrom('ami', 'sip', 'db', 'host', 'sim'),
});

describe('bus codec', () => {
  it.each(TOPIC_NAMES)('round-trips a valid %s message', (topic) => {
    const decoded = decode(topic, encode(topic, valid[topic] as never));
    expect(decoded).toEqual({ ok: true, value: valid[topic] });
  });

  it('round-trips any valid telemetry sample (negative zero aside)', () => {
    fc.assert(
      fc.property(sampleArb, (s) => {
        const decoded = decode('telemetry', encode('telemetry', s));
        // JSON has no negative zero; -0 arrives as 0, which is the same reading.
        expect(decoded).toEqual({ ok: true, value: { ...s, value: s.value === 0 ? 0 : s.value } });
      }),
    );
  });

  for (const topic of TOPIC_NAMES) {
    for (const [what, message] of broken[topic]) {
      it(`rejects a ${topic} message with ${what}, on decode and on encode`, () => {
        const decoded = decode(topic, Buffer.from(JSON.stringify(message)));
        expect(decoded.ok).toBe(false);
        if (!decoded.ok) expect(decoded.code).toBe('FORESIGHT_ERR_BAD_MESSAGE');
        expect(() => encode(topic, message as never)).toThrow(ForesightError);
      });
    }
  }

  it('explains why a message is refused', () => {
    expect(decode('telemetry', Buffer.from('{not json'))).toMatchObject({ ok: false, reason: /not JSON/ });
    expect(decode('telemetry', Buffer.from('[1,2]'))).toMatchObject({ ok: false, reason: /JSON object/ });
    expect(decode('telemetry', null)).toMatchObject({ ok: false, reason: /empty/ });
    expect(decode('telemetry', Buffer.from(JSON.stringify({ ...valid.telemetry, metric: 'x' })))).toMatchObject({
      ok: false,
      reason: /unknown metric "x"/,
    });
    const big = Buffer.from(JSON.stringify({ ...valid.telemetry, nodeId: 'a'.repeat(2000) }));
    expect(decode('telemetry', big, 1024)).toMatchObject({ ok: false, reason: /exceeds 1024/ });
  });

  it('refuses to encode a NaN reading or an oversized message', () => {
    expect(() => encode('telemetry', { ...valid.telemetry, value: Number.NaN })).toThrow(/value must be a finite/);
    expect(() => encode('telemetry', { ...valid.telemetry, value: Number.POSITIVE_INFINITY })).toThrow(ForesightError);
    expect(() => encode('actions', { ...valid.actions, details: { blob: 'x'.repeat(4000) } }, 1024)).toThrow(
      /exceeds 1024/,
    );
  });

  it('never throws on arbitrary bytes and accepts only valid messages', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TOPIC_NAMES), fc.uint8Array({ maxLength: 300 }), (topic, bytes) => {
        const decoded = decode(topic, bytes);
        if (decoded.ok) expect(validate(topic, decoded.value)).toBeNull();
      }),
    );
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TOPIC_NAMES), fc.jsonValue(), (topic, value) => {
        const decoded = decode(topic, Buffer.from(JSON.stringify(value)));
        expect(typeof decoded.ok).toBe('boolean');
      }),
    );
  });

  it('accepts every audit kind and every metric', () => {
    for (const kind of AUDIT_KINDS) expect(validate('actions', { ...valid.actions, kind })).toBeNull();
    for (const metric of METRIC_NAMES) expect(validate('telemetry', { ...valid.telemetry, metric })).toBeNull();
  });

  it('keeps only the start of a rejected payload for the dead letter', () => {
    const excerpt = payloadExcerpt(Buffer.from('x'.repeat(DEAD_LETTER_PAYLOAD_BYTES * 2)));
    expect(excerpt).toHaveLength(DEAD_LETTER_PAYLOAD_BYTES);
    expect(payloadExcerpt(null)).toBe('');
  });
});
