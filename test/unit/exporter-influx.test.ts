import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InfluxExporter } from '../../src/exporters/influx.js';
import { auditLine, featureLine, INFLUX_SCHEMA, scoreLine } from '../../src/exporters/influx-schema.js';
import { LineQueue } from '../../src/exporters/line-queue.js';
import { AUDIT_KINDS, type AuditRecord, type FeatureVector, type NodeScore } from '../../src/messages.js';

const baseScore: NodeScore = {
  nodeId: 'ast1',
  setId: 1,
  ts: 1_700_000_000_123,
  risk: 0.875,
  timeToFailureS: 240,
  explanation: [],
  scorer: 'stat-v1',
  observed: true,
  activeCalls: 17,
  activeCallsSource: 'ami',
  evidence: { calls: { count: 17, source: 'ami' }, upReported: true, probe: null },
  up: true,
};

describe('line protocol of each message', () => {
  it('writes a score with its tags, fields and millisecond time', () => {
    expect(scoreLine(baseScore)).toBe(
      'foresight_scores,node=ast1,scorer=stat-v1,set=1 active_calls=17,observed=1i,risk=0.875,time_to_failure_s=240,up=1i 1700000000123',
    );
  });

  it('omits time_to_failure_s when unknown and writes down/unobserved as 0', () => {
    const line = scoreLine({ ...baseScore, timeToFailureS: null, up: false, observed: false });
    expect(line).not.toContain('time_to_failure_s');
    expect(line).toContain('observed=0i');
    expect(line).toContain('up=0i');
  });

  it('writes finite features only, stamped at window end', () => {
    const v: FeatureVector = {
      nodeId: 'ast2',
      setId: 3,
      windowStart: 1000,
      windowEnd: 11_000,
      sampleCount: 5,
      observed: true,

      features: { 'host.cpu_pct.mean': 12.5, 'z.self.db_query_p95': Number.POSITIVE_INFINITY, 'calls.fail_ratio': 0 },

      evidence: { calls: null, upReported: null, probe: null },
    };
    expect(featureLine(v)).toBe('foresight_features,node=ast2,set=3 calls.fail_ratio=0,host.cpu_pct.mean=12.5 11000');
  });

  it('returns null for a feature vector with nothing finite in it', () => {
    const v: FeatureVector = {
      nodeId: 'ast2',
      setId: 3,
      windowStart: 0,
      windowEnd: 10,
      sampleCount: 0,
      observed: false,

      features: { a: Number.NaN },

      evidence: { calls: null, upReported: null, probe: null },
    };
    expect(featureLine(v)).toBeNull();
  });

  it('escapes tag values and quotes the reason', () => {
    const a: AuditRecord = {
      seq: 7,
      ts: 5000,
      nodeId: 'ast1',
      kind: 'DrainStarting',
      actor: 'bob, the=op',
      reason: 'said "drain" \\ now',
      decisionId: null,
      dryRun: false,
      details: {},
    };
    expect(auditLine(a)).toBe(
      'foresight_actions,actor=bob\\,\\ the\\=op,dry_run=false,kind=DrainStarting,node=ast1 reason="said \\"drain\\" \\\\ now",seq=7i 5000',
    );
  });

  it('never throws on arbitrary scores and audit records, and only writes fields the schema declares', () => {
    const num = fc.oneof(fc.double(), fc.constant(Number.NaN), fc.integer());
    fc.assert(
      fc.property(
        fc.record({
          nodeId: fc.string(),
          setId: num,
          ts: num,
          risk: num,
          timeToFailureS: fc.option(num),
          scorer: fc.string(),
          observed: fc.boolean(),
          activeCalls: fc.option(num),
          up: fc.boolean(),
        }),
        fc.record({
          seq: num,
          ts: num,
          nodeId: fc.string(),
          kind: fc.constantFrom(...AUDIT_KINDS),
          actor: fc.string(),
          reason: fc.string(),
          dryRun: fc.boolean(),
        }),
        (s, a) => {
          const line = scoreLine({
            ...s,
            explanation: [],
            activeCallsSource: s.activeCalls === null ? null : 'ami',
            evidence: { calls: null, upReported: null, probe: null },
          });
          if (line !== null) {
            expect(line.startsWith(`${INFLUX_SCHEMA.scores.measurement},`)).toBe(true);
            expect(line).not.toContain('\n');
            expect(line).toMatch(/,node=[^ ]+.* \d+$/);
            const fields = line.match(/ ([^ ]+) -?\d+$/)?.[1] ?? '';
            for (const f of fields.split(',')) {
              expect(INFLUX_SCHEMA.scores.fields).toContain(f.split('=')[0]);
            }
          }
          const al = auditLine({ ...a, decisionId: null, details: {} });
          if (al !== null) {
            expect(al.startsWith(`${INFLUX_SCHEMA.actions.measurement},`)).toBe(true);
            expect(al).toMatch(/[ ,]seq=-?\d+i \d+$/);
          }
        },
      ),
    );
  });
});

