import type { Registry } from 'prom-client';
import type { AuditQuery } from '../actions/ports.js';
import type { ThresholdsView } from '../actions/thresholds.js';
import type { AuditRecord } from '../messages.js';
import type { ClusterView } from './cluster-view.js';
import type { ApiMetrics } from './metrics.js';

/** Who asked for a manual action and why. `actor` is the bearer token's name (or `local` in open local mode). */
export interface ActionContext {
  actor: string;
  reason: string;
  /** Skip the soft guardrails (cooldown, hysteresis); hard ones (minimum active nodes) still apply. */
  force?: boolean;
}

/** An operator's judgement on an automatic decision: a training label, and it moves the scorer's drain threshold. */
export type VerdictValue = 'correct' | 'false_alarm';

export interface VerdictContext {
  actor: string;
  reason: string;
  verdict: VerdictValue;
}

/**
 * The action engine as the API sees it. Each call returns the audit record it wrote, or throws a ForesightError:
 * FORESIGHT_ERR_NOT_FOUND (unknown node or decision), _GUARDRAIL (refused), _CONFLICT (wrong state), _DISPATCHER.
 */
export interface ApiActions {
  drain(nodeId: string, ctx: ActionContext): Promise<AuditRecord>;
  undrain(nodeId: string, ctx: ActionContext): Promise<AuditRecord>;
  restart(nodeId: string, ctx: ActionContext): Promise<AuditRecord>;
  pin(nodeId: string, ctx: ActionContext): Promise<AuditRecord>;
  unpin(nodeId: string, ctx: ActionContext): Promise<AuditRecord>;
  /** Ends a manual override: Foresight drives the node again (a node left disabled by hand is held, not re-enabled). */
  clearOverride(nodeId: string, ctx: ActionContext): Promise<AuditRecord>;
  verdict(decisionId: string, ctx: VerdictContext): Promise<AuditRecord>;
}

/** Read side of the audit trail (Store.queryAudit fits). Newest first. */
export interface ApiAudit {
  query(query: AuditQuery): Promise<AuditRecord[]>;
}

/** The model in use and its evaluation figures, as shown to operators. Free-form beyond the named fields. */
export interface ModelInfo {
  name: string;
  version: string;
  /** Risk threshold the action engine uses. [0, 1] */
  threshold?: number;
  trainedAt?: string | null;
  /** Evaluation figures (precision, recall, lead time...) from the last replay. */
  evaluation?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ApiModel {
  info(): ModelInfo | Promise<ModelInfo>;
  /** Effective drain thresholds moved by verdicts (GET /api/model/thresholds). */
  thresholds?(): ThresholdsView | Promise<ThresholdsView>;
  /** Puts the previous scorer back in charge (model lifecycle); absent when no lifecycle runs. */
  rollback?(ctx: { actor: string; reason: string }): Promise<AuditRecord>;
}

export interface HealthCheck {
  /** e.g. `bus`, `dispatcher`, `collector:ast1`. */
  name: string;
  ok: boolean;
  detail?: string;
}

export interface ApiDeps {
  cluster: ClusterView;
  actions: ApiActions;
  audit: ApiAudit;
  model: ApiModel;
  /** Effective config, already redacted by the config module (the API redacts secret-looking keys again). */
  config: () => Record<string, unknown>;
  /** Readiness checks: bus, dispatcher (Kamailio), collectors. */
  health: () => HealthCheck[] | Promise<HealthCheck[]>;
  /**
   * Why a node is in its state, and why the last automatic decision was or was not taken (which guardrail); null for
   * an unknown node. Absent on a standby replica, which takes no decisions.
   */
  explain?: (nodeId: string) => Record<string, unknown> | null;
  /** Metrics the wiring updates; created (with a fresh registry) when absent. */
  metrics?: ApiMetrics;
  /** Registry served at /metrics when `metrics` is absent. */
  registry?: Registry;
}
