import type { FastifyPluginAsync } from 'fastify';
import type { ApiAudit } from '../deps.js';
import { AuditPage, AuditQuerySchema, clientErrors } from '../schemas.js';

export const auditPlugin: FastifyPluginAsync<{ audit: ApiAudit }> = async (app, { audit }) => {
  app.get<{ Querystring: AuditQuerySchema }>(
    '/api/audit',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'The audit trail, newest first, filtered by node and kind, paged by seq',
        tags: ['audit'],
        querystring: AuditQuerySchema,
        response: { 200: AuditPage, ...clientErrors },
      },
    },
    async (request) => {
      const { nodeId, kind, before, since } = request.query;
      const limit = request.query.limit ?? 50;
      const items = await audit.query({ nodeId, kind, beforeSeq: before, since, limit });
      const page = items.slice(0, limit);
      const last = page[page.length - 1];
      return { items: page, nextBefore: page.length === limit && last ? last.seq : null };
    },
  );
};
