/**
 * `npm run bench [-- --only PREFIX] [-- --json FILE]`: runs the benchmark modules and prints one table of figures.
 * Each module exports `run(): Promise<Figure[]>` and is listed here with the figure-name prefixes it produces, so
 * `--only` can skip modules without running them.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface Figure {
  name: string;
  value: number;
  unit: string;
}

interface BenchModule {
  file: string;
  prefixes: string[];
}

const MODULES: BenchModule[] = [
  { file: './pipeline.js', prefixes: ['pipeline.'] },
  { file: './simulator.js', prefixes: ['simulator.'] },
  { file: './features.js', prefixes: ['features.'] },
  { file: './actions.js', prefixes: ['actions.'] },
  { file: './ami.js', prefixes: ['ami.'] },
  { file: './hep.js', prefixes: ['hep.'] },
  { file: './api.js', prefixes: ['api.'] },
  { file: './model.js', prefixes: ['model.', 'score_csv.'] },
  { file: './kamailio.js', prefixes: ['drain.'] },
  { file: './exporters.js', prefixes: ['influx.'] },
  { file: './kafka.js', prefixes: ['kafka.'] },
  { file: './train-memory.js', prefixes: ['train.'] },
];

function matches(module: BenchModule, only: string | undefined): boolean {
  if (!only) return true;
  return module.prefixes.some((p) => p.startsWith(only) || only.startsWith(p));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, json: { type: 'string' } } });
  const figures: Figure[] = [];
  const failures: string[] = [];
  for (const module of MODULES.filter((m) => matches(m, values.only))) {
    const started = Date.now();
    try {
      const mod = (await import(module.file)) as { run: () => Promise<Figure[]> };
      const produced = await mod.run();
      figures.push(...produced.filter((f) => !values.only || f.name.startsWith(values.only)));
      console.error(
        `bench ${module.file}: ${produced.length} figures in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    } catch (err) {
      failures.push(`${module.file}: ${(err as Error).message}`);
      console.error(`bench ${module.file} failed: ${(err as Error).stack ?? err}`);
    }
  }
  const width = Math.max(10, ...figures.map((f) => f.name.length));
  console.log(`${'figure'.padEnd(width)}  ${'value'.padStart(14)}  unit`);
  for (const f of figures) {
    const shown = Number.isInteger(f.value) ? String(f.value) : f.value.toFixed(f.value < 10 ? 3 : 1);
    console.log(`${f.name.padEnd(width)}  ${shown.padStart(14)}  ${f.unit}`);
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify(figures, null, 2)}\n`);
  if (failures.length > 0) {
    console.error(`\n${failures.length} benchmark module(s) failed:\n${failures.join('\n')}`);
    process.exitCode = 1;
  }
}

await main();
