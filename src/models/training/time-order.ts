/**
 * Merges telemetry streams (files, in the order given) into event-time order with bounded memory, so training never
 * holds a whole file. Each stream may be out of order by up to `maxDisorderMs` of event time; within that bound the
 * output is exactly what a stable sort of all the streams' samples, concatenated in order, would give (ties keep
 * stream then line order). A sample later than that bound cannot be put in its place without holding everything: it
 * is passed on where it is and counted, and the feature extractor treats it as any late sample (accepted within its
 * lateness, otherwise rejected as `late` and counted).
 */
import type { TelemetrySample } from '../../messages.js';

export interface TimeOrderOptions {
  /** Largest event-time disorder within one stream that is still put right. Default 10 min. */
  maxDisorderMs?: number;
  /** Samples held at most; beyond it the oldest goes out early (and a later, older one counts as out of order). */
  maxBuffered?: number;
  /** Samples per yielded chunk. Default 50 000. */
  chunkSize?: number;
}

export interface TimeOrderStats {
  /** Samples that came after a later one had already gone out: passed on out of order. */
  outOfOrder: number;
  /** Most samples held at once. */
  peakBuffered: number;
}

interface Held {
  s: TelemetrySample;
  src: number;
  seq: number;
}

function before(a: Held, b: Held): boolean {
  return a.s.ts < b.s.ts || (a.s.ts === b.s.ts && (a.src < b.src || (a.src === b.src && a.seq < b.seq)));
}

/** A binary min-heap on (ts, stream, sequence). */
class Heap {
  private readonly items: Held[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): Held | undefined {
    return this.items[0];
  }
  push(h: Held): void {
    const a = this.items;
    a.push(h);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Held | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Yields chunks of samples in event-time order; `stats` is filled as it goes. */
export async function* inTimeOrder(
  streams: readonly AsyncIterable<TelemetrySample>[],
  options: TimeOrderOptions = {},
  stats: TimeOrderStats = { outOfOrder: 0, peakBuffered: 0 },
): AsyncGenerator<TelemetrySample[]> {
  const disorder = options.maxDisorderMs ?? 600_000;
  const maxBuffered = options.maxBuffered ?? 200_000;
  const chunkSize = options.chunkSize ?? 50_000;
  const iters = streams.map((s) => s[Symbol.asyncIterator]());
  const frontier = streams.map(() => Number.NEGATIVE_INFINITY);
  const done = streams.map(() => false);
  const seq = streams.map(() => 0);
  const heap = new Heap();
  let released = Number.NEGATIVE_INFINITY;
  let chunk: TelemetrySample[] = [];
  const out = (s: TelemetrySample) => {
    chunk.push(s);
    if (s.ts > released) released = s.ts;
  };
  for (;;) {
    // Read from the stream that is furthest behind, so every stream moves through time together.
    let pick = -1;
    for (let i = 0; i < iters.length; i++) {
      if (!done[i] && (pick < 0 || frontier[i]! < frontier[pick]!)) pick = i;
    }
    if (pick < 0) break;
    const next = await iters[pick]!.next();
    if (next.done) {
      done[pick] = true;
    } else {
      const s = next.value;
      if (s.ts < released) {
        // Its place has gone out already.
        stats.outOfOrder++;
        out(s);
      } else {
        heap.push({ s, src: pick, seq: seq[pick]!++ });
        if (s.ts > frontier[pick]!) frontier[pick] = s.ts;
        if (heap.size > stats.peakBuffered) stats.peakBuffered = heap.size;
      }
    }
    // Whatever is older than every open stream's frontier minus the disorder bound can no longer be preceded.
    let safe = Number.POSITIVE_INFINITY;
    for (let i = 0; i < iters.length; i++) if (!done[i] && frontier[i]! < safe) safe = frontier[i]!;
    const limit = safe - disorder;
    while (heap.size > 0 && (heap.peek()!.s.ts < limit || heap.size > maxBuffered)) out(heap.pop()!.s);
    if (chunk.length >= chunkSize) {
      yield chunk;
      chunk = [];
    }
  }
  while (heap.size > 0) {
    out(heap.pop()!.s);
    if (chunk.length >= chunkSize) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}
