import { SlidingQuantiles } from './sliding-quantiles.js';

/**
 * Baselines for arbitrary named metrics (CSV columns, any gauge or counter), learnt online per node: what the `stat`
 * scorer uses for metrics the feature extractor does not z-score itself.
 *
 * Per metric:
 * - Counters: a column whose first `warmupValues` values never fall except by a reset (to at most half) and rise in at
 *   least half the steps is a cumulative counter; it is judged as its rate per second (per row without timestamps).
 * - Seasonality: a profile per hour of day, weekdays and weekends apart (UTC), learnt as an exponential mean of the
 *   value's deviation from the baseline level (about three days of memory). A bin counts only from the day after it was
 *   first learnt, so the first day is judged without a profile and never against itself.
 * - Level and spread: median and quantiles of the last `windowValues` deseasonalised values. The spread on each side is
 *   the larger of the IQR's and the 99.5 % tail's (mostly-zero series have no IQR: a count of 1 in a sparse series is
 *   not 10^6 z), floored at 0.1 % of the level.
 * - Values beyond `zThreshold` are not learnt (an anomaly must not become normal at once) until a run of them on the same
 *   side has lasted `shiftAfterMs`: then the baseline moves to the run's median (a persistent level shift is the new
 *   normal).
 *
 * Per node, when there are at least two metrics, a joint term: the robust z of u'S⁻¹u - u'u, u the metrics' clipped z,
 * S their shrunk correlation learnt from normal windows. It is ~0 when the metrics move as they usually do together and
 * grows when normally correlated metrics part ways, even if each stays inside its own normal range.
 */
export interface MetricModelOptions {
  /** Values a metric needs before it is judged. Default 30. */
  warmupValues: number;
  /** Recent values forming a metric's baseline. Default 1000. */
  windowValues: number;
  /** |z| up to this is normal variation, and is learnt. Default 3. */
  zThreshold: number;
  /** How long a level shift must hold before it becomes the baseline. Default 1 h. */
  shiftAfterMs: number;
  /** Expected time between two values of a metric. */
  cadenceMs: number;
  /** Learn time-of-day and weekend profiles. Default true. */
  seasonal: boolean;
  /** Compute the joint term. Default true. */
  joint: boolean;
}

export const DEFAULT_METRIC_MODEL: Omit<MetricModelOptions, 'cadenceMs'> = {
  warmupValues: 30,
  windowValues: 1000,
  zThreshold: 3,
  shiftAfterMs: 3_600_000,
  seasonal: true,
  joint: true,
};

