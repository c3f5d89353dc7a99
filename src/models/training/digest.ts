import type { Hash } from 'node:crypto';
import type { TelemetrySample } from '../../messages.js';

/** Interned keys per digest, so a digest never depends on what else the process hashed. */
const keyIdsOf = new WeakMap<Hash, Map<string, number>>();

/**
 * Adds samples to a digest cheaply: time, value and an interned node/metric/source id as float64 triples, plus each
 * new key's text the first time it appears (so the digest still depends on the names).
 */
export function hashSamples(hash: Hash, samples: readonly TelemetrySample[]): void {
  let keyIds = keyIdsOf.get(hash);
  if (!keyIds) {
    keyIds = new Map();
    keyIdsOf.set(hash, keyIds);
  }
  const buf = new Float64Array(samples.length * 3);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const key = `${s.nodeId}\u0000${s.metric}\u0000${s.source}`;
    let id = keyIds.get(key);
    if (id === undefined) {
      id = keyIds.size;
      keyIds.set(key, id);
      hash.update(`${id}=${key}\n`);
    }
    buf[i * 3] = s.ts;
    buf[i * 3 + 1] = s.value;
    buf[i * 3 + 2] = id;
  }
  hash.update(new Uint8Array(buf.buffer));
}
