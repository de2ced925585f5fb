// What POST /api/documents accepts, checked before anything is stored: the seed's JSON array of
// payloads, or the envelope `{"documents": [{payload, run_at, delay, key}, …]}`, and `run_at` or
// `delay` in the query for the whole request (a document's own option wins). Every problem is a
// PullingAgentError (400) naming the field; a request with one stores nothing.

import { parseDuration } from '../control/duration.js';
import { PullingAgentError } from '../errors.js';
import { queueNameProblem } from '../model/policy.js';
import type { NewDocument } from '../stores/types.js';

export const MAX_DOCUMENTS_PER_REQUEST = 10_000;
/** How far ahead a document may be scheduled: one year (run_at or delay). */
export const MAX_SCHEDULE_AHEAD_MS = 365 * 86_400_000;
export const MAX_KEY_LENGTH = 512;

/** ISO 8601 with a time and a zone: `2026-01-11T10:30:00Z`, `2026-01-11T11:30:00.5+01:00`. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})$/;

export const RUN_AT_RULE =
  'must be an ISO 8601 time with a zone, such as 2026-01-11T10:30:00Z, at most 1 year ahead';
export const DELAY_RULE = 'must be a duration such as 30s, 15m, 2h or 1d (0 s to 365 d)';
const ENVELOPE_FIELDS = new Set(['payload', 'run_at', 'delay', 'key', 'queue']);

export interface EnqueueRequest {
  documents: NewDocument[];
  /** No document has a due time, a key or a queue: the seed's plain insert does. */
  plain: boolean;
}

const bad = (message: string) => new PullingAgentError('PA_BAD_REQUEST', message);

function dueAt(where: string, options: { run_at?: unknown; delay?: unknown }, now: number): Date | null {
  const { run_at: runAt, delay } = options;
  if (runAt !== undefined && delay !== undefined) throw bad(`${where}: give run_at or delay, not both`);
  if (runAt !== undefined) {
    const ms = typeof runAt === 'string' && ISO_TIME.test(runAt) ? Date.parse(runAt) : Number.NaN;
    if (Number.isNaN(ms)) throw bad(`${where} run_at ${RUN_AT_RULE}; got ${JSON.stringify(runAt)}`);
    if (ms - now > MAX_SCHEDULE_AHEAD_MS)
      throw bad(`${where} run_at ${runAt} is more than 1 year ahead (the limit)`);
    // A time in the past is due now; the store takes it as given.
    return new Date(ms);
  }
  if (delay !== undefined) {
    const ms = typeof delay === 'string' && delay.length <= 32 ? parseDuration(delay) : null;
    if (ms === null || ms > MAX_SCHEDULE_AHEAD_MS)
      throw bad(`${where} delay ${DELAY_RULE}; got ${JSON.stringify(delay)}`);
    return new Date(now + ms);
  }
  return null;
}

function checkKey(where: string, key: unknown): string | null {
  if (key === undefined || key === null) return null;
  if (typeof key !== 'string') throw bad(`${where} key must be a string`);
  if (key.length === 0 || key.length > MAX_KEY_LENGTH)
    throw bad(`${where} key must be 1 to ${MAX_KEY_LENGTH} characters (got ${key.length})`);
  return key;
}

function checkQueue(where: string, queue: unknown): string | undefined {
  if (queue === undefined || queue === null) return undefined;
  const problem = queueNameProblem(queue);
  if (problem !== null) throw bad(`${where}: ${problem}`);
  return queue as string;
}

/** Absent when not given, so that a document without a queue stays as the store defaults it. */
const withQueue = (queue: string | undefined) => (queue === undefined ? {} : { queue });

/**
 * The documents to store, with their due times, keys and queues; throws a 400 naming the first
 * problem.
 */
export function parseEnqueueRequest(
  body: unknown,
  query: { run_at?: unknown; delay?: unknown; queue?: unknown },
  now = Date.now(),
): EnqueueRequest {
  const shared = dueAt('query parameter', query, now);
  const sharedQueue = checkQueue('query parameter queue', query.queue);
  const list = Array.isArray(body)
    ? body
    : typeof body === 'object' && body !== null && 'documents' in body
      ? (body as { documents: unknown }).documents
      : undefined;
  if (!Array.isArray(list)) {
    throw bad(
      body === undefined
        ? 'body must be a JSON array of documents (or {"documents": [...]}); the request had none'
        : 'body must be a JSON array of documents, or {"documents": [{"payload": …, "run_at"|"delay": …, "key": …}, …]}',
    );
  }
  if (list.length === 0 || list.length > MAX_DOCUMENTS_PER_REQUEST)
    throw bad(`body must hold 1 to ${MAX_DOCUMENTS_PER_REQUEST} documents (got ${list.length})`);

  if (Array.isArray(body)) {
    return {
      documents: body.map((payload) => ({ payload, runAt: shared, ...withQueue(sharedQueue) })),
      plain: shared === null && sharedQueue === undefined,
    };
  }
  const extra = Object.keys(body as object).filter((field) => field !== 'documents');
  if (extra.length > 0) throw bad(`body property ${extra[0]} is not accepted here (only documents)`);
  let plain = shared === null && sharedQueue === undefined;
  const documents = list.map((entry, index): NewDocument => {
    const where = `body documents[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
      throw bad(`${where} must be an object {"payload": …}`);
    const unknown = Object.keys(entry).find((field) => !ENVELOPE_FIELDS.has(field));
    if (unknown !== undefined)
      throw bad(`${where} property ${unknown} is not accepted here (payload, run_at, delay, key, queue)`);
    if (!('payload' in entry)) throw bad(`${where} has no payload`);
    const e = entry as {
      payload: unknown;
      run_at?: unknown;
      delay?: unknown;
      key?: unknown;
      queue?: unknown;
    };
    // null is as good as absent: the query's option (or due now) applies.
    const options = { run_at: e.run_at ?? undefined, delay: e.delay ?? undefined };
    const own = options.run_at !== undefined || options.delay !== undefined;
    const runAt = own ? dueAt(where, options, now) : shared;
    const key = checkKey(where, e.key);
    // Its own queue wins over the query's.
    const queue = checkQueue(`${where} queue`, e.queue) ?? sharedQueue;
    if (own || key !== null || queue !== undefined) plain = false;
    return { payload: e.payload, runAt, key, ...withQueue(queue) };
  });
  return { documents, plain };
}
