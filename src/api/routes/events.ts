import type { FastifyPluginAsync } from 'fastify';
import { clientErrors, EventsQuery } from '../schemas.js';
import type { SseHub } from '../sse.js';

export const eventsPlugin: FastifyPluginAsync<{ hub: SseHub }> = async (app, { hub }) => {
  app.get(
    '/api/events',
    {
      // The only route that also accepts `?token=`, because EventSource cannot send headers.
      config: { access: 'viewer', queryToken: true },
      schema: {
        summary: 'Server-Sent Events: snapshot, then scores, node and audit events',
        description:
          'text/event-stream. Events: `snapshot` {threshold, nodes}, `scores` [{nodeId, ts, risk, ...}], `node` NodeView, `audit` AuditRecord.',
        tags: ['events'],
        querystring: EventsQuery,
        response: { ...clientErrors },
      },
    },
    async (request, reply) => {
      reply.hijack();
      hub.attach(reply.raw);
      request.raw.socket.setNoDelay(true);
    },
  );
};
