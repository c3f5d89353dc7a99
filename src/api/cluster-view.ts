import type {
  AuditRecord,
  CallsSource,
  FeatureVector,
  NodeLifecycleState,
  NodeRecord,
  NodeScore,
  ScoreContribution,
} from '../messages.js';

/** What the API shows about one node: the action module's record merged with the latest score and features. */
export interface NodeView {
  nodeId: string;
  setId: number | null;
  uri: string | null;
  /** `unknown` until the action module has reported a record for the node. */
  state: NodeLifecycleState | 'unknown';
  stateSince: number | null;
  stateReason: string | null;
  pinned: boolean;
  manualOverride: string | null;
  /** Latest risk in [0, 1], null before the first score. */
  risk: number | null;
  timeToFailureS: number | null;
  explanation: ScoreContribution[];
  /** Active calls at the latest window end, null when nothing counted them. */
  activeCalls: number | null;
  /** Who counted them: `ami` (Asterisk) or `sip` (Foresight's dialog count from the SIP stream). */
  activeCallsSource: CallsSource | null;
  observed: boolean;
  up: boolean | null;
  scorer: string | null;
  /** Event time of the latest score, epoch ms. */
  scoreTs: number | null;
  /** Latest feature vector's features, null before the first window. */
  features: Record<string, number> | null;
  featuresWindowEnd: number | null;
}

/** One point of a node's risk history. */
export interface HistoryPoint {
  ts: number;
  risk: number;
  timeToFailureS: number | null;
  observed: boolean;
  activeCalls: number | null;
  up: boolean;
}

export interface HistoryPage {
  nodeId: string;
  /** Oldest first, so a chart can plot the page directly. */
  items: HistoryPoint[];
  /** Pass as `before` for the next older page; null when there is none. */
  nextBefore: number | null;
}

export type ClusterEvent =
  | { type: 'scores'; data: (HistoryPoint & { nodeId: string; explanation: ScoreContribution[] })[] }
  | { type: 'node'; data: NodeView }
  | { type: 'audit'; data: AuditRecord };

export type ClusterListener = (event: ClusterEvent) => void;

export interface ClusterViewOptions {
  /** Risk threshold drawn on the charts. [0, 1] */
  threshold?: number;
  /** History points kept per node (older ones are dropped). */
  historyLimit?: number;
}

function emptyView(nodeId: string): NodeView {
  return {
    nodeId,
    setId: null,
    uri: null,
    state: 'unknown',
    stateSince: null,
    stateReason: null,
    pinned: false,
    manualOverride: null,
    risk: null,
    timeToFailureS: null,
    explanation: [],
    activeCalls: null,
    activeCallsSource: null,
    observed: false,
    up: null,
    scorer: null,
    scoreTs: null,
    features: null,
    featuresWindowEnd: null,
  };
}

/**
 * The API's read model of the cluster, fed by the wiring from the bus and the action module. Keeps the latest state per
 * node and a bounded, time-ordered risk history, and tells subscribers (SSE, metrics) what changed.
 */
export class ClusterView {
  threshold: number;
  private readonly historyLimit: number;
  private readonly nodes = new Map<string, NodeView>();
  private readonly history = new Map<string, HistoryPoint[]>();
  private readonly listeners = new Set<ClusterListener>();
  private _version = 0;

  constructor(options: ClusterViewOptions = {}) {
    this.threshold = options.threshold ?? 0.7;
    this.historyLimit = Math.max(1, options.historyLimit ?? 4320);
  }

  /** Bumped on every change, so readers can cache what they derive from the view. */
  get version(): number {
    return this._version;
  }

