import type { NormalisationStats } from './normalisation.js';
import type { Tf } from './tf-backend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor1D = import('@tensorflow/tfjs').Tensor1D;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;

/**
 * One dense layer as raw tensors: y = act(x · kernel + bias), act sigmoid or linear. A tanh layer is stored in its
 * sigmoid form, tanh(z) = 2·sigmoid(2z) - 1: the backend fuses a sigmoid into the matMul nearly for free, while a
 * separate tanh costs twice the matMuls themselves (wasm, 1000 × 100). The affine 2s - 1 is folded into the next
 * layer's kernel and bias (see readDenseStages).
 */
interface DenseStage {
  kernel: Tensor2D;
  bias: Tensor1D;
  activation: 'sigmoid' | 'linear';
}

/** What one batch produced: every row's mean squared error and the per-cell errors of the rows asked for. */
export interface BatchErrors {
  /** Mean squared reconstruction error of each row (length n). */
  rowError: Float32Array;
  /** Rows the caller asked to explain, ascending. */
  rows: Int32Array;
  /**
   * Squared error per cell, row-major (n × cols), read back only when `rows` is not empty (else empty). All rows, not
   * just those asked for: copying n × cols back costs a tenth of a gather on the wasm backend.
   */
  cells: Float32Array;
}

const EMPTY_ROWS = new Int32Array(0);
const EMPTY_CELLS = new Float32Array(0);

/**
 * The autoencoder's forward pass for scoring, as plain TF.js ops on the weights read once from the LayersModel.
 *
 * Why not `model.predict`: for a 1000 × 100 batch LayersModel's symbolic execution (input checks, per-layer scopes,
 * a clone per layer) costs several times the arithmetic on the wasm backend. Here each layer is one fused
 * matMul + bias + activation (tanh rewritten as a sigmoid, see DenseStage), the errors are reduced to one number
 * per row on the backend, and only those n numbers (plus the cells of the rows a caller wants explained) are read
 * back, instead of n × cols.
 *
 * Layer types or activations it does not know make it fall back to `model.predict`, so any artefact still scores.
 * Tests check it against `model.predict` on random input.
 */
export class AutoencoderRunner {
  private readonly stages: DenseStage[] | null;
  private readonly norm: { center: Tensor1D; invScale: Tensor1D; clip: number } | null;
  private magnitude = new Float32Array(0);
  private sign = new Float32Array(0);

  /** With `normalisation`, `errorsFromRaw` normalises raw rows on the backend (as normaliseRow does in JS). */
  constructor(
    private readonly tf: Tf,
    private readonly model: LayersModel,
    normalisation?: NormalisationStats,
  ) {
    this.stages = readDenseStages(tf, model);
    this.norm = normalisation
      ? {
          center: tf.keep(tf.tensor1d(normalisation.center)),
          invScale: tf.keep(tf.tensor1d(normalisation.scale.map((x) => 1 / x))),
          clip: normalisation.clip,
        }
      : null;
  }

  /** True when the fast path (raw ops) is used, false when it falls back to `model.predict`. */
  get fast(): boolean {
    return this.stages !== null;
  }

  /** Reconstruction of `x` (caller disposes, or calls inside tidy). */
  forward(x: Tensor2D): Tensor2D {
    const { tf, stages } = this;
    if (stages === null) return this.model.predict(x) as Tensor2D;
    let h: Tensor2D = x;
    for (const s of stages) {
      h = tf.fused.matMul({ a: h, b: s.kernel, bias: s.bias, activation: s.activation }) as Tensor2D;
    }
    // A network ending in tanh leaves its output in sigmoid form.
    return stages[stages.length - 1]!.activation === 'sigmoid' ? (tf.sub(tf.mul(h, 2), 1) as Tensor2D) : h;
  }

  /**
   * Scores `n` normalised rows (`input`, row-major, `cols` wide) in one pass. `explain` sees every row's mean squared
   * error and returns the rows whose per-cell errors are wanted (ascending); cells are read back only if there are any.
   */
  errors(input: Float32Array, n: number, cols: number, explain?: (rowError: Float32Array) => Int32Array): BatchErrors {
    return this.run(() => this.tf.tensor2d(input.subarray(0, n * cols), [n, cols]), n, explain);
  }

