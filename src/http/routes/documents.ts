// /api/documents: feed work to the store (the embedded one has no other way in), look at it, and
// deal with what failed: list a status (dead letters with status=failed), read one, retry one or
// every failed one, discard one. Changes are logged with their actor.

import type { FastifyRequest } from 'fastify';
import { type Static, Type } from 'typebox';

import { DURATION_PATTERN } from '../../control/duration.js';
import { ErrorBody, PullingAgentError } from '../../errors.js';
import { DOCUMENT_STATUSES } from '../../model/documents.js';
import { emptyCounts } from '../../stores/queues.js';
import { type DocumentRecord } from '../../stores/types.js';
import {
  type EnqueueRequest,
  MAX_DOCUMENTS_PER_REQUEST,
  MAX_KEY_LENGTH,
  parseEnqueueRequest,
} from '../enqueue.js';
import {
  DiscardedBody,
  DocumentBody,
  DocumentListBody,
  EnqueuedBody,
  QueueListBody,
  RetriedAllBody,
  RetriedBody,
} from '../responses.js';
import { AuditText, QueueName } from '../schemas.js';
import type { App, RouteOptions } from '../types.js';

export { MAX_DOCUMENTS_PER_REQUEST } from '../enqueue.js';

export const LIST_LIMIT_MAX = 500;
export const LIST_LIMIT_DEFAULT = 50;

const NO_CONTROL_CHARS = '^[^\\u0000-\\u001f\\u007f]*$';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

const ActorQuery = Type.Object(
  { updated_by: Type.Optional(AuditText('Who, for the log line. Default: api; with a token, its name.')) },
  { additionalProperties: false },
);

const EnqueueQuery = Type.Object(
  {
    run_at: Type.Optional(
      Type.String({
        maxLength: 64,
        description:
          'Due time of every document of the request (ISO 8601 with a zone), at most 1 year ahead; a past time is due now.',
      }),
    ),
    delay: Type.Optional(
      Type.String({
        maxLength: 32,
        pattern: DURATION_PATTERN,
        description:
          'Due after this long, for every document of the request: 30s, 15m, 2h, 1d (at most 365 d).',
      }),
    ),
    queue: Type.Optional(
      QueueName("The queue of every document of the request; a document's own queue wins."),
    ),
  },
  { additionalProperties: false },
);

const NullableText = (schema: ReturnType<typeof Type.String>) =>
  Type.Optional(Type.Union([schema, Type.Null()]));

const EnqueueBody = Type.Union([
  Type.Array(Type.Unknown(), {
    minItems: 1,
    maxItems: MAX_DOCUMENTS_PER_REQUEST,
    description: 'The documents (any JSON values).',
  }),
  Type.Object(
    {
      documents: Type.Array(
        Type.Object(
          {
            payload: Type.Unknown({ description: 'The document (any JSON value).' }),
            run_at: NullableText(Type.String({ description: 'Its own due time; wins over the query.' })),
            delay: NullableText(
              Type.String({ pattern: DURATION_PATTERN, description: 'Its own delay; wins over the query.' }),
            ),
            key: NullableText(
              Type.String({
                minLength: 1,
                maxLength: MAX_KEY_LENGTH,
                description:
                  'Deduplication key: while a document with it is unfinished, another is not stored.',
              }),
            ),
            queue: Type.Optional(Type.Union([QueueName('Its own queue; wins over the query.'), Type.Null()])),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: MAX_DOCUMENTS_PER_REQUEST },
      ),
    },
    { additionalProperties: false, description: 'Documents with their own options.' },
  ),
]);

const ListQuery = Type.Object(
  {
    status: Type.Optional(
      Type.Enum([...DOCUMENT_STATUSES], { description: 'Only this status; all by default.' }),
    ),
    queue: Type.Optional(QueueName("Only this queue's documents (and its counts); every queue by default.")),
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: LIST_LIMIT_MAX,
        default: LIST_LIMIT_DEFAULT,
        description: `Documents per page (1–${LIST_LIMIT_MAX}, default ${LIST_LIMIT_DEFAULT}).`,
      }),
    ),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        pattern: NO_CONTROL_CHARS,
        description: 'The next_cursor of the previous page.',
      }),
    ),
  },
  { additionalProperties: false },
);

