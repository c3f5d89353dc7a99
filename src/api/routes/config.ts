import type { FastifyPluginAsync } from 'fastify';
import { ConfigResponse, clientErrors } from '../schemas.js';

const SECRET_KEY = /(pass(word)?|secret|token|api[-_]?key|credential|private[-_]?key)/i;

/** Second line of defence: the config module redacts, and the API never shows a secret-looking key's value either. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 32) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = SECRET_KEY.test(key) && v !== null && v !== '' ? '[redacted]' : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}

export const configPlugin: FastifyPluginAsync<{ config: () => Record<string, unknown> }> = async (app, { config }) => {
  app.get(
    '/api/config',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'The effective configuration, secrets redacted',
        tags: ['config'],
        response: { 200: ConfigResponse, ...clientErrors },
      },
    },
    async () => redact(config()),
  );
};
