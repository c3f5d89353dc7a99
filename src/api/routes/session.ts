import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { clientErrors } from '../schemas.js';

const Session = Type.Object({
  actor: Type.String(),
  role: Type.Union([Type.Literal('viewer'), Type.Literal('operator')]),
});

/** Lets the dashboard check a token and show the override buttons only to operators. */
export const sessionPlugin: FastifyPluginAsync = async (app) => {
  app.get(
    '/api/session',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'Who the token belongs to and its role',
        tags: ['auth'],
        response: { 200: Session, ...clientErrors },
      },
    },
    async (request) => request.principal!,
  );
};
