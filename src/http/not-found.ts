// Unknown paths (404 PA_NOT_FOUND) and known paths asked with a method they do not serve (405
// PA_METHOD_NOT_ALLOWED with Allow), decided by Fastify's own router: the methods come from the
// routes as registered (onRoute), and for each the router says whether the path would match, so no
// copy of the routes can drift from them.

import type { FastifyReply, FastifyRequest } from 'fastify';

import { PullingAgentError } from '../errors.js';
import type { App } from './types.js';

export function registerNotFound(app: App): void {
  // In the order first registered (GET, HEAD, POST here), which is the order Allow lists them in.
  const methods = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) methods.add(method);
  });

  const refuse = async (request: FastifyRequest, reply: FastifyReply): Promise<never> => {
    const path = request.url.split('?')[0] ?? '/';
    // Each method the router would serve this path with, and how many path parameters its route
    // needed: /api/documents/retry is POST's own static route, while GET and DELETE would only
    // reach it as /api/documents/:id. Allow lists the methods of the most specific route only.
    const matches = [...methods].flatMap((method) => {
      if (method === request.method) return [];
      const route = app.findRoute({ method, url: path }) as { params?: Record<string, unknown> } | null;
      return route === null ? [] : [{ method, params: Object.keys(route.params ?? {}).length }];
    });
    const fewest = Math.min(...matches.map((m) => m.params));
    const allowed = matches.filter((m) => m.params === fewest).map((m) => m.method);
    if (allowed.length === 0) {
      throw new PullingAgentError('PA_NOT_FOUND', `no endpoint ${request.method} ${path}`);
    }
    reply.header('allow', allowed.join(', '));
    throw new PullingAgentError(
      'PA_METHOD_NOT_ALLOWED',
      `${request.method} is not allowed on ${path}; use ${allowed.join(' or ')}`,
      { allowed },
    );
  };

  app.setNotFoundHandler(refuse);
  // Fastify parses a request's body before its not-found handler runs; refusing here first means
  // a POST to an unknown path with a bad body, or an unknown method (QUERY, PROPFIND…), gets its
  // 404/405 rather than a parse error. Added before the authentication hook, as before: a request
  // no route serves is answered without asking who sends it.
  app.addHook('onRequest', async (request, reply) => {
    if (request.is404) await refuse(request, reply);
  });
}
