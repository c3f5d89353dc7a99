import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { ForesightError } from '../../errors.js';
import type { ClusterView } from '../cluster-view.js';
import {
  clientErrors,
  ErrorBody,
  HistoryQuery,
  HistoryResponse,
  NodeIdParams,
  NodesResponse,
  NodeViewSchema,
} from '../schemas.js';

export interface NodesPluginOptions {
  cluster: ClusterView;
  explain?: (nodeId: string) => Record<string, unknown> | null;
}

/** The engine's account of a node's state and of its last automatic decision; its fields may grow. */
const ExplanationSchema = Type.Object({}, { additionalProperties: true });

export const nodesPlugin: FastifyPluginAsync<NodesPluginOptions> = async (app, { cluster, explain }) => {
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

  app.get<{ Params: NodeIdParams }>(
    '/api/nodes/:id/why',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'Why the node is in its state, and why the last automatic decision was or was not taken',
        tags: ['nodes'],
        params: NodeIdParams,
        response: { 200: ExplanationSchema, 409: ErrorBody, ...clientErrors },
      },
    },
    async (request) => {
      if (!cluster.get(request.params.id)) {
        throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown node ${request.params.id}`);
      }
      if (!explain) throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'this replica is a standby: ask the leader');
      const why = explain(request.params.id);
      if (!why) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `no decision state for ${request.params.id}`);
      return why;
    },
  );
};
