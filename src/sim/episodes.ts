import type { Rng } from './rng.js';

const DAY_MS = 86_400_000;

/**
 * A Poisson process of short episodes (a DB blip, a network blip, a node hiccup) on its own random stream.
 * Episodes never overlap; their times depend only on the stream, never on what the pipeline does.
 */
export class EpisodeStream {
  private startAt = Number.POSITIVE_INFINITY;
  private endAt = Number.NEGATIVE_INFINITY;
  private nextAt: number;
  /** Strength of the current episode, drawn in the magnitude range. */
  magnitude = 0;

  constructor(
    private readonly rng: Rng,
    private readonly perDay: number,
    private readonly durationMs: readonly [number, number],
    private readonly magnitudeRange: readonly [number, number],
    from: number,
  ) {
    this.nextAt = perDay > 0 ? from + rng.exponential(DAY_MS / perDay) : Number.POSITIVE_INFINITY;
  }

  /** Moves the stream to time t; true while an episode covers t. */
  activeAt(t: number): boolean {
    while (t >= this.nextAt) {
      this.startAt = this.nextAt;
      this.endAt = this.startAt + this.rng.range(this.durationMs[0], this.durationMs[1]);
      this.magnitude = this.rng.range(this.magnitudeRange[0], this.magnitudeRange[1]);
      this.nextAt = this.endAt + this.rng.exponential(DAY_MS / this.perDay);
    }
    return t >= this.startAt && t < this.endAt;
  }
}
