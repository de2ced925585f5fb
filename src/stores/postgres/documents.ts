// The documents queue. Each operation is one statement: a batch is claimed with
// FOR UPDATE SKIP LOCKED (agents never wait on each other's rows and never share one), and a
// batch is completed, released or extended with `id = ANY($ids)` in one round trip, only for the
// rows the agent still holds. Ids are bigints, handed out as decimal strings.

import type { ClaimedDocument, DocumentCounts, DocumentRecord, DocumentStatus } from '../types.js';
import type { Queryable } from './connection.js';
import type { Names } from './names.js';

const MAX_BIGINT = 9_223_372_036_854_775_807n;
const LEASE = `now() + $2::float8 * interval '1 millisecond'`;

/** Keeps the ids that can name a row at all, so that a bad id matches nothing instead of failing. */
function bigintIds(ids: string[]): string[] {
  return ids.filter((id) => /^\d{1,19}$/.test(id) && BigInt(id) <= MAX_BIGINT);
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
  agentId: string,
  limit: number,
  leaseMs: number,
): Promise<ClaimedDocument[]> {
  // ARRAY(subquery) runs the locking subquery exactly once, whatever plan the UPDATE gets.
  const { rows } = await db.query<{ id: string; payload: unknown; attempts: number }>(
    `UPDATE ${n.documents}
        SET status = 'processing', claimed_by = $1, lease_until = ${LEASE}, updated_at = now()
      WHERE id = ANY(ARRAY(${claimableIds(n, '$3')}))
     RETURNING id, payload, attempts`,
    [agentId, leaseMs, Math.max(0, Math.floor(limit))],
  );
  return rows.map((r) => ({ id: String(r.id), payload: r.payload, attempts: r.attempts })).sort(byId);
}

export async function extendLeases(
  db: Queryable,
  n: Names,
  agentId: string,
  ids: string[],
  leaseMs: number,
): Promise<void> {
  const valid = bigintIds(ids);
  if (valid.length === 0) return;
  await db.query(
    `UPDATE ${n.documents} SET lease_until = ${LEASE}
      WHERE id = ANY($3::bigint[]) AND status = 'processing' AND claimed_by = $1`,
    [agentId, leaseMs, valid],
  );
}

export async function completeDocuments(
  db: Queryable,
  n: Names,
  agentId: string,
  ids: string[],
): Promise<number> {
  const valid = bigintIds(ids);
  if (valid.length === 0) return 0;
  const result = await db.query(
    `UPDATE ${n.documents}
        SET status = 'processed', processed_at = now(), updated_at = now(), lease_until = NULL, error = NULL
      WHERE id = ANY($2::bigint[]) AND status = 'processing' AND claimed_by = $1`,
    [agentId, valid],
  );
  return result.rowCount ?? 0;
}

export async function failDocument(
  db: Queryable,
  n: Names,
  agentId: string,
  id: string,
  error: string,
  maxRetries: number,
): Promise<DocumentStatus | null> {
  if (bigintIds([id]).length === 0) return null;
  // In every SET expression `attempts` is the value before this update.
  const { rows } = await db.query<{ status: DocumentStatus }>(
    `UPDATE ${n.documents}
        SET attempts = attempts + 1, error = $3, updated_at = now(), lease_until = NULL,
            status = CASE WHEN attempts + 1 > $4 THEN 'failed' ELSE 'pending' END,
            claimed_by = CASE WHEN attempts + 1 > $4 THEN claimed_by END,
            processed_at = CASE WHEN attempts + 1 > $4 THEN now() END
      WHERE id = $2 AND status = 'processing' AND claimed_by = $1
     RETURNING status`,
    // A handler's message may hold U+0000, which a text column refuses: recording it matters more.
    [agentId, id, error.replaceAll('\u0000', '\uFFFD'), maxRetries],
  );
  return rows[0]?.status ?? null;
}

export async function releaseDocuments(
  db: Queryable,
  n: Names,
  agentId: string,
  ids: string[],
): Promise<number> {
  const valid = bigintIds(ids);
  if (valid.length === 0) return 0;
  const result = await db.query(
    `UPDATE ${n.documents} SET status = 'pending', claimed_by = NULL, lease_until = NULL, updated_at = now()
      WHERE id = ANY($2::bigint[]) AND status = 'processing' AND claimed_by = $1`,
    [agentId, valid],
  );
  return result.rowCount ?? 0;
}

export async function getDocument(db: Queryable, n: Names, id: string): Promise<DocumentRecord | null> {
  if (bigintIds([id]).length === 0) return null;
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
