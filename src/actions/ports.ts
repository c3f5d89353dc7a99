import type { AuditKind, AuditRecord, NodeRecord, StateCheckpoint } from '../messages.js';

/**
 * Dispatcher destination state as Foresight sees it. Kamailio letters (dispatch.h):
 * A active, I inactive, D disabled, T trying, P probing. Foresight drains with `D` ("disabled"), because an
 * `I` destination that answers OPTIONS is put back to active by Kamailio's own probing (domain A.4).
 */
export type DestinationState = 'active' | 'inactive' | 'disabled' | 'trying';

export interface DispatcherDestination {
  setId: number;
  /** e.g. `sip:127.0.0.1:5071`. */
  uri: string;
  state: DestinationState;
  /** True when Kamailio is probing the destination (P flag). */
  probing: boolean;
  /** Raw flags as the dispatcher reports them (e.g. `AP`, `DX`). */
  flags: string;
  /** Average OPTIONS round-trip, where the dispatcher tracks latency. ms */
  latencyAvgMs: number | null;
  /**
   * Each proxy's own view, in configured order, when the dispatcher fronts several proxies (ProxyFleetDispatcher);
   * absent for a single proxy. The fields above are then the combined view (see proxy-fleet.ts).
   */
  proxies?: ProxyDestinationState[];
}

/** One proxy's view of a destination. */
export interface ProxyDestinationState {
  proxy: string;
  /** `unreachable`: the proxy did not answer this round; `missing`: it answered but has no such destination. */
  state: DestinationState | 'unreachable' | 'missing';
  /** As that proxy reports them; null when it did not report the destination. */
  flags: string | null;
}

/** The port the Kamailio JSON-RPC adapter and the simulated dispatcher implement. */
export interface Dispatcher {
  readonly name: string;
  list(): Promise<DispatcherDestination[]>;
  /** Stops new calls to the destination; in-dialog requests of active calls keep flowing. Idempotent. */
  drain(setId: number, uri: string): Promise<void>;
  /** Puts the destination back into rotation. Idempotent. */
  activate(setId: number, uri: string): Promise<void>;
}

/** Restarts an Asterisk node (AMI `core restart gracefully`, a command, a webhook, or the simulator). */
export interface Restarter {
  readonly name: string;
  restart(nodeId: string): Promise<void>;
}

export interface AuditQuery {
  nodeId?: string;
  kind?: AuditKind;
  /** Records with seq strictly below this (paging backwards from the newest). */
  beforeSeq?: number;
  since?: number;
  /** Records of one decision. */
  decisionId?: string;
  limit?: number;
}

/** A scorer's drain threshold as operators' verdicts have moved it (src/core/thresholds.ts). */
export interface ThresholdRecord {
  /** The scorer's name as scores carry it, e.g. `stat-v1`. */
  scorer: string;
  /** Effective drain threshold. [0, 1] */
  threshold: number;
  /** Verdicts counted so far. */
  falseAlarms: number;
  trueAlarms: number;
  /** Epoch ms of the last move. */
  updatedAt: number;
}

/** Durable desired state and audit trail: SQLite embedded, PostgreSQL in production. */
export interface Store {
  readonly name: string;
  init(): Promise<void>;
  getNode(nodeId: string): Promise<NodeRecord | null>;
  listNodes(): Promise<NodeRecord[]>;
  putNode(record: NodeRecord): Promise<void>;
  /** Appends and returns the record with its seq. */
  appendAudit(record: Omit<AuditRecord, 'seq'>): Promise<AuditRecord>;
  /** Newest first. */
  queryAudit(query: AuditQuery): Promise<AuditRecord[]>;
  /** Every scorer's effective threshold, so moves made by verdicts survive a restart and a change of leader. */
  listThresholds(): Promise<ThresholdRecord[]>;
  putThreshold(record: ThresholdRecord): Promise<void>;
  /**
   * Per-node learnt state by key (`features:<node>`, `scorer:<scorer>:<node>`), the newest per key: where no compacted
   * Kafka topic keeps it (the in-process bus), so a restarted Foresight does not start every baseline cold.
   */
  putCheckpoints(records: StoredCheckpoint[]): Promise<void>;
  listCheckpoints(kind: StateCheckpoint['kind']): Promise<StoredCheckpoint[]>;
  close(): Promise<void>;
}

export interface StoredCheckpoint {
  key: string;
  checkpoint: StateCheckpoint;
}
