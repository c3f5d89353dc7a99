/** Production store: PostgreSQL through a pg Pool. Tables are created if missing, in a configurable schema. */
import pg from 'pg';
import { ForesightError } from '../../errors.js';
import type { AuditRecord, NodeRecord, StateCheckpoint } from '../../messages.js';
import type { AuditQuery, Store, StoredCheckpoint, ThresholdRecord } from '../ports.js';
import {
  type AuditRow,
  auditLimit,
  auditWhere,
  type CheckpointRow,
  checkThreshold,
  type NodeRow,
  rowToAudit,
  rowToCheckpoint,
  rowToNode,
  rowToThreshold,
  serializeDetails,
  type ThresholdRow,
} from './schema.js';

export interface PostgresStoreOptions {
  /** e.g. `postgres://postgres@127.0.0.1:5432/foresight`. */
  connectionString: string;
  /** Schema holding the tables; created if missing. Default `foresight`. */
  schema?: string;
  /** Pool size. Default 4. */
  maxConnections?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export class PostgresStore implements Store {
  readonly name = 'postgres';
  private pool: pg.Pool | null = null;
  private readonly schema: string;

  constructor(private readonly options: PostgresStoreOptions) {
    const schema = options.schema ?? 'foresight';
    // The schema name is spliced into SQL (identifiers cannot be bound), so only plain lowercase names are accepted.
    if (!SCHEMA_NAME.test(schema)) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `invalid PostgreSQL schema name ${JSON.stringify(schema)}`);
    }
    this.schema = schema;
  }

  private t(table: 'nodes' | 'audit' | 'thresholds' | 'checkpoints'): string {
    return `"${this.schema}".${table}`;
  }

  private async q<R extends pg.QueryResultRow>(what: string, sql: string, values: unknown[] = []): Promise<R[]> {
    if (!this.pool)
      throw new ForesightError('FORESIGHT_ERR_STORE', 'PostgreSQL store used before init() or after close()');
    try {
      return (await this.pool.query<R>(sql, values)).rows;
    } catch (err) {
      throw new ForesightError('FORESIGHT_ERR_STORE', `PostgreSQL ${what} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async init(): Promise<void> {
    if (this.pool) return;
    const pool = new pg.Pool({
      connectionString: this.options.connectionString,
      max: this.options.maxConnections ?? 4,
    });
    // An idle client's socket error would otherwise crash the process; the next query reports it instead.
    pool.on('error', () => {});
    this.pool = pool;
    try {
      await this.q('init', `CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await this.q(
        'init',
        `CREATE TABLE IF NOT EXISTS ${this.t('nodes')} (
          node_id TEXT PRIMARY KEY,
          set_id INTEGER NOT NULL,
          uri TEXT NOT NULL,
          state TEXT NOT NULL,
          since BIGINT NOT NULL,
          pinned BOOLEAN NOT NULL DEFAULT FALSE,
          manual_override TEXT,
          last_drain_at BIGINT,
          decision_id TEXT,
          reason TEXT NOT NULL DEFAULT ''
        )`,
      );
      await this.q(
        'init',
        `CREATE TABLE IF NOT EXISTS ${this.t('audit')} (
          seq BIGSERIAL PRIMARY KEY,
          ts BIGINT NOT NULL,
          node_id TEXT NOT NULL,
          kind TEXT NOT NULL,
          actor TEXT NOT NULL,
          reason TEXT NOT NULL,
          decision_id TEXT,
          dry_run BOOLEAN NOT NULL DEFAULT FALSE,
          details JSONB NOT NULL DEFAULT '{}'::jsonb
        )`,
      );
      await this.q('init', `CREATE INDEX IF NOT EXISTS audit_node_seq ON ${this.t('audit')} (node_id, seq)`);
      await this.q('init', `CREATE INDEX IF NOT EXISTS audit_kind_seq ON ${this.t('audit')} (kind, seq)`);
      await this.q('init', `CREATE INDEX IF NOT EXISTS audit_ts ON ${this.t('audit')} (ts)`);
      await this.q('init', `CREATE INDEX IF NOT EXISTS audit_decision ON ${this.t('audit')} (decision_id)`);
      await this.q(
        'init',
        `CREATE TABLE IF NOT EXISTS ${this.t('thresholds')} (
          scorer TEXT PRIMARY KEY,
          threshold DOUBLE PRECISION NOT NULL,
          false_alarms INTEGER NOT NULL DEFAULT 0,
          true_alarms INTEGER NOT NULL DEFAULT 0,
          updated_at BIGINT NOT NULL
        )`,
      );
      await this.q(
        'init',
        `CREATE TABLE IF NOT EXISTS ${this.t('checkpoints')} (
          key TEXT PRIMARY KEY,
          kind TEXT NOT NULL,
          node_id TEXT NOT NULL,
          window_end DOUBLE PRECISION NOT NULL,
          ts BIGINT NOT NULL,
          body JSONB NOT NULL
        )`,
      );
    } catch (err) {
      this.pool = null;
      await pool.end().catch(() => {});
      throw err;
    }
  }

  async getNode(nodeId: string): Promise<NodeRecord | null> {
    const rows = await this.q<NodeRow>('getNode', `SELECT * FROM ${this.t('nodes')} WHERE node_id = $1`, [nodeId]);
    return rows[0] ? rowToNode(rows[0]) : null;
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = await this.q<NodeRow>('listNodes', `SELECT * FROM ${this.t('nodes')} ORDER BY node_id`);
    return rows.map(rowToNode);
  }

  async putNode(r: NodeRecord): Promise<void> {
    await this.q(
      'putNode',
      `INSERT INTO ${this.t('nodes')} (node_id, set_id, uri, state, since, pinned, manual_override, last_drain_at, decision_id, reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (node_id) DO UPDATE SET set_id = EXCLUDED.set_id, uri = EXCLUDED.uri, state = EXCLUDED.state,
         since = EXCLUDED.since, pinned = EXCLUDED.pinned, manual_override = EXCLUDED.manual_override,
         last_drain_at = EXCLUDED.last_drain_at, decision_id = EXCLUDED.decision_id, reason = EXCLUDED.reason`,
      [r.nodeId, r.setId, r.uri, r.state, r.since, r.pinned, r.manualOverride, r.lastDrainAt, r.decisionId, r.reason],
    );
  }

  async appendAudit(r: Omit<AuditRecord, 'seq'>): Promise<AuditRecord> {
    const details = serializeDetails(r.details);
    const rows = await this.q<{ seq: string }>(
      'appendAudit',
      `INSERT INTO ${this.t('audit')} (ts, node_id, kind, actor, reason, decision_id, dry_run, details)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING seq`,
      [r.ts, r.nodeId, r.kind, r.actor, r.reason, r.decisionId, r.dryRun, details],
    );
    return { ...r, details: JSON.parse(details) as Record<string, unknown>, seq: Number(rows[0]?.seq) };
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const limit = auditLimit(query);
    const where = auditWhere(query, (i) => `$${i}`);
    const rows = await this.q<AuditRow>(
      'queryAudit',
      `SELECT * FROM ${this.t('audit')} ${where.sql} ORDER BY seq DESC LIMIT $${where.values.length + 1}`,
      [...where.values, limit],
    );
    return rows.map(rowToAudit);
  }

  async listThresholds(): Promise<ThresholdRecord[]> {
    const rows = await this.q<ThresholdRow>('listThresholds', `SELECT * FROM ${this.t('thresholds')} ORDER BY scorer`);
    return rows.map(rowToThreshold);
  }

  async putThreshold(r: ThresholdRecord): Promise<void> {
    checkThreshold(r);
    await this.q(
      'putThreshold',
      `INSERT INTO ${this.t('thresholds')} (scorer, threshold, false_alarms, true_alarms, updated_at)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (scorer) DO UPDATE SET threshold = EXCLUDED.threshold, false_alarms = EXCLUDED.false_alarms,
         true_alarms = EXCLUDED.true_alarms, updated_at = EXCLUDED.updated_at`,
      [r.scorer, r.threshold, r.falseAlarms, r.trueAlarms, r.updatedAt],
    );
  }

  async putCheckpoints(records: StoredCheckpoint[]): Promise<void> {
    if (records.length === 0) return;
    await this.q(
      'putCheckpoints',
      `INSERT INTO ${this.t('checkpoints')} (key, kind, node_id, window_end, ts, body)
       SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::bigint[], $6::jsonb[])
       ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, node_id = EXCLUDED.node_id,
         window_end = EXCLUDED.window_end, ts = EXCLUDED.ts, body = EXCLUDED.body`,
      [
        records.map((r) => r.key),
        records.map((r) => r.checkpoint.kind),
        records.map((r) => r.checkpoint.nodeId),
        records.map((r) => r.checkpoint.windowEnd),
        records.map((r) => r.checkpoint.ts),
        records.map((r) => JSON.stringify(r.checkpoint.state)),
      ],
    );
  }

  async listCheckpoints(kind: StateCheckpoint['kind']): Promise<StoredCheckpoint[]> {
    const rows = await this.q<CheckpointRow>(
      'listCheckpoints',
      `SELECT * FROM ${this.t('checkpoints')} WHERE kind = $1 ORDER BY key`,
      [kind],
    );
    return rows.map(rowToCheckpoint);
  }

  /** Drops the schema and everything in it; for tests that use a throwaway schema. */
  async dropSchema(): Promise<void> {
    await this.q('dropSchema', `DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}
