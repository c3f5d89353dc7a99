/** Embedded store: one SQLite file in WAL mode (better-sqlite3 is synchronous; calls are short). */
import Database from 'better-sqlite3';
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

const DDL = `
CREATE TABLE IF NOT EXISTS nodes (
  node_id TEXT PRIMARY KEY,
  set_id INTEGER NOT NULL,
  uri TEXT NOT NULL,
  state TEXT NOT NULL,
  since INTEGER NOT NULL,
  pinned INTEGER NOT NULL DEFAULT 0,
  manual_override TEXT,
  last_drain_at INTEGER,
  decision_id TEXT,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  ts INTEGER NOT NULL,
  node_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  decision_id TEXT,
  dry_run INTEGER NOT NULL DEFAULT 0,
  details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_node_seq ON audit (node_id, seq);
CREATE INDEX IF NOT EXISTS audit_kind_seq ON audit (kind, seq);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE INDEX IF NOT EXISTS audit_decision ON audit (decision_id);
CREATE TABLE IF NOT EXISTS thresholds (
  scorer TEXT PRIMARY KEY,
  threshold REAL NOT NULL,
  false_alarms INTEGER NOT NULL DEFAULT 0,
  true_alarms INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
  key TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  node_id TEXT NOT NULL,
  window_end REAL NOT NULL,
  ts INTEGER NOT NULL,
  body TEXT NOT NULL
);
`;

export interface SqliteStoreOptions {
  /** File path, or `:memory:` for tests and benchmarks. */
  path: string;
}

export class SqliteStore implements Store {
  readonly name = 'sqlite';
  private db: Database.Database | null = null;
  /** Prepared once per SQL text: preparing dominated the cost of small writes. */
  private readonly statements = new Map<string, Database.Statement>();
  private readonly path: string;

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
  }

  async init(): Promise<void> {
    if (this.db) return;
    try {
      const db = new Database(this.path);
      db.pragma('journal_mode = WAL');
      // WAL with NORMAL sync survives a process crash; only an OS crash may lose the last transactions.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(DDL);
      this.db = db;
    } catch (err) {
      throw new ForesightError('FORESIGHT_ERR_STORE', `cannot open SQLite store ${this.path}`, { cause: err });
    }
  }

  private get conn(): Database.Database {
    if (!this.db) throw new ForesightError('FORESIGHT_ERR_STORE', 'SQLite store used before init() or after close()');
    return this.db;
  }

  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.conn.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private run<T>(what: string, fn: () => T): T {
    void this.conn; // throws a store error before init() or after close()
    try {
      return fn();
    } catch (err) {
      if (err instanceof ForesightError) throw err;
      throw new ForesightError('FORESIGHT_ERR_STORE', `SQLite ${what} failed`, { cause: err });
    }
  }

  async getNode(nodeId: string): Promise<NodeRecord | null> {
    const row = this.run('getNode', () => this.stmt('SELECT * FROM nodes WHERE node_id = ?').get(nodeId)) as
      | NodeRow
      | undefined;
    return row ? rowToNode(row) : null;
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = this.run('listNodes', () => this.stmt('SELECT * FROM nodes ORDER BY node_id').all()) as NodeRow[];
    return rows.map(rowToNode);
  }

  async putNode(r: NodeRecord): Promise<void> {
    this.run('putNode', () =>
      this.stmt(
        `INSERT INTO nodes (node_id, set_id, uri, state, since, pinned, manual_override, last_drain_at, decision_id, reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (node_id) DO UPDATE SET set_id = excluded.set_id, uri = excluded.uri, state = excluded.state,
             since = excluded.since, pinned = excluded.pinned, manual_override = excluded.manual_override,
             last_drain_at = excluded.last_drain_at, decision_id = excluded.decision_id, reason = excluded.reason`,
      ).run(
        r.nodeId,
        r.setId,
        r.uri,
        r.state,
        r.since,
        r.pinned ? 1 : 0,
        r.manualOverride,
        r.lastDrainAt,
        r.decisionId,
        r.reason,
      ),
    );
  }

  async appendAudit(r: Omit<AuditRecord, 'seq'>): Promise<AuditRecord> {
    const details = serializeDetails(r.details);
    const info = this.run('appendAudit', () =>
      this.stmt(
        'INSERT INTO audit (ts, node_id, kind, actor, reason, decision_id, dry_run, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(r.ts, r.nodeId, r.kind, r.actor, r.reason, r.decisionId, r.dryRun ? 1 : 0, details),
    );
    return { ...r, details: JSON.parse(details) as Record<string, unknown>, seq: Number(info.lastInsertRowid) };
  }

  async queryAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const limit = auditLimit(query);
    const where = auditWhere(query, () => '?');
    const rows = this.run('queryAudit', () =>
      this.stmt(`SELECT * FROM audit ${where.sql} ORDER BY seq DESC LIMIT ?`).all(...where.values, limit),
    ) as AuditRow[];
    return rows.map(rowToAudit);
  }

  async listThresholds(): Promise<ThresholdRecord[]> {
    const rows = this.run('listThresholds', () =>
      this.stmt('SELECT * FROM thresholds ORDER BY scorer').all(),
    ) as ThresholdRow[];
    return rows.map(rowToThreshold);
  }

  async putThreshold(r: ThresholdRecord): Promise<void> {
    checkThreshold(r);
    this.run('putThreshold', () =>
      this.stmt(
        `INSERT INTO thresholds (scorer, threshold, false_alarms, true_alarms, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (scorer) DO UPDATE SET threshold = excluded.threshold, false_alarms = excluded.false_alarms,
             true_alarms = excluded.true_alarms, updated_at = excluded.updated_at`,
      ).run(r.scorer, r.threshold, r.falseAlarms, r.trueAlarms, r.updatedAt),
    );
  }

  async putCheckpoints(records: StoredCheckpoint[]): Promise<void> {
    if (records.length === 0) return;
    const put = this.stmt(
      `INSERT INTO checkpoints (key, kind, node_id, window_end, ts, body) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, node_id = excluded.node_id,
           window_end = excluded.window_end, ts = excluded.ts, body = excluded.body`,
    );
    this.run('putCheckpoints', () =>
      this.db!.transaction(() => {
        for (const { key, checkpoint: c } of records) {
          put.run(key, c.kind, c.nodeId, c.windowEnd, c.ts, JSON.stringify(c.state));
        }
      })(),
    );
  }

  async listCheckpoints(kind: StateCheckpoint['kind']): Promise<StoredCheckpoint[]> {
    const rows = this.run('listCheckpoints', () =>
      this.stmt('SELECT * FROM checkpoints WHERE kind = ? ORDER BY key').all(kind),
    ) as CheckpointRow[];
    return rows.map(rowToCheckpoint);
  }

  async close(): Promise<void> {
    this.statements.clear();
    this.db?.close();
    this.db = null;
  }
}
