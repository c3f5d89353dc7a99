import { xoroshiro128plus, xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator';

const TWO_POW_32 = 4294967296;

/**
 * A mutable random stream over pure-rand's xoroshiro128+, with the few distributions the simulator needs.
 * Each concern (arrivals, one node's noise, one node's incidents) consumes its own stream from `fork()`, so what one
 * concern draws never shifts another's sequence.
 */
export class Rng {
  private readonly gen: JumpableRandomGenerator;
  private spareNormal = 0;
  private hasSpare = false;

  private constructor(gen: JumpableRandomGenerator) {
    this.gen = gen;
  }

  /** `seed` is used as a 32-bit integer. */
  static fromSeed(seed: number): Rng {
    const gen = xoroshiro128plus(seed | 0);
    // Nearby seeds start from nearby states; a short warm-up decorrelates their first outputs.
    for (let i = 0; i < 32; i++) gen.next();
    return new Rng(gen);
  }

  /**
   * A new stream seeded from 128 bits of this one (split-by-seeding). Jumping alone would not do: a jumped clone
   * starts exactly where the parent's own next jump lands, so two forks of different parents could coincide.
   */
  fork(): Rng {
    const state: number[] = [this.gen.next(), this.gen.next(), this.gen.next(), this.gen.next()];
    if (!state.some((v) => v !== 0)) state[0] = 1; // the all-zero state is a fixed point of xoroshiro
    const child = xoroshiro128plusFromState(state);
    for (let i = 0; i < 16; i++) child.next();
    return new Rng(child);
  }

  /** Uniform in [0, 1). 32 bits of resolution, enough for noise and event timing. */
  uniform(): number {
    return (this.gen.next() >>> 0) / TWO_POW_32;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Standard normal by Box-Muller, caching the second value. */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spareNormal;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log stays finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spareNormal = r * Math.sin(theta);
    this.hasSpare = true;
    return r * Math.cos(theta);
  }

  /** Exponential with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.uniform());
  }

  /** Log-normal with the given median and log-space sigma. */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  /** Poisson count; Knuth's product method for small means, a rounded normal above. */
  poisson(mean: number): number {
    if (!(mean > 0)) return 0;
    if (mean < 30) {
      const limit = Math.exp(-mean);
      let k = 0;
      let p = this.uniform();
      while (p > limit) {
        k++;
        p *= this.uniform();
      }
      return k;
    }
    const k = Math.round(mean + Math.sqrt(mean) * this.normal());
    return Math.max(k, 0);
  }

  /** Binomial count of successes in n trials; inversion for small n*p, a clamped rounded normal above. */
  binomial(n: number, p: number): number {
    if (n <= 0 || !(p > 0)) return 0;
    if (p >= 1) return n;
    const mean = n * p;
    if (mean < 25) {
      // Sequential search of the CDF: expected cost is about the mean.
      const q = 1 - p;
      const ratio = p / q;
      let prob = q ** n;
      let cdf = prob;
      const u = this.uniform();
      let k = 0;
      while (u > cdf && k < n) {
        prob *= (ratio * (n - k)) / (k + 1);
        k++;
        cdf += prob;
        if (prob < 1e-300 && cdf < u) break; // numerical floor: the tail is empty in practice
      }
      return k;
    }
    const k = Math.round(mean + Math.sqrt(mean * (1 - p)) * this.normal());
    return k < 0 ? 0 : Math.min(k, n);
  }

  /** Index drawn with probability proportional to its weight; weights must sum to a positive number. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let u = this.uniform() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i] ?? 0;
      if (u < 0 && (weights[i] ?? 0) > 0) return i;
    }
    // Rounding left u at or just above 0: fall back to the last index that can be drawn at all.
    for (let i = weights.length - 1; i > 0; i--) if ((weights[i] ?? 0) > 0) return i;
    return 0;
  }
}
