import type { FastifyPluginAsync } from 'fastify';
import type { Access } from '../auth.js';
import type { ApiMetrics } from '../metrics.js';
import { clientErrors } from '../schemas.js';

export const metricsPlugin: FastifyPluginAsync<{ metrics: ApiMetrics; access: Access }> = async (
  app,
  { metrics, access },
) => {
  app.get(
    '/metrics',
    {
      config: { access },
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['metrics'],
        produces: ['text/plain'],
        response: { 200: { type: 'string' }, ...clientErrors },
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
};
