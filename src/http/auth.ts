// Who may call what. Each route names the least role it needs in its own `config.role` (null: open
// to anyone, as the kubelet's probes, the dashboard's static page and the API description are);
// one onRequest hook reads it. viewer: every read and the events stream; operator: pause, resume,
// agent commands, documents; admin: shutdown and anything that names no role. With tokens
// configured every other request needs `Authorization: Bearer <token>`; without tokens the API is
// open and the agent says so loudly.

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
  interface FastifyContextConfig {
    /** The least role that may call this route; null: open to anyone. A route without one needs admin. */
    role?: Role | null;
  }
}

/** A route that names no role is closed to all but admins, so that a forgotten one fails safe. */
const UNDECLARED: Role = 'admin';

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? '';
}

export function registerAuth(app: App, tokens: readonly ApiToken[]): void {
  app.decorateRequest('actor', null);
  if (tokens.length === 0) return;
  app.addHook('onRequest', async (request, reply) => {
    const declared = request.routeOptions.config.role;
    const needed = declared === undefined ? UNDECLARED : declared;
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
      const path = request.url.split('?')[0] ?? '/';
      throw new PullingAgentError(
        'PA_FORBIDDEN',
        `${token.name} has the role ${token.role}; ${request.method} ${path} needs ${needed}`,
        { required_role: needed, role: token.role },
      );
    }
    request.actor = { name: token.name, role: token.role };
  });
}
