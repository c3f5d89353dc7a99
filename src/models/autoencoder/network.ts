import { keptRowMeans } from './missing-mask.js';
import type { Tf } from './tf-backend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

/**
 * A small dense autoencoder over one window's features. Inputs are normalised (see `Normaliser`); the model learns
 * to reproduce healthy windows, so its reconstruction error grows when a window looks unlike anything healthy.
 */
export interface AutoencoderSpec {
  inputSize: number;
  /** Widths of the encoder layers; the decoder mirrors them. Last one is the bottleneck. */
  hidden: number[];
  /** Seed of the first layer's initializer; layer i uses seed + i. */
  seed: number;
}

export interface TrainSpec {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Seed of the per-epoch shuffle. */
  shuffleSeed: number;
}

export const DEFAULT_HIDDEN = [48, 12];

/** mulberry32: a tiny seeded PRNG, enough for a reproducible shuffle order. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates permutation of 0..n-1 driven by `rand`. */
export function permutation(n: number, rand: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

export function buildAutoencoder(tf: Tf, spec: AutoencoderSpec): LayersModel {
  const widths = [...spec.hidden, ...spec.hidden.slice(0, -1).reverse()];
  const model = tf.sequential();
  widths.forEach((units, i) => {
    model.add(
      tf.layers.dense({
        units,
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed + i }),
        biasInitializer: 'zeros',
        ...(i === 0 ? { inputShape: [spec.inputSize] } : {}),
      }),
    );
  });
  model.add(
    tf.layers.dense({
      units: spec.inputSize,
      activation: 'linear',
      kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed + widths.length }),
      biasInitializer: 'zeros',
    }),
  );
  return model;
}

/**
 * Trains on `rows` (normalised, row-major, `cols` wide). Each epoch visits the rows in a seeded permutation and
 * tfjs' own shuffle is off, so the same data, seeds and backend give the same weights.
 */
export async function trainAutoencoder(
  tf: Tf,
  model: LayersModel,
  rows: Float32Array,
  cols: number,
  spec: TrainSpec,
  onEpoch?: (epoch: number, loss: number) => void,
): Promise<number[]> {
  const n = rows.length / cols;
  model.compile({ optimizer: tf.train.adam(spec.learningRate), loss: 'meanSquaredError' });
  const rand = seededRandom(spec.shuffleSeed);
  const shuffled = new Float32Array(rows.length);
  const losses: number[] = [];
  for (let epoch = 0; epoch < spec.epochs; epoch++) {
    const order = permutation(n, rand);
    for (let i = 0; i < n; i++) shuffled.set(rows.subarray(order[i]! * cols, (order[i]! + 1) * cols), i * cols);
    const x = tf.tensor2d(shuffled, [n, cols]);
    try {
      const h = await model.fit(x, x, { epochs: 1, batchSize: spec.batchSize, shuffle: false, verbose: 0 });
      const loss = Number(h.history.loss?.[0] ?? Number.NaN);
      losses.push(loss);
      onEpoch?.(epoch, loss);
    } finally {
      x.dispose();
    }
  }
  return losses;
}

/**
 * Squared reconstruction error per cell of `rows` (row-major, normalised). One predict call for the whole batch,
 * inside tidy so no tensor outlives the call.
 */
export function reconstructionErrors(tf: Tf, model: LayersModel, rows: Float32Array, cols: number): Float32Array {
  const n = rows.length / cols;
  if (n === 0) return new Float32Array(0);
  const out = tf.tidy(() => {
    const x = tf.tensor2d(rows, [n, cols]);
    const y = model.predict(x) as import('@tensorflow/tfjs').Tensor;
    return tf.squaredDifference(x, y);
  });
  try {
    return out.dataSync() as Float32Array;
  } finally {
    out.dispose();
  }
}

/** Reconstruction errors in batches, for large evaluation sets. */
export function reconstructionErrorsBatched(
  tf: Tf,
  model: LayersModel,
  rows: Float32Array,
  cols: number,
  batchRows = 4096,
): Float32Array {
  const n = rows.length / cols;
  const out = new Float32Array(rows.length);
  for (let i = 0; i < n; i += batchRows) {
    const end = Math.min(n, i + batchRows);
    out.set(reconstructionErrors(tf, model, rows.subarray(i * cols, end * cols), cols), i * cols);
  }
  return out;
}

/** Mean of each row's squared errors. */
export function rowMeans(cells: Float32Array, cols: number): Float64Array {
  return keptRowMeans(cells, cols);
}
