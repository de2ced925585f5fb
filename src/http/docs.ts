// /docs: the interactive API viewer (swagger-ui), loaded on its first request rather than at
// start, since an agent is mostly never asked for it and swagger-ui with its static-file server
// costs about 4 MiB of an idle agent's memory (docs/operations.md). On that first request a small
// Fastify instance of its own is built with swagger-ui, serving the OpenAPI document this app
// generates; /docs and /docs/* are forwarded to it in memory (inject), so the answers go through
// this app's hooks (security headers, logging) and its error shape.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Fastify from 'fastify';

import { PullingAgentError } from '../errors.js';
import type { App } from './types.js';

const PREFIX = '/docs';
/** Not copied from the inner answer: this app's own reply sets them. */
const HOP_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'date', 'keep-alive']);

export function registerDocs(app: App): void {
  let viewer: Promise<FastifyInstance> | null = null;
  const load = (): Promise<FastifyInstance> =>
    (viewer ??= (async () => {
      const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([
        import('@fastify/swagger'),
        import('@fastify/swagger-ui'),
      ]);
      const docs = Fastify({ logger: false });
      // Static mode: the document is the one this app generated from its routes' schemas.
      await docs.register(swagger, { mode: 'static', specification: { document: app.swagger() as never } });
      await docs.register(swaggerUi, { routePrefix: PREFIX });
      await docs.ready();
      return docs;
    })().catch((error: unknown) => {
      viewer = null; // a failed load is tried again by the next request
      throw error;
    }));

  const forward = async (request: FastifyRequest, reply: FastifyReply) => {
    const docs = await load();
    // Asked as a GET even for a HEAD: this app's HEAD route sends the headers of the GET answer.
    const answer = await docs.inject({ method: 'GET', url: request.url, headers: request.headers });
    if (answer.statusCode === 404) {
      throw new PullingAgentError('PA_NOT_FOUND', `no documentation page ${request.url.split('?')[0]}`);
    }
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined && !HOP_HEADERS.has(name)) reply.header(name, value);
    }
    reply.status(answer.statusCode);
    // A redirect has no body (and so no content type to invent for one).
    return answer.rawPayload.length === 0 ? reply.send() : reply.send(answer.rawPayload);
  };

  // The API description is open to anyone; hidden from the OpenAPI document, as swagger-ui's own
  // routes were.
  const options = { config: { role: null }, schema: { hide: true } };
  app.get(PREFIX, options, forward);
  app.get(`${PREFIX}/*`, options, forward);
}
