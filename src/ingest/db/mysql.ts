import mysql from 'mysql2/promise';
import type { ConnectionParams, DbDriver, PoolStats } from './probe.js';
import { withTimeout } from './probe.js';

/** MySQL / MariaDB through `mysql2`. A connection whose query timed out is destroyed, so the pool never reuses it. */
export class MysqlDriver implements DbDriver {
  private readonly pool: mysql.Pool;
  private waiting = 0;
  private active = 0;

  constructor(
    private readonly params: ConnectionParams,
    private readonly poolSize: number,
    timeoutMs: number,
  ) {
    this.pool = mysql.createPool({ ...this.options(timeoutMs), connectionLimit: poolSize, waitForConnections: true });
    this.pool.pool.on('error', () => {});
  }

  private options(timeoutMs: number): mysql.ConnectionOptions {
    return {
      host: this.params.host,
      port: this.params.port,
      user: this.params.user,
      database: this.params.database,
      ...(this.params.password !== undefined && { password: this.params.password }),
      connectTimeout: timeoutMs,
    };
  }

  async connectOnce(timeoutMs: number): Promise<void> {
    let conn: mysql.Connection | null = null;
    const opening = mysql.createConnection(this.options(timeoutMs)).then((c) => {
      conn = c;
      return c;
    });
    try {
      await withTimeout(opening, timeoutMs, () => {
        opening.then((c) => c.destroy()).catch(() => {});
      });
    } finally {
      const c = conn as mysql.Connection | null;
      if (c) await c.end().catch(() => c.destroy());
    }
  }

  async query(sql: string, timeoutMs: number): Promise<void> {
    const started = Date.now();
    this.waiting++;
    let conn: mysql.PoolConnection;
    const acquiring = this.pool.getConnection();
    try {
      conn = await withTimeout(acquiring, timeoutMs, () => {
        // Whoever gets the connection later gives it straight back.
        acquiring.then((c) => c.release()).catch(() => {});
      });
    } finally {
      this.waiting--;
    }
    this.active++;
    let broken = false;
    try {
      const left = Math.max(1, timeoutMs - (Date.now() - started));
      await withTimeout(conn.query(sql), left, () => {
        broken = true;
      });
    } catch (err) {
      broken = true;
      throw err;
    } finally {
      this.active--;
      if (broken) conn.destroy();
      else conn.release();
    }
  }

  poolStats(): PoolStats {
    return { size: this.poolSize, inUse: this.active, waiting: this.waiting };
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
