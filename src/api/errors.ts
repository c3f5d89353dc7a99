import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorCode, ForesightError } from '../errors.js';
import type { Logger } from '../log.js';

export interface ErrorBodyShape {
  error: { code: string; message: string };
}

export function errorBody(code: ErrorCode | string, message: string): ErrorBodyShape {
  return { error: { code, message } };
}

/** Error code for a client error fastify or a plugin raised with only a status. */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'FORESIGHT_ERR_UNAUTHORIZED';
    case 403:
      return 'FORESIGHT_ERR_FORBIDDEN';
    case 404:
      return 'FORESIGHT_ERR_NOT_FOUND';
    case 409:
      return 'FORESIGHT_ERR_CONFLICT';
    case 429:
      return 'FORESIGHT_ERR_RATE_LIMITED';
    default:
      return 'FORESIGHT_ERR_BAD_REQUEST';
  }
}

/**
 * One error shape for every answer: `{error: {code, message}}`. Client mistakes keep their 4xx status; anything else is
 * a 5xx with a generic message, logged here, so no stack trace or internal detail reaches the client.
 */
export function makeErrorHandler(logger: Logger) {
  return (err: FastifyError | ForesightError | Error, request: FastifyRequest, reply: FastifyReply): void => {
    if (err instanceof ForesightError) {
      if (err.status >= 500) logger.warn({ err, url: request.routeOptions.url }, 'request failed');
      if (err.code === 'FORESIGHT_ERR_RATE_LIMITED')
        void reply.header('retry-after', String(err.details.retryAfterS ?? 60));
      void reply.code(err.status).send(errorBody(err.code, err.message));
      return;
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      void reply.code(400).send(errorBody('FORESIGHT_ERR_BAD_REQUEST', fe.message));
      return;
    }
    const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
    if (status >= 400 && status < 500) {
      void reply
        .code(status)
        .send(errorBody(codeForStatus(status), fe.message || ERROR_CODES.FORESIGHT_ERR_BAD_REQUEST.message));
      return;
    }
    logger.error({ err, url: request.routeOptions.url }, 'unexpected error in a route');
    void reply.code(500).send(errorBody('FORESIGHT_ERR_INTERNAL', 'internal error'));
  };
}
