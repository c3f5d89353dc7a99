/**
 * Which windows training must not take as healthy: incidents from the simulator's labels, drains operators confirmed
 * from the audit trail; and which it must take as healthy and stay quiet on: drains operators marked as false.
 */
import type { AuditRecord, IncidentLabel } from '../../messages.js';

/** A node's time span that must not be taught as healthy (an incident, a confirmed drain) or that is a known false alarm. */
export interface NodeSpan {
  nodeId: string;
  from: number;
  to: number;
}

/** After a crash the node restarts and its baselines settle: not healthy behaviour to learn. ms */
export const DEFAULT_RECOVERY_MS = 15 * 60_000;
/** Before a confirmed drain, this much is treated as the precursor. ms */
export const DEFAULT_VERDICT_LOOKBACK_MS = 60 * 60_000;
/** Before a false drain, this much is what made the model fire: healthy, and the threshold must stay above it. ms */
export const DEFAULT_FALSE_DRAIN_SPAN_MS = 10 * 60_000;

/** Incidents are excluded from [onsetAt, crashAt + recoveryMs]. */
export function spansFromLabels(labels: readonly IncidentLabel[], recoveryMs = DEFAULT_RECOVERY_MS): NodeSpan[] {
  return labels.map((l) => ({ nodeId: l.nodeId, from: l.onsetAt, to: l.crashAt + recoveryMs }));
}

export interface VerdictSpans {
  /** Drains operators confirmed as needed: excluded from healthy. */
  confirmed: NodeSpan[];
  /** Drains operators marked as false: healthy examples, and they raise the threshold. */
  false: NodeSpan[];
  /** Verdicts whose drain could not be placed (no nodeId or time). */
  unplaced: number;
}

/**
 * Reads operators' verdicts from audit records: kind 'Verdict' with details { decisionId, confirmed }. The drain's
 * time is the earliest other record of the same decision (DrainStarting...), else the verdict's own time.
 */
export function spansFromVerdicts(
  records: readonly AuditRecord[],
  options: { lookbackMs?: number; recoveryMs?: number; falseSpanMs?: number } = {},
): VerdictSpans {
  const lookback = options.lookbackMs ?? DEFAULT_VERDICT_LOOKBACK_MS;
  const recovery = options.recoveryMs ?? DEFAULT_RECOVERY_MS;
  const falseSpan = options.falseSpanMs ?? DEFAULT_FALSE_DRAIN_SPAN_MS;
  const firstSeen = new Map<string, AuditRecord>();
  for (const r of records) {
    if (r.kind === 'Verdict' || !r.decisionId) continue;
    const prev = firstSeen.get(r.decisionId);
    if (!prev || r.ts < prev.ts) firstSeen.set(r.decisionId, r);
  }
  const out: VerdictSpans = { confirmed: [], false: [], unplaced: 0 };
  const seen = new Set<string>();
  for (const r of records) {
    if (r.kind !== 'Verdict') continue;
    const d = (r.details ?? {}) as { decisionId?: unknown; confirmed?: unknown };
    const decisionId = typeof d.decisionId === 'string' ? d.decisionId : r.decisionId;
    if (typeof d.confirmed !== 'boolean') {
      out.unplaced++;
      continue;
    }
    // The latest verdict on a decision wins; records come in seq order.
    const key = decisionId ?? `${r.nodeId}@${r.ts}`;
    if (seen.has(key)) {
      out.confirmed = out.confirmed.filter((s) => (s as NodeSpan & { key?: string }).key !== key);
      out.false = out.false.filter((s) => (s as NodeSpan & { key?: string }).key !== key);
    }
    seen.add(key);
    const drain = decisionId ? firstSeen.get(decisionId) : undefined;
    const nodeId = drain?.nodeId ?? r.nodeId;
    const at = drain?.ts ?? r.ts;
    if (!nodeId || !Number.isFinite(at)) {
      out.unplaced++;
      continue;
    }
    const span = d.confirmed
      ? { nodeId, from: at - lookback, to: at + recovery, key }
      : { nodeId, from: at - falseSpan, to: at, key };
    (d.confirmed ? out.confirmed : out.false).push(span);
  }
  const strip = (s: NodeSpan): NodeSpan => ({ nodeId: s.nodeId, from: s.from, to: s.to });
  return { confirmed: out.confirmed.map(strip), false: out.false.map(strip), unplaced: out.unplaced };
}

/** True when [from, to) meets one of the spans. */
export function overlaps(spans: readonly NodeSpan[] | undefined, from: number, to: number): boolean {
  if (!spans) return false;
  for (const s of spans) if (from < s.to && to > s.from) return true;
  return false;
}

/** The spans of each node. */
export function bySpanNode(spans: readonly NodeSpan[]): Map<string, NodeSpan[]> {
  const m = new Map<string, NodeSpan[]>();
  for (const s of spans) {
    let l = m.get(s.nodeId);
    if (!l) {
      l = [];
      m.set(s.nodeId, l);
    }
    l.push(s);
  }
  return m;
}
