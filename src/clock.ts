/** Time source. Real time in production; a virtual clock lets replay and the headless demo run as fast as the CPU allows. */
export interface Clock {
  /** Epoch ms. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock moved by its owner (the simulator driver or the replay harness). */
export class VirtualClock implements Clock {
  private _now: number;
  constructor(start: number) {
    this._now = start;
  }
  now(): number {
    return this._now;
  }
  /** Moves time forward; never backward, so timeouts stay monotonic. */
  advanceTo(ts: number): void {
    if (ts > this._now) this._now = ts;
  }
}
