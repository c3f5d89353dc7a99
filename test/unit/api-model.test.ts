import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { ClusterView } from '../../src/api/cluster-view.js';
import type { AuditRecord } from '../../src/messages.js';
import { testDeps } from '../e2e/fixtures.js';

const TOKENS = [
  { name: 'alice', token: 'op-token-0123456789', role: 'operator' as const },
  { name: 'victor', token: 'view-token-0123456789', role: 'viewer' as const },
];
const OP = { authorization: 'Bearer op-token-0123456789' };
const VIEW = { authorization: 'Bearer view-token-0123456789' };

function setup(withLifecycle: boolean) {
  const { deps } = testDeps(new ClusterView({ threshold: 0.8 }), 2);
  const calls: { actor: string; reason: string }[] = [];
  let inCharge = 'tfjs';
  if (withLifecycle) {
    deps.model = {
      info: () => ({ name: 'm', version: 'v', inCharge: { kind: inCharge } }),
      rollback: async (ctx) => {
        calls.push(ctx);
        inCharge = 'stat';
        return {
          seq: 7,
          ts: 1,
          nodeId: 'model',
          kind: 'ModelRolledBack',
          actor: ctx.actor,
          reason: ctx.reason,
          decisionId: null,
          dryRun: false,
          details: {},
        } satisfies AuditRecord;
      },
    };
  }
  return { app: buildApp(deps, { tokens: TOKENS }), calls };
}

type App = ReturnType<typeof setup>['app'];
const rollback = (app: App, headers: Record<string, string>, payload: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/api/model/rollback', headers, payload });

describe('POST /api/model/rollback', () => {
  it('lets an operator roll back with a reason, audited under their name; GET /api/model then shows stat', async () => {
    const { app, calls } = setup(true);
    const res = await rollback(app, OP, { reason: ' too many drains ' });
    expect(res.statusCode).toBe(200);
    expect(res.json().audit).toMatchObject({ kind: 'ModelRolledBack', actor: 'alice' });
    expect(calls).toEqual([{ actor: 'alice', reason: 'too many drains' }]);
    expect((await app.inject({ url: '/api/model', headers: VIEW })).json().inCharge.kind).toBe('stat');
  });

  it('refuses a viewer, a missing reason, and answers 409 where no lifecycle runs', async () => {
    const { app, calls } = setup(true);
    expect((await rollback(app, VIEW, { reason: 'x' })).statusCode).toBe(403);
    expect((await rollback(app, OP, {})).statusCode).toBe(400);
    expect(calls).toEqual([]);
    const res = await rollback(setup(false).app, OP, { reason: 'x' });
    expect(res.statusCode).toBe(409);
    expect(res.body).toMatch(/model.lifecycle.enabled/);
  });
});
