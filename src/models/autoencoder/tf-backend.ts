import { createRequire } from 'node:module';
import path from 'node:path';
import { ForesightError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';

/** The TensorFlow.js namespace; @tensorflow/tfjs-node exposes the same API as @tensorflow/tfjs. */
export type Tf = typeof import('@tensorflow/tfjs');

/** `tensorflow` is the native binding of @tensorflow/tfjs-node; `wasm` the portable default; `cpu` the slow fallback. */
export type TfBackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface TfRuntime {
  tf: Tf;
  backend: TfBackendName;
  /** wasm only: whether the SIMD build of the backend was loaded (several times faster for dense layers). */
  simd: boolean;
}

export interface TfBackendOptions {
  /** Force a backend (tests, benchmarks). Default: the best one available. */
  prefer?: TfBackendName;
  logger?: Logger;
}

let loading: Promise<TfRuntime> | null = null;

/** Directory holding the backend's .wasm binaries, resolved from node_modules so that nothing is fetched. */
export function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return `${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}${path.sep}dist${path.sep}`;
}

async function tryNative(): Promise<Tf | null> {
  // A variable specifier keeps bundlers and tsc from requiring the optional package.
  const name = '@tensorflow/tfjs-node';
  try {
    return (await import(name)) as Tf;
  } catch {
    return null;
  }
}

async function load(options: TfBackendOptions): Promise<TfRuntime> {
  const logger = (options.logger ?? silentLogger()).child({ component: 'tf' });
  const prefer = options.prefer;
  if (prefer === undefined || prefer === 'tensorflow') {
    const native = await tryNative();
    if (native && (await native.setBackend('tensorflow'))) {
      await native.ready();
      logger.info({ backend: 'tensorflow' }, 'TensorFlow.js backend: tensorflow (tfjs-node)');
      return { tf: native, backend: 'tensorflow', simd: false };
    }
    if (prefer === 'tensorflow') {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', '@tensorflow/tfjs-node was asked for but is not installed');
    }
  }
  const tf = (await import('@tensorflow/tfjs')) as Tf;
  if (prefer !== 'cpu') {
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // A directory prefix (not a single file path) lets the backend pick its SIMD build: it does so when
      // WASM_HAS_SIMD_SUPPORT holds, which Node 20's V8 passes. A full path (setWasmPath) would force the plain build.
      wasm.setWasmPaths(wasmDir());
      if (await tf.setBackend('wasm')) {
        await tf.ready();
        const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
        logger.info({ backend: 'wasm', simd }, `TensorFlow.js backend: wasm${simd ? ' (SIMD)' : ' (no SIMD: slow)'}`);
        return { tf, backend: 'wasm', simd };
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'wasm backend failed to load');
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  logger.warn({ backend: 'cpu' }, 'TensorFlow.js backend: cpu (slow fallback; wasm was not available)');
  return { tf, backend: 'cpu', simd: false };
}

/**
 * Loads TensorFlow.js once per process: tfjs-node when installed, else tfjs with the wasm backend, else cpu.
 * Later calls return the same runtime (the first caller's preference wins, TensorFlow.js has one global backend).
 */
export function loadTf(options: TfBackendOptions = {}): Promise<TfRuntime> {
  if (loading === null) {
    loading = load(options).catch((err) => {
      loading = null;
      throw err;
    });
  }
  return loading;
}