export interface MetricReading {
  /** Signed robust z per metric; NaN where the metric is missing from the window or still warming up. */
  z: Float64Array;
  /** The value judged per metric (the rate, for a counter); NaN where missing or not yet known. */
  value: Float64Array;
  /** Robust z of the joint term; NaN while it warms up (or with fewer than two metrics). */
  jointZ: number;
  /** Indices of the two metrics that contribute most to the joint term, -1 when unknown. */
  jointPair: [number, number];
  /** Whether anything (a metric or the joint term) was judged. */
  warm: boolean;
  /** Whether the window carried any of the metrics. */
  present: boolean;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const BINS = 48;
/** Seasonal memory, in days. */
const SEASON_DAYS = 3;
/** z is clipped here for the joint term, so one wild metric does not dominate the correlation. */
const JOINT_CLIP = 6;
/** Shrinkage of the correlation toward the identity (a few hundred rows cannot pin down 40x40 correlations). */
const SHRINK = 0.1;
const REFIT_EVERY = 250;
/** The joint term's pair is named from this far below the threshold (z units). */
const EXPLAIN_MARGIN = 2;
/** Memory of the excursion rate, in values, and the rate above which isolated excursions are learnt as normal. */
const BLIP_ALPHA = 1 / 200;
const BLIP_NORMAL = 0.01;
/** Share of the mean absolute deviation below which no scale goes (normal data: ~0.4 sd, below the IQR's). */
const SPREAD_SHARE = 0.5;

/** Hour of day (0-23), plus 24 on Saturdays and Sundays (UTC); -1 without a time. */
export function seasonBin(ts: number): number {
  if (!Number.isFinite(ts)) return -1;
  const hour = (((Math.floor(ts / HOUR_MS) % 24) + 24) % 24) | 0;
  const day = (((Math.floor(ts / DAY_MS) + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday; 0 = Sunday
  return hour + (day === 0 || day === 6 ? 24 : 0);
}

/** Whether a run of values looks like a cumulative counter (see the module comment). */
export function looksLikeCounter(xs: readonly number[]): boolean {
  if (xs.length < 3) return false;
  let ups = 0;
  let resets = 0;
  for (let i = 1; i < xs.length; i++) {
    const prev = xs[i - 1]!;
    const x = xs[i]!;
    if (x < 0 || prev < 0) return false;
    if (x > prev) ups++;
    else if (x < prev) {
      if (x <= 0.5 * prev) resets++;
      else return false;
    }
  }
  return ups >= 0.5 * (xs.length - 1) && resets <= Math.max(1, (xs.length - 1) / 10);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Robust z of `x` against the values in `q`: one scale per side (IQR or 99.5 % tail, whichever is wider), at least
 * `spread` (a mean absolute deviation: what a mostly-constant series still moves by) and 0.1 % of the level.
 */
function robustZ(q: SlidingQuantiles, x: number, spread = 0): number {
  const level = q.quantile(0.5);
  const base = (q.quantile(0.75) - q.quantile(0.25)) / 1.349;
  const floor = Math.max(1e-9, 1e-3 * Math.abs(level), spread);
  const r = x - level;
  if (r >= 0) return r / Math.max(base, (q.quantile(0.995) - level) / 2.576, floor);
  return r / Math.max(base, (level - q.quantile(0.005)) / 2.576, floor);
}

class MetricTrack {
  kind: 'pending' | 'gauge' | 'counter' = 'pending';
  private pending: Array<[number, number]> = [];
  private prevX = Number.NaN;
  private prevTs = Number.NaN;
  private readonly ring: SlidingQuantiles;
  private readonly season = new Float64Array(BINS);
  private readonly seen = new Uint32Array(BINS);
  /** Day index on which each bin was first learnt. */
  private readonly firstDay = new Float64Array(BINS).fill(Number.POSITIVE_INFINITY);
  private run: number[] = [];
  private runSign = 0;
  private misses = 0;
  /** Exponential rate of runs beyond the threshold starting (per value). */
  private blipRate = 0;
  /** Mean absolute deviation of the learnt values (exponential, over about `windowValues`). */
  private spread = 0;
  private learnt = 0;
  private readonly alphaMin: number;
  private readonly shiftValues: number;

  constructor(private readonly o: MetricModelOptions) {
    this.ring = new SlidingQuantiles(o.windowValues);
    this.alphaMin = Math.min(0.5, Math.max(o.cadenceMs, 1) / (SEASON_DAYS * HOUR_MS));
    this.shiftValues = Math.max(10, Math.ceil(o.shiftAfterMs / Math.max(o.cadenceMs, 1)));
  }

  /** Judges value `x` at `ts` (z, NaN while warming up), then learns from it; `gate` false learns it whatever it is. */
  observe(ts: number, x: number, gate: boolean, out: { z: number; value: number }): void {
    out.z = Number.NaN;
    out.value = Number.NaN;
    if (this.kind === 'pending') {
      this.pending.push([ts, x]);
      if (this.pending.length < this.o.warmupValues) return;
      const values = this.pending.map((p) => p[1]);
      this.kind = looksLikeCounter(values) ? 'counter' : 'gauge';
      const replay = this.pending;
      this.pending = [];
      for (const [t, v] of replay) {
        const y = this.transform(t, v);
        if (Number.isFinite(y)) this.learn(t, y, this.deseason(t, y));
      }
      out.value = this.kind === 'counter' ? Number.NaN : x;
      return;
    }
    const y = this.transform(ts, x);
    out.value = y;
    if (!Number.isFinite(y)) return;
    const d = this.deseason(ts, y);
    if (this.ring.size < this.o.warmupValues) {
      this.learn(ts, y, d);
      return;
    }
    const z = robustZ(this.ring, d, SPREAD_SHARE * this.spread);
    out.z = z;
    if (!gate || Math.abs(z) <= this.o.zThreshold) {
      this.blipRate -= BLIP_ALPHA * this.blipRate;
      if (this.run.length > 0 && ++this.misses > 2 + this.run.length / 5) this.endRun();
      this.learn(ts, y, d);
      return;
    }
    const sign = Math.sign(z);
    const starts = sign !== this.runSign;
    this.blipRate += BLIP_ALPHA * ((starts ? 1 : 0) - this.blipRate);
    if (starts) {
      this.endRun();
      this.runSign = sign;
      // Isolated excursions that keep coming (a sparse series' blips) are normal life: learnt once they are frequent.
      if (this.blipRate > BLIP_NORMAL) this.ring.add(d);
    }
    this.run.push(d);
    if (this.run.length >= this.shiftValues) {
      this.adoptShift(ts, median(this.run) - this.ring.quantile(0.5));
      this.endRun();
    }
  }

  /**
   * A lasting shift of `delta` becomes normal. With a time-of-day profile in use, it moves the profile of the kind of
   * day it happened on (weekdays or weekends) rather than the level: a weekend that runs lower than the weekdays is
   * then learnt once, instead of being adopted every Saturday and undone every Monday. A shift that is real moves the
   * other kind of day the first time it shows there.
   */
  private adoptShift(ts: number, delta: number): void {
    const b = this.o.seasonal ? seasonBin(ts) : -1;
    const day = Math.floor(ts / DAY_MS);
    if (b < 0 || !Number.isFinite(this.profile(b, day))) {
      this.ring.shift(delta);
      return;
    }
    const base = b - (b % 24);
    for (let h = base; h < base + 24; h++) {
      if (base === 24 && !(this.firstDay[h]! < day) && this.firstDay[h - 24]! < day) {
        // A weekend hour without its own profile yet starts from the weekday one it was judged by.
        this.season[h] = this.season[h - 24]!;
        this.seen[h] = this.seen[h - 24]!;
        this.firstDay[h] = this.firstDay[h - 24]!;
      }
      if (this.firstDay[h]! < day) this.season[h]! += delta;
    }
  }

  restartClock(): void {
    this.prevX = Number.NaN;
    this.prevTs = Number.NaN;
  }

  private endRun(): void {
    this.run = [];
    this.runSign = 0;
    this.misses = 0;
  }

  /** The value judged: the value itself, or a counter's rate since the previous value (NaN for the first). */
  private transform(ts: number, x: number): number {
    if (this.kind !== 'counter') return x;
    const prevX = this.prevX;
    const prevTs = this.prevTs;
    this.prevX = x;
    this.prevTs = ts;
    if (!Number.isFinite(prevX)) return Number.NaN;
    const dtS = Number.isFinite(ts) && Number.isFinite(prevTs) && ts > prevTs ? (ts - prevTs) / 1000 : 1;
    // A drop is a reset: the counter restarted from zero.
    return (x >= prevX ? x - prevX : x) / dtS;
  }

  /** The profile of bin `b` as of `day`, NaN while it is not a day old; a weekend bin falls back to the weekday one. */
  private profile(b: number, day: number): number {
    if (this.firstDay[b]! < day) return this.season[b]!;
    if (b >= 24 && this.firstDay[b - 24]! < day) return this.season[b - 24]!;
    return Number.NaN;
  }

  /**
   * The value less its time-of-day profile, read between the two nearest bin centres (a bin holds its hour's mean, so
   * a steep daily ramp would otherwise leave a saw-tooth residual).
   */
  private deseason(ts: number, y: number): number {
    if (!this.o.seasonal) return y;
    const b = seasonBin(ts);
    if (b < 0) return y;
    const day = Math.floor(ts / DAY_MS);
    const here = this.profile(b, day);
    if (!Number.isFinite(here)) return y;
    const within = (((ts % HOUR_MS) + HOUR_MS) % HOUR_MS) / HOUR_MS - 0.5;
    const base = b - (b % 24);
    const next = base + (((b % 24) + (within >= 0 ? 1 : 23)) % 24);
    const there = this.profile(next, day);
    if (!Number.isFinite(there)) return y - here;
    const w = Math.abs(within);
    return y - ((1 - w) * here + w * there);
  }

  private learn(ts: number, y: number, d: number): void {
    this.ring.add(d);
    this.learnt++;
    this.spread += (Math.abs(d - this.ring.quantile(0.5)) - this.spread) / Math.min(this.learnt, this.o.windowValues);
    if (!this.o.seasonal || this.ring.size < this.o.warmupValues) return;
    const b = seasonBin(ts);
    if (b < 0) return;
    const n = this.seen[b]!;
    const alpha = Math.max(1 / (n + 1), this.alphaMin);
    this.season[b]! += alpha * (y - this.ring.quantile(0.5) - this.season[b]!);
    this.seen[b] = n + 1;
    if (n === 0) this.firstDay[b] = Math.floor(ts / DAY_MS);
  }
}

/** Inverse of a symmetric positive definite p x p matrix by Cholesky; null when it is not positive definite. */
export function invertSpd(a: Float64Array, p: number): Float64Array | null {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * p + j]!;
      for (let k = 0; k < j; k++) s -= l[i * p + k]! * l[j * p + k]!;
      if (i === j) {
        if (!(s > 0)) return null;
        l[i * p + i] = Math.sqrt(s);
      } else l[i * p + j] = s / l[j * p + j]!;
    }
  }
  // inv = L^-T L^-1, column by column.
  const inv = new Float64Array(p * p);
  const y = new Float64Array(p);
  for (let c = 0; c < p; c++) {
    for (let i = 0; i < p; i++) {
      let s = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) s -= l[i * p + k]! * y[k]!;
      y[i] = s / l[i * p + i]!;
    }
    for (let i = p - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < p; k++) s -= l[k * p + i]! * inv[k * p + c]!;
      inv[i * p + c] = s / l[i * p + i]!;
    }
  }
  return inv;
}

