import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import type { TelemetrySample } from '../messages.js';

export interface SpoolLimits {
  /** Bytes of unsent samples kept on disk at most. */
  maxBytes: number;
  /** Unsent samples kept at most. */
  maxRecords: number;
}

export interface SpoolStats {
  records: number;
  bytes: number;
  /** Oldest samples pushed out by newer ones when a bound was reached. */
  overflowed: number;
}

/**
 * Telemetry waiting for the bus, in a file: one JSON sample a line, appended at the end, sent from the front. The
 * position of the first unsent line is kept in a small file next to it, so samples spooled before a restart are sent
 * after it. Bounded in bytes and records: when full, the oldest samples make room and are counted (`overflowed`).
 * Samples in the file are in the order they were offered, so each node's samples keep their order.
 */
export class DiskSpool {
  private readonly file: string;
  private readonly posFile: string;
  private fd: number;
  /** Byte offset of the first unsent line, and of the end of the file. */
  private head = 0;
  private tail = 0;
  /** Length in bytes and event time of every unsent line, from `first`. */
  private lengths: number[] = [];
  private times: number[] = [];
  private first = 0;
  private bytes = 0;
  private overflowed = 0;

  constructor(
    dir: string,
    private readonly limits: SpoolLimits,
  ) {
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'telemetry.spool');
    this.posFile = path.join(dir, 'telemetry.spool.pos');
    this.fd = openSync(this.file, 'a+');
    this.recover();
  }

  get records(): number {
    return this.lengths.length - this.first;
  }

  stats(): SpoolStats {
    return { records: this.records, bytes: this.bytes, overflowed: this.overflowed };
  }

  /** Event time of the oldest unsent sample; null when empty. */
  oldestTs(): number | null {
    return this.records > 0 ? this.times[this.first]! : null;
  }

  append(samples: readonly TelemetrySample[]): void {
    if (samples.length === 0) return;
    const lines = samples.map((s) => `${JSON.stringify(s)}\n`);
    const buf = Buffer.from(lines.join(''), 'utf8');
    writeSync(this.fd, buf, 0, buf.length, this.tail);
    this.tail += buf.length;
    for (let i = 0; i < lines.length; i++) {
      const n = Buffer.byteLength(lines[i]!, 'utf8');
      this.lengths.push(n);
      this.times.push(samples[i]!.ts);
      this.bytes += n;
    }
    let excess = 0;
    while (this.records - excess > this.limits.maxRecords) excess++;
    let bytes = this.bytes;
    for (let i = 0; i < excess; i++) bytes -= this.lengths[this.first + i]!;
    while (bytes > this.limits.maxBytes && this.records - excess > 0) {
      bytes -= this.lengths[this.first + excess]!;
      excess++;
    }
    if (excess > 0) {
      this.drop(excess);
      this.overflowed += excess;
    }
  }

  /** Up to `max` samples from the front, not yet removed (see `remove`); null for a line that does not parse. */
  peek(max: number): (TelemetrySample | null)[] {
    const n = Math.min(max, this.records);
    if (n === 0) return [];
    let len = 0;
    for (let i = 0; i < n; i++) len += this.lengths[this.first + i]!;
    const buf = Buffer.alloc(len);
    readSync(this.fd, buf, 0, len, this.head);
    const text = buf.toString('utf8');
    const out: (TelemetrySample | null)[] = [];
    let at = 0;
    for (let i = 0; i < n; i++) {
      const nl = text.indexOf('\n', at);
      try {
        out.push(JSON.parse(text.slice(at, nl)) as TelemetrySample);
      } catch {
        out.push(null);
      }
      at = nl + 1;
    }
    return out;
  }

  /** Removes the first `n` samples (sent, or given up). */
  remove(n: number): void {
    this.drop(Math.min(n, this.records));
  }

  /** Removes samples from the front whose event time is before `ts`; returns how many. */
  removeOlderThan(ts: number): number {
    let n = 0;
    while (n < this.records && this.times[this.first + n]! < ts) n++;
    if (n > 0) this.drop(n);
    return n;
  }

  close(): void {
    closeSync(this.fd);
  }

  private drop(n: number): void {
    if (n <= 0) return;
    for (let i = 0; i < n; i++) {
      this.head += this.lengths[this.first + i]!;
      this.bytes -= this.lengths[this.first + i]!;
    }
    this.first += n;
    if (this.records === 0) {
      // Empty: start the file again.
      ftruncateSync(this.fd, 0);
      this.head = 0;
      this.tail = 0;
      this.lengths = [];
      this.times = [];
      this.first = 0;
    } else if (this.head > this.limits.maxBytes) {
      this.compact();
    } else if (this.first > 65_536) {
      this.lengths = this.lengths.slice(this.first);
      this.times = this.times.slice(this.first);
      this.first = 0;
    }
    this.savePosition();
  }

  /** Rewrites the unsent part to a new file, so a long overflowing outage does not grow the file without bound. */
  private compact(): void {
    const len = this.tail - this.head;
    const buf = Buffer.alloc(len);
    readSync(this.fd, buf, 0, len, this.head);
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    writeSync(fd, buf, 0, len, 0);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.file);
    closeSync(this.fd);
    this.fd = openSync(this.file, 'a+');
    this.head = 0;
    this.tail = len;
    this.lengths = this.lengths.slice(this.first);
    this.times = this.times.slice(this.first);
    this.first = 0;
  }

  private savePosition(): void {
    const fd = openSync(`${this.posFile}.tmp`, 'w');
    writeSync(fd, String(this.head));
    closeSync(fd);
    renameSync(`${this.posFile}.tmp`, this.posFile);
  }

  /** Rebuilds the index from the file after a restart; a torn last line (a crash mid-write) is cut off. */
  private recover(): void {
    const content = readFileSync(this.file);
    let head = 0;
    if (existsSync(this.posFile)) {
      const saved = Number(readFileSync(this.posFile, 'utf8'));
      if (Number.isInteger(saved) && saved >= 0 && saved <= content.length) head = saved;
    }
    let at = head;
    while (at < content.length) {
      const nl = content.indexOf(10, at);
      if (nl < 0) break;
      const line = content.subarray(at, nl).toString('utf8');
      let ts = Number.NaN;
      try {
        ts = (JSON.parse(line) as TelemetrySample).ts;
      } catch {
        // A damaged line is skipped with the rest of its bytes; it cannot be sent.
      }
      this.lengths.push(nl + 1 - at);
      this.times.push(Number.isFinite(ts) ? ts : Number.NEGATIVE_INFINITY);
      this.bytes += nl + 1 - at;
      at = nl + 1;
    }
    this.head = head;
    this.tail = at;
    if (at < content.length) ftruncateSync(this.fd, at);
  }
}
