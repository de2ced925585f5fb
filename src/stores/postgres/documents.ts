// The documents queue. Each operation is one statement: a batch is claimed with
// FOR UPDATE SKIP LOCKED (agents never wait on each other's rows and never share one) under a fresh
// claim token, and held documents are completed, failed, released or extended by joining the
// (id, token) pairs, unnested from two arrays, in one round trip: only rows still held by that
// very claim change, whatever the agents are called. Ids are bigints, handed out as decimal strings.

import { randomUUID } from 'node:crypto';

import { queuesOf, reduceFilter } from '../queues.js';
import {
  type ClaimedDocument,
  type ClaimFilter,
  type ClaimOwner,
  type DocumentStatus,
  type EnqueuedDocument,
  type FailedAttempt,
  type HeldDocument,
  LEASE_EXPIRED_ERROR,
  type NewDocument,
} from '../types.js';
import type { Queryable } from './connection.js';
import type { Names } from './names.js';

const MAX_BIGINT = 9_223_372_036_854_775_807n;
const LEASE = `now() + $2::float8 * interval '1 millisecond'`;
/** Whether a row's next failed attempt is final: its attempts since the last manual retry exceed the parameter. */
const finalAttempt = (maxRetries: string) => `d.attempts + 1 - d.attempt_base > ${maxRetries}`;

