import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { ForesightError } from '../../errors.js';

export interface DashboardPluginOptions {
  /** Folder holding index.html, app.js and style.css; found next to the package when absent. */
  publicDir?: string;
}

/** Walks up from this module to the package root, so the lookup works from src/ (tsx) and from dist/ alike. */
export function findPublicDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'public', 'index.html'))) return join(dir, 'public');
    dir = dirname(dir);
  }
  throw new ForesightError('FORESIGHT_ERR_CONFIG', 'dashboard assets (public/index.html) not found');
}

function uplotDistDir(): string {
  return dirname(createRequire(import.meta.url).resolve('uplot'));
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * Serves the dashboard from a fixed list of files read once at start: no path from the request ever reaches the file
 * system. The page holds no data; it asks the API with the operator's token.
 */
export const dashboardPlugin: FastifyPluginAsync<DashboardPluginOptions> = async (app, options) => {
  const publicDir = options.publicDir ?? findPublicDir();
  const uplot = uplotDistDir();
  const files: [string, string, string][] = [
    ['/', join(publicDir, 'index.html'), 'text/html; charset=utf-8'],
    ['/app.js', join(publicDir, 'app.js'), 'text/javascript; charset=utf-8'],
    ['/style.css', join(publicDir, 'style.css'), 'text/css; charset=utf-8'],
    ['/vendor/uplot/uPlot.iife.min.js', join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['/vendor/uplot/uPlot.min.css', join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  for (const [url, path, type] of files) {
    const body = readFileSync(path);
    app.get(url, { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) =>
      reply.headers(SECURITY_HEADERS).type(type).header('cache-control', 'no-cache').send(body),
    );
  }
};
