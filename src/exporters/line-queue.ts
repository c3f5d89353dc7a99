/**
 * Fixed-capacity FIFO of line-protocol lines. The storage is allocated once, so the exporter's memory is bounded by
 * `capacity` however long the target stays down. Callers decide what to drop; the queue only refuses to overflow.
 */
export class LineQueue {
  private readonly slots: (string | undefined)[];
  private head = 0;
  private _size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be a positive integer: ${capacity}`);
    this.slots = new Array<string | undefined>(capacity);
  }

  get size(): number {
    return this._size;
  }

  /** Appends at the tail; false (and nothing stored) when full. */
  push(line: string): boolean {
    if (this._size === this.capacity) return false;
    this.slots[(this.head + this._size) % this.capacity] = line;
    this._size++;
    return true;
  }

  /** Removes up to `n` lines from the head, oldest first. */
  shift(n: number): string[] {
    const count = Math.min(Math.max(0, Math.floor(n)), this._size);
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) {
      const at = (this.head + i) % this.capacity;
      out[i] = this.slots[at] as string;
      this.slots[at] = undefined;
    }
    this.head = (this.head + count) % this.capacity;
    this._size -= count;
    return out;
  }

  /**
   * Puts lines back at the head in their order (a batch that failed and will be retried first). When they do not all
   * fit, the oldest of them are not put back; returns how many were left out.
   */
  unshift(lines: readonly string[]): number {
    const room = this.capacity - this._size;
    const keep = Math.min(room, lines.length);
    const skipped = lines.length - keep;
    for (let i = lines.length - 1; i >= skipped; i--) {
      this.head = (this.head - 1 + this.capacity) % this.capacity;
      this.slots[this.head] = lines[i];
      this._size++;
    }
    return skipped;
  }
}
