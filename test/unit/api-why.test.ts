import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { ClusterView } from '../../src/api/cluster-view.js';
import { testDeps } from '../e2e/fixtures.js';

let apps: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

function setup(explain?: (nodeId: string) => Record<string, unknown> | null) {
  const cluster = new ClusterView({ threshold: 0.8 });
  const { deps } = testDeps(cluster, 3);
  const app = buildApp({ ...deps, explain }, { openLocalMode: true });
  apps.push(app);
  return app;
}

describe('GET /api/nodes/:id/why', () => {
  it('answers with the engine account of the node, including the guardrail that refused a drain', async () => {
    const app = setup((nodeId) =>
      nodeId === 'ast2'
        ? {
            state: 'active',
            lastAutoDecision: { outcome: 'refused', guardrail: 'min_active', detail: 'set 1 would keep 1' },
          }
        : null,
    );
    const res = await app.inject({ method: 'GET', url: '/api/nodes/ast2/why' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ lastAutoDecision: { guardrail: 'min_active' } });
    const unknown = await app.inject({ method: 'GET', url: '/api/nodes/nope/why' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('FORESIGHT_ERR_NOT_FOUND');
  });

  it('on a standby replica says so with a conflict', async () => {
    const app = setup(undefined);
    const res = await app.inject({ method: 'GET', url: '/api/nodes/ast1/why' });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.message).toMatch(/standby/);
  });
});
