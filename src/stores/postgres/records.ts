// Reading and administering documents: one document, the counts, pages in id order (the cursor is
// the last id of a page, a decimal string), manual retries of failed documents and deletion.
// `scheduled` is not stored: it is a pending row whose run_at is later than the server's now().

import { PullingAgentError } from '../../errors.js';
import { emptyCounts, groupQueueCounts } from '../queues.js';
import type {
  DocumentCounts,
  DocumentPage,
  DocumentQuery,
  DocumentRecord,
  DocumentStatus,
  QueueCounts,
} from '../types.js';
import type { Queryable } from './connection.js';
import { isBigintId, updateAnnouncingPending } from './documents.js';
import type { Names } from './names.js';

const SHOWN_STATUS = `CASE WHEN status = 'pending' AND run_at > now() THEN 'scheduled' ELSE status END`;
const COLUMNS = `id, ${SHOWN_STATUS} AS status, payload, attempts, claimed_by, error, created_at, updated_at,
  processed_at, CASE WHEN status = 'pending' THEN run_at END AS run_at, key, queue`;

/** Each shown status as a condition, one fixed statement text apiece (prepared once). */
const CONDITIONS: Record<DocumentStatus | 'all', string> = {
  all: 'true',
  pending: `status = 'pending' AND run_at <= now()`,
  scheduled: `status = 'pending' AND run_at > now()`,
  processing: `status = 'processing'`,
  processed: `status = 'processed'`,
  failed: `status = 'failed'`,
};

function toRecord(row: DocumentRecord): DocumentRecord {
  return { ...row, id: String(row.id) };
}

export async function getDocument(db: Queryable, n: Names, id: string): Promise<DocumentRecord | null> {
  if (!isBigintId(id)) return null;
  const { rows } = await db.query<DocumentRecord>(`SELECT ${COLUMNS} FROM ${n.documents} WHERE id = $1`, [
    id,
  ]);
  const row = rows[0];
  return row ? toRecord(row) : null;
}

export async function countDocuments(db: Queryable, n: Names): Promise<DocumentCounts> {
  const { rows } = await db.query<{ status: string; n: string }>(
    `SELECT ${SHOWN_STATUS} AS status, count(*) AS n FROM ${n.documents} GROUP BY 1`,
  );
  const counts: DocumentCounts = emptyCounts();
  for (const { status, n: count } of rows) {
    if (status in counts) counts[status as DocumentStatus] = Number(count);
  }
  return counts;
}

/** One grouped statement over (queue, shown status). */
export async function countQueues(db: Queryable, n: Names): Promise<QueueCounts[]> {
  const { rows } = await db.query<{ queue: string; status: string; n: string }>(
    `SELECT queue, ${SHOWN_STATUS} AS status, count(*) AS n FROM ${n.documents} GROUP BY 1, 2`,
  );
  return groupQueueCounts(rows.map((r) => ({ queue: r.queue, status: r.status, n: Number(r.n) })));
}

export async function listDocuments(db: Queryable, n: Names, query: DocumentQuery): Promise<DocumentPage> {
  const after = query.after ?? null;
  if (after !== null && !isBigintId(after)) {
    throw new PullingAgentError(
      'PA_BAD_REQUEST',
      `the cursor ${JSON.stringify(after)} is not one this store gave`,
    );
  }
  const limit = Math.max(0, Math.floor(query.limit));
  // One fixed statement text per (status, with or without a queue), each prepared once.
  const { rows } = await db.query<DocumentRecord>(
    `SELECT ${COLUMNS} FROM ${n.documents}
      WHERE id > $1 AND ${CONDITIONS[query.status ?? 'all']}
        ${query.queue === undefined ? '' : 'AND queue = $3'}
      ORDER BY id LIMIT $2`,
    query.queue === undefined ? [after ?? '0', limit + 1] : [after ?? '0', limit + 1, query.queue],
  );
  const documents = rows.slice(0, limit).map(toRecord);
  const next = rows.length > limit && documents.length > 0 ? documents.at(-1)!.id : null;
  return { documents, next };
}

/**
 * Failed → pending, due now, with a fresh retry budget (attempt_base = attempts), in one statement.
 * A failed document whose key an unfinished one holds now stays failed (retrying it would store
 * the key twice), as do all but the newest of several failed ones with one key retried together.
 */
export async function retryDocuments(
  db: Queryable,
  n: Names,
  target: { ids: string[] } | { status: 'failed' },
): Promise<number> {
  const ids = 'ids' in target ? target.ids.filter(isBigintId) : null;
  if (ids !== null && ids.length === 0) return 0;
  // Announced like new documents: idle agents take them now.
  return updateAnnouncingPending(
    db,
    n,
    `UPDATE ${n.documents} AS d
        SET status = 'pending', run_at = now(), attempt_base = d.attempts, claimed_by = NULL,
            processed_at = NULL, updated_at = now()
      WHERE d.status = 'failed' AND ($1::bigint[] IS NULL OR d.id = ANY($1::bigint[]))
        AND (d.key IS NULL OR (
          NOT EXISTS (SELECT 1 FROM ${n.documents} AS o
                       WHERE o.key = d.key AND o.status IN ('pending', 'processing'))
          AND NOT EXISTS (SELECT 1 FROM ${n.documents} AS f
                           WHERE f.key = d.key AND f.status = 'failed' AND f.id > d.id
                             AND ($1::bigint[] IS NULL OR f.id = ANY($1::bigint[])))))`,
    [ids],
  );
}

/** One statement: the row's status read and, unless it is processing, the row deleted. */
export async function deleteDocument(
  db: Queryable,
  n: Names,
  id: string,
): Promise<'deleted' | 'not_found' | 'processing'> {
  if (!isBigintId(id)) return 'not_found';
  const { rows } = await db.query<{ deleted: boolean; status: string | null }>(
    `WITH removed AS (
       DELETE FROM ${n.documents} WHERE id = $1 AND status <> 'processing' RETURNING id
     )
     SELECT EXISTS (SELECT 1 FROM removed) AS deleted,
            (SELECT status FROM ${n.documents} WHERE id = $1) AS status`,
    [id],
  );
  const row = rows[0];
  if (row?.deleted) return 'deleted';
  return row?.status === 'processing' ? 'processing' : 'not_found';
}
