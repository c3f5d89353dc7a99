import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import type { ApiToken } from '../../src/api/auth.js';
import { ClusterView } from '../../src/api/cluster-view.js';
import type { ApiDeps } from '../../src/api/deps.js';
import { type MemoryActions, score, T0, testDeps } from '../e2e/fixtures.js';

const TOKENS: ApiToken[] = [
  { name: 'alice', token: 'op-token-0123456789', role: 'operator' },
  { name: 'victor', token: 'view-token-0123456789', role: 'viewer' },
];
const OP = { authorization: 'Bearer op-token-0123456789' };
const VIEW = { authorization: 'Bearer view-token-0123456789' };

let apps: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

function setup(options: Parameters<typeof buildApp>[1] = {}, health?: ApiDeps['health']) {
  const cluster = new ClusterView({ threshold: 0.7 });
  const { deps, actions } = testDeps(cluster, 4, health);
  const app = buildApp(deps, { tokens: TOKENS, ...options });
  apps.push(app);
  return { app, cluster, actions, deps };
}

describe('nodes', () => {
  it('lists nodes with state, risk, explanation and latest features', async () => {
    const { app, cluster } = setup();
    cluster.applyScores([score('ast2', T0 + 10_000, 0.83)]);
    cluster.applyFeatures([
      {
        nodeId: 'ast2',
        setId: 1,
        windowStart: T0,
        windowEnd: T0 + 10_000,
        sampleCount: 9,
        observed: true,

        features: { f: 1 },

        evidence: { calls: null, upReported: null, probe: null },
      },
    ]);
    const res = await app.inject({ method: 'GET', url: '/api/nodes', headers: VIEW });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.threshold).toBe(0.7);
    expect(body.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['ast1', 'ast2', 'ast3', 'ast4']);
    const ast2 = body.nodes[1];
    expect(ast2).toMatchObject({ state: 'active', risk: 0.83, activeCalls: 40, observed: true, features: { f: 1 } });
    expect(ast2.timeToFailureS).toBe(612);
    expect(ast2.explanation[0].feature).toBe('memory_rss_slope');
    expect(body.nodes[0].risk).toBeNull();
  });

  it('serves a fresh list after the view changes', async () => {
    const { app, cluster } = setup();
    await app.inject({ method: 'GET', url: '/api/nodes', headers: VIEW });
    cluster.applyScores([score('ast1', T0, 0.4)]);
    const res = await app.inject({ method: 'GET', url: '/api/nodes', headers: VIEW });
    expect(res.json().nodes[0].risk).toBe(0.4);
  });

  it('answers one node, and 404 with a code for an unknown one', async () => {
    const { app } = setup();
    expect((await app.inject({ url: '/api/nodes/ast3', headers: VIEW })).json().nodeId).toBe('ast3');
    const res = await app.inject({ url: '/api/nodes/nope', headers: VIEW });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('FORESIGHT_ERR_NOT_FOUND');
  });

  it('pages the history backwards with a cursor', async () => {
    const { app, cluster } = setup();
    cluster.applyScores(Array.from({ length: 25 }, (_, i) => score('ast1', T0 + i * 10_000, i / 25)));
    const first = (await app.inject({ url: '/api/nodes/ast1/history?limit=10', headers: VIEW })).json();
    expect(first.items.map((p: { ts: number }) => p.ts)).toEqual(
      Array.from({ length: 10 }, (_, i) => T0 + (15 + i) * 10_000),
    );
    expect(first.nextBefore).toBe(T0 + 150_000);
    const second = (
      await app.inject({ url: `/api/nodes/ast1/history?limit=10&before=${first.nextBefore}`, headers: VIEW })
    ).json();
    expect(second.items[0].ts).toBe(T0 + 50_000);
    const third = (
      await app.inject({ url: `/api/nodes/ast1/history?limit=10&before=${second.nextBefore}`, headers: VIEW })
    ).json();
    expect(third.items).toHaveLength(5);
    expect(third.nextBefore).toBeNull();
  });

  it('rejects bad paging parameters with 400', async () => {
    const { app } = setup();
    for (const q of ['limit=0', 'limit=abc', 'before=-1', 'limit=99999']) {
      const res = await app.inject({ url: `/api/nodes/ast1/history?${q}`, headers: VIEW });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error.code).toBe('FORESIGHT_ERR_BAD_REQUEST');
    }
  });
});

