import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// Builds the package the way `npm publish` would, installs the tarball into an unrelated project (dependencies from
// the registry, through the local npm cache) and runs the installed `foresight` binary. Slow: minutes on a cold cache.
const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const work = mkdtempSync(path.join(os.tmpdir(), 'foresight-pack-'));
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] };

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

async function sh(cmd: string, args: string[], cwd: string, timeout = 300_000) {
  try {
    return await run(cmd, args, { cwd, timeout, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

describe('npm pack', () => {
  let binary = '';
  let project = '';

  it('packs the built sources into a tarball that installs elsewhere', { timeout: 600_000 }, async () => {
    // Stage a copy so the build output never lands in the working tree other people edit.
    const stage = path.join(work, 'stage');
    for (const entry of ['package.json', 'README.md', 'LICENSE', ...pkg.files.filter((f) => f !== 'dist')]) {
      if (existsSync(path.join(ROOT, entry)))
        cpSync(path.join(ROOT, entry), path.join(stage, entry), { recursive: true });
    }
    // Same compiler and options as `npm run build`, only the output directory differs.
    await sh(
      process.execPath,
      [
        path.join(ROOT, 'node_modules/typescript/bin/tsc'),
        '-p',
        'tsconfig.build.json',
        '--outDir',
        path.join(stage, 'dist'),
      ],
      ROOT,
    );
    expect(existsSync(path.join(stage, 'dist/cli/main.js'))).toBe(true);

    const packed = await sh('npm', ['pack', '--json', '--pack-destination', work], stage);
    const info = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const tarball = path.join(work, info[0]!.filename);
    const paths = info[0]!.files.map((f) => f.path);
    expect(paths).toContain('bin/foresight.js');
    expect(paths).toContain('dist/cli/main.js');
    expect(paths).toContain('deploy/systemd/foresight.service');
    // Tests, sources and local state stay out of the package.
    expect(paths.filter((p) => /^(src|test|var|node_modules)\//.test(p))).toEqual([]);

    project = path.join(work, 'consumer');
    mkdirSync(project);
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'foresight-consumer', version: '1.0.0', private: true }),
    );
    await sh(
      'npm',
      ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
      project,
      540_000,
    );
    binary = path.join(project, 'node_modules/.bin/foresight');
    expect(existsSync(binary)).toBe(true);
    // better-sqlite3's install script must have run, or the store fails at first use.
    const sqlite = await sh(
      process.execPath,
      [
        '-e',
        "const D=require('better-sqlite3'); const d=new D(':memory:'); console.log(d.prepare('select 41+1 as x').get().x)",
      ],
      project,
    );
    expect(sqlite.stdout.trim()).toBe('42');
  });

  it('runs `foresight --help` from the installed package', async () => {
    expect(binary).not.toBe('');
    const { stdout } = await sh(binary, ['--help'], project, 60_000);
    expect(stdout).toMatch(/^Usage: foresight/m);
    for (const command of ['run', 'demo', 'check-config'])
      expect(stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  it('runs `foresight check-config` on the shipped sidecar example with secrets redacted', async () => {
    expect(binary).not.toBe('');
    const example = path.join(project, 'node_modules/foresight/config/example.sidecar.json');
    const { stdout } = await sh(binary, ['check-config', example], project, 60_000);
    const effective = JSON.parse(stdout) as { mode: string; nodes: { id: string }[]; api: { port: number } };
    expect(effective.mode).toBe('sidecar');
    expect(effective.nodes.map((n) => n.id)).toEqual(['ast1', 'ast2']);
    expect(effective.api.port).toBe(8080);
    // An inline secret (allowed for local tests) must never be echoed back.
    const withSecret = JSON.parse(readFileSync(example, 'utf8')) as { api: { tokens: { token: unknown }[] } };
    withSecret.api.tokens[0]!.token = { value: 'pack-test-s3cret-value' };
    const secretFile = path.join(work, 'with-secret.json');
    writeFileSync(secretFile, JSON.stringify(withSecret));
    const redacted = await sh(binary, ['check-config', secretFile], project, 60_000);
    expect(redacted.stdout).not.toContain('pack-test-s3cret-value');
    const defaults = await sh(binary, ['check-config'], project, 60_000);
    expect((JSON.parse(defaults.stdout) as { mode: string }).mode).toBe('embedded');
  });

  it('exits non-zero with a clear message on an invalid config', async () => {
    expect(binary).not.toBe('');
    const bad = path.join(work, 'bad.json');
    writeFileSync(bad, JSON.stringify({ mode: 'sideways' }));
    const err = await sh(binary, ['check-config', bad], project, 60_000).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/invalid configuration/);
    expect(err?.message).not.toMatch(/\n\s+at /); // no stack trace for a user error
  });
});