/** Whether an id can name a row at all, so that a bad id matches nothing instead of failing. */
export function isBigintId(id: string): boolean {
  return /^\d{1,19}$/.test(id) && BigInt(id) <= MAX_BIGINT;
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export async function insertDocuments(db: Queryable, n: Names, payloads: unknown[]): Promise<string[]> {
  const stored = await enqueueDocuments(
    db,
    n,
    payloads.map((payload) => ({ payload })),
  );
  return stored.map((d) => d.id);
}

interface EnqueueRow {
  id: string;
  key: string | null;
  stored: boolean;
  holder: string | null;
}

/**
 * One statement: ids drawn in input order, the first item of each key in the request offered, the
 * keys unfinished documents already hold looked up, and the rest inserted ON CONFLICT DO NOTHING
 * against the partial unique index, which also settles a race with a concurrent insert of the same
 * key. Only then, when such a race was lost to a row committed after this statement's snapshot, a
 * second statement reads the winner's id. Rows not inserted are not in the trigger's transition
 * table, so duplicates announce nothing.
 */
export async function enqueueDocuments(
  db: Queryable,
  n: Names,
  documents: NewDocument[],
): Promise<EnqueuedDocument[]> {
  if (documents.length === 0) return [];
  const queues = queuesOf(documents);
  const input = documents.map((d, i) => ({
    payload: d.payload === undefined ? null : d.payload,
    runAt: d.runAt ? d.runAt.toISOString() : null,
    key: d.key ?? null,
    queue: queues[i],
  }));
  const { rows } = await db.query<EnqueueRow>(
    `WITH input AS MATERIALIZED (
       SELECT nextval('${n.documentsIdSequence}'::regclass) AS id, value->'payload' AS payload,
              greatest(coalesce((value->>'runAt')::timestamptz, now()), now()) AS run_at,
              value->>'key' AS key, value->>'queue' AS queue, ord
         FROM (SELECT value, ord FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(value, ord)
               ORDER BY ord) AS ordered
     ), first_of_key AS (
       SELECT DISTINCT ON (key) key, id FROM input WHERE key IS NOT NULL ORDER BY key, ord
     ), existing AS (
       SELECT d.key, min(d.id) AS id FROM ${n.documents} AS d
        WHERE d.key IN (SELECT key FROM first_of_key) AND d.status IN ('pending', 'processing')
        GROUP BY d.key
     ), inserted AS (
       INSERT INTO ${n.documents} (id, payload, run_at, key, queue)
       SELECT i.id, i.payload, i.run_at, i.key, i.queue FROM input AS i
        WHERE i.key IS NULL
           OR (i.id IN (SELECT id FROM first_of_key) AND i.key NOT IN (SELECT key FROM existing))
       ON CONFLICT (key) WHERE key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
       RETURNING id
     )
     SELECT i.id, i.key, i.id IN (SELECT id FROM inserted) AS stored,
            coalesce(e.id, CASE WHEN f.id IN (SELECT id FROM inserted) THEN f.id END) AS holder
       FROM input AS i
       LEFT JOIN existing AS e ON e.key = i.key
       LEFT JOIN first_of_key AS f ON f.key = i.key
      ORDER BY i.ord`,
    [JSON.stringify(input)],
  );
  const lost = [...new Set(rows.filter((r) => !r.stored && r.holder === null).map((r) => r.key!))];
  const winners = new Map<string, string>();
  if (lost.length > 0) {
    const found = await db.query<{ key: string; id: string }>(
      `SELECT key, min(id) AS id FROM ${n.documents}
        WHERE key = ANY($1::text[]) AND status IN ('pending', 'processing') GROUP BY key`,
      [lost],
    );
    for (const r of found.rows) winners.set(r.key, String(r.id));
  }
  return rows.map((r): EnqueuedDocument => {
    if (r.stored) return { id: String(r.id), duplicate: false };
    // A winner finished between the two statements: it is still the document that held the key.
    const holder = r.holder ?? winners.get(r.key!) ?? null;
    return { id: holder === null ? String(r.id) : String(holder), duplicate: true };
  });
}

/** The ids a claim takes: the earliest due pending rows that no other claim has locked. */
export function claimableIds(n: Names, limit: string): string {
  return `SELECT id FROM ${n.documents}
           WHERE status = 'pending' AND run_at <= now()
           ORDER BY run_at, id
           LIMIT ${limit}
           FOR UPDATE SKIP LOCKED`;
}

/**
 * The ids a filtered claim takes: for each queue of `queues`, its earliest due rows that no other
 * claim has locked (each an index scan of documents_queue_due_idx, stopping at the limit), merged
 * by due time. A paused queue's backlog is never read.
 */
export function claimableIdsOfQueues(n: Names, queues: string, limit: string): string {
  return `SELECT c.id FROM ${queues} AS q(name)
     CROSS JOIN LATERAL (
       SELECT id, run_at FROM ${n.documents}
        WHERE status = 'pending' AND queue = q.name AND run_at <= now()
        ORDER BY run_at, id
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED) AS c
    ORDER BY c.run_at, c.id
    LIMIT ${limit}`;
}

/**
 * The queues that have pending rows, less the excluded (the text[] parameter `excluded`): a loose
 * scan of documents_queue_due_idx, one index probe per queue.
 */
export function pendingQueuesExcept(n: Names, excluded: string): string {
  return `(WITH RECURSIVE pending(name) AS (
       (SELECT queue FROM ${n.documents} WHERE status = 'pending' ORDER BY queue LIMIT 1)
       UNION ALL
       SELECT (SELECT queue FROM ${n.documents} WHERE status = 'pending' AND queue > pending.name
                ORDER BY queue LIMIT 1)
         FROM pending WHERE pending.name IS NOT NULL)
     SELECT name FROM pending WHERE name IS NOT NULL AND NOT (name = ANY(${excluded}::text[])))`;
}

type ClaimedRow = { id: string; payload: unknown; queue: string; attempts: number };

/**
 * Without a filter, the statement of before (documents_due_idx, earliest due first); with one, the
 * same UPDATE over the ids of the queues it lets through: named by `only`, or (for `exclude`) every
 * queue with pending rows but those.
 */
export async function claimBatch(
  db: Queryable,
  n: Names,
  owner: ClaimOwner,
  limit: number,
  leaseMs: number,
  filter?: ClaimFilter,
): Promise<ClaimedDocument[]> {
  const token = randomUUID();
  const reduced = reduceFilter(filter);
  if (reduced === 'none') return [];
  const params: unknown[] = [owner.agentId, leaseMs, Math.max(0, Math.floor(limit)), token];
  let ids: string;
  if (reduced === null) ids = claimableIds(n, '$3');
  else if (reduced.only !== null) {
    ids = claimableIdsOfQueues(n, 'unnest($5::text[])', '$3');
    params.push(reduced.only);
  } else {
    ids = claimableIdsOfQueues(n, pendingQueuesExcept(n, '$5'), '$3');
    params.push(reduced.exclude);
  }
  // ARRAY(subquery) runs the locking subquery exactly once, whatever plan the UPDATE gets.
  const { rows } = await db.query<ClaimedRow>(
    `UPDATE ${n.documents}
        SET status = 'processing', claimed_by = $1, claim_token = $4, lease_until = ${LEASE}, updated_at = now()
      WHERE id = ANY(ARRAY(${ids}))
     RETURNING id, payload, queue, attempts`,
    params,
  );
  return rows
    .map((r) => ({ id: String(r.id), token, payload: r.payload, queue: r.queue, attempts: r.attempts }))
    .sort(byId);
}

/** The held documents as two parallel arrays for unnest; ids that cannot name a row are left out. */
function heldArrays(held: HeldDocument[]): [string[], string[]] {
  const valid = held.filter((h) => isBigintId(h.id));
  return [valid.map((h) => h.id), valid.map((h) => h.token)];
}

/** Joined to the table: the (id, token) pairs of $1 and $2 that still hold their row. */
const HELD = `unnest($1::bigint[], $2::text[]) AS held(id, token)
      WHERE d.id = held.id AND d.claim_token = held.token AND d.status = 'processing'`;

export async function extendLeases(
  db: Queryable,
  n: Names,
  held: HeldDocument[],
  leaseMs: number,
): Promise<number> {
  const [ids, tokens] = heldArrays(held);
  if (ids.length === 0) return 0;
  const result = await db.query(
    `UPDATE ${n.documents} AS d SET lease_until = now() + $3::float8 * interval '1 millisecond'
       FROM ${HELD}`,
    [ids, tokens, leaseMs],
  );
  return result.rowCount ?? 0;
}

export async function completeDocuments(db: Queryable, n: Names, held: HeldDocument[]): Promise<number> {
  const [ids, tokens] = heldArrays(held);
  if (ids.length === 0) return 0;
  const result = await db.query(
    `UPDATE ${n.documents} AS d
        SET status = 'processed', processed_at = now(), updated_at = now(), lease_until = NULL,
            claim_token = NULL, error = NULL
       FROM ${HELD}`,
    [ids, tokens],
  );
  return result.rowCount ?? 0;
}

export async function failDocuments(
  db: Queryable,
  n: Names,
  failures: FailedAttempt[],
  maxRetries: number,
): Promise<(DocumentStatus | null)[]> {
  const valid = failures.filter((f) => isBigintId(f.id));
  const statuses = new Map<string, DocumentStatus>();
  if (valid.length > 0) {
    // One statement for the group. In every SET expression d.* is the row before this update;
    // RETURNING names the pair that matched, so that each input learns its own outcome.
    const { rows } = await db.query<{ id: string; token: string; status: DocumentStatus }>(
      `UPDATE ${n.documents} AS d
          SET attempts = d.attempts + 1, error = failed.error, updated_at = now(), lease_until = NULL,
              claim_token = NULL,
              status = CASE WHEN ${finalAttempt('$4')} THEN 'failed' ELSE 'pending' END,
              claimed_by = CASE WHEN ${finalAttempt('$4')} THEN d.claimed_by END,
              processed_at = CASE WHEN ${finalAttempt('$4')} THEN now() END,
              run_at = CASE WHEN ${finalAttempt('$4')} THEN d.run_at
                            ELSE now() + failed.delay * interval '1 millisecond' END
         FROM unnest($1::bigint[], $2::text[], $3::text[], $5::float8[]) AS failed(id, token, error, delay)
        WHERE d.id = failed.id AND d.claim_token = failed.token AND d.status = 'processing'
       RETURNING d.id, failed.token, d.status`,
      [
        valid.map((f) => f.id),
        valid.map((f) => f.token),
        // A handler's message may hold U+0000, which a text column refuses: recording it matters more.
        valid.map((f) => f.error.replaceAll('\u0000', '\uFFFD')),
        maxRetries,
        valid.map((f) => Math.max(0, f.retryInMs)),
      ],
    );
    for (const r of rows) statuses.set(`${String(r.id)}|${r.token}`, r.status);
  }
  // In input order; a pair given twice gets the one outcome its row had.
  return failures.map((f) => statuses.get(`${f.id}|${f.token}`) ?? null);
}

/**
 * One statement: the expired leases (found through documents_lease_idx, so cheap when there are
 * none; rows a completion is writing are skipped, not waited for) count an attempt each and go
 * back to pending, due now, or to failed past the retry budget.
 */
export async function recoverExpiredLeases(
  db: Queryable,
  n: Names,
  maxRetries: number,
  spreadMs: number,
): Promise<{ retried: number; failed: number }> {
  const { rows } = await db.query<{ retried: string; failed: string }>(
    `WITH expired AS (
       SELECT id FROM ${n.documents} WHERE status = 'processing' AND lease_until < now()
        FOR UPDATE SKIP LOCKED
     ), recovered AS (
       UPDATE ${n.documents} AS d
          SET attempts = d.attempts + 1, error = $2, updated_at = now(), lease_until = NULL,
              claim_token = NULL,
              status = CASE WHEN ${finalAttempt('$1')} THEN 'failed' ELSE 'pending' END,
              claimed_by = CASE WHEN ${finalAttempt('$1')} THEN d.claimed_by END,
              processed_at = CASE WHEN ${finalAttempt('$1')} THEN now() END,
              run_at = CASE WHEN ${finalAttempt('$1')} THEN d.run_at
                            ELSE now() + random() * $3::float8 * interval '1 millisecond' END
         FROM expired
        WHERE d.id = expired.id AND d.status = 'processing' AND d.lease_until < now()
       RETURNING d.status
     )
     SELECT count(*) FILTER (WHERE status = 'pending') AS retried,
            count(*) FILTER (WHERE status = 'failed') AS failed
       FROM recovered`,
    [maxRetries, LEASE_EXPIRED_ERROR, Math.max(0, spreadMs)],
  );
  return { retried: Number(rows[0]?.retried ?? 0), failed: Number(rows[0]?.failed ?? 0) };
}

/**
 * Runs an UPDATE that makes documents pending and due now (`update` without its RETURNING), and
 * announces how many on the documents channel at commit, as the INSERT trigger does for new rows:
 * idle agents across the fleet claim them at once instead of at their next POLL_INTERVAL. The
 * channel is passed after `params`. Resolves with how many changed.
 */
export async function updateAnnouncingPending(
  db: Queryable,
  n: Names,
  update: string,
  params: unknown[],
): Promise<number> {
  const channel = `$${params.length + 1}`;
  const { rows } = await db.query<{ changed: number }>(
    `WITH made_pending AS (${update} RETURNING 1),
          counted AS (SELECT count(*)::int AS changed FROM made_pending)
     SELECT changed,
            (SELECT count(*) FROM counted AS c, LATERAL pg_notify(${channel}, c.changed::text)
              WHERE c.changed > 0) AS announced
       FROM counted`,
    [...params, n.documentsChannel],
  );
  return Number(rows[0]?.changed ?? 0);
}

export async function releaseDocuments(db: Queryable, n: Names, held: HeldDocument[]): Promise<number> {
  const [ids, tokens] = heldArrays(held);
  if (ids.length === 0) return 0;
  // A released document is due (it was when claimed): an agent shutting down hands its buffer to
  // the idle ones now.
  return updateAnnouncingPending(
    db,
    n,
    `UPDATE ${n.documents} AS d
        SET status = 'pending', claimed_by = NULL, claim_token = NULL, lease_until = NULL, updated_at = now()
       FROM ${HELD}`,
    [ids, tokens],
  );
}