const RetryAllQuery = Type.Object(
  {
    status: Type.String({
      maxLength: 32,
      description: 'Must be `failed`: every failed document is retried.',
    }),
    updated_by: Type.Optional(AuditText('Who, for the log line. Default: api; with a token, its name.')),
  },
  { additionalProperties: false },
);

const iso = (date: Date | null) => date?.toISOString() ?? null;

function summaryJson(doc: DocumentRecord) {
  return {
    id: doc.id,
    status: doc.status,
    queue: doc.queue,
    attempts: doc.attempts,
    claimed_by: doc.claimed_by,
    error: doc.error,
    created_at: doc.created_at.toISOString(),
    updated_at: (doc.updated_at ?? doc.created_at).toISOString(),
    processed_at: iso(doc.processed_at),
    run_at: iso(doc.run_at ?? null),
    key: doc.key ?? null,
  };
}

function documentJson(doc: DocumentRecord) {
  return { ...doc, ...summaryJson(doc) };
}

/** Who acts: the token's name, else the `updated_by` given, else `api` (as for cluster commands). */
function actorOf(request: FastifyRequest): string {
  const given = (request.query as { updated_by?: string } | undefined)?.updated_by;
  return request.actor?.name ?? given ?? 'api';
}

export function documentRoutes(app: App, { view, security }: RouteOptions): void {
  const rateLimit = { max: security.rateLimitDocuments, timeWindow: 60_000 };
  // Parsed before Fastify's own validation, so that every problem is told in words.
  const parsed = new WeakMap<FastifyRequest, EnqueueRequest>();
  /** One queue's counts (zeros for a queue without documents: queues come with their documents). */
  const countsOfQueue = async (queue: string) =>
    (await view.store.countQueues()).find((q) => q.queue === queue)?.counts ?? emptyCounts();

  app.post(
    '/api/documents',
    {
      config: { role: 'operator', rateLimit },
      schema: {
        summary: 'Store documents as pending (or scheduled); answers with their ids in order',
        description:
          'A JSON array of documents, or {"documents": [{payload, run_at, delay, key, queue}]} for per-document options.',
        querystring: EnqueueQuery,
        body: EnqueueBody,
        response: {
          201: EnqueuedBody,
          '4xx': ErrorBody,
          '5xx': ErrorBody,
        },
      },
      preValidation: async (request) => {
        parsed.set(
          request,
          parseEnqueueRequest(request.body, request.query as Record<string, unknown>, view.storeNow()),
        );
      },
    },
    async (request, reply) => {
      const input = parsed.get(request) ?? parseEnqueueRequest(request.body, request.query, view.storeNow());
      let ids: string[];
      let duplicates: string[] = [];
      if (input.plain) {
        ids = await view.store.insertDocuments(input.documents.map((d) => d.payload));
      } else {
        const stored = await view.store.enqueueDocuments(input.documents);
        ids = stored.map((s) => s.id);
        duplicates = stored.filter((s) => s.duplicate).map((s) => s.id);
      }
      view.notifyDocuments();
      return reply.status(201).send({ status: 'success' as const, count: ids.length, ids, duplicates });
    },
  );

  app.get(
    '/api/documents',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'How many documents are in each status, and a page of them (without payloads)',
        querystring: ListQuery,
        response: { 200: DocumentListBody },
      },
    },
    async (request) => {
      const { status, queue, limit = LIST_LIMIT_DEFAULT, cursor } = request.query as Static<typeof ListQuery>;
      const [counts, page] = await Promise.all([
        queue === undefined ? view.store.countDocuments() : countsOfQueue(queue),
        view.store
          .listDocuments({
            ...(status ? { status } : {}),
            ...(queue !== undefined ? { queue } : {}),
            limit,
            after: cursor ?? null,
          })
          .catch((error: unknown) => {
            // A store that cannot read the cursor says so with a 4xx; a TypeError or a RangeError
            // from decoding it is the cursor's fault too, not the store's.
            if (
              cursor !== undefined &&
              !(error instanceof PullingAgentError) &&
              (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError)
            ) {
              throw new PullingAgentError(
                'PA_BAD_REQUEST',
                'query parameter cursor is not a cursor this API gave (pass next_cursor as it was answered)',
              );
            }
            throw error;
          }),
      ]);
      return { counts, documents: page.documents.map(summaryJson), next_cursor: page.next };
    },
  );

  app.get(
    '/api/queues',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Every queue that has documents, by name, with how many are in each status',
        response: { 200: QueueListBody },
      },
    },
    async () => {
      const queues = await view.store.countQueues();
      return { queues, count: queues.length };
    },
  );

  app.get(
    '/api/documents/:id',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'One document: status, attempts, last error, when it is due, key, payload',
        params: IdParams,
        response: { 200: DocumentBody },
      },
    },
    async (request) => {
      const doc = await view.store.getDocument(request.params.id);
      if (!doc) throw new PullingAgentError('PA_NOT_FOUND', `no document ${request.params.id}`);
      return documentJson(doc);
    },
  );

  app.post(
    '/api/documents/:id/retry',
    {
      config: { role: 'operator', rateLimit },
      schema: {
        summary: 'Put one failed document back to pending, due now, with a fresh retry budget',
        params: IdParams,
        querystring: ActorQuery,
        response: { 200: RetriedBody },
      },
    },
    async (request) => {
      const { id } = request.params;
      const notFailed = (doc: DocumentRecord | null) =>
        doc
          ? new PullingAgentError(
              'PA_NOT_FAILED',
              `document ${id} is ${doc.status}, not failed: only a failed document can be retried`,
              { document_status: doc.status },
            )
          : new PullingAgentError('PA_NOT_FOUND', `no document ${id}`);
      const doc = await view.store.getDocument(id);
      if (doc?.status !== 'failed') throw notFailed(doc);
      const count = await view.store.retryDocuments({ ids: [id] });
      const now = await view.store.getDocument(id);
      // Retried or discarded by someone else in between: say what it is now.
      if (count === 0 || !now) throw notFailed(now);
      request.log.info(
        { action: 'retry', document: id, actor: actorOf(request), attempts: now.attempts },
        `Document ${id} retried by ${actorOf(request)}`,
      );
      view.notifyDocuments();
      return { status: 'success' as const, count, document: documentJson(now) };
    },
  );

  app.post(
    '/api/documents/retry',
    {
      config: { role: 'operator', rateLimit },
      schema: {
        summary: 'Put every failed document back to pending, due now, with a fresh retry budget',
        querystring: RetryAllQuery,
        response: { 200: RetriedAllBody },
      },
    },
    async (request) => {
      const { status } = request.query as Static<typeof RetryAllQuery>;
      if (status !== 'failed') {
        throw new PullingAgentError(
          'PA_BAD_REQUEST',
          `query parameter status must be failed (only failed documents can be retried in bulk); got ${JSON.stringify(status)}`,
        );
      }
      const count = await view.store.retryDocuments({ status: 'failed' });
      request.log.info(
        { action: 'retry_all_failed', count, actor: actorOf(request) },
        `${count} failed document(s) retried by ${actorOf(request)}`,
      );
      if (count > 0) view.notifyDocuments();
      return { status: 'success' as const, count };
    },
  );

  app.delete(
    '/api/documents/:id',
    {
      config: { role: 'operator', rateLimit },
      schema: {
        summary: 'Discard one document (not while it is processing)',
        params: IdParams,
        querystring: ActorQuery,
        response: { 200: DiscardedBody },
      },
    },
    async (request) => {
      const { id } = request.params;
      const outcome = await view.store.deleteDocument(id);
      if (outcome === 'not_found') throw new PullingAgentError('PA_NOT_FOUND', `no document ${id}`);
      if (outcome === 'processing') {
        throw new PullingAgentError(
          'PA_DOCUMENT_PROCESSING',
          `document ${id} is being processed: it can be discarded once it is processed or failed`,
          { document_status: 'processing' },
        );
      }
      request.log.info(
        { action: 'discard', document: id, actor: actorOf(request) },
        `Document ${id} discarded by ${actorOf(request)}`,
      );
      return { status: 'success' as const, id, message: `document ${id} discarded` };
    },
  );
}
