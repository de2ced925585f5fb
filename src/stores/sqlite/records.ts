// Reading and administering documents: one document, the counts, pages in id order (the cursor is
// the last id of a page, a decimal string), manual retries of failed documents and deletion.
// `scheduled` is not stored: it is a pending row whose run_at is later than SQLite's clock.

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
import { type Handle, NOW_ISO, NOW_MS, toDateOrNull } from './connection.js';
import { DUE, isRowId } from './documents.js';

const SHOWN_STATUS = `CASE WHEN status = 'pending' AND run_at > ${NOW_MS} THEN 'scheduled' ELSE status END`;
const COLUMNS = `id, ${SHOWN_STATUS} AS shown, payload, attempts, claimed_by, error, created_at, updated_at,
  processed_at, run_at, key, queue`;

function toRecord(row: Record<string, unknown>): DocumentRecord {
  const status = row.shown as DocumentStatus;
  const pending = status === 'pending' || status === 'scheduled';
  const created = new Date(row.created_at as string);
  return {
    id: String(row.id),
    status,
    queue: row.queue as string,
    payload: JSON.parse(row.payload as string),
    attempts: row.attempts as number,
    claimed_by: (row.claimed_by as string | null) ?? null,
    error: (row.error as string | null) ?? null,
    created_at: created,
    updated_at: toDateOrNull(row.updated_at) ?? created,
    processed_at: toDateOrNull(row.processed_at),
    // A NULL run_at (inserted by hand) has been due since the row was created.
    run_at: pending ? (typeof row.run_at === 'number' ? new Date(row.run_at) : created) : null,
    key: (row.key as string | null) ?? null,
  };
}

export function getDocument(h: Handle, id: string): DocumentRecord | null {
  if (!isRowId(id)) return null;
  const row = h.statement(`SELECT ${COLUMNS} FROM documents WHERE id = ?`).get(Number(id)) as
    Record<string, unknown> | undefined;
  return row ? toRecord(row) : null;
}

export function countDocuments(h: Handle): DocumentCounts {
  const rows = h
    .statement(`SELECT ${SHOWN_STATUS} AS shown, COUNT(*) AS n FROM documents GROUP BY shown`)
    .all() as { shown: string; n: number }[];
  const counts: DocumentCounts = emptyCounts();
  for (const { shown, n } of rows) {
    if (shown in counts) counts[shown as DocumentStatus] = n;
  }
  return counts;
}

/** One grouped statement over (queue, shown status). */
export function countQueues(h: Handle): QueueCounts[] {
  const rows = h
    .statement(`SELECT queue, ${SHOWN_STATUS} AS shown, COUNT(*) AS n FROM documents GROUP BY queue, shown`)
    .all() as { queue: string; shown: string; n: number }[];
  return groupQueueCounts(rows.map((r) => ({ queue: r.queue, status: r.shown, n: r.n })));
}

/** The WHERE condition of one shown status. */
function statusCondition(status: DocumentStatus | undefined): string {
  if (status === undefined) return '1';
  if (status === 'pending') return DUE;
  if (status === 'scheduled') return `status = 'pending' AND run_at > ${NOW_MS}`;
  return `status = '${status}'`;
}

export function listDocuments(h: Handle, query: DocumentQuery): DocumentPage {
  const after = query.after ?? null;
  if (after !== null && !isRowId(after)) {
    throw new PullingAgentError(
      'PA_BAD_REQUEST',
      `the cursor ${JSON.stringify(after)} is not one this store gave`,
    );
  }
  const limit = Math.max(0, Math.floor(query.limit));
  const inQueue = query.queue === undefined ? '' : 'AND queue = ?';
  const params: unknown[] = [after === null ? 0 : Number(after)];
  if (query.queue !== undefined) params.push(query.queue);
  const rows = h
    .statement(
      `SELECT ${COLUMNS} FROM documents WHERE id > ? ${inQueue} AND ${statusCondition(query.status)}
       ORDER BY id LIMIT ?`,
    )
    .all(...params, limit + 1) as Record<string, unknown>[];
  const documents = rows.slice(0, limit).map(toRecord);
  const next = rows.length > limit && documents.length > 0 ? documents.at(-1)!.id : null;
  return { documents, next };
}

/**
 * Failed → pending, due now, with a fresh retry budget (attempt_base = attempts). A failed document
 * whose key an unfinished one holds now stays failed (retrying it would store the key twice), as do
 * all but the newest of several failed ones with one key retried together.
 */
export function retryDocuments(h: Handle, target: { ids: string[] } | { status: 'failed' }): number {
  const ids = 'ids' in target ? JSON.stringify(target.ids.filter(isRowId).map(Number)) : null;
  if (ids === '[]') return 0;
  const inTarget = (alias: string) => `(? IS NULL OR ${alias}.id IN (SELECT value FROM json_each(?)))`;
  return h
    .statement(
      `UPDATE documents AS d SET status = 'pending', run_at = ${NOW_MS}, attempt_base = attempts,
         claimed_by = NULL, processed_at = NULL, updated_at = ${NOW_ISO}
       WHERE d.status = 'failed' AND ${inTarget('d')}
         AND (d.key IS NULL OR (
           NOT EXISTS (SELECT 1 FROM documents o WHERE o.key = d.key AND o.status IN ('pending', 'processing'))
           AND NOT EXISTS (SELECT 1 FROM documents f WHERE f.key = d.key AND f.status = 'failed'
                             AND f.id > d.id AND ${inTarget('f')})))`,
    )
    .run(ids, ids, ids, ids).changes;
}

export function deleteDocument(h: Handle, id: string): 'deleted' | 'not_found' | 'processing' {
  if (!isRowId(id)) return 'not_found';
  return h.db
    .transaction(() => {
      const row = h.statement('SELECT status FROM documents WHERE id = ?').get(Number(id)) as
        { status: string } | undefined;
      if (!row) return 'not_found' as const;
      if (row.status === 'processing') return 'processing' as const;
      h.statement('DELETE FROM documents WHERE id = ?').run(Number(id));
      return 'deleted' as const;
    })
    .immediate();
}
