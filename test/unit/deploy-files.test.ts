import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// The systemd unit and the container file start the CLI; these tests check that what they start exists: the package
// binary, the subcommand, and its options (asked from the CLI's own --help, so a renamed flag fails here).
const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; files: string[] };
const [binName, binPath] = Object.entries(pkg.bin)[0]!;

const helpCache = new Map<string, string>();
/** `foresight <command> --help`, run from source; throws when the command does not exist. */
function commandHelp(command: string): string {
  const cached = helpCache.get(command);
  if (cached !== undefined) return cached;
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', command, '--help'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(out, `no help for "${command}"`).toContain(`foresight ${command}`);
  helpCache.set(command, out);
  return out;
}

/** Checks `foresight <args...>`: the subcommand exists and each --option is one it declares. */
function expectValidInvocation(args: string[]): void {
  const [command, ...rest] = args;
  expect(command, 'no subcommand').toBeTruthy();
  const help = commandHelp(command!);
  for (const a of rest.filter((x) => x.startsWith('--'))) expect(help, `${command} has no ${a}`).toContain(a);
}

function unitEntries(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

describe('deploy/systemd/foresight.service', () => {
  const text = read('deploy/systemd/foresight.service');
  const unit = unitEntries(text);
  const one = (k: string) => unit.get(k)?.at(-1);

  it('starts the package binary with the run command and an existing config option', () => {
    const [exe, ...args] = one('ExecStart')!.split(/\s+/);
    expect(path.basename(exe!)).toBe(binName);
    expect(path.isAbsolute(exe!)).toBe(true);
    expect(args.slice(0, 3)).toEqual(['run', '--config', '/etc/foresight/config.json']);
    expectValidInvocation(args);
  });

  it('validates the config with check-config before starting', () => {
    const [exe, ...args] = one('ExecStartPre')!.split(/\s+/);
    expect(path.basename(exe!)).toBe(binName);
    expect(args).toEqual(['check-config', '/etc/foresight/config.json']);
    expectValidInvocation(args);
  });

  it('keeps secrets in an environment file, restarts on failure, and is hardened', () => {
    expect(one('EnvironmentFile')).toMatch(/\/etc\/foresight\//);
    expect(one('Restart')).toBe('on-failure');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    // ProtectSystem=strict leaves the filesystem read-only: the store needs a writable state directory.
    expect(one('StateDirectory')).toBe('foresight');
    expect(one('WorkingDirectory')).toBe('/var/lib/foresight');
    expect(one('DynamicUser') ?? one('User')).toBeTruthy();
    expect(one('CapabilityBoundingSet')).toBe('');
    expect(unit.has('MemoryDenyWriteExecute')).toBe(false); // would kill V8's JIT
  });

  it('passes systemd-analyze verify apart from the binary not being installed here', () => {
    const r = spawnSync('systemd-analyze', ['verify', path.join(ROOT, 'deploy/systemd/foresight.service')], {
      encoding: 'utf8',
    });
    // Machines without systemd (CI containers) have no verifier; the checks above still ran.
    if (r.error) return;
    const problems = `${r.stdout}${r.stderr}`
      .split('\n')
      .filter((l) => l.trim() !== '' && !/is not executable: No such file or directory/.test(l));
    expect(problems).toEqual([]);
  });
});

describe('deploy/Containerfile', () => {
  const text = read('deploy/Containerfile').replace(/\\\n/g, ' ');
  const instructions = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const sp = l.indexOf(' ');
      return { op: l.slice(0, sp).toUpperCase(), arg: l.slice(sp + 1).trim() };
    });
  const all = (op: string) => instructions.filter((i) => i.op === op).map((i) => i.arg);
  const last = (op: string) => all(op).at(-1);
  const froms = all('FROM');
  const runtimeStart = instructions.findLastIndex((i) => i.op === 'FROM');
  const runtime = instructions.slice(runtimeStart);

  it('builds in stages on node:20-slim and installs production dependencies with npm ci --omit=dev', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f.split(/\s+/)[0]).toBe('node:20-slim');
    expect(all('RUN').some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(runtime.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.arg))).toBe(false);
  });

  it('runs the package bin with an existing command', () => {
    const entry = JSON.parse(last('ENTRYPOINT')!) as string[];
    const cmd = JSON.parse(last('CMD')!) as string[];
    const workdir = runtime.filter((i) => i.op === 'WORKDIR').at(-1)!.arg;
    expect(entry[0]).toBe('node');
    expect(path.posix.relative(workdir, path.posix.resolve(workdir, entry[1]!))).toBe(path.posix.normalize(binPath));
    expectValidInvocation(cmd);
  });

  it('ships every runtime folder of the package', () => {
    const copied = runtime.filter((i) => i.op === 'COPY').map((i) => i.arg.split(/\s+/).at(-1)!.replace(/^\.\//, ''));
    for (const f of pkg.files.filter((x) => x !== 'deploy')) expect(copied, `COPY of ${f}`).toContain(f);
  });

  it('runs as a non-root user, exposes the API port and checks /healthz', () => {
    const user = runtime.filter((i) => i.op === 'USER').at(-1)?.arg;
    expect(user).toBeTruthy();
    expect(['root', '0']).not.toContain(user);
    expect(last('EXPOSE')).toBe('8080');
    expect(last('HEALTHCHECK')).toMatch(/http:\/\/127\.0\.0\.1:8080\/healthz/);
  });
});
