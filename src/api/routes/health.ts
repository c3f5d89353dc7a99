import type { FastifyPluginAsync } from 'fastify';
import { errorMessage } from '../../errors.js';
import type { HealthCheck } from '../deps.js';
import { Liveness, Readiness } from '../schemas.js';

export const healthPlugin: FastifyPluginAsync<{ health: () => HealthCheck[] | Promise<HealthCheck[]> }> = async (
  app,
  { health },
) => {
  app.get(
    '/healthz',
    {
      config: { access: 'public' },
      schema: { summary: 'Liveness: the process answers', tags: ['health'], response: { 200: Liveness } },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Readiness: bus, dispatcher and collectors; 503 when any check fails',
        tags: ['health'],
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      let checks: HealthCheck[];
      try {
        checks = await health();
      } catch (err) {
        checks = [{ name: 'health', ok: false, detail: errorMessage(err) }];
      }
      const ready = checks.every((c) => c.ok);
      return reply.code(ready ? 200 : 503).send({ ready, checks });
    },
  );
};
