/**
 * Database probes: how the realtime database each Asterisk node depends on is doing, seen from the outside. A probe
 * cycle measures a fresh connection, `SELECT 1` and a representative query through a small pool, each bounded by a
 * timeout. A step that fails or times out is a failure, never an exception: a stopped server is data, not a crash.
 */
import { ForesightError } from '../../errors.js';

export type DbKind = 'postgres' | 'mysql';

export interface DbProbeTarget {
  nodeId: string;
  kind: DbKind;
  /** Connection URL without the password, e.g. `postgres://asterisk@127.0.0.1:5432/asterisk`. */
  url: string;
  /** Resolved secret (from env or file by the config loader). Never logged. */
  password?: string;
  /** Representative query, e.g. a realtime `sippeers` lookup. Default `SELECT 1`. */
  query?: string;
  /** Per step. Default 2000 ms. */
  timeoutMs?: number;
  /** Probe pool size. Default 2. */
  poolSize?: number;
}

export interface ConnectionParams {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string | undefined;
}

export interface StepResult {
  ok: boolean;
  /** Duration until success, failure or timeout. ms */
  ms: number;
  /** Error text (no credentials) when not ok. */
  error?: string;
  timedOut?: boolean;
}

export interface PoolStats {
  /** Largest number of pooled connections. */
  size: number;
  /** Pooled connections running a probe query now. */
  inUse: number;
  /** Probe queries waiting for a pool connection: above 0 the pool is saturated. */
  waiting: number;
}

export interface DbProbeResult {
  nodeId: string;
  ts: number;
  connect: StepResult;
  select1: StepResult;
  query: StepResult;
  pool: PoolStats;
  /** False when no step succeeded. */
  up: boolean;
}

/** The few operations a probe needs from a driver. */
export interface DbDriver {
  /** Opens a fresh connection and closes it again. */
  connectOnce(timeoutMs: number): Promise<void>;
  /** Runs one statement on a pooled connection; on timeout the connection is destroyed, not reused. */
  query(sql: string, timeoutMs: number): Promise<void>;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

const DEFAULT_PORTS: Record<DbKind, number> = { postgres: 5432, mysql: 3306 };

/** Splits a URL into connection fields. A password in the URL is refused: it belongs in a secret, not in config. */
export function parseDbUrl(kind: DbKind, url: string, password?: string): ConnectionParams {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ForesightError('FORESIGHT_ERR_CONFIG', 'database url is not a URL', { cause });
  }
  const schemes = kind === 'postgres' ? ['postgres:', 'postgresql:'] : ['mysql:', 'mariadb:'];
  if (!schemes.includes(u.protocol)) {
    throw new ForesightError(
      'FORESIGHT_ERR_CONFIG',
      `database url for ${kind} must start with ${schemes.join(' or ')}`,
    );
  }
  if (u.password) {
    throw new ForesightError(
      'FORESIGHT_ERR_CONFIG',
      'database url must not contain a password; use the password secret',
    );
  }
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : DEFAULT_PORTS[kind],
    user: decodeURIComponent(u.username) || (kind === 'postgres' ? 'postgres' : 'root'),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')),
    password,
  };
}

/** Where a target points, for logs: no user, no password. */
export function describeTarget(t: DbProbeTarget): string {
  try {
    const p = parseDbUrl(t.kind, t.url);
    return `${t.kind}://${p.host}:${p.port}/${p.database}`;
  } catch {
    return `${t.kind}://(invalid url)`;
  }
}

/**
 * Races `work` against a timer. On timeout `onTimeout` runs (to destroy the connection) and the late outcome of
 * `work` is swallowed, so it cannot surface as an unhandled rejection.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      try {
        onTimeout();
      } finally {
        reject(new ForesightError('FORESIGHT_ERR_TIMEOUT', `no answer within ${ms} ms`));
      }
    }, ms);
    work.then(
      (v) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Strips anything that looks like a credential from a driver's error text. */
export function safeError(err: unknown, password: string | undefined): string {
  let text = err instanceof Error ? err.message || err.name : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && !text.includes(code)) text = `${code}: ${text}`;
  if (password) text = text.split(password).join('[redacted]');
  return text.replace(/\/\/[^@/\s]*:[^@/\s]*@/g, '//[redacted]@').slice(0, 300);
}
