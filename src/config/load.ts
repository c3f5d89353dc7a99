import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Value } from '@sinclair/typebox/value';
import { proxyEndpoints } from '../actions/dispatcher/endpoints.js';
import { feedbackIssues, resolveFeedback } from '../core/thresholds.js';
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

/** The config's top-level keys: only variables under one of them are config; the rest belong to other tools. */
const TOP_LEVEL_KEYS = new Set(Object.keys(ConfigSchema.properties));

/**
 * Overlays `FORESIGHT_A__B_C=value` onto `{ a: { bC: value } }`. Every option is reachable from the environment.
 * A variable whose first segment names no top-level key (`FORESIGHT_KEEP_SIPP_LOGS`, the service scripts'
 * `FORESIGHT_KAMAILIO_*`) is not config and is left alone; a typo below a known key is still an error.
 */
export function overlayEnv(base: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(base);
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || RESERVED_ENV.has(name) || raw === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split('__').map(envSegmentToKey);
    if (!TOP_LEVEL_KEYS.has(path[0]!)) continue;
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
  // The verdict bound sits between the two thresholds: checked once they are in order (else that is the issue).
  const feedback = resolveFeedback(config.actions.thresholdFeedback, g.riskThreshold, g.recoverThreshold);
  const feedbackProblems = issues.length === 0 ? feedbackIssues(feedback, g.riskThreshold, g.recoverThreshold) : [];
  for (const message of feedbackProblems) issues.push({ path: '/actions/thresholdFeedback', message });
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
  issues.push(...dispatcherEndpointIssues(config.actions.dispatcher));
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
  const probe = config.collectors.probe;
  if (isIP(probe.bindHost) === 0 || probe.bindHost === '0.0.0.0' || probe.bindHost === '::') {
    issues.push({
      path: '/collectors/probe/bindHost',
      message: `must be a specific IP address (it is written into Via and Contact for the replies), not ${probe.bindHost}`,
    });
  }
  if (config.store.kind === 'postgres' && !config.store.url) {
    issues.push({ path: '/store/url', message: 'required for kind postgres' });
  }
  issues.push(...limitOverrideIssues(config));
  return issues;
}

/**
 * Per-set and per-node limits must name a set or node the loop runs: a typo would otherwise leave that node on the
 * cluster-wide limits without a word. Sidecar: the configured nodes; embedded: the simulator's ast1..astN in set 1.
 */
function limitOverrideIssues(config: ForesightConfig): ConfigIssue[] {
  const nodes =
    config.mode === 'sidecar'
      ? config.nodes.map((n) => ({ id: n.id, setId: n.setId }))
      : Array.from({ length: config.simulator.nodes }, (_, i) => ({ id: `ast${i + 1}`, setId: 1 }));
  const ids = new Set(nodes.map((n) => n.id));
  const sets = new Set(nodes.map((n) => String(n.setId)));
  const known = (what: Set<string>) => [...what].sort().join(', ') || 'none';
  const issues: ConfigIssue[] = [];
  for (const id of Object.keys(config.model.limits.nodes)) {
    if (!ids.has(id)) {
      issues.push({
        path: `/model/limits/nodes/${id}`,
        message: `no node ${id} in this ${config.mode} configuration (nodes: ${known(ids)})`,
      });
    }
  }
  for (const id of Object.keys(config.model.limits.sets)) {
    if (!sets.has(id)) {
      issues.push({
        path: `/model/limits/sets/${id}`,
        message: `no node is in dispatcher set ${id} (sets: ${known(sets)})`,
      });
    }
  }
  return issues;
}

function dispatcherEndpointIssues(d: ForesightConfig['actions']['dispatcher']): ConfigIssue[] {
  if (d.rpcUrl !== undefined && d.rpcUrls !== undefined) {
    return [
      {
        path: '/actions/dispatcher/rpcUrls',
        message: 'give rpcUrl (one proxy) or rpcUrls (several proxies), not both',
      },
    ];
  }
  const issues: ConfigIssue[] = [];
  const names = new Set<string>();
  const urls = new Set<string>();
  proxyEndpoints(d).forEach(({ name, url }, i) => {
    if (names.has(name))
      issues.push({ path: `/actions/dispatcher/rpcUrls/${i}`, message: `duplicate proxy name ${name}` });
    if (urls.has(url)) issues.push({ path: `/actions/dispatcher/rpcUrls/${i}`, message: `duplicate proxy URL ${url}` });
    names.add(name);
    urls.add(url);
  });
  return issues;
}

/** Validates a raw object (file contents with env already overlaid), applies defaults, and freezes the result. */
export function parseConfig(raw: unknown): Readonly<ForesightConfig> {
  const withDefaults = Value.Default(ConfigSchema, structuredClone(raw ?? {}));
  const schemaIssues = [...Value.Errors(ConfigSchema, withDefaults)].map((e) => ({ path: e.path, message: e.message }));
  if (schemaIssues.length > 0) throw new ConfigError(schemaIssues);
  const config = withDefaults as ForesightConfig;
  const issues = [...crossFieldIssues(config), ...explicitChoiceIssues(raw)];
  if (issues.length > 0) throw new ConfigError(issues);
  return deepFreeze(config);
}

/**
 * Choices a sidecar must make itself, because a default would be unsafe: without `actions.dispatcher.kind` the
 * schema default `simulated` would make every drain change a stand-in list while Kamailio keeps routing calls.
 */
function explicitChoiceIssues(raw: unknown): ConfigIssue[] {
  const r = (raw ?? {}) as { mode?: unknown; actions?: { dispatcher?: { kind?: unknown } } };
  if (r.mode !== 'sidecar' || r.actions?.dispatcher?.kind !== undefined) return [];
  return [
    {
      path: '/actions/dispatcher/kind',
      message:
        'sidecar mode needs an explicit dispatcher kind: kamailio drains the real proxy, simulated only a stand-in list',
    },
  ];
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