  /**
   * As `errors`, from raw feature values: signed log1p, centre, scale and clip run on the backend, which is several
   * times faster than doing them per value in JavaScript. Needs the normalisation given at construction.
   */
  errorsFromRaw(
    raw: Float64Array | Float32Array,
    n: number,
    cols: number,
    explain?: (rowError: Float32Array) => Int32Array,
    keep?: Float32Array,
  ): BatchErrors {
    const norm = this.norm;
    if (norm === null) throw new Error('AutoencoderRunner.errorsFromRaw needs the normalisation statistics');
    const { tf } = this;
    // Magnitude and sign are split here, in the one pass that converts to float32 anyway: the backend's Sign and Abs
    // kernels (not vectorised on wasm) cost as much as the whole log1p.
    const size = n * cols;
    if (this.magnitude.length < size) {
      this.magnitude = new Float32Array(size);
      this.sign = new Float32Array(size);
    }
    const { magnitude, sign } = this;
    let negatives = false;
    for (let i = 0; i < size; i++) {
      const v = raw[i]!;
      if (v < 0) {
        magnitude[i] = -v;
        sign[i] = -1;
        negatives = true;
      } else {
        magnitude[i] = v;
        sign[i] = 1;
      }
    }
    return this.run(
      () => {
        let logged = tf.log1p(tf.tensor2d(magnitude.subarray(0, size), [n, cols]));
        if (negatives) logged = tf.mul(logged, tf.tensor2d(sign.subarray(0, size), [n, cols]));
        return tf.clipByValue(tf.mul(tf.sub(logged, norm.center), norm.invScale), -norm.clip, norm.clip) as Tensor2D;
      },
      n,
      explain,
      keep,
    );
  }

  /**
   * `keep` (n × cols of 1 and 0), when given, leaves cells out: their squared error is 0 and each row's error is the
   * mean over its kept cells (see missing-mask.ts).
   */
  private run(
    input: () => Tensor2D,
    n: number,
    explain?: (rowError: Float32Array) => Int32Array,
    keep?: Float32Array,
  ): BatchErrors {
    if (n === 0) return { rowError: new Float32Array(0), rows: EMPTY_ROWS, cells: EMPTY_CELLS };
    const { tf } = this;
    const { cells, rowMean } = tf.tidy(() => {
      const x = input();
      const sq = tf.squaredDifference(x, this.forward(x)) as Tensor2D;
      if (keep === undefined) return { cells: sq, rowMean: tf.mean(sq, 1) as Tensor };
      const k = tf.tensor2d(keep.subarray(0, n * x.shape[1]), x.shape);
      const kept = tf.mul(sq, k) as Tensor2D;
      return { cells: kept, rowMean: tf.div(tf.sum(kept, 1), tf.maximum(tf.sum(k, 1), 1)) as Tensor };
    });
    try {
      const rowError = rowMean.dataSync() as Float32Array;
      const rows = explain ? explain(rowError) : EMPTY_ROWS;
      if (rows.length === 0) return { rowError, rows, cells: EMPTY_CELLS };
      return { rowError, rows, cells: cells.dataSync() as Float32Array };
    } finally {
      cells.dispose();
      rowMean.dispose();
    }
  }

  /** Frees the copies of the weights (the LayersModel keeps its own). */
  dispose(): void {
    this.norm?.center.dispose();
    this.norm?.invScale.dispose();
    for (const s of this.stages ?? []) {
      s.kernel.dispose();
      s.bias.dispose();
    }
  }
}

/** The model's layers as dense stages, or null when any layer is not a plain dense layer with a known activation. */
function readDenseStages(tf: Tf, model: LayersModel): DenseStage[] | null {
  const stages: DenseStage[] = [];
  // Whether the previous stage's output is in sigmoid form s (the layer's real output is h = 2s - 1).
  let sigmoidInput = false;
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    if (layer.getClassName() !== 'Dense') return disposeAll(stages);
    const config = layer.getConfig() as { activation?: unknown; useBias?: unknown };
    const activation = config.activation;
    if (activation !== 'tanh' && activation !== 'linear') return disposeAll(stages);
    const weights = layer.getWeights();
    const kernel = weights[0];
    if (kernel?.rank !== 2) return disposeAll(stages);
    const bias = config.useBias === false ? null : weights[1];
    if (bias === undefined || (bias !== null && bias.rank !== 1)) return disposeAll(stages);
    const stage = tf.tidy(() => {
      let w = kernel as Tensor2D;
      let b = (bias ?? tf.zeros([kernel.shape[1]!])) as Tensor1D;
      // (2s - 1)·W + b = s·(2W) + (b - column sums of W)
      if (sigmoidInput) {
        b = tf.sub(b, tf.sum(w, 0)) as Tensor1D;
        w = tf.mul(w, 2) as Tensor2D;
      }
      // tanh(z) = 2·sigmoid(2z) - 1: the stage computes sigmoid(2z), the next one folds in the rest.
      if (activation === 'tanh') {
        w = tf.mul(w, 2) as Tensor2D;
        b = tf.mul(b, 2) as Tensor1D;
      }
      // Copies (clone when unchanged), so that the stages stay valid whatever happens to the model's variables.
      return { kernel: w === kernel ? w.clone() : w, bias: b === bias ? b.clone() : b };
    });
    stages.push({
      kernel: tf.keep(stage.kernel),
      bias: tf.keep(stage.bias),
      activation: activation === 'tanh' ? 'sigmoid' : 'linear',
    });
    sigmoidInput = activation === 'tanh';
  }
  return stages.length > 0 ? stages : null;
}

function disposeAll(stages: DenseStage[]): null {
  for (const s of stages) {
    s.kernel.dispose();
    s.bias.dispose();
  }
  return null;
}
