// Who may call what. With tokens configured every request needs `Authorization: Bearer <token>`
// except the kubelet's probes, the dashboard's static page and the API description (and /metrics
// unless METRICS_AUTH=true). viewer: every read and the events stream; operator: pause, resume,
// agent commands, documents (store, retry, discard); admin: shutdown and everything else. Without tokens the API is open
// and the agent says so loudly.

import type { FastifyRequest } from 'fastify';

import { type ApiToken, findToken, type Role, roleAtLeast } from '../auth/tokens.js';
import { PullingAgentError } from '../errors.js';
import type { App } from './types.js';

export interface Actor {
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller, or null when authentication is off or the route is open. */
    actor: Actor | null;
  }
}

const OPEN_PATHS = new Set(['/health', '/readiness', '/', '/openapi.json']);
const OPEN_PREFIXES = ['/dashboard/', '/docs'];
const ADMIN_POSTS = new Set(['/api/cluster/shutdown', '/api/agent/shutdown']);

/** The role a request needs, or null when it is open to anyone. */
export function requiredRole(method: string, path: string, metricsAuth: boolean): Role | null {
  if (OPEN_PATHS.has(path) || OPEN_PREFIXES.some((prefix) => path.startsWith(prefix))) return null;
  if (path === '/metrics' && !metricsAuth) return null;
  if (method === 'GET' || method === 'HEAD') return 'viewer';
  if (method === 'POST' && ADMIN_POSTS.has(path)) return 'admin';
  if (method === 'POST' && (path.startsWith('/api/cluster/') || path.startsWith('/api/agent/'))) {
    return 'operator';
  }
  // Storing, retrying and discarding documents.
  if (
    (method === 'POST' || method === 'DELETE') &&
    (path === '/api/documents' || path.startsWith('/api/documents/'))
  ) {
    return 'operator';
  }
  return 'admin';
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? '';
}

export function registerAuth(app: App, tokens: readonly ApiToken[], metricsAuth: boolean): void {
  app.decorateRequest('actor', null);
  if (tokens.length === 0) return;
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const needed = requiredRole(request.method, path, metricsAuth);
    if (needed === null) return;
    const presented = bearer(request);
    const token = presented ? findToken(tokens, presented) : null;
    if (!token) {
      reply.header('www-authenticate', 'Bearer realm="pulling-agent"');
      throw new PullingAgentError(
        'PA_UNAUTHORIZED',
        presented === null
          ? 'authentication required: send Authorization: Bearer <token>'
          : 'the bearer token is not valid',
      );
    }
    if (!roleAtLeast(token.role, needed)) {
      throw new PullingAgentError(
        'PA_FORBIDDEN',
        `${token.name} has the role ${token.role}; ${request.method} ${path} needs ${needed}`,
        { required_role: needed, role: token.role },
      );
    }
    request.actor = { name: token.name, role: token.role };
  });
}
