import { StringDecoder } from 'node:string_decoder';

/**
 * Incremental AMI frame decoder: socket chunks in, frames out.
 *
 * Wire format (domain README C.1): one banner line `Asterisk Call Manager/x.y.z\r\n`, then blocks of `Key: Value\r\n`
 * lines each ended by an empty line. The legacy Command response (Asterisk 13 and older) is the exception: raw text
 * after `Response: Follows` up to `--END COMMAND--`. Bad input is counted, never thrown: a block without an
 * Event/Response/Action key is a malformed frame, a line without a colon is a bad line, a frame longer than
 * `maxFrameChars` is dropped and the decoder resyncs at the next frame end.
 *
 * Decisions depend only on bytes already seen up to a frame end, so the frames produced are the same however the
 * stream is chunked (a property test checks that).
 */

export type AmiFrameKind = 'banner' | 'event' | 'response' | 'action';

export interface AmiFrame {
  kind: AmiFrameKind;
  /** Lower-cased keys, first value of each key. Null prototype: keys from the wire cannot reach Object.prototype. */
  fields: Record<string, string>;
  /**
   * Command output lines: the values of repeated `Output:` keys (Asterisk 14+), or the raw body of a legacy
   * `Response: Follows` frame. Undefined when the frame carries no output.
   */
  output?: string[];
  /** True for a legacy `Response: Follows` frame. */
  legacyFollows?: boolean;
}

export interface AmiDecoderStats {
  /** Frames returned (banner included). */
  frames: number;
  /** Blocks dropped because they had no Event, Response or Action key. */
  malformedFrames: number;
  /** Lines without a `:` inside otherwise valid frames (kept frame, dropped line). */
  badLines: number;
  /** Frames longer than the bound, dropped. */
  oversizedFrames: number;
  /** Incomplete frame left when the stream ended. */
  truncatedFrames: number;
  /** Characters thrown away in malformed, oversized and truncated frames. */
  garbageChars: number;
}

export interface AmiDecoderOptions {
  /** Longest frame accepted, in characters. Default 1 MiB (a `core show taskprocessors` of 150 rows is ~15 KiB). */
  maxFrameChars?: number;
}

const BANNER_PREFIX = 'Asterisk Call Manager/';
const END_COMMAND = '--END COMMAND--';
const FRAME_END = '\r\n\r\n';
/** Header keys of a legacy Follows frame; the first other line starts the raw output. */
const FOLLOWS_HEADERS = new Set(['response', 'privilege', 'actionid']);

/**
 * Lower-cased form of header keys already seen. AMI uses a few hundred distinct keys, so this skips a trim and a
 * lower-casing per line; the bound keeps garbage keys from growing it without limit.
 */
const KEY_CACHE = new Map<string, string>();
const KEY_CACHE_LIMIT = 4096;

type SkipMode = 'none' | 'line' | 'block' | 'follows';

export class AmiFrameDecoder {
  private readonly maxFrameChars: number;
  private readonly text = new StringDecoder('utf8');
  private pending = '';
  private skip: SkipMode = 'none';
  readonly stats: AmiDecoderStats = {
    frames: 0,
    malformedFrames: 0,
    badLines: 0,
    oversizedFrames: 0,
    truncatedFrames: 0,
    garbageChars: 0,
  };

  constructor(options: AmiDecoderOptions = {}) {
    // A floor keeps the banner and a Follows header line decidable before the bound can trip.
    this.maxFrameChars = Math.max(64, options.maxFrameChars ?? 1024 * 1024);
  }

  /** Feeds one chunk; returns the frames it completed, in order. */
  push(chunk: Buffer | string): AmiFrame[] {
    const frames: AmiFrame[] = [];
    this.pending += typeof chunk === 'string' ? chunk : this.text.write(chunk);
    this.drain(frames);
    return frames;
  }

  /** Ends the stream: an incomplete frame still pending is counted as truncated. */
  end(): AmiFrame[] {
    const frames: AmiFrame[] = [];
    this.pending += this.text.end();
    this.drain(frames);
    const rest = this.pending.replace(/^[\r\n]+/, '');
    if (rest.length > 0 || this.skip !== 'none') {
      this.stats.truncatedFrames++;
      this.stats.garbageChars += rest.length;
    }
    this.pending = '';
    this.skip = 'none';
    return frames;
  }