/** The joint term of one node (see the module comment). */
class JointModel {
  private readonly cov: Float64Array;
  private learnt = 0;
  private sinceFit = 0;
  private inv: Float64Array | null = null;
  private readonly ring: SlidingQuantiles;
  private readonly parts: Float64Array;

  constructor(
    private readonly p: number,
    private readonly o: MetricModelOptions,
  ) {
    this.cov = new Float64Array(p * p);
    this.ring = new SlidingQuantiles(o.windowValues);
    this.parts = new Float64Array(p);
  }

  /** u'S⁻¹u - u'u (S⁻¹ is symmetric: half the products); NaN before the first fit. */
  excess(u: Float64Array): number {
    const inv = this.inv;
    if (inv === null) return Number.NaN;
    const p = this.p;
    let total = 0;
    for (let i = 0; i < p; i++) {
      const ui = u[i]!;
      if (ui === 0) continue;
      const row = i * p;
      let s = 0;
      for (let k = i + 1; k < p; k++) s += inv[row + k]! * u[k]!;
      total += ui * ((inv[row + i]! - 1) * ui + 2 * s);
    }
    return total;
  }

  /** Each metric's share of the excess, u_i (S⁻¹u)_i - u_i², into `parts` (only for explaining). */
  shares(u: Float64Array): Float64Array {
    const inv = this.inv;
    const p = this.p;
    for (let i = 0; i < p; i++) {
      let s = 0;
      if (inv !== null) for (let k = 0; k < p; k++) s += inv[i * p + k]! * u[k]!;
      this.parts[i] = u[i]! * s - u[i]! * u[i]!;
    }
    return this.parts;
  }

