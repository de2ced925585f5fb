// GET / and GET /dashboard/<file>: the operator's dashboard, a static page that talks only to this
// agent's API. tsc does not copy its files into dist/, so they are read from src/http/dashboard/ at
// start-up (once) and served from memory, with a strict Content-Security-Policy.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';

import { errorBody } from '../../errors.js';
import type { App, RouteOptions } from '../types.js';

/** The only files served, with their content types: anything else is a 404, so no path escapes. */
const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/** The page loads nothing from elsewhere and runs no inline code, so 'self' is all it needs. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-cache',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * The folder beside the sources: dist/src/http/routes/ in the build, src/http/routes/ when run
 * from the TypeScript sources.
 */
function readAssets(): Map<string, Asset> | string {
  const tried: string[] = [];
  for (const relative of ['../../../../src/http/dashboard/', '../dashboard/']) {
    const folder = new URL(relative, import.meta.url);
    try {
      const assets = new Map<string, Asset>();
      for (const [name, type] of Object.entries(FILES)) {
        const body = readFileSync(new URL(name, folder));
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
        assets.set(name, { body, type, etag });
      }
      return assets;
    } catch {
      tried.push(folder.pathname);
    }
  }
  return `the dashboard's files are missing (looked in ${tried.join(' and ')})`;
}

export function dashboardRoutes(app: App, _options: RouteOptions): void {
  const assets = readAssets();
  if (typeof assets === 'string') app.log.warn(`Dashboard unavailable: ${assets}`);

  const send = (name: string, request: FastifyRequest, reply: FastifyReply) => {
    if (typeof assets === 'string') return reply.status(404).send(errorBody('PA_NOT_FOUND', assets));
    const asset = Object.hasOwn(FILES, name) ? assets.get(name) : undefined;
    if (!asset) {
      const known = Object.keys(FILES).join(', ');
      return reply.status(404).send(errorBody('PA_NOT_FOUND', `no dashboard file ${name} (${known})`));
    }
    reply.headers({ ...SECURITY_HEADERS, etag: asset.etag });
    if (request.headers['if-none-match'] === asset.etag) return reply.status(304).send();
    return reply.type(asset.type).send(asset.body);
  };

  // Open to anyone: the page holds no data, and its calls to the API carry the operator's token.
  const config = { role: null };
  app.get('/', { config, schema: { hide: true } }, (request, reply) => send('index.html', request, reply));
  app.get(
    '/dashboard/:file',
    { config, schema: { hide: true, params: Type.Object({ file: Type.String({ maxLength: 64 }) }) } },
    (request, reply) => send(request.params.file, request, reply),
  );
}
