import type { FastifyPluginAsync } from 'fastify';
import { ForesightError } from '../../errors.js';
import type { ApiModel } from '../deps.js';
import {
  ActionResponse,
  clientErrors,
  ErrorBody,
  ModelResponse,
  RollbackBody,
  ThresholdsResponse,
} from '../schemas.js';
import { strictValidator } from '../strict-validator.js';

export const modelPlugin: FastifyPluginAsync<{ model: ApiModel }> = async (app, { model }) => {
  app.get(
    '/api/model',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'The scorer that drives decisions, since when and why, and its evaluation figures',
        tags: ['model'],
        response: { 200: ModelResponse, ...clientErrors },
      },
    },
    async () => model.info(),
  );

  app.get(
    '/api/model/thresholds',
    {
      config: { access: 'viewer' },
      schema: {
        summary: "Each scorer's effective drain threshold as operators' verdicts moved it, and the bound",
        tags: ['model'],
        response: { 200: ThresholdsResponse, ...clientErrors },
      },
    },
    async () => {
      if (!model.thresholds) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', 'no threshold feedback in this app');
      return model.thresholds();
    },
  );

  app.post<{ Body: RollbackBody }>(
    '/api/model/rollback',
    {
      config: { access: 'operator' },
      validatorCompiler: strictValidator,
      schema: {
        summary: 'Put the previous scorer back in charge of decisions (model lifecycle); a second rollback undoes it',
        tags: ['model'],
        body: RollbackBody,
        response: { 200: ActionResponse, ...clientErrors, 409: ErrorBody },
      },
    },
    async (request) => {
      if (!model.rollback) {
        throw new ForesightError('FORESIGHT_ERR_CONFLICT', 'no model lifecycle runs here (model.lifecycle.enabled)');
      }
      const audit = await model.rollback({
        actor: request.principal?.actor ?? 'unknown',
        reason: request.body.reason.trim(),
      });
      return { audit };
    },
  );
};
