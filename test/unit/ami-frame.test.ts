import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandOutput, maxTaskprocessorQueue, parseTaskprocessors } from '../../src/ingest/ami/command.js';
import { type AmiFrame, AmiFrameDecoder } from '../../src/ingest/ami/frame.js';
import { loadAmiFixture } from '../helpers/ami-replay-server.js';

const RECORDED = [
  'banner-18',
  'login-success',
  'ping',
  'corestatus',
  'coreshowchannels',
  'command-taskprocessors',
  'command-taskprocessors-legacy',
  'events-calls',
  'command-unknown',
  'command-legacy-single-line',
  'events-media',
  'events-shutdown',
]
  .map(loadAmiFixture)
  .join('');

function decodeAll(chunks: (string | Buffer)[], maxFrameChars?: number) {
  const d = new AmiFrameDecoder({ maxFrameChars });
  const frames: AmiFrame[] = [];
  for (const c of chunks) frames.push(...d.push(c));
  frames.push(...d.end());
  return { frames, stats: d.stats };
}

/** Splits text at the given cut points (any order, duplicates allowed). */
function splitAt(text: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(text.slice(prev, p));
    prev = p;
  }
  out.push(text.slice(prev));
  return out;
}

const plain = (frames: AmiFrame[]) => frames.map((f) => ({ ...f, fields: { ...f.fields } }));

describe('AmiFrameDecoder on recorded traffic', () => {
  it('decodes banner, responses, list events and both Command forms', () => {
    const { frames, stats } = decodeAll([RECORDED]);
    expect(stats).toMatchObject({ malformedFrames: 0, badLines: 0, oversizedFrames: 0, truncatedFrames: 0 });
    expect(frames[0]).toMatchObject({ kind: 'banner', fields: { amiversion: '7.0.3' } });
    const kinds = frames.map((f) => f.fields.event ?? f.fields.response ?? f.kind);
    expect(kinds.slice(0, 4)).toEqual(['banner', 'Success', 'FullyBooted', 'Success']);
    const commands = frames.filter((f) => f.output);
    expect(commands).toHaveLength(4);
    const [modern, legacy, failed, single] = commands as [AmiFrame, AmiFrame, AmiFrame, AmiFrame];
    expect(modern.fields.message).toBe('Command output follows');
    expect(modern.output?.[1]).toMatch(/^Processor\s+Processed\s+In Queue/);
    expect(legacy).toMatchObject({ legacyFollows: true, fields: { response: 'Follows', actionid: 'tp-1' } });
    expect(commandOutput(legacy).some((l) => l.startsWith('pjsip/distributor-0000002d'))).toBe(true);
    expect(failed.fields.response).toBe('Error');
    // One-line output is still an array (asterisk-manager returns a bare string here).
    expect(commandOutput(single)).toEqual([expect.stringMatching(/^Asterisk 11\.11\.0/)]);
  });

  it('keeps values with colons, empty values and the first of repeated keys', () => {
    const { frames } = decodeAll(['Event: X\r\nURI: sip:a@b:5060\r\nAccountCode: \r\nAccountCode: second\r\n\r\n']);
    expect(frames[0]?.fields).toEqual({ event: 'X', uri: 'sip:a@b:5060', accountcode: '' });
  });

  it('counts a block without Event/Response/Action as malformed and resyncs at the next frame', () => {
    const { frames, stats } = decodeAll([
      '\x00\xffgarbage here\r\nmore: junk\r\n\r\nEvent: Reload\r\nStatus: 0\r\n\r\n',
    ]);
    expect(frames.map((f) => f.fields.event)).toEqual(['Reload']);
    expect(stats.malformedFrames).toBe(1);
    expect(stats.garbageChars).toBeGreaterThan(0);
  });

  it('never lets wire keys reach Object.prototype', () => {
    const { frames } = decodeAll(['Event: X\r\n__proto__: polluted\r\nconstructor: y\r\n\r\n']);
    expect(Object.entries(frames[0]?.fields ?? {})).toContainEqual(['__proto__', 'polluted']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('drops an oversized frame, counts it and decodes the next one', () => {
    const big = `Event: Big\r\n${'X: y\r\n'.repeat(200)}\r\n`;
    const { frames, stats } = decodeAll([big, 'Event: Small\r\n\r\n'], 256);
    expect(frames.map((f) => f.fields.event)).toEqual(['Small']);
    expect(stats.oversizedFrames).toBe(1);
  });

  it('counts an incomplete frame at end of stream as truncated', () => {
    const { frames, stats } = decodeAll(['Event: A\r\n\r\nEvent: B\r\nChannel: x']);
    expect(frames).toHaveLength(1);
    expect(stats.truncatedFrames).toBe(1);
  });

  it('produces the same frames whatever the chunking of recorded traffic', () => {
    const whole = decodeAll([RECORDED]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        const split = decodeAll(splitAt(RECORDED, cuts));
        expect(plain(split.frames)).toEqual(plain(whole.frames));
        expect(split.stats.malformedFrames).toBe(whole.stats.malformedFrames);
      }),
      { numRuns: 300 },
    );
  });

  it('is chunking-invariant as bytes too (UTF-8 split mid-character)', () => {
    const text = `Event: X\r\nCallerIDName: Zoë Ångström 日本\r\n\r\n${RECORDED}`;
    const bytes = Buffer.from(text, 'utf8');
    const whole = decodeAll([bytes]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          chunks.push(bytes.subarray(prev, p));
          prev = p;
        }
        chunks.push(bytes.subarray(prev));
        expect(plain(decodeAll(chunks).frames)).toEqual(plain(whole.frames));
      }),
      { numRuns: 200 },
    );
  });

  it('never throws on random bytes and random mixes of garbage and frames, with a small bound', () => {
    const piece = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.constantFrom(...RECORDED.split('\r\n\r\n').map((s) => `${s}\r\n\r\n`)),
      fc.constantFrom('\r\n', '\r', '\n', ': ', '--END COMMAND--', 'Response: Follows\r\n', 'Asterisk Call Manager/'),
      fc.string({ maxLength: 200 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), fc.integer({ min: 64, max: 4096 }), (chunks, max) => {
        const { frames, stats } = decodeAll(chunks, max);
        for (const f of frames) expect(['banner', 'event', 'response', 'action']).toContain(f.kind);
        for (const v of Object.values(stats)) expect(Number.isInteger(v) && v >= 0).toBe(true);
        // Same frames when the concatenated input is fed in one piece.
        const joined = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
        expect(plain(decodeAll([joined], max).frames)).toEqual(plain(decodeAll(chunks.map(toBuf), max).frames));
      }),
      { numRuns: 500 },
    );
  });

  it('recovers the recorded frames after truncated input', () => {
    fc.assert(
      fc.property(fc.nat(), (cut) => {
        const truncated = RECORDED.slice(0, cut % RECORDED.length);
        const d = new AmiFrameDecoder();
        d.push(truncated);
        d.end();
        const after = d.push(RECORDED);
        expect(after.length).toBeGreaterThan(0);
        expect(after.at(-1)?.fields.event).toBe('Shutdown');
      }),
      { numRuns: 200 },
    );
  });
});

