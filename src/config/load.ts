import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { ForesightError } from '../errors.js';
import { ConfigSchema, type ForesightConfig, type SecretRefT } from './schema.js';

export const ENV_PREFIX = 'FORESIGHT_';
/** Environment variables that are not config paths. */
const RESERVED_ENV = new Set(['FORESIGHT_CONFIG', 'FORESIGHT_LOG_LEVEL']);

export interface ConfigIssue {
  path: string;
  message: string;
}

export class ConfigError extends ForesightError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(
      'FORESIGHT_ERR_CONFIG',
      `invalid configuration:\n${issues.map((i) => `  ${i.path || '/'}: ${i.message}`).join('\n')}`,
      {
        details: { issues },
      },
    );
    this.issues = issues;
  }
}

/** `MIN_ACTIVE` → `minActive`. */
function envSegmentToKey(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Parses a value as JSON where it is JSON (numbers, booleans, arrays), else keeps the string. */
function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Overlays `FORESIGHT_A__B_C=value` onto `{ a: { bC: value } }`. Every option is reachable from the environment,
 * as in draino's DefaultEnvars.
 */
export function overlayEnv(base: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(base);
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || RESERVED_ENV.has(name) || raw === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split('__').map(envSegmentToKey);
    let cursor: Record<string, unknown> = out;
    for (const key of path.slice(0, -1)) {
      const next = cursor[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) cursor[key] = {};
      cursor = cursor[key] as Record<string, unknown>;
    }
    cursor[path[path.length - 1]!] = parseEnvValue(raw);
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Checks that span several fields, which a JSON schema cannot say. */
function crossFieldIssues(config: ForesightConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const g = config.actions.guardrails;
  if (g.recoverThreshold >= g.riskThreshold) {
    issues.push({
      path: '/actions/guardrails/recoverThreshold',
      message: `must be below riskThreshold (${g.riskThreshold}) so a node does not flap`,
    });
  }
  if (config.api.openLocalMode && !LOOPBACK.has(config.api.host)) {
    issues.push({
      path: '/api/openLocalMode',
      message: `open local mode is only allowed on a loopback host, not ${config.api.host}`,
    });
  }
  if (config.mode === 'sidecar' && config.nodes.length === 0) {
    issues.push({ path: '/nodes', message: 'sidecar mode needs at least one node' });
  }
  if (config.mode === 'embedded' && config.actions.dispatcher.kind === 'kamailio') {
    issues.push({
      path: '/actions/dispatcher/kind',
      message: 'the simulated cluster cannot be drained through a real Kamailio',
    });
  }
  const ids = new Set<string>();
  config.nodes.forEach((node, i) => {
    if (ids.has(node.id)) issues.push({ path: `/nodes/${i}/id`, message: `duplicate node id ${node.id}` });
    ids.add(node.id);
  });
  const r = config.actions.restarter;
  if (r.kind === 'command' && !r.command)
    issues.push({ path: '/actions/restarter/command', message: 'required for kind command' });
  if (r.kind === 'webhook' && !r.url)
    issues.push({ path: '/actions/restarter/url', message: 'required for kind webhook' });
  if (r.kind === 'ami') {
    config.nodes.forEach((node, i) => {
      if (!node.ami)
        issues.push({ path: `/nodes/${i}/ami`, message: 'the AMI restarter needs AMI credentials for every node' });
    });
  }
  if (config.store.kind === 'postgres' && !config.store.url) {
    issues.push({ path: '/store/url', message: 'required for kind postgres' });
  }
  return issues;
}

/** Validates a raw object (file contents with env already overlaid), applies defaults, and freezes the result. */
export function parseConfig(raw: unknown): Readonly<ForesightConfig> {
  const withDefaults = Value.Default(ConfigSchema, structuredClone(raw ?? {}));
  const schemaIssues = [...Value.Errors(ConfigSchema, withDefaults)].map((e) => ({ path: e.path, message: e.message }));
  if (schemaIssues.length > 0) throw new ConfigError(schemaIssues);
  const config = withDefaults as ForesightConfig;
  const issues = crossFieldIssues(config);
  if (issues.length > 0) throw new ConfigError(issues);
  return deepFreeze(config);
}

/** Loads `file` (JSON) if given, overlays the environment, validates. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Readonly<ForesightConfig> {
  let fromFile: Record<string, unknown> = {};
  const path = file ?? env.FORESIGHT_CONFIG;
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError([{ path: '', message: `cannot read config file ${path}: ${(err as Error).message}` }]);
    }
    try {
      fromFile = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError([
        { path: '', message: `config file ${path} is not valid JSON: ${(err as Error).message}` },
      ]);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
      throw new ConfigError([{ path: '', message: `config file ${path} must hold a JSON object` }]);
    }
  }
  return parseConfig(overlayEnv(fromFile, env));
}

/** Resolves a secret reference at the moment it is needed; the value is never stored in the config object. */
export function resolveSecret(ref: SecretRefT, env: NodeJS.ProcessEnv = process.env): string {
  if (ref.env !== undefined) {
    const v = env[ref.env];
    if (v === undefined)
      throw new ConfigError([{ path: '', message: `secret environment variable ${ref.env} is not set` }]);
    return v;
  }
  if (ref.file !== undefined) {
    try {
      return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError([{ path: '', message: `cannot read secret file ${ref.file}: ${(err as Error).message}` }]);
    }
  }
  if (ref.value !== undefined) return ref.value;
  throw new ConfigError([{ path: '', message: 'a secret reference needs env, file or value' }]);
}

/** The effective config for display: inline secret values replaced, references (env/file names) kept. */
export function redactConfig(config: Readonly<ForesightConfig>): unknown {
  return JSON.parse(
    JSON.stringify(config, (key, value: unknown) => (key === 'value' || key === 'password' ? '[redacted]' : value)),
  ) as unknown;
}