describe('actions', () => {
  it('passes node, actor (token name), reason and force to the action engine', async () => {
    const { app, actions } = setup();
    const res = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast2/drain',
      headers: OP,
      payload: { reason: '  memory leak, draining early  ', force: true },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().audit).toMatchObject({ nodeId: 'ast2', kind: 'DrainStarting', actor: 'alice' });
    expect(actions.calls).toEqual([
      { action: 'drain', id: 'ast2', ctx: { actor: 'alice', reason: 'memory leak, draining early', force: true } },
    ]);
  });

  it.each(['undrain', 'restart', 'pin', 'unpin'])('wires %s', async (action) => {
    const { app, actions } = setup();
    const res = await app.inject({
      method: 'POST',
      url: `/api/nodes/ast1/${action}`,
      headers: OP,
      payload: { reason: 'ops' },
    });
    expect(res.statusCode).toBe(200);
    expect(actions.calls[0]).toEqual({ action, id: 'ast1', ctx: { actor: 'alice', reason: 'ops', force: false } });
  });

  it('requires a non-empty reason', async () => {
    const { app, actions } = setup();
    for (const payload of [{}, { reason: '' }, { reason: '   ' }, { reason: 5 }, { reason: 'x', force: 'maybe' }]) {
      const res = await app.inject({ method: 'POST', url: '/api/nodes/ast1/drain', headers: OP, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.code).toBe('FORESIGHT_ERR_BAD_REQUEST');
    }
    expect(actions.calls.filter((c) => c.ctx.reason === '')).toHaveLength(0);
  });

  it('maps engine errors to their status and code', async () => {
    const { app } = setup();
    const unknown = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast9/drain',
      headers: OP,
      payload: { reason: 'r' },
    });
    expect([unknown.statusCode, unknown.json().error.code]).toEqual([404, 'FORESIGHT_ERR_NOT_FOUND']);
    await app.inject({ method: 'POST', url: '/api/nodes/ast1/drain', headers: OP, payload: { reason: 'r' } });
    const again = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/drain',
      headers: OP,
      payload: { reason: 'r' },
    });
    expect([again.statusCode, again.json().error.code]).toEqual([409, 'FORESIGHT_ERR_CONFLICT']);
  });

  it('hides unexpected engine failures behind a 500 without details', async () => {
    const { app, actions } = setup();
    actions.restart = async () => {
      throw new Error('secret internal path /etc/x');
    };
    const res = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/restart',
      headers: OP,
      payload: { reason: 'r' },
    });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: 'FORESIGHT_ERR_INTERNAL', message: 'internal error' } });
  });

  it('records verdicts on decisions', async () => {
    const { app } = setup();
    const drained = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/drain',
      headers: OP,
      payload: { reason: 'r' },
    });
    const id = drained.json().audit.decisionId;
    const res = await app.inject({
      method: 'POST',
      url: `/api/decisions/${id}/verdict`,
      headers: OP,
      payload: { verdict: 'false_alarm', reason: 'node was fine' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().audit).toMatchObject({ kind: 'Verdict', actor: 'alice', details: { verdict: 'false_alarm' } });
    const bad = await app.inject({
      method: 'POST',
      url: `/api/decisions/${id}/verdict`,
      headers: OP,
      payload: { verdict: 'maybe', reason: 'x' },
    });
    expect(bad.statusCode).toBe(400);
  });

  it('clears a manual override with a reason, as the operator who asked, and refuses it without one', async () => {
    const { app, actions } = setup();
    const ok = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/clear-override',
      headers: OP,
      payload: { reason: 'kamcmd change was mine; Foresight may drive it again' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().audit).toMatchObject({ nodeId: 'ast1', kind: 'OverrideCleared' });
    expect(actions.calls.at(-1)).toMatchObject({ action: 'clearOverride', id: 'ast1' });
    const missing = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/clear-override',
      headers: OP,
      payload: {},
    });
    expect(missing.statusCode).toBe(400);
    const viewer = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/clear-override',
      headers: VIEW,
      payload: { reason: 'r' },
    });
    expect(viewer.statusCode).toBe(403);
  });

  it('rate-limits mutations per actor', async () => {
    const { app } = setup({ rateLimit: { max: 3, timeWindowMs: 60_000 } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/nodes/ast1/pin',
        headers: OP,
        payload: { reason: 'r' },
      });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) expect(res.json().error.code).toBe('FORESIGHT_ERR_RATE_LIMITED');
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    // Reads are not limited.
    expect((await app.inject({ url: '/api/nodes', headers: OP })).statusCode).toBe(200);
  });
});