  subscribe(listener: ClusterListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sorted by node id. */
  list(): NodeView[] {
    return [...this.nodes.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  get(nodeId: string): NodeView | null {
    return this.nodes.get(nodeId) ?? null;
  }

  has(nodeId: string): boolean {
    return this.nodes.has(nodeId);
  }

  applyScores(scores: readonly NodeScore[]): void {
    if (scores.length === 0) return;
    const points: (HistoryPoint & { nodeId: string; explanation: ScoreContribution[] })[] = [];
    for (const score of scores) {
      const view = this.ensure(score.nodeId);
      const point: HistoryPoint = {
        ts: score.ts,
        risk: score.risk,
        timeToFailureS: score.timeToFailureS,
        observed: score.observed,
        activeCalls: score.activeCalls,
        up: score.up,
      };
      // A redelivered or late score must not replace a newer one as "latest".
      if (view.scoreTs === null || score.ts >= view.scoreTs) {
        if (view.setId === null) view.setId = score.setId;
        view.risk = score.risk;
        view.timeToFailureS = score.timeToFailureS;
        view.explanation = score.explanation;
        view.activeCalls = score.activeCalls;
        view.activeCallsSource = score.activeCallsSource;
        view.observed = score.observed;
        view.up = score.up;
        view.scorer = score.scorer;
        view.scoreTs = score.ts;
      }
      this.insertHistory(score.nodeId, point);
      points.push({ nodeId: score.nodeId, explanation: score.explanation, ...point });
    }
    this._version++;
    this.emit({ type: 'scores', data: points });
  }

  applyFeatures(vectors: readonly FeatureVector[]): void {
    let changed = false;
    for (const vector of vectors) {
      const view = this.ensure(vector.nodeId);
      if (view.featuresWindowEnd !== null && vector.windowEnd < view.featuresWindowEnd) continue;
      if (view.setId === null) view.setId = vector.setId;
      view.features = vector.features;
      view.featuresWindowEnd = vector.windowEnd;
      changed = true;
    }
    // Features change every window for every node: no event, the next score event carries the news.
    if (changed) this._version++;
  }

  applyAudit(record: AuditRecord): void {
    this._version++;
    this.emit({ type: 'audit', data: record });
  }

  /** Replaces the action module's view of the nodes; emits a `node` event for each node whose record changed. */
  setNodeRecords(records: readonly NodeRecord[]): void {
    for (const record of records) this.applyNodeRecord(record);
  }

  applyNodeRecord(record: NodeRecord): void {
    const view = this.ensure(record.nodeId);
    const changed =
      view.state !== record.state ||
      view.stateSince !== record.since ||
      view.pinned !== record.pinned ||
      view.manualOverride !== record.manualOverride ||
      view.uri !== record.uri ||
      view.setId !== record.setId ||
      view.stateReason !== record.reason;
    if (!changed) return;
    view.setId = record.setId;
    view.uri = record.uri;
    view.state = record.state;
    view.stateSince = record.since;
    view.stateReason = record.reason;
    view.pinned = record.pinned;
    view.manualOverride = record.manualOverride;
    this._version++;
    this.emit({ type: 'node', data: view });
  }

  /** Newest `limit` points strictly before `before` (epoch ms), returned oldest first. */
  historyPage(nodeId: string, before: number | undefined, limit: number): HistoryPage | null {
    const points = this.history.get(nodeId);
    if (!this.nodes.has(nodeId)) return null;
    if (!points || points.length === 0 || limit <= 0) return { nodeId, items: [], nextBefore: null };
    const end = before === undefined ? points.length : lowerBound(points, before);
    const start = Math.max(0, end - limit);
    const items = points.slice(start, end);
    const first = items[0];
    return { nodeId, items, nextBefore: start > 0 && first ? first.ts : null };
  }

  private ensure(nodeId: string): NodeView {
    let view = this.nodes.get(nodeId);
    if (!view) {
      view = emptyView(nodeId);
      this.nodes.set(nodeId, view);
    }
    return view;
  }

  private insertHistory(nodeId: string, point: HistoryPoint): void {
    let points = this.history.get(nodeId);
    if (!points) {
      points = [];
      this.history.set(nodeId, points);
    }
    const last = points[points.length - 1];
    if (!last || point.ts > last.ts) {
      points.push(point);
    } else {
      // Older than everything kept once the history is full: it would be trimmed first, and keeping it would leave a
      // hole between it and the kept points.
      if (points.length >= this.historyLimit && point.ts < (points[0]?.ts ?? 0)) return;
      // Out of order or redelivered (the bus is at-least-once): keep one point per timestamp, in order.
      const at = lowerBound(points, point.ts);
      if (points[at]?.ts === point.ts) points[at] = point;
      else points.splice(at, 0, point);
    }
    // Trim in chunks so the amortised cost of a push stays constant.
    const slack = Math.max(1, this.historyLimit >> 3);
    if (points.length > this.historyLimit + slack) points.splice(0, points.length - this.historyLimit);
  }

  private emit(event: ClusterEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A failing subscriber (a closed socket) must not stop the others or the pipeline that fed the view.
      }
    }
  }
}

/** First index whose ts is >= ts. */
function lowerBound(points: readonly HistoryPoint[], ts: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((points[mid]?.ts ?? Number.POSITIVE_INFINITY) < ts) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
