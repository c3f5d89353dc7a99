import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDispatcherList, parseFlags } from '../../src/actions/dispatcher/kamailio-list.js';
import { ForesightError } from '../../src/errors.js';

// A full dispatcher.list answer captured from Kamailio 5.6.3 (deploy/kamailio/test config, one target drained).
const CAPTURED = {
  NRSETS: 1,
  RECORDS: [
    {
      SET: {
        ID: 1,
        TARGETS: [
          {
            DEST: {
              URI: 'sip:127.0.0.1:5073',
              FLAGS: 'AP',
              PRIORITY: 0,
              ATTRS: { BODY: 'duid=ast3', DUID: 'ast3', MAXLOAD: 0, WEIGHT: 0, RWEIGHT: 0, SOCKET: null },
              LATENCY: { AVG: 0.666667, STD: 0.57735, EST: 0.666667, MAX: 1, TIMEOUT: 7 },
            },
          },
          { DEST: { URI: 'sip:127.0.0.1:5072', FLAGS: 'DX', PRIORITY: 0, ATTRS: { BODY: 'duid=ast2', DUID: 'ast2' } } },
        ],
      },
    },
  ],
};

describe('parseDispatcherList', () => {
  it('maps a captured answer to destinations with state, probing and latency', () => {
    const [a, b] = parseDispatcherList(CAPTURED);
    expect(a).toMatchObject({ setId: 1, uri: 'sip:127.0.0.1:5073', state: 'active', probing: true, duid: 'ast3' });
    expect(a?.latencyAvgMs).toBeCloseTo(0.666667);
    expect(a?.latency?.timeouts).toBe(7);
    expect(b).toMatchObject({ state: 'disabled', probing: false, flags: 'DX', latencyAvgMs: null, latency: null });
  });

  it('reads every flag pair Kamailio prints', () => {
    expect(parseFlags('IP')).toEqual({ state: 'inactive', probing: true });
    expect(parseFlags('TX')).toEqual({ state: 'trying', probing: false });
    expect(parseFlags('AX')).toEqual({ state: 'active', probing: false });
    expect(parseFlags('DP')).toEqual({ state: 'disabled', probing: true });
    expect(parseFlags('ZZ')).toBeNull();
  });

  it('accepts a single target printed without an array, and an empty listing', () => {
    const single = { NRSETS: 1, RECORDS: { SET: { ID: 3, TARGETS: { DEST: { URI: 'sip:a:5060', FLAGS: 'AP' } } } } };
    expect(parseDispatcherList(single)).toHaveLength(1);
    expect(parseDispatcherList({ NRSETS: 0 })).toEqual([]);
  });

  it('parses any well-formed listing into exactly its targets', () => {
    const target = fc.record({
      URI: fc.stringMatching(/^sip:[a-z0-9.]{1,20}:\d{2,5}$/),
      FLAGS: fc.constantFrom('AP', 'AX', 'IP', 'IX', 'DX', 'DP', 'TP', 'TX'),
      PRIORITY: fc.integer({ min: 0, max: 100 }),
    });
    const listing = fc.array(fc.record({ ID: fc.nat(10_000), TARGETS: fc.array(target, { maxLength: 5 }) }), {
      maxLength: 5,
    });
    fc.assert(
      fc.property(listing, (sets) => {
        const parsed = parseDispatcherList({
          NRSETS: sets.length,
          RECORDS: sets.map((s) => ({ SET: { ID: s.ID, TARGETS: s.TARGETS.map((t) => ({ DEST: t })) } })),
        });
        const flat = sets.flatMap((s) => s.TARGETS.map((t) => ({ setId: s.ID, uri: t.URI, flags: t.FLAGS })));
        expect(parsed.map((d) => ({ setId: d.setId, uri: d.uri, flags: d.flags }))).toEqual(flat);
        for (const d of parsed) expect(d.state === 'disabled').toBe(d.flags.startsWith('D'));
      }),
    );
  });

  it('never returns a partial list from garbage: it parses or throws a dispatcher error', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseDispatcherList(value);
        } catch (err) {
          expect(err).toBeInstanceOf(ForesightError);
          expect((err as ForesightError).code).toBe('FORESIGHT_ERR_DISPATCHER');
        }
      }),
    );
    expect(() =>
      parseDispatcherList({ RECORDS: [{ SET: { ID: 1, TARGETS: [{ DEST: { URI: 'sip:x', FLAGS: '?' } }] } }] }),
    ).toThrow(/unknown FLAGS/);
  });
});
