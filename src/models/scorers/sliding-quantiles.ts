/** The last `capacity` values, kept sorted as well as in arrival order, for O(1) quantiles and O(capacity) updates. */
export class SlidingQuantiles {
  private readonly ring: Float64Array;
  private readonly sorted: Float64Array;
  private head = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.ring = new Float64Array(capacity);
    this.sorted = new Float64Array(capacity);
  }

  add(x: number): void {
    if (this.size === this.capacity) {
      const old = this.ring[this.head]!;
      const at = this.lowerBound(old);
      this.sorted.copyWithin(at, at + 1, this.size);
      this.size--;
    }
    this.ring[this.head] = x;
    this.head = (this.head + 1) % this.capacity;
    const at = this.lowerBound(x);
    this.sorted.copyWithin(at + 1, at, this.size);
    this.sorted[at] = x;
    this.size++;
  }

  /** Adds `delta` to every value kept (order is unchanged): a level shift accepted as the new normal. */
  shift(delta: number): void {
    for (let i = 0; i < this.size; i++) this.sorted[i]! += delta;
    for (let i = 0; i < this.capacity; i++) this.ring[i]! += delta;
  }

  quantile(p: number): number {
    if (this.size === 0) return 0;
    const pos = p * (this.size - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(this.size - 1, lo + 1);
    return this.sorted[lo]! + (this.sorted[hi]! - this.sorted[lo]!) * (pos - lo);
  }

  private lowerBound(x: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
