// The documents queue. A claim is one UPDATE … RETURNING under the file's write lock, so no two
// claims ever take one document; it stamps a fresh claim token, and every operation on held
// documents matches (id, token) pairs, so that a holder whose lease lapsed and whose documents were
// claimed again (whatever its name) changes nothing. Pairs travel as one JSON parameter. Due times
// (run_at) are milliseconds since the epoch by SQLite's clock; a NULL one (a row inserted by hand) is due.

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
import { type Handle, NOW_ISO, NOW_MS } from './connection.js';

/** The rows a JSON array of [id, token] pairs names, still processing under that token. */
const HELD = `status = 'processing' AND (id, claim_token) IN (
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))`;

/** Pending and due by SQLite's clock; in the form the partial index documents_due answers. */
export const DUE = `status = 'pending' AND (run_at IS NULL OR run_at <= ${NOW_MS})`;

/** Whether the next failed attempt of a row (attempts counted since its last manual retry) is final. */
const FINAL = `attempts + 1 - attempt_base > ?`;

export function isRowId(id: string): boolean {
  return /^\d{1,15}$/.test(id);
}

/** The pairs as one JSON parameter; ids that cannot name a row are left out (they match nothing). */
function heldPairs(held: HeldDocument[]): string | null {
  const pairs = held.filter((h) => isRowId(h.id)).map((h) => [Number(h.id), h.token]);
  return pairs.length === 0 ? null : JSON.stringify(pairs);
}

export function insertDocuments(h: Handle, payloads: unknown[]): string[] {
  return enqueueDocuments(
    h,
    payloads.map((payload) => ({ payload })),
  ).map((d) => d.id);
}

/**
 * One IMMEDIATE transaction: a key is looked up and the row inserted under the file's write lock,
 * so no other writer can slip a document with the same key in between (the partial unique index
 * documents_key_unfinished stands behind it), and a later item of the request sees an earlier one.
 */
export function enqueueDocuments(h: Handle, documents: NewDocument[]): EnqueuedDocument[] {
  const queues = queuesOf(documents);
  const serialised = documents.map((d) => JSON.stringify(d.payload) ?? 'null');
  const existing = h.statement(
    `SELECT id FROM documents WHERE key = ? AND status IN ('pending', 'processing') LIMIT 1`,
  );
  const insert = h.statement(
    `INSERT INTO documents (payload, created_at, updated_at, run_at, key, queue)
     VALUES (?, ${NOW_ISO}, ${NOW_ISO}, max(${NOW_MS}, coalesce(?, 0)), ?, ?) RETURNING id`,
  );
  return h.db
    .transaction(() =>
      documents.map((d, i): EnqueuedDocument => {
        const key = d.key ?? null;
        if (key !== null) {
          const found = existing.get(key) as { id: number } | undefined;
          if (found) return { id: String(found.id), duplicate: true };
        }
        const runAt = d.runAt ? d.runAt.getTime() : null;
        const row = insert.get(serialised[i], runAt, key, queues[i]) as { id: number };
        return { id: String(row.id), duplicate: false };
      }),
    )
    .immediate();
}

const CLAIM_SET = `status = 'processing', claimed_by = ?, claim_token = ?, lease_until = ${NOW_MS} + ?,
  updated_at = ${NOW_ISO}`;

/** The queues that have pending rows: a loose scan of documents_queue_due, one seek per queue. */
const PENDING_QUEUES = `WITH RECURSIVE q(name) AS (
    SELECT min(queue) FROM documents INDEXED BY documents_queue_due WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT min(queue) FROM documents INDEXED BY documents_queue_due
            WHERE status = 'pending' AND queue > q.name) FROM q
    WHERE q.name IS NOT NULL)
  SELECT name FROM q WHERE name IS NOT NULL`;

/** The earliest due rows of any queue, claimed (documents_due, walked in order). */
export const CLAIM_DUE = `UPDATE documents SET ${CLAIM_SET}
  WHERE id IN (SELECT id FROM documents INDEXED BY documents_due WHERE ${DUE} ORDER BY run_at, id LIMIT ?)
  RETURNING id, payload, queue, attempts`;

/** The earliest due rows of one queue (documents_queue_due, walked in order). */
export const DUE_OF_QUEUE = `SELECT id, run_at FROM documents INDEXED BY documents_queue_due
  WHERE queue = ? AND ${DUE} ORDER BY run_at, id LIMIT ?`;

type ClaimedRow = { id: number; payload: string; queue: string; attempts: number };

/**
 * Without a filter, the one UPDATE of before (documents_due, earliest first). Both reads name their
 * index: left to itself the planner takes documents_lease for `status = 'pending'` and sorts every
 * pending row for each claim (the OR on run_at keeps it off the due index), about 1 ms a claim at
 * 5,000 pending and more with every row, where the index walk is 3 µs. With one, inside one
 * IMMEDIATE transaction: the earliest due rows of each queue let through (an `exclude` is turned
 * into the queues that have pending rows, less those), each read from documents_queue_due, merged
 * by due time, then claimed by id. A paused queue's backlog is never scanned over.
 */
