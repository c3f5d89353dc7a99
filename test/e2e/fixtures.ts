import type { AuditQuery } from '../../src/actions/ports.js';
import type { ClusterView } from '../../src/api/cluster-view.js';
import type { ActionContext, ApiActions, ApiAudit, ApiDeps, VerdictContext } from '../../src/api/deps.js';
import { ForesightError } from '../../src/errors.js';
import type { AuditKind, AuditRecord, DrainAction, NodeRecord, NodeScore } from '../../src/messages.js';

export const T0 = Date.UTC(2025, 0, 6, 9, 0, 0);

export function score(nodeId: string, ts: number, risk: number, extra: Partial<NodeScore> = {}): NodeScore {
  return {
    nodeId,
    setId: 1,
    ts,
    risk,
    timeToFailureS: risk > 0.5 ? Math.round((1 - risk) * 3600) : null,
    explanation: [{ feature: 'memory_rss_slope', weight: risk, value: 12.5 }],
    scorer: 'stat-v1',
    observed: true,
    activeCalls: 40,
    activeCallsSource: 'ami',
    evidence: { calls: { count: 40, source: 'ami' }, upReported: true, probe: null },
    up: true,
    ...extra,
  };
}

export function nodeRecord(nodeId: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return {
    nodeId,
    setId: 1,
    uri: `sip:127.0.0.1:${5070 + Number(nodeId.replace(/\D/g, '') || 0)}`,
    state: 'active',
    since: T0,
    pinned: false,
    manualOverride: null,
    lastDrainAt: null,
    decisionId: null,
    reason: 'initial',
    ...extra,
  };
}

const KIND: Record<DrainAction, AuditKind> = {
  drain: 'DrainStarting',
  undrain: 'UndrainSucceeded',
  restart: 'RestartStarting',
  pin: 'Pinned',
  unpin: 'Unpinned',
};

/**
 * A small in-memory stand-in for the action engine: records calls, keeps an audit list, moves node records and tells
 * the ClusterView, the way the real wiring will. Refuses unknown nodes and drains of nodes that are not active.
 */
export class MemoryActions implements ApiActions, ApiAudit {
  readonly calls: { action: string; id: string; ctx: ActionContext | VerdictContext }[] = [];
  readonly records: AuditRecord[] = [];
  private readonly nodes = new Map<string, NodeRecord>();

  constructor(
    private readonly cluster: ClusterView,
    nodes: NodeRecord[],
    private readonly now: () => number = () => T0,
  ) {
    for (const n of nodes) this.nodes.set(n.nodeId, n);
    cluster.setNodeRecords(nodes);
  }

  async drain(nodeId: string, ctx: ActionContext): Promise<AuditRecord> {
    return this.act('drain', nodeId, ctx, (n) => {
      if (n.state !== 'active') throw new ForesightError('FORESIGHT_ERR_CONFLICT', `${nodeId} is ${n.state}`);
      return { ...n, state: 'draining', since: this.now(), reason: ctx.reason, lastDrainAt: this.now() };
    });
  }

  async undrain(nodeId: string, ctx: ActionContext): Promise<AuditRecord> {
    return this.act('undrain', nodeId, ctx, (n) => ({ ...n, state: 'active', since: this.now(), reason: ctx.reason }));
  }

  async restart(nodeId: string, ctx: ActionContext): Promise<AuditRecord> {
    return this.act('restart', nodeId, ctx, (n) => ({
      ...n,
      state: 'restarting',
      since: this.now(),
      reason: ctx.reason,
    }));
  }

  async pin(nodeId: string, ctx: ActionContext): Promise<AuditRecord> {
    return this.act('pin', nodeId, ctx, (n) => ({ ...n, pinned: true }));
  }

  async unpin(nodeId: string, ctx: ActionContext): Promise<AuditRecord> {
    return this.act('unpin', nodeId, ctx, (n) => ({ ...n, pinned: false }));
  }

  async clearOverride(nodeId: string, ctx: ActionContext): Promise<AuditRecord> {
    this.calls.push({ action: 'clearOverride', id: nodeId, ctx });
    const node = this.nodes.get(nodeId);
    if (!node) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown node ${nodeId}`);
    const updated = { ...node, manualOverride: null, reason: ctx.reason };
    this.nodes.set(nodeId, updated);
    this.cluster.applyNodeRecord(updated);
    return this.append({ nodeId, kind: 'OverrideCleared', actor: ctx.actor, reason: ctx.reason });
  }

  async verdict(decisionId: string, ctx: VerdictContext): Promise<AuditRecord> {
    this.calls.push({ action: 'verdict', id: decisionId, ctx });
    const decided = this.records.find((r) => r.decisionId === decisionId);
    if (!decided) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown decision ${decisionId}`);
    return this.append({
      nodeId: decided.nodeId,
      kind: 'Verdict',
      actor: ctx.actor,
      reason: ctx.reason,
      decisionId,
      details: { verdict: ctx.verdict },
    });
  }

  async query(q: AuditQuery): Promise<AuditRecord[]> {
    return this.records
      .filter((r) => q.nodeId === undefined || r.nodeId === q.nodeId)
      .filter((r) => q.kind === undefined || r.kind === q.kind)
      .filter((r) => q.beforeSeq === undefined || r.seq < q.beforeSeq)
      .filter((r) => q.since === undefined || r.ts >= q.since)
      .sort((a, b) => b.seq - a.seq)
      .slice(0, q.limit ?? 100);
  }

  append(partial: Pick<AuditRecord, 'nodeId' | 'kind' | 'actor' | 'reason'> & Partial<AuditRecord>): AuditRecord {
    const record: AuditRecord = {
      seq: this.records.length + 1,
      ts: this.now(),
      decisionId: null,
      dryRun: false,
      details: {},
      ...partial,
    };
    this.records.push(record);
    this.cluster.applyAudit(record);
    return record;
  }

  private act(
    action: DrainAction,
    nodeId: string,
    ctx: ActionContext,
    next: (n: NodeRecord) => NodeRecord,
  ): AuditRecord {
    this.calls.push({ action, id: nodeId, ctx });
    const node = this.nodes.get(nodeId);
    if (!node) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown node ${nodeId}`);
    const updated = next(node);
    const decisionId = `manual-${this.records.length + 1}`;
    this.nodes.set(nodeId, { ...updated, decisionId });
    this.cluster.applyNodeRecord({ ...updated, decisionId });
    return this.append({ nodeId, kind: KIND[action], actor: ctx.actor, reason: ctx.reason, decisionId });
  }
}

/** Deps for tests: a cluster of `count` nodes, in-memory actions and audit, fixed model/config/health. */
export function testDeps(
  cluster: ClusterView,
  count = 4,
  health: ApiDeps['health'] = () => [{ name: 'bus', ok: true }],
): { deps: ApiDeps; actions: MemoryActions } {
  const nodes = Array.from({ length: count }, (_, i) => nodeRecord(`ast${i + 1}`));
  const actions = new MemoryActions(cluster, nodes);
  const deps: ApiDeps = {
    cluster,
    actions,
    audit: actions,
    model: {
      info: () => ({ name: 'stat', version: 'stat-v1', threshold: 0.7, evaluation: { precision: 0.9, recall: 0.8 } }),
    },
    config: () => ({
      api: { port: 8080, tokens: 'secret-value' },
      store: { url: 'postgres://x', password: 'hunter2' },
    }),
    health,
  };
  return { deps, actions };
}