describe('LineQueue', () => {
  it('behaves like a bounded array under any sequence of push, shift and unshift', () => {
    type Op = { op: 'push'; v: string } | { op: 'shift'; n: number } | { op: 'unshift'; vs: string[] };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('push' as const), v: fc.string() }),
      fc.record({ op: fc.constant('shift' as const), n: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ op: fc.constant('unshift' as const), vs: fc.array(fc.string(), { maxLength: 12 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(op, { maxLength: 80 }), (cap, ops) => {
        const q = new LineQueue(cap);
        let model: string[] = [];
        for (const o of ops) {
          if (o.op === 'push') {
            const ok = q.push(o.v);
            expect(ok).toBe(model.length < cap);
            if (ok) model.push(o.v);
          } else if (o.op === 'shift') {
            expect(q.shift(o.n)).toEqual(model.slice(0, o.n));
            model = model.slice(o.n);
          } else {
            const room = cap - model.length;
            const kept = o.vs.slice(Math.max(0, o.vs.length - room));
            expect(q.unshift(o.vs)).toBe(o.vs.length - kept.length);
            model = [...kept, ...model];
          }
          expect(q.size).toBe(model.length);
          expect(q.size).toBeLessThanOrEqual(cap);
        }
        expect(q.shift(cap)).toEqual(model);
      }),
    );
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new LineQueue(0)).toThrow(RangeError);
    expect(() => new LineQueue(1.5)).toThrow(RangeError);
  });
});

describe('InfluxExporter input handling', () => {
  it('never throws on malformed messages, counts them as invalid, and bounds the buffer', async () => {
    // Port 9 on loopback: nothing listens, so no write can succeed; the point here is the caller-side contract.
    const ex = new InfluxExporter({
      url: 'http://127.0.0.1:9',
      org: 'o',
      bucket: 'b',
      maxBufferLines: 100,
      flushIntervalMs: 60_000,
    });
    const junk: unknown[] = [null, undefined, 42, 'x', {}, { nodeId: 'a', ts: 'soon' }, { features: null }];
    for (const j of junk) {
      expect(() => ex.exportScores(j as NodeScore)).not.toThrow();
      expect(() => ex.exportFeatures(j as FeatureVector)).not.toThrow();
      expect(() => ex.exportAudit(j as AuditRecord)).not.toThrow();
    }
    expect(ex.stats().invalid).toBe(junk.length * 3);
    expect(ex.stats().buffered).toBe(0);

    for (let i = 0; i < 250; i++) ex.exportScores({ ...baseScore, ts: baseScore.ts + i });
    const s = ex.stats();
    expect(s.buffered).toBeLessThanOrEqual(100);
    expect(s.buffered + s.dropped).toBe(250);

    const closed = await ex.close(0);
    expect(closed.buffered).toBe(0);
    expect(closed.written).toBe(0);
    expect(closed.dropped).toBe(250);
    // After close, exports are ignored rather than failing.
    expect(() => ex.exportScores(baseScore)).not.toThrow();
    expect(ex.stats().dropped).toBe(250);
  });
});
