import { describe, expect, it } from 'vitest';
import { scoreCsvText } from '../../src/models/csv/score.js';

/** Seeded uniform noise (LCG) so the data and the seeded training give the same model every run. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    return s / 2_147_483_648;
  };
}

function table(rows: number, start: number, rand: () => number, odd: ReadonlySet<number> = new Set()): string {
  const lines = ['timestamp,cpu,calls,mem,packets'];
  let packets = 1e6;
  for (let i = 0; i < rows; i++) {
    const load = rand() * 2 - 1;
    let cpu = 50 + 10 * load + rand();
    let calls = 300 + 60 * load + 6 * rand();
    // Two normally correlated columns part ways, each inside its own range.
    if (odd.has(i)) {
      cpu = 58;
      calls = 250;
    }
    packets += 100 + 10 * rand();
    lines.push(`${start + i * 60},${cpu.toFixed(3)},${calls.toFixed(3)},${(1000 + 5 * rand()).toFixed(2)},${packets}`);
  }
  return lines.join('\n');
}

describe('foresight score --scorer tfjs', () => {
  it('trains the autoencoder on the named period and ranks a correlation break above normal rows', async () => {
    const rand = lcg(3);
    const train = table(1500, 1_700_000_000, rand);
    const input = table(400, 1_700_000_000 + 1500 * 60, rand, new Set([300]));
    const { output, summary } = await scoreCsvText(input, { scorer: 'tfjs', trainText: train });
    expect(summary.scorer).toBe('tfjs-ae-v1');
    expect(summary.mode).toBe('trained');
    const rows = output
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    // No warm-up: trained on the named period. Every row carries raw and risk.
    expect(rows.every((r) => r[7] === 'scored')).toBe(true);
    const raw = rows.map((r) => Number(r[5]));
    const risk = rows.map((r) => Number(r[6]));
    expect(risk.every((x) => x >= 0 && x <= 1)).toBe(true);
    const normal = raw.filter((_, i) => i !== 300 && i > 0);
    expect(raw[300]!).toBeGreaterThan(Math.max(...normal));
  }, 120_000);
});
