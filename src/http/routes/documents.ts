// /api/documents: feed work to the store (the embedded one has no other way in) and look at it.

import { Type } from 'typebox';

import { ErrorBody, PullingAgentError } from '../../errors.js';
import { DocumentBody, DocumentCountsBody, EnqueuedBody } from '../responses.js';
import type { App, RouteOptions } from '../types.js';

export const MAX_DOCUMENTS_PER_REQUEST = 10_000;

export function registerDocumentRoutes(app: App, { agent, security }: RouteOptions): void {
  app.post(
    '/api/documents',
    {
      config: { rateLimit: { max: security.rateLimitDocuments, timeWindow: 60_000 } },
      schema: {
        summary: 'Store documents as pending; answers with their ids in order',
        body: Type.Array(Type.Unknown(), {
          minItems: 1,
          maxItems: MAX_DOCUMENTS_PER_REQUEST,
          description: 'The documents (any JSON values).',
        }),
        response: {
          201: EnqueuedBody,
          '4xx': ErrorBody,
          '5xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      if (!Array.isArray(request.body)) {
        throw new PullingAgentError('PA_BAD_REQUEST', 'body must be a JSON array of documents');
      }
      const ids = await agent.store.insertDocuments(request.body);
      agent.notifyDocuments();
      return reply.status(201).send({ status: 'success' as const, count: ids.length, ids });
    },
  );

  app.get(
    '/api/documents',
    { schema: { summary: 'How many documents are in each status', response: { 200: DocumentCountsBody } } },
    async () => ({ counts: await agent.store.countDocuments() }),
  );

  app.get(
    '/api/documents/:id',
    {
      schema: {
        summary: 'One document',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 200: DocumentBody },
      },
    },
    async (request) => {
      const doc = await agent.store.getDocument(request.params.id);
      if (!doc) throw new PullingAgentError('PA_NOT_FOUND', `no document ${request.params.id}`);
      return {
        ...doc,
        created_at: doc.created_at.toISOString(),
        processed_at: doc.processed_at?.toISOString() ?? null,
      };
    },
  );
}
