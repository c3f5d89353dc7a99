import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import { ForesightError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { type Access, type ApiToken, allows, bearerToken, type Principal, TokenVerifier } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorBody, makeErrorHandler } from './errors.js';
import { ApiMetrics } from './metrics.js';
import { actionsPlugin } from './routes/actions.js';
import { auditPlugin } from './routes/audit.js';
import { configPlugin } from './routes/config.js';
import { dashboardPlugin } from './routes/dashboard.js';
import { eventsPlugin } from './routes/events.js';
import { healthPlugin } from './routes/health.js';
import { metricsPlugin } from './routes/metrics.js';
import { modelPlugin } from './routes/model.js';
import { nodesPlugin } from './routes/nodes.js';
import { sessionPlugin } from './routes/session.js';
import { SseHub } from './sse.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request; null on public routes without a token. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Who may call the route. Routes without it are public, except under /api/ and /metrics (viewer). */
    access?: Access;
    /** Accept the token as `?token=` (only the SSE route, which EventSource cannot give headers). */
    queryToken?: boolean;
  }
}

export interface ApiOptions {
  /** Bearer tokens with their names and roles. */
  tokens?: readonly ApiToken[];
  /** Without a token, requests act as operator `local`. Only for a laptop or a lab: say so explicitly. */
  openLocalMode?: boolean;
  logger?: Logger;
  /** Mutations per actor (token name, else client address) per window. Default 30 per minute. */
  rateLimit?: { max: number; timeWindowMs: number };
  /** Dashboard assets folder; defaults to the package's public/. */
  publicDir?: string;
  /** Who may read /metrics; default viewer (Prometheus sends `bearer_token`). */
  metricsAccess?: Access;
  /** Serve OpenAPI at /docs. Default true. */
  docs?: boolean;
  sseHeartbeatMs?: number;
  bodyLimitBytes?: number;
}

/** What buildApp adds for the wiring: the metrics to update. */
export interface ApiHandles {
  metrics: ApiMetrics;
  hub: SseHub;
}

function defaultAccess(url: string): Access {
  return url.startsWith('/api') || url.startsWith('/metrics') ? 'viewer' : 'public';
}

/**
 * Builds the Foresight HTTP API and dashboard without listening, so tests drive it with `inject()` and the wiring decides
 * where it listens. Close it with `app.close()`, which also ends the SSE streams.
 */
export function buildApp(deps: ApiDeps, options: ApiOptions = {}): FastifyInstance & { foresight: ApiHandles } {
  const logger = (options.logger ?? silentLogger()).child({ component: 'api' });
  const verifier = new TokenVerifier(options.tokens ?? []);
  const openLocalMode = options.openLocalMode === true;
  const metrics = deps.metrics ?? new ApiMetrics(deps.registry);
  const hub = new SseHub(deps.cluster, options.sseHeartbeatMs);
  const stopFollowing = metrics.follow(deps.cluster);

  const app = Fastify({
    loggerInstance: logger,
    // Fastify's per-request lines would log the URL, and `?token=` with it; onResponse logs the route instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    // Malformed URLs and the like get the same JSON error shape as everything else.
    frameworkErrors: (err, _request, reply) => {
      void (reply as FastifyReply).code(400).send(errorBody('FORESIGHT_ERR_BAD_REQUEST', err.message));
    },
  }) as unknown as FastifyInstance;

  app.decorateRequest('principal', null);
  app.setErrorHandler(makeErrorHandler(logger));
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send(errorBody('FORESIGHT_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  // Authentication runs first on every route; rate limiting runs after it (preHandler) so it can key on the actor.
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    const access = config.access ?? defaultAccess(request.url);
    let presented = bearerToken(request.headers.authorization);
    if (presented === null && config.queryToken) {
      const token = (request.query as { token?: unknown } | undefined)?.token;
      if (typeof token === 'string' && token.length > 0) presented = token;
    }
    if (presented !== null) {
      request.principal = verifier.verify(presented);
      if (request.principal === null && access !== 'public') {
        throw new ForesightError('FORESIGHT_ERR_UNAUTHORIZED', 'unknown bearer token');
      }
    } else if (openLocalMode) {
      request.principal = { actor: 'local', role: 'operator' };
    }
    if (access === 'public') return;
    if (request.principal === null) {
      throw new ForesightError('FORESIGHT_ERR_UNAUTHORIZED', 'send Authorization: Bearer <token>');
    }
    if (!allows(request.principal, access)) {
      throw new ForesightError('FORESIGHT_ERR_FORBIDDEN', `${access} role required`);
    }
  });
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode === 401 && request.principal === null) void reply.header('www-authenticate', 'Bearer');
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    logger.debug(
      { method: request.method, route: request.routeOptions.url, status: reply.statusCode, ms: reply.elapsedTime },
      'request',
    );
  });
  app.addHook('preClose', async () => {
    // Open SSE streams would otherwise hold close() forever.
    hub.close();
    stopFollowing();
  });

  const limits = options.rateLimit ?? { max: 30, timeWindowMs: 60_000 };
  void app.register(rateLimit, {
    global: false,
    hook: 'preHandler',
    keyGenerator: (request) => request.principal?.actor ?? request.ip,
    errorResponseBuilder: (_request, context) =>
      new ForesightError('FORESIGHT_ERR_RATE_LIMITED', `too many changes, retry in ${context.after}`, {
        details: { retryAfterS: Math.ceil(context.ttl / 1000) },
      }),
  });

  if (options.docs !== false) {
    void app.register(swagger, {
      openapi: {
        info: {
          title: 'Foresight API',
          version: '1',
          description: 'Predict Asterisk node failures; drain before they crash',
        },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      },
    });
    void app.register(swaggerUi, { routePrefix: '/docs' });
  }

  void app.register(healthPlugin, { health: deps.health });
  void app.register(sessionPlugin);
  void app.register(nodesPlugin, { cluster: deps.cluster, explain: deps.explain });
  void app.register(actionsPlugin, { actions: deps.actions, rateLimit: limits });
  void app.register(auditPlugin, { audit: deps.audit });
  void app.register(modelPlugin, { model: deps.model });
  void app.register(configPlugin, { config: deps.config });
  void app.register(eventsPlugin, { hub });
  void app.register(metricsPlugin, { metrics, access: options.metricsAccess ?? 'viewer' });
  void app.register(dashboardPlugin, { publicDir: options.publicDir });

  const handles: ApiHandles = { metrics, hub };
  return Object.assign(app, { foresight: handles });
}