export function claimBatch(
  h: Handle,
  owner: ClaimOwner,
  limit: number,
  leaseMs: number,
  filter?: ClaimFilter,
): ClaimedDocument[] {
  const token = randomUUID();
  const reduced = reduceFilter(filter);
  if (reduced === 'none' || limit <= 0) return [];
  const lease = Math.floor(leaseMs);
  let rows: ClaimedRow[];
  if (reduced === null) {
    rows = h.statement(CLAIM_DUE).all(owner.agentId, token, lease, limit) as ClaimedRow[];
  } else {
    const dueOfQueue = h.statement(DUE_OF_QUEUE);
    const claim = h.statement(
      `UPDATE documents SET ${CLAIM_SET}
       WHERE ${DUE} AND id IN (SELECT value FROM json_each(?))
       RETURNING id, payload, queue, attempts`,
    );
    rows = h.db
      .transaction(() => {
        const queues =
          reduced.only ??
          (h.statement(PENDING_QUEUES).all() as { name: string }[])
            .map((r) => r.name)
            .filter((q) => !reduced.exclude.includes(q));
        const due = queues.flatMap(
          (q) => dueOfQueue.all(q, limit) as { id: number; run_at: number | null }[],
        );
        // NULL sorts first in SQLite's index: a row inserted by hand without a due time.
        due.sort((x, y) => (x.run_at ?? -Infinity) - (y.run_at ?? -Infinity) || x.id - y.id);
        const ids = due.slice(0, limit).map((r) => r.id);
        return ids.length === 0
          ? []
          : (claim.all(owner.agentId, token, lease, JSON.stringify(ids)) as ClaimedRow[]);
      })
      .immediate();
  }
  return rows
    .sort((a, b) => a.id - b.id)
    .map((r): ClaimedDocument => ({
      id: String(r.id),
      token,
      payload: JSON.parse(r.payload),
      queue: r.queue,
      attempts: r.attempts,
    }));
}

export function extendLeases(h: Handle, held: HeldDocument[], leaseMs: number): number {
  const pairs = heldPairs(held);
  if (pairs === null) return 0;
  return h
    .statement(`UPDATE documents SET lease_until = ${NOW_MS} + ? WHERE ${HELD}`)
    .run(Math.floor(leaseMs), pairs).changes;
}

export function completeDocuments(h: Handle, held: HeldDocument[]): number {
  const pairs = heldPairs(held);
  if (pairs === null) return 0;
  return h
    .statement(
      `UPDATE documents SET status = 'processed', processed_at = ${NOW_ISO}, updated_at = ${NOW_ISO},
         lease_until = NULL, claim_token = NULL, error = NULL
       WHERE ${HELD}`,
    )
    .run(pairs).changes;
}

export function failDocuments(
  h: Handle,
  failures: FailedAttempt[],
  maxRetries: number,
): (DocumentStatus | null)[] {
  if (failures.length === 0) return [];
  // In every SET expression the column names the row before this update.
  const fail = h.statement(
    `UPDATE documents SET attempts = attempts + 1, error = ?, updated_at = ${NOW_ISO}, lease_until = NULL,
       claim_token = NULL,
       status = CASE WHEN ${FINAL} THEN 'failed' ELSE 'pending' END,
       claimed_by = CASE WHEN ${FINAL} THEN claimed_by ELSE NULL END,
       processed_at = CASE WHEN ${FINAL} THEN ${NOW_ISO} ELSE NULL END,
       run_at = CASE WHEN ${FINAL} THEN NULL ELSE ${NOW_MS} + ? END
     WHERE id = ? AND status = 'processing' AND claim_token = ? RETURNING status`,
  );
  // One IMMEDIATE transaction for the group: one lock, one commit, whatever its size.
  return h.db
    .transaction(() =>
      failures.map((f) => {
        if (!isRowId(f.id)) return null;
        const delay = Math.max(0, Math.floor(f.retryInMs));
        const m = maxRetries;
        const row = fail.get(f.error, m, m, m, m, delay, Number(f.id), f.token) as
          { status: DocumentStatus } | undefined;
        return row?.status ?? null;
      }),
    )
    .immediate();
}

/** Two statements in one IMMEDIATE transaction; the index documents_lease finds the expired rows. */
export function recoverExpiredLeases(
  h: Handle,
  maxRetries: number,
  spreadMs: number,
): { retried: number; failed: number } {
  const expired = `status = 'processing' AND lease_until < ${NOW_MS}`;
  const final = h.statement(
    `UPDATE documents SET status = 'failed', attempts = attempts + 1, error = ?, claim_token = NULL,
       lease_until = NULL, run_at = NULL, processed_at = ${NOW_ISO}, updated_at = ${NOW_ISO}
     WHERE ${expired} AND ${FINAL}`,
  );
  const retry = h.statement(
    `UPDATE documents SET status = 'pending', attempts = attempts + 1, error = ?, claim_token = NULL,
       claimed_by = NULL, lease_until = NULL, run_at = ${NOW_MS} + abs(random() % (? + 1)),
       updated_at = ${NOW_ISO}
     WHERE ${expired}`,
  );
  return h.db
    .transaction(() => {
      const failed = final.run(LEASE_EXPIRED_ERROR, maxRetries).changes;
      const retried = retry.run(LEASE_EXPIRED_ERROR, Math.max(0, Math.floor(spreadMs))).changes;
      return { retried, failed };
    })
    .immediate();
}

export function releaseDocuments(h: Handle, held: HeldDocument[]): number {
  const pairs = heldPairs(held);
  if (pairs === null) return 0;
  // run_at is left as it was claimed (past due), so a document given back keeps its place.
  return h
    .statement(
      `UPDATE documents SET status = 'pending', claimed_by = NULL, claim_token = NULL, lease_until = NULL,
         updated_at = ${NOW_ISO}
       WHERE ${HELD}`,
    )
    .run(pairs).changes;
}

/** The documents' AUTOINCREMENT high-water mark: how many were ever inserted, read cheaply. */
export function documentsHighWater(h: Handle): number {
  const row = h.statement(`SELECT seq FROM sqlite_sequence WHERE name = 'documents'`).get() as
    { seq: number } | undefined;
  return row?.seq ?? 0;
}
