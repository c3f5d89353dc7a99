import type { ActionEngine } from '../actions/engine.js';
import type { Store } from '../actions/ports.js';
import type { ApiActions } from '../api/deps.js';
import { ForesightError } from '../errors.js';
import type { AuditRecord } from '../messages.js';

/**
 * The engine reports results as lifecycle records; the API answers with the audit record the action wrote, which
 * is what an operator wants to see (who, why, which decision id to give a verdict on).
 */
export function apiActionsFor(engine: ActionEngine, store: Store): ApiActions {
  async function latestFor(nodeId: string): Promise<AuditRecord> {
    const [latest] = await store.queryAudit({ nodeId, limit: 1 });
    if (!latest) throw new ForesightError('FORESIGHT_ERR_INTERNAL', `no audit record for ${nodeId} after the action`);
    return latest;
  }
  const run =
    (op: 'drain' | 'undrain' | 'restart' | 'pin' | 'unpin' | 'clearOverride') =>
    async (nodeId: string, ctx: { actor: string; reason: string; force?: boolean }): Promise<AuditRecord> => {
      await engine[op](nodeId, { actor: ctx.actor, reason: ctx.reason, force: ctx.force ?? false });
      return latestFor(nodeId);
    };
  return {
    drain: run('drain'),
    undrain: run('undrain'),
    restart: run('restart'),
    pin: run('pin'),
    unpin: run('unpin'),
    clearOverride: run('clearOverride'),
    verdict: (decisionId, ctx) =>
      engine.verdict(decisionId, { actor: ctx.actor, confirmed: ctx.verdict === 'correct', note: ctx.reason }),
  };
}