  /** Robust z of an excess against those of normal windows; NaN while warming up. */
  z(excess: number): number {
    if (!Number.isFinite(excess) || this.ring.size < this.o.warmupValues) return Number.NaN;
    return robustZ(this.ring, excess);
  }

  learn(u: Float64Array, excess: number): void {
    const p = this.p;
    this.learnt++;
    const beta = 1 / Math.min(this.learnt, this.o.windowValues);
    const keep = 1 - beta;
    for (let i = 0; i < p; i++) {
      const ui = u[i]!;
      const row = i * p;
      for (let k = i; k < p; k++) this.cov[row + k] = keep * this.cov[row + k]! + beta * ui * u[k]!;
    }
    if (Number.isFinite(excess)) this.ring.add(excess);
    if (++this.sinceFit >= REFIT_EVERY || (this.inv === null && this.learnt >= Math.max(this.o.warmupValues, 2 * p))) {
      this.fit();
    }
  }

  private fit(): void {
    const p = this.p;
    this.sinceFit = 0;
    const s = new Float64Array(p * p);
    const sd = new Float64Array(p);
    for (let i = 0; i < p; i++) sd[i] = Math.sqrt(Math.max(0, this.cov[i * p + i]!));
    for (let i = 0; i < p; i++) {
      s[i * p + i] = 1;
      for (let k = i + 1; k < p; k++) {
        const r = sd[i]! > 0 && sd[k]! > 0 ? this.cov[i * p + k]! / (sd[i]! * sd[k]!) : 0;
        const v = (1 - SHRINK) * Math.max(-1, Math.min(1, r));
        s[i * p + k] = v;
        s[k * p + i] = v;
      }
    }
    const inv = invertSpd(s, p);
    if (inv !== null) {
      // The first fit changes what the excess means: the excesses learnt so far are those of no fit at all.
      this.inv = inv;
    }
  }
}

class NodeMetrics {
  readonly tracks: MetricTrack[];
  readonly joint: JointModel | null;
  lastTs = Number.NEGATIVE_INFINITY;
  readonly u: Float64Array;

  constructor(p: number, o: MetricModelOptions) {
    this.tracks = Array.from({ length: p }, () => new MetricTrack(o));
    this.joint = o.joint && p >= 2 ? new JointModel(p, o) : null;
    this.u = new Float64Array(p);
  }
}

