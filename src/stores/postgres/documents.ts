// The documents queue. Each operation is one statement: a batch is claimed with
// FOR UPDATE SKIP LOCKED (agents never wait on each other's rows and never share one) under a fresh
// claim token, and held documents are completed, failed, released or extended by joining the
// (id, token) pairs, unnested from two arrays, in one round trip: only rows still held by that
// very claim change, whatever the agents are called. Ids are bigints, handed out as decimal strings.

import { randomUUID } from 'node:crypto';

import type {
  ClaimedDocument,
  ClaimOwner,
  DocumentCounts,
  DocumentRecord,
  DocumentStatus,
  FailedAttempt,
  HeldDocument,
} from '../types.js';
import type { Queryable } from './connection.js';
import type { Names } from './names.js';

const MAX_BIGINT = 9_223_372_036_854_775_807n;
const LEASE = `now() + $2::float8 * interval '1 millisecond'`;

/** Whether an id can name a row at all, so that a bad id matches nothing instead of failing. */
function isBigintId(id: string): boolean {
  return /^\d{1,19}$/.test(id) && BigInt(id) <= MAX_BIGINT;
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export async function insertDocuments(db: Queryable, n: Names, payloads: unknown[]): Promise<string[]> {
  if (payloads.length === 0) return [];
  // The ids are drawn in input order before the insert, and returned in input order, whatever
  // order the INSERT itself happens to write in. The table's trigger NOTIFYs idle agents.
  const { rows } = await db.query<{ id: string }>(
    `WITH input AS MATERIALIZED (
       SELECT nextval('${n.documentsIdSequence}'::regclass) AS id, value, ord
         FROM (SELECT value, ord FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(value, ord)
               ORDER BY ord) AS ordered
     ), inserted AS (
       INSERT INTO ${n.documents} (id, payload) SELECT id, value FROM input
     )
     SELECT id FROM input ORDER BY ord`,
    [JSON.stringify(payloads.map((p) => (p === undefined ? null : p)))],
  );
  return rows.map((r) => String(r.id));
}

/** The ids a claim takes: the oldest claimable rows that no other claim has locked. */
export function claimableIds(n: Names, limit: string): string {
  return `SELECT id FROM ${n.documents}
           WHERE status = 'pending' OR (status = 'processing' AND lease_until < now())
           ORDER BY id
           LIMIT ${limit}
           FOR UPDATE SKIP LOCKED`;
}

export async function claimBatch(
  db: Queryable,
  n: Names,
  owner: ClaimOwner,
  limit: number,
  leaseMs: number,
): Promise<ClaimedDocument[]> {
  const token = randomUUID();
  // ARRAY(subquery) runs the locking subquery exactly once, whatever plan the UPDATE gets.
  const { rows } = await db.query<{ id: string; payload: unknown; attempts: number }>(
    `UPDATE ${n.documents}
        SET status = 'processing', claimed_by = $1, claim_token = $4, lease_until = ${LEASE}, updated_at = now()
      WHERE id = ANY(ARRAY(${claimableIds(n, '$3')}))
     RETURNING id, payload, attempts`,
    [owner.agentId, leaseMs, Math.max(0, Math.floor(limit)), token],
  );
  return rows.map((r) => ({ id: String(r.id), token, payload: r.payload, attempts: r.attempts })).sort(byId);
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
              status = CASE WHEN d.attempts + 1 > $4 THEN 'failed' ELSE 'pending' END,
              claimed_by = CASE WHEN d.attempts + 1 > $4 THEN d.claimed_by END,
              processed_at = CASE WHEN d.attempts + 1 > $4 THEN now() END
         FROM unnest($1::bigint[], $2::text[], $3::text[]) AS failed(id, token, error)
        WHERE d.id = failed.id AND d.claim_token = failed.token AND d.status = 'processing'
       RETURNING d.id, failed.token, d.status`,
      [
        valid.map((f) => f.id),
        valid.map((f) => f.token),
        // A handler's message may hold U+0000, which a text column refuses: recording it matters more.
        valid.map((f) => f.error.replaceAll('\u0000', '\uFFFD')),
        maxRetries,
      ],
    );
    for (const r of rows) statuses.set(`${String(r.id)}|${r.token}`, r.status);
  }
  // In input order; a pair given twice gets the one outcome its row had.
  return failures.map((f) => statuses.get(`${f.id}|${f.token}`) ?? null);
}

export async function releaseDocuments(db: Queryable, n: Names, held: HeldDocument[]): Promise<number> {
  const [ids, tokens] = heldArrays(held);
  if (ids.length === 0) return 0;
  const result = await db.query(
    `UPDATE ${n.documents} AS d
        SET status = 'pending', claimed_by = NULL, claim_token = NULL, lease_until = NULL, updated_at = now()
       FROM ${HELD}`,
    [ids, tokens],
  );
  return result.rowCount ?? 0;
}

export async function getDocument(db: Queryable, n: Names, id: string): Promise<DocumentRecord | null> {
  if (!isBigintId(id)) return null;
  const { rows } = await db.query<DocumentRecord>(
    `SELECT id, status, payload, attempts, claimed_by, error, created_at, processed_at
       FROM ${n.documents} WHERE id = $1`,
    [id],
  );
  const row = rows[0];
  return row ? { ...row, id: String(row.id) } : null;
}

export async function countDocuments(db: Queryable, n: Names): Promise<DocumentCounts> {
  const { rows } = await db.query<{ status: string; n: string }>(
    `SELECT status, count(*) AS n FROM ${n.documents} GROUP BY status`,
  );
  const counts: DocumentCounts = { pending: 0, processing: 0, processed: 0, failed: 0 };
  for (const { status, n: count } of rows) {
    if (status in counts) counts[status as DocumentStatus] = Number(count);
  }
  return counts;
}
