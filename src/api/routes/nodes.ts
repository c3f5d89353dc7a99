import type { FastifyPluginAsync } from 'fastify';
import { ForesightError } from '../../errors.js';
import type { ClusterView } from '../cluster-view.js';
import {
  clientErrors,
  HistoryQuery,
  HistoryResponse,
  NodeIdParams,
  NodesResponse,
  NodeViewSchema,
} from '../schemas.js';

export interface NodesPluginOptions {
  cluster: ClusterView;
}

export const nodesPlugin: FastifyPluginAsync<NodesPluginOptions> = async (app, { cluster }) => {
  // The node list is read far more often than it changes: serialise once per view version.
  let cached: { version: number; body: Buffer } | null = null;

  app.get(
    '/api/nodes',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'Every node: state, risk, time to failure, explanation, active calls, latest features',
        tags: ['nodes'],
        response: { 200: NodesResponse, ...clientErrors },
      },
    },
    async (_request, reply) => {
      if (cached?.version !== cluster.version) {
        const version = cluster.version;
        cached = {
          version,
          body: Buffer.from(JSON.stringify({ threshold: cluster.threshold, nodes: cluster.list() })),
        };
      }
      return reply.type('application/json; charset=utf-8').send(cached.body);
    },
  );

  app.get<{ Params: NodeIdParams }>(
    '/api/nodes/:id',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'One node',
        tags: ['nodes'],
        params: NodeIdParams,
        response: { 200: NodeViewSchema, ...clientErrors },
      },
    },
    async (request) => {
      const view = cluster.get(request.params.id);
      if (!view) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown node ${request.params.id}`);
      return view;
    },
  );

  app.get<{ Params: NodeIdParams; Querystring: HistoryQuery }>(
    '/api/nodes/:id/history',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'Risk history of a node, newest page first; each page is oldest first',
        tags: ['nodes'],
        params: NodeIdParams,
        querystring: HistoryQuery,
        response: { 200: HistoryResponse, ...clientErrors },
      },
    },
    async (request) => {
      const page = cluster.historyPage(request.params.id, request.query.before, request.query.limit ?? 360);
      if (!page) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown node ${request.params.id}`);
      return page;
    },
  );
};