describe('audit', () => {
  it('filters by node and kind and pages by seq, newest first', async () => {
    const { app, actions } = setup();
    for (let i = 0; i < 7; i++)
      actions.append({ nodeId: i % 2 ? 'ast1' : 'ast2', kind: 'DrainRefused', actor: 'auto', reason: `r${i}` });
    actions.append({ nodeId: 'ast1', kind: 'Pinned', actor: 'alice', reason: 'p' });
    const page1 = (await app.inject({ url: '/api/audit?nodeId=ast1&kind=DrainRefused&limit=2', headers: VIEW })).json();
    expect(page1.items.map((r: { reason: string }) => r.reason)).toEqual(['r5', 'r3']);
    const page2 = (
      await app.inject({
        url: `/api/audit?nodeId=ast1&kind=DrainRefused&limit=2&before=${page1.nextBefore}`,
        headers: VIEW,
      })
    ).json();
    expect(page2.items.map((r: { reason: string }) => r.reason)).toEqual(['r1']);
    expect(page2.nextBefore).toBeNull();
    const bad = await app.inject({ url: '/api/audit?kind=Nope', headers: VIEW });
    expect(bad.statusCode).toBe(400);
  });
});

describe('model, config, health, metrics, docs', () => {
  it('serves the model and a redacted config', async () => {
    const { app } = setup();
    expect((await app.inject({ url: '/api/model', headers: VIEW })).json()).toMatchObject({
      version: 'stat-v1',
      evaluation: { precision: 0.9 },
    });
    const config = (await app.inject({ url: '/api/config', headers: VIEW })).json();
    expect(config.store.password).toBe('[redacted]');
    expect(config.api.tokens).toBe('[redacted]');
    expect(config.api.port).toBe(8080);
    expect(JSON.stringify(config)).not.toContain('hunter2');
  });

  it('answers /healthz always and /readyz 503 when a check fails', async () => {
    let busOk = true;
    const { app } = setup({}, () => [
      { name: 'bus', ok: busOk },
      { name: 'dispatcher', ok: true },
    ]);
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    busOk = false;
    const res = await app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks[0]).toEqual({ name: 'bus', ok: false });
  });

  it('exposes node risk, state and drains in Prometheus format', async () => {
    const { app, cluster, actions } = setup();
    cluster.applyScores([score('ast3', T0, 0.91)]);
    actions.append({ nodeId: 'ast3', kind: 'DrainSucceeded', actor: 'auto', reason: 'risk' });
    app.foresight.metrics.setPipelineLag(0.25);
    const res = await app.inject({ url: '/metrics', headers: VIEW });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('foresight_node_risk{node="ast3"} 0.91');
    expect(res.body).toContain('foresight_node_state{node="ast3",state="active"} 1');
    expect(res.body).toContain('foresight_drains_total{result="succeeded"} 1');
    expect(res.body).toContain('foresight_pipeline_lag_seconds 0.25');
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
  });

  it('serves OpenAPI with every API route documented', async () => {
    const { app } = setup();
    const res = await app.inject({ url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const paths = Object.keys(res.json().paths);
    for (const p of [
      '/api/nodes',
      '/api/nodes/{id}/history',
      '/api/nodes/{id}/drain',
      '/api/audit',
      '/readyz',
      '/api/events',
    ]) {
      expect(paths).toContain(p);
    }
  });

  it('serves the dashboard and uPlot', async () => {
    const { app } = setup();
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect((await app.inject({ url: '/vendor/uplot/uPlot.iife.min.js' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/vendor/uplot/../../package.json' })).statusCode).toBe(404);
  });
});

describe('auth', () => {
  it('refuses requests without a token (401) or with an unknown one', async () => {
    const { app } = setup();
    const none = await app.inject({ url: '/api/nodes' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(none.json().error.code).toBe('FORESIGHT_ERR_UNAUTHORIZED');
    const wrong = await app.inject({ url: '/api/nodes', headers: { authorization: 'Bearer op-token-012345678' } });
    expect(wrong.statusCode).toBe(401);
    const scheme = await app.inject({ url: '/api/nodes', headers: { authorization: 'Basic b3A6dG9rZW4=' } });
    expect(scheme.statusCode).toBe(401);
  });

  it('lets viewers read but not act (403)', async () => {
    const { app, actions } = setup();
    expect((await app.inject({ url: '/api/audit', headers: VIEW })).statusCode).toBe(200);
    const res = await app.inject({
      method: 'POST',
      url: '/api/nodes/ast1/drain',
      headers: VIEW,
      payload: { reason: 'r' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('FORESIGHT_ERR_FORBIDDEN');
    expect(actions.calls).toHaveLength(0);
  });

  it('tells the dashboard who the token belongs to', async () => {
    const { app } = setup();
    expect((await app.inject({ url: '/api/session', headers: OP })).json()).toEqual({
      actor: 'alice',
      role: 'operator',
    });
  });

  it('accepts ?token= only on the event stream', async () => {
    const { app } = setup();
    const res = await app.inject({ url: '/api/nodes?token=view-token-0123456789' });
    expect(res.statusCode).toBe(401);
  });

  it('acts as operator `local` without a token only in open local mode', async () => {
    const { app, actions } = setup({ tokens: [], openLocalMode: true });
    const res = await app.inject({ method: 'POST', url: '/api/nodes/ast4/drain', payload: { reason: 'lab' } });
    expect(res.statusCode).toBe(200);
    expect(actions.calls[0]?.ctx.actor).toBe('local');
    const closed = setup({ tokens: [] });
    expect((await closed.app.inject({ url: '/api/nodes' })).statusCode).toBe(401);
  });

  it('keeps health probes and the page itself public', async () => {
    const { app } = setup();
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/' })).statusCode).toBe(200);
  });
});

describe('server-sent events', () => {
  async function open(app: ReturnType<typeof setup>['app'], query = '', headers: Record<string, string> = VIEW) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/api/events${query}`, { headers, signal: controller.signal });
    return { res, controller };
  }

  /** Reads SSE frames from one response body; call `next(n)` as often as needed. */
  function frames(res: Response) {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    const queue: { event: string; data: unknown }[] = [];
    return async function next(count: number): Promise<{ event: string; data: unknown }[]> {
      while (queue.length < count) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event && data) queue.push({ event, data: JSON.parse(data) });
        }
      }
      return queue.splice(0, count);
    };
  }

  it('sends a snapshot first, then score, node and audit events', async () => {
    const { app, cluster, actions } = setup();
    const { res, controller } = await open(app);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const next = frames(res);
    const [snapshot] = await next(1);
    expect(snapshot?.event).toBe('snapshot');
    expect((snapshot!.data as { nodes: unknown[] }).nodes).toHaveLength(4);

    cluster.applyScores([score('ast1', T0 + 10_000, 0.77)]);
    await actions.drain('ast1', { actor: 'alice', reason: 'test' });
    const got = await next(3);
    expect(got.map((f) => f.event)).toEqual(['scores', 'node', 'audit']);
    expect(got[0]?.data).toEqual([expect.objectContaining({ nodeId: 'ast1', risk: 0.77 })]);
    expect(got[1]?.data).toMatchObject({ nodeId: 'ast1', state: 'draining' });
    expect(got[2]?.data).toMatchObject({ kind: 'DrainStarting', actor: 'alice' });
    controller.abort();
  });

  it('accepts the token as a query parameter and refuses without one', async () => {
    const { app } = setup();
    const { res, controller } = await open(app, '?token=view-token-0123456789', {});
    expect(res.status).toBe(200);
    controller.abort();
    const { port } = app.server.address() as AddressInfo;
    const refused = await fetch(`http://127.0.0.1:${port}/api/events`);
    expect(refused.status).toBe(401);
    expect((await refused.json()).error.code).toBe('FORESIGHT_ERR_UNAUTHORIZED');
  });

  it('ends open streams on close', async () => {
    const { app } = setup();
    const { res } = await open(app);
    await frames(res)(1);
    expect(app.foresight.hub.size).toBe(1);
    await app.close();
    expect(app.foresight.hub.size).toBe(0);
  });
});

// Keeps the fixture honest: it must satisfy the ports the API expects.
const _check: (a: MemoryActions) => ApiDeps['actions'] & ApiDeps['audit'] = (a) => a;
void _check;
