import pg from 'pg';
import { ForesightError } from '../../errors.js';
import type { ConnectionParams, DbDriver, PoolStats } from './probe.js';
import { withTimeout } from './probe.js';

/** PostgreSQL through `pg`. The server-side statement_timeout matches the probe timeout, so a slow query stops there too. */
export class PostgresDriver implements DbDriver {
  private readonly pool: pg.Pool;
  private waiting = 0;

  constructor(
    private readonly params: ConnectionParams,
    private readonly poolSize: number,
    timeoutMs: number,
  ) {
    this.pool = new pg.Pool({
      ...this.clientConfig(timeoutMs),
      max: poolSize,
      idleTimeoutMillis: 30_000,
      statement_timeout: timeoutMs,
    });
    // An idle client whose server went away emits 'error' on the pool; without a listener that would crash the process.
    this.pool.on('error', () => {});
  }

  private clientConfig(timeoutMs: number): pg.ClientConfig {
    return {
      host: this.params.host,
      port: this.params.port,
      user: this.params.user,
      database: this.params.database,
      ...(this.params.password !== undefined && { password: this.params.password }),
      connectionTimeoutMillis: timeoutMs,
      application_name: 'foresight-probe',
    };
  }

  async connectOnce(timeoutMs: number): Promise<void> {
    const client = new pg.Client(this.clientConfig(timeoutMs));
    client.on('error', () => {});
    try {
      await withTimeout(client.connect(), timeoutMs, () => void client.end().catch(() => {}));
    } finally {
      await client.end().catch(() => {});
    }
  }

  async query(sql: string, timeoutMs: number): Promise<void> {
    const started = Date.now();
    this.waiting++;
    let client: pg.PoolClient;
    try {
      client = await withTimeout(this.pool.connect(), timeoutMs, () => {});
    } finally {
      this.waiting--;
    }
    let broken = false;
    try {
      const left = Math.max(1, timeoutMs - (Date.now() - started));
      await withTimeout(client.query(sql), left, () => {
        broken = true;
      });
    } catch (err) {
      broken = true;
      // 57014 = query_canceled: the server's statement_timeout fired first; it is the same timeout.
      if ((err as { code?: unknown }).code === '57014') {
        throw new ForesightError('FORESIGHT_ERR_TIMEOUT', `no answer within ${timeoutMs} ms`, { cause: err });
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  poolStats(): PoolStats {
    return { size: this.poolSize, inUse: this.pool.totalCount - this.pool.idleCount, waiting: this.waiting };
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