function toBuf(c: string | Buffer): Buffer {
  return typeof c === 'string' ? Buffer.from(c) : c;
}

describe('taskprocessor parsing', () => {
  it('parses the 14+ Output form and the legacy Follows form to the same kind of rows', () => {
    const { frames } = decodeAll([
      loadAmiFixture('command-taskprocessors'),
      loadAmiFixture('command-taskprocessors-legacy'),
    ]);
    const [modern, legacy] = frames as [AmiFrame, AmiFrame];
    const rows = parseTaskprocessors(commandOutput(modern));
    // Recorded from a 22.x lab node whose realtime database was slow (test/fixtures/ami/README.md): 68 rows.
    expect(rows).toHaveLength(68);
    expect(rows.find((r) => r.name === 'pjsip/distributor-0000001d')).toEqual({
      name: 'pjsip/distributor-0000001d',
      processed: 26,
      inQueue: 12,
      maxDepth: 6,
      lowWater: 450,
      highWater: 500,
    });
    expect(maxTaskprocessorQueue(commandOutput(modern))).toBe(12);
    expect(maxTaskprocessorQueue(commandOutput(legacy))).toBe(899);
  });

  it('ignores the extra time columns of newer 20.x/22.x tables', () => {
    const lines = [
      'Processor                      Processed   In Queue  Max Depth  Low water High water   Low time(us)  High time(us)',
      'stasis/m:manager:core-00000006    312907         42         57       1800       2000             3         9000',
    ];
    expect(maxTaskprocessorQueue(lines)).toBe(42);
  });

  it('returns null for output without rows (failed command) and never throws on random lines', () => {
    expect(maxTaskprocessorQueue(["No such command 'core show taskprocessors'"])).toBeNull();
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 120 }), { maxLength: 30 }), (lines) => {
        const depth = maxTaskprocessorQueue(lines);
        expect(depth === null || (Number.isInteger(depth) && depth >= 0)).toBe(true);
      }),
    );
  });
});
