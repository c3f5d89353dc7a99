import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadConfig,
  overlayEnv,
  parseConfig,
  redactConfig,
  resolveSecret,
} from '../../src/config/load.js';

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('fills every default from an empty object and freezes the result', () => {
    const config = parseConfig({});
    expect(config.mode).toBe('embedded');
    expect(config.features.windowMs).toBe(10_000);
    expect(config.actions.guardrails.minActive).toBe(2);
    expect(config.bus.kafka.brokers).toEqual(['127.0.0.1:19092']);
    expect(Object.isFrozen(config.actions.guardrails)).toBe(true);
    expect(() => {
      (config.actions.guardrails as { minActive: number }).minActive = 0;
    }).toThrow();
  });

  it('reports every bad field by its path', () => {
    const issues = issuesOf(() =>
      parseConfig({ api: { port: 'eighty' }, actions: { guardrails: { riskThreshold: 3 } }, bogus: 1 }),
    );
    const paths = issues.map((i) => i.path);
    expect(paths).toContain('/api/port');
    expect(paths).toContain('/actions/guardrails/riskThreshold');
    expect(issues.some((i) => i.path === '/bogus' || i.message.includes('bogus') || i.path === '')).toBe(true);
  });

  it('rejects combinations that make no sense', () => {
    const issues = issuesOf(() =>
      parseConfig({
        actions: { guardrails: { riskThreshold: 0.5, recoverThreshold: 0.6 } },
        api: { host: '0.0.0.0', openLocalMode: true },
      }),
    );
    expect(issues.map((i) => i.path).sort()).toEqual(['/actions/guardrails/recoverThreshold', '/api/openLocalMode']);
    expect(issuesOf(() => parseConfig({ mode: 'sidecar' }))[0]?.path).toBe('/nodes');
    const dup = { id: 'a', uri: 'sip:127.0.0.1:5071' };
    expect(issuesOf(() => parseConfig({ mode: 'sidecar', nodes: [dup, dup] }))[0]?.message).toMatch(/duplicate/);
  });

  it('overlays environment variables onto nested camelCase keys', () => {
    const raw = overlayEnv(
      { api: { port: 1 } },
      {
        FORESIGHT_API__PORT: '9090',
        FORESIGHT_ACTIONS__GUARDRAILS__MIN_ACTIVE: '3',
        FORESIGHT_BUS__KAFKA__BROKERS: '["b1:9092","b2:9092"]',
        FORESIGHT_LOG_LEVEL: 'debug',
        OTHER: 'x',
      },
    );
    const config = parseConfig(raw);
    expect(config.api.port).toBe(9090);
    expect(config.actions.guardrails.minActive).toBe(3);
    expect(config.bus.kafka.brokers).toEqual(['b1:9092', 'b2:9092']);
  });

  it('loads a file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-config-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ simulator: { nodes: 6 } }));
    expect(loadConfig(good, {}).simulator.nodes).toBe(6);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(issuesOf(() => loadConfig(bad, {}))[0]?.message).toContain(bad);
    expect(issuesOf(() => loadConfig(join(dir, 'missing.json'), {}))[0]?.message).toMatch(/cannot read/);
  });

  it('every shipped config file validates', () => {
    const files = readdirSync('config').filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(() => loadConfig(join('config', f), {}), f).not.toThrow();
  });

  it('resolves secrets from env and files, and redacts inline ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-secret-'));
    writeFileSync(join(dir, 's'), 'hunter2\n');
    expect(resolveSecret({ file: join(dir, 's') })).toBe('hunter2');
    expect(resolveSecret({ env: 'X' }, { X: 'abc' })).toBe('abc');
    expect(() => resolveSecret({ env: 'MISSING' }, {})).toThrow(/MISSING/);
    const config = parseConfig({ api: { tokens: [{ name: 'ops', role: 'operator', token: { value: 'sekret' } }] } });
    expect(JSON.stringify(redactConfig(config))).not.toContain('sekret');
  });
});
