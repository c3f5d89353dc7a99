import type { FastifyPluginAsync } from 'fastify';
import type { ApiModel } from '../deps.js';
import { clientErrors, ModelResponse } from '../schemas.js';

export const modelPlugin: FastifyPluginAsync<{ model: ApiModel }> = async (app, { model }) => {
  app.get(
    '/api/model',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'The model in use and its evaluation figures',
        tags: ['model'],
        response: { 200: ModelResponse, ...clientErrors },
      },
    },
    async () => model.info(),
  );
};
