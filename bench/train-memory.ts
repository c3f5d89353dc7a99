/**
 * Peak RSS of `foresight train` on a telemetry file ten times the replay fixture (test/fixtures/replay), in a child
 * process of its own so that nothing else this bench loaded counts. The file is the fixture repeated ten times, each
 * copy shifted past the previous one in time, so it stays in event-time order like a real export.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createGunzip, createGzip } from 'node:zlib';

type Figure = { name: string; value: number; unit: string };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURE = path.join(ROOT, 'test/fixtures/replay/telemetry.jsonl.gz');
const COPIES = 10;

/** Writes the fixture COPIES times, shifted in time; returns the number of samples written. */
export async function writeScaledFixture(out: string, copies = COPIES): Promise<number> {
  const lines: string[] = [];
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for await (const line of createInterface({ input: createReadStream(FIXTURE).pipe(createGunzip()) })) {
    if (line.trim() === '') continue;
    const ts = (JSON.parse(line) as { ts: number }).ts;
    first = Math.min(first, ts);
    last = Math.max(last, ts);
    lines.push(line);
  }
  // One copy's span plus a minute, so copies do not overlap.
  const shift = last - first + 60_000;
  const gz = createGzip();
  const done = new Promise<void>((resolve, reject) => {
    gz.pipe(createWriteStream(out)).on('finish', resolve).on('error', reject);
  });
  for (let k = 0; k < copies; k++) {
    let chunk = '';
    for (const line of lines) {
      const s = JSON.parse(line) as { ts: number };
      s.ts += k * shift;
      chunk += `${JSON.stringify(s)}\n`;
      if (chunk.length > 1 << 20) {
        if (!gz.write(chunk)) await new Promise((r) => gz.once('drain', r));
        chunk = '';
      }
    }
    gz.write(chunk);
  }
  gz.end();
  await done;
  return lines.length * copies;
}

/** Runs `foresight train` in a child and returns its peak RSS in MiB (GNU time's maximum resident set size). */
export function trainPeakRssMiB(input: string, out: string): number {
  const res = spawnSync(
    '/usr/bin/time',
    [
      '-f',
      'maxrss_kb=%M',
      'npx',
      'tsx',
      path.join(ROOT, 'src/cli/main.ts'),
      'train',
      '--input',
      input,
      '--out',
      out,
      '--epochs',
      '1',
      '--quiet',
    ],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const m = /maxrss_kb=(\d+)/.exec(res.stderr ?? '');
  if (res.status !== 0 || !m) throw new Error(`train failed (exit ${res.status}): ${(res.stderr ?? '').slice(-2000)}`);
  return Number(m[1]) / 1024;
}

export async function run(): Promise<Figure[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-train-'));
  try {
    const input = path.join(dir, 'telemetry-x10.jsonl.gz');
    const samples = await writeScaledFixture(input);
    const rss = trainPeakRssMiB(input, path.join(dir, 'model'));
    // The same run on the fixture itself: the difference is what ten times the samples cost.
    const rss1 = trainPeakRssMiB(FIXTURE, path.join(dir, 'model1'));
    return [
      { name: 'train.x1_fixture.peak_rss_mib', value: rss1, unit: 'MiB' },
      { name: 'train.x10_fixture.samples', value: samples, unit: 'samples' },
      { name: 'train.x10_fixture.file_mib', value: statSync(input).size / 2 ** 20, unit: 'MiB' },
      { name: 'train.x10_fixture.peak_rss_mib', value: rss, unit: 'MiB' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
