import type { Tf } from './tf-backend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor1D = import('@tensorflow/tfjs').Tensor1D;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;

/** One dense layer as raw tensors: y = act(x · kernel + bias). */
interface DenseStage {
  kernel: Tensor2D;
  bias: Tensor1D | null;
  activation: 'tanh' | 'linear';
}

/** What one batch produced: every row's mean squared error and the per-cell errors of the rows asked for. */
export interface BatchErrors {
  /** Mean squared reconstruction error of each row (length n). */
  rowError: Float32Array;
  /** Rows whose cells were read back, ascending. */
  rows: Int32Array;
  /** Squared error per cell of those rows, row-major (rows.length × cols). */
  cells: Float32Array;
}

const EMPTY_ROWS = new Int32Array(0);
const EMPTY_CELLS = new Float32Array(0);

/**
 * The autoencoder's forward pass for scoring, as plain TF.js ops on the weights read once from the LayersModel.
 *
 * Why not `model.predict`: for a 1000 × 100 batch LayersModel's symbolic execution (input checks, per-layer scopes,
 * a clone per layer) costs several times the arithmetic on the wasm backend. Here each layer is one fused
 * matMul + bias and a tanh, the errors are reduced to one number per row on the backend, and only those n numbers
 * (plus the cells of the rows a caller wants explained) are read back, instead of n × cols.
 *
 * Layer types or activations it does not know make it fall back to `model.predict`, so any artefact still scores.
 * Tests check it against `model.predict` on random input.
 */
export class AutoencoderRunner {
  private readonly stages: DenseStage[] | null;

  constructor(
    private readonly tf: Tf,
    private readonly model: LayersModel,
  ) {
    this.stages = readDenseStages(tf, model);
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
      const z = tf.fused.matMul({ a: h, b: s.kernel, ...(s.bias ? { bias: s.bias } : {}) }) as Tensor2D;
      h = s.activation === 'tanh' ? (tf.tanh(z) as Tensor2D) : z;
    }
    return h;
  }

  /**
   * Scores `n` normalised rows (`input`, row-major, `cols` wide) in one pass. `explain` sees every row's mean squared
   * error and returns the rows whose per-cell errors are wanted (ascending); only those are read back.
   */
  errors(input: Float32Array, n: number, cols: number, explain?: (rowError: Float32Array) => Int32Array): BatchErrors {
    if (n === 0) return { rowError: new Float32Array(0), rows: EMPTY_ROWS, cells: EMPTY_CELLS };
    const { tf } = this;
    const { cells, rowMean } = tf.tidy(() => {
      const x = tf.tensor2d(input, [n, cols]);
      const sq = tf.squaredDifference(x, this.forward(x)) as Tensor2D;
      return { cells: sq, rowMean: tf.mean(sq, 1) as Tensor };
    });
    try {
      const rowError = rowMean.dataSync() as Float32Array;
      const rows = explain ? explain(rowError) : EMPTY_ROWS;
      if (rows.length === 0) return { rowError, rows, cells: EMPTY_CELLS };
      if (rows.length === n) return { rowError, rows, cells: cells.dataSync() as Float32Array };
      const picked = tf.tidy(() => tf.gather(cells, tf.tensor1d(rows, 'int32')));
      try {
        return { rowError, rows, cells: picked.dataSync() as Float32Array };
      } finally {
        picked.dispose();
      }
    } finally {
      cells.dispose();
      rowMean.dispose();
    }
  }

  /** Frees the copies of the weights (the LayersModel keeps its own). */
  dispose(): void {
    for (const s of this.stages ?? []) {
      s.kernel.dispose();
      s.bias?.dispose();
    }
  }
}

/** The model's layers as dense stages, or null when any layer is not a plain dense layer with a known activation. */
function readDenseStages(tf: Tf, model: LayersModel): DenseStage[] | null {
  const stages: DenseStage[] = [];
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
    // Copies, so that the stages stay valid whatever happens to the model's variables.
    stages.push({
      kernel: tf.keep(kernel.clone()) as Tensor2D,
      bias: bias ? (tf.keep(bias.clone()) as Tensor1D) : null,
      activation,
    });
  }
  return stages.length > 0 ? stages : null;
}

function disposeAll(stages: DenseStage[]): null {
  for (const s of stages) {
    s.kernel.dispose();
    s.bias?.dispose();
  }
  return null;
}