/** Per-node baselines of a fixed list of named metrics. */
export class MetricModel {
  readonly options: MetricModelOptions;
  private readonly nodes = new Map<string, NodeMetrics>();
  private readonly cell = { z: Number.NaN, value: Number.NaN };
  private readonly z: Float64Array;
  private readonly value: Float64Array;

  constructor(
    readonly names: readonly string[],
    options: Partial<MetricModelOptions> & { cadenceMs: number },
  ) {
    this.options = { ...DEFAULT_METRIC_MODEL, ...options };
    this.z = new Float64Array(names.length);
    this.value = new Float64Array(names.length);
    const o = this.options;
    if (!(Number.isInteger(o.warmupValues) && o.warmupValues >= 3)) {
      throw new RangeError(`metric warm-up must be an integer >= 3, got ${o.warmupValues}`);
    }
    if (!(Number.isInteger(o.windowValues) && o.windowValues >= o.warmupValues)) {
      throw new RangeError(`metric window must be an integer >= the warm-up, got ${o.windowValues}`);
    }
    if (!(o.zThreshold > 0) || !(o.cadenceMs > 0) || !(o.shiftAfterMs > 0)) {
      throw new RangeError('metric zThreshold, cadenceMs and shiftAfterMs must be positive');
    }
  }

  /**
   * Judges one window of node `nodeId` (features by name; absent or non-finite = missing), then learns from it. With
   * `train`, every value is learnt, however far out (a period the user says was normal). A window not later than the
   * node's last one (a redelivery) is neither judged nor learnt: its metrics read as missing. The reading's arrays are reused by the next call: read them first.
   */
  observe(nodeId: string, ts: number, features: Readonly<Record<string, number>>, train = false): MetricReading {
    const p = this.names.length;
    let node = this.nodes.get(nodeId);
    if (node === undefined) {
      node = new NodeMetrics(p, this.options);
      this.nodes.set(nodeId, node);
    }
    // Reused from call to call: a reading is read before the next window is observed (StatScorer.scoreOne).
    const z = this.z;
    const value = this.value;
    const learn = ts > node.lastTs;
    if (learn) node.lastTs = ts;
    let present = false;
    let warm = false;
    let calm = true;
    const thr = this.options.zThreshold;
    const u = node.u;
    for (let i = 0; i < p; i++) {
      const x = features[this.names[i]!];
      if (typeof x !== 'number' || !Number.isFinite(x)) {
        z[i] = Number.NaN;
        value[i] = Number.NaN;
        u[i] = 0;
        continue;
      }
      present = true;
      if (learn) node.tracks[i]!.observe(ts, x, !train, this.cell);
      else {
        this.cell.z = Number.NaN;
        this.cell.value = x;
      }
      z[i] = this.cell.z;
      value[i] = this.cell.value;
      const zi = this.cell.z;
      if (Number.isFinite(zi)) {
        warm = true;
        if (Math.abs(zi) > thr) calm = false;
        u[i] = Math.max(-JOINT_CLIP, Math.min(JOINT_CLIP, zi));
      } else u[i] = 0;
    }
    let jointZ = Number.NaN;
    const pair: [number, number] = [-1, -1];
    const joint = node.joint;
    if (joint !== null && warm) {
      const excess = joint.excess(u);
      jointZ = joint.z(excess);
      // Naming the pair costs a full product: only when the joint term is large enough to be worth explaining.
      if (Number.isFinite(jointZ) && jointZ > thr - EXPLAIN_MARGIN) {
        const parts = joint.shares(u);
        let a = -1;
        let b = -1;
        for (let i = 0; i < p; i++) {
          const part = parts[i]!;
          if (a < 0 || part > parts[a]!) {
            b = a;
            a = i;
          } else if (b < 0 || part > parts[b]!) b = i;
        }
        pair[0] = a;
        pair[1] = b;
      }
      if (learn && (train || (calm && !(jointZ > thr)))) joint.learn(u, excess);
    }
    return { z, value, jointZ, jointPair: pair, warm: warm || Number.isFinite(jointZ), present };
  }

  /**
   * Starts a new stretch of time after training: the next window of each node is learnt whatever its time, and a
   * counter's first rate is taken from its next two values (not across the gap from the training period).
   */
  restartClock(): void {
    for (const node of this.nodes.values()) {
      node.lastTs = Number.NEGATIVE_INFINITY;
      for (const t of node.tracks) t.restartClock();
    }
  }

  /** Which metrics were found to be counters (judged as rates), per node. */
  counters(nodeId: string): string[] {
    const node = this.nodes.get(nodeId);
    if (node === undefined) return [];
    return this.names.filter((_, i) => node.tracks[i]!.kind === 'counter');
  }
}
