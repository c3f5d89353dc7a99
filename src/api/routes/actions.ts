import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { DrainAction } from '../../messages.js';
import type { ApiActions } from '../deps.js';
import {
  ActionBody,
  ActionResponse,
  clientErrors,
  DecisionIdParams,
  ErrorBody,
  NodeIdParams,
  VerdictBody,
} from '../schemas.js';
import { strictValidator } from '../strict-validator.js';

export interface ActionsPluginOptions {
  actions: ApiActions;
  rateLimit: { max: number; timeWindowMs: number };
}

const SUMMARIES: Record<DrainAction, string> = {
  drain: 'Stop new calls to the node; active calls finish',
  undrain: 'Put the node back into rotation',
  restart: 'Drain, wait for calls to end, restart Asterisk, bring it back',
  pin: 'Never drain the node automatically',
  unpin: 'Let the model drain the node again',
};

function actorOf(request: FastifyRequest): string {
  // The auth hook guarantees a principal on operator routes.
  return request.principal?.actor ?? 'unknown';
}

export const actionsPlugin: FastifyPluginAsync<ActionsPluginOptions> = async (app, { actions, rateLimit }) => {
  const limit = { max: rateLimit.max, timeWindow: rateLimit.timeWindowMs };
  const errors = { ...clientErrors, 409: ErrorBody, 429: ErrorBody, 502: ErrorBody };

  for (const action of Object.keys(SUMMARIES) as DrainAction[]) {
    app.post<{ Params: NodeIdParams; Body: ActionBody }>(
      `/api/nodes/:id/${action}`,
      {
        config: { access: 'operator', rateLimit: limit },
        validatorCompiler: strictValidator,
        schema: {
          summary: SUMMARIES[action],
          tags: ['actions'],
          params: NodeIdParams,
          body: ActionBody,
          response: { 200: ActionResponse, ...errors },
        },
      },
      async (request) => {
        const ctx = { actor: actorOf(request), reason: request.body.reason.trim(), force: request.body.force ?? false };
        const audit = await actions[action](request.params.id, ctx);
        return { audit };
      },
    );
  }

  // Not a DrainAction: it changes who drives the node, not the node itself, and needs a reason like every action.
  app.post<{ Params: NodeIdParams; Body: ActionBody }>(
    '/api/nodes/:id/clear-override',
    {
      config: { access: 'operator', rateLimit: limit },
      validatorCompiler: strictValidator,
      schema: {
        summary:
          'End a manual override: Foresight drives the node again (a node left disabled by hand stays out until undrain)',
        tags: ['actions'],
        params: NodeIdParams,
        body: ActionBody,
        response: { 200: ActionResponse, ...errors },
      },
    },
    async (request) => {
      const ctx = { actor: actorOf(request), reason: request.body.reason.trim() };
      return { audit: await actions.clearOverride(request.params.id, ctx) };
    },
  );

  app.post<{ Params: DecisionIdParams; Body: VerdictBody }>(
    '/api/decisions/:id/verdict',
    {
      config: { access: 'operator', rateLimit: limit },
      schema: {
        summary:
          'Judge an automatic drain (correct or false alarm): a training label that also moves the drain threshold of the scorer that raised it',
        tags: ['actions'],
        params: DecisionIdParams,
        body: VerdictBody,
        response: { 200: ActionResponse, ...errors },
      },
    },
    async (request) => {
      const audit = await actions.verdict(request.params.id, {
        actor: actorOf(request),
        reason: request.body.reason.trim(),
        verdict: request.body.verdict,
      });
      return { audit };
    },
  );
};