  private drain(out: AmiFrame[]): void {
    const buf = this.pending;
    let pos = 0;
    const len = buf.length;
    for (;;) {
      if (this.skip !== 'none') {
        const marker = this.skip === 'follows' ? END_COMMAND : this.skip === 'line' ? '\n' : FRAME_END;
        const at = buf.indexOf(marker, pos);
        if (at < 0) {
          // Keep just enough to catch a marker split across chunks.
          const keep = Math.max(pos, len - (marker.length - 1));
          this.stats.garbageChars += keep - pos;
          pos = keep;
          break;
        }
        this.stats.garbageChars += at + marker.length - pos;
        pos = at + marker.length;
        this.skip = 'none';
        continue;
      }
      // Blank lines between frames (after the banner, after `--END COMMAND--`) are not garbage.
      while (pos < len) {
        const c = buf.charCodeAt(pos);
        if (c === 10) pos++;
        else if (c === 13 && pos + 1 < len && buf.charCodeAt(pos + 1) === 10) pos += 2;
        else break;
      }
      if (pos >= len) break;
      const lineEnd = buf.indexOf('\n', pos);
      if (lineEnd < 0) {
        if (len - pos <= this.maxFrameChars) break;
        pos = this.startSkip(buf.startsWith(BANNER_PREFIX, pos) ? 'line' : 'block', pos, len);
        continue;
      }
      if (buf.startsWith(BANNER_PREFIX, pos)) {
        if (lineEnd + 1 - pos > this.maxFrameChars) this.countOversized(lineEnd + 1 - pos);
        else {
          const line = buf.slice(pos, buf.charCodeAt(lineEnd - 1) === 13 ? lineEnd - 1 : lineEnd);
          out.push({ kind: 'banner', fields: bannerFields(line) });
          this.stats.frames++;
        }
        pos = lineEnd + 1;
        continue;
      }
      if (isFollowsLine(buf, pos, lineEnd)) {
        const at = buf.indexOf(END_COMMAND, pos);
        if (at < 0) {
          if (len - pos <= this.maxFrameChars) break;
          pos = this.startSkip('follows', pos, len);
          continue;
        }
        const size = at + END_COMMAND.length - pos;
        if (size > this.maxFrameChars) this.countOversized(size);
        else this.emit(out, parseFollows(buf.slice(pos, at)));
        pos = at + END_COMMAND.length;
        continue;
      }
      const at = buf.indexOf(FRAME_END, pos);
      if (at < 0) {
        if (len - pos <= this.maxFrameChars) break;
        pos = this.startSkip('block', pos, len);
        continue;
      }
      const size = at + FRAME_END.length - pos;
      if (size > this.maxFrameChars) this.countOversized(size);
      else this.emit(out, this.parseBlock(buf, pos, at));
      pos = at + FRAME_END.length;
    }
    this.pending = pos >= len ? '' : buf.slice(pos);
  }

  /** Drops an oversized incomplete frame; returns where the marker search resumes (its last chars may hold one half). */
  private startSkip(mode: SkipMode, pos: number, len: number): number {
    this.skip = mode;
    this.stats.oversizedFrames++;
    const marker = mode === 'follows' ? END_COMMAND : mode === 'line' ? '\n' : FRAME_END;
    const resume = Math.max(pos, len - (marker.length - 1));
    this.stats.garbageChars += resume - pos;
    return resume;
  }

  private countOversized(size: number): void {
    this.stats.oversizedFrames++;
    this.stats.garbageChars += size;
  }

  private emit(out: AmiFrame[], frame: AmiFrame | null): void {
    if (frame) {
      out.push(frame);
      this.stats.frames++;
    }
  }

  /** Parses `Key: Value` lines in buf[start, end). */
  private parseBlock(buf: string, start: number, end: number): AmiFrame | null {
    const fields: Record<string, string> = Object.create(null);
    let output: string[] | undefined;
    let kind: AmiFrameKind | null = null;
    let bad = 0;
    let lineStart = start;
    while (lineStart < end) {
      let lineEnd = buf.indexOf('\n', lineStart);
      if (lineEnd < 0 || lineEnd > end) lineEnd = end;
      const contentEnd = lineEnd > lineStart && buf.charCodeAt(lineEnd - 1) === 13 ? lineEnd - 1 : lineEnd;
      const colon = buf.indexOf(':', lineStart);
      if (colon <= lineStart || colon >= contentEnd) {
        if (contentEnd > lineStart) bad++;
      } else {
        const rawKey = buf.slice(lineStart, colon);
        let key = KEY_CACHE.get(rawKey);
        if (key === undefined) {
          key = rawKey.trim().toLowerCase();
          if (KEY_CACHE.size < KEY_CACHE_LIMIT) KEY_CACHE.set(rawKey, key);
        }
        let valueStart = colon + 1;
        if (valueStart < contentEnd && buf.charCodeAt(valueStart) === 32) valueStart++;
        const value = buf.slice(valueStart, contentEnd);
        if (key === 'output') {
          if (output) output.push(value);
          else output = [value];
        } else if (!(key in fields)) {
          fields[key] = value;
          if (kind === null) {
            if (key === 'event') kind = 'event';
            else if (key === 'response') kind = 'response';
            else if (key === 'action') kind = 'action';
          }
        }
      }
      lineStart = lineEnd + 1;
    }
    if (kind === null) {
      this.stats.malformedFrames++;
      this.stats.garbageChars += end + FRAME_END.length - start;
      return null;
    }
    this.stats.badLines += bad;
    return output ? { kind, fields, output } : { kind, fields };
  }

  /** Characters held for an incomplete frame (for the health endpoint). */
  get bufferedChars(): number {
    return this.pending.length;
  }
}

function bannerFields(line: string): Record<string, string> {
  const fields: Record<string, string> = Object.create(null);
  fields.banner = line;
  fields.amiversion = line.slice(BANNER_PREFIX.length).trim();
  return fields;
}

/** `Response: Follows` at buf[pos, lineEnd), case-insensitive, spaces tolerated. */
function isFollowsLine(buf: string, pos: number, lineEnd: number): boolean {
  if (lineEnd - pos > 40) return false;
  const line = buf.slice(pos, lineEnd).trim().toLowerCase();
  if (!line.startsWith('response:')) return false;
  return line.slice(9).trim() === 'follows';
}

/** Legacy Command response: known header lines, then raw output up to (not including) `--END COMMAND--`. */
function parseFollows(text: string): AmiFrame {
  const fields: Record<string, string> = Object.create(null);
  const lines = text.split(/\r?\n/);
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const colon = line.indexOf(':');
    if (colon <= 0) break;
    const key = line.slice(0, colon).trim().toLowerCase();
    if (!FOLLOWS_HEADERS.has(key) || key in fields) break;
    fields[key] = line.slice(colon + 1).trim();
  }
  const output = lines.slice(i);
  // The body ends with the newline before the marker; that final empty piece is not an output line.
  if (output.length > 0 && output[output.length - 1] === '') output.pop();
  return { kind: 'response', fields, output, legacyFollows: true };
}
