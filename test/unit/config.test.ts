import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { proxyEndpoints } from '../../src/actions/dispatcher/endpoints.js';
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
    expect(issuesOf(() => parseConfig({ mode: 'sidecar' })).map((i) => i.path)).toEqual([
      '/nodes',
      '/actions/dispatcher/kind',
    ]);
    // A sidecar that leaves the dispatcher kind out would drain a stand-in list while Kamailio keeps routing.
    const node = { id: 'a', uri: 'sip:127.0.0.1:5071' };
    expect(issuesOf(() => parseConfig({ mode: 'sidecar', nodes: [node] }))[0]?.message).toMatch(
      /explicit dispatcher kind/,
    );
    expect(
      parseConfig({ mode: 'sidecar', nodes: [node], actions: { dispatcher: { kind: 'simulated' } } }).actions.dispatcher
        .kind,
    ).toBe('simulated');
    const dup = { id: 'a', uri: 'sip:127.0.0.1:5071' };
    expect(issuesOf(() => parseConfig({ mode: 'sidecar', nodes: [dup, dup] }))[0]?.message).toMatch(/duplicate/);
  });

  it('takes one Kamailio endpoint (rpcUrl) or several (rpcUrls), not both', () => {
    const a = 'http://127.0.0.1:5080/RPC';
    const b = 'http://127.0.0.1:5180/RPC';
    const dispatcher = (d: object) => ({
      mode: 'sidecar',
      nodes: [{ id: 'a', uri: 'sip:127.0.0.1:5071' }],
      actions: { dispatcher: { kind: 'kamailio', ...d } },
    });
    expect(proxyEndpoints(parseConfig({}).actions.dispatcher)).toEqual([{ name: 'proxy1', url: a }]);
    expect(
      proxyEndpoints(parseConfig(dispatcher({ rpcUrls: [a, { name: 'kam-b', url: b }] })).actions.dispatcher),
    ).toEqual([
      { name: 'proxy1', url: a },
      { name: 'kam-b', url: b },
    ]);
    expect(issuesOf(() => parseConfig(dispatcher({ rpcUrl: a, rpcUrls: [b] })))).toEqual([
      { path: '/actions/dispatcher/rpcUrls', message: expect.stringMatching(/not both/) },
    ]);
    expect(issuesOf(() => parseConfig(dispatcher({ rpcUrls: [a, a] })))[0]?.message).toMatch(/duplicate proxy URL/);
    expect(issuesOf(() => parseConfig(dispatcher({ rpcUrls: [] }))).length).toBeGreaterThan(0);
    // From the environment, as JSON.
    const env = overlayEnv({}, { FORESIGHT_ACTIONS__DISPATCHER__RPC_URLS: JSON.stringify([a, b]) });
    expect(parseConfig(env).actions.dispatcher.rpcUrls).toEqual([a, b]);
  });

  it('overlays environment variables onto nested camelCase keys', () => {
    const raw = overlayEnv(
      { api: { port: 1 } },
      {
        FORESIGHT_API__PORT: '9090',
        FORESIGHT_ACTIONS__GUARDRAILS__MIN_ACTIVE: '3',
        FORESIGHT_BUS__KAFKA__BROKERS: '["b1:9092","b2:9092"]',
        FORESIGHT_LOG_LEVEL: 'debug',
        // Other tools' variables (test switches, the service scripts) are not config.
        FORESIGHT_KEEP_SIPP_LOGS: '1',
        FORESIGHT_KAMAILIO_SIP_PORT: '5160',
        OTHER: 'x',
      },
    );
    expect(Object.keys(raw).sort()).toEqual(['actions', 'api', 'bus']);
    const config = parseConfig(raw);
    expect(config.api.port).toBe(9090);
    // A typo below a known key is still refused.
    expect(() => parseConfig(overlayEnv({}, { FORESIGHT_API__PROT: '1' }))).toThrow(/api/);
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
