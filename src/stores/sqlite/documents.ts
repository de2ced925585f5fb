// The documents queue. A claim is one UPDATE … RETURNING under the file's write lock, so no two
// claims ever take one document; it stamps a fresh claim token, and every operation on held
// documents matches (id, token) pairs, so that a holder whose lease lapsed and whose documents were
// claimed again (whatever its name) changes nothing. Pairs travel as one JSON parameter.

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
import { type Handle, NOW_ISO, NOW_MS, toDateOrNull } from './connection.js';

/** The rows a JSON array of [id, token] pairs names, still processing under that token. */
const HELD = `status = 'processing' AND (id, claim_token) IN (
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))`;

function isRowId(id: string): boolean {
  return /^\d{1,15}$/.test(id);
}

/** The pairs as one JSON parameter; ids that cannot name a row are left out (they match nothing). */
function heldPairs(held: HeldDocument[]): string | null {
  const pairs = held.filter((h) => isRowId(h.id)).map((h) => [Number(h.id), h.token]);
  return pairs.length === 0 ? null : JSON.stringify(pairs);
}

export function insertDocuments(h: Handle, payloads: unknown[]): string[] {
  const serialised = payloads.map((p) => JSON.stringify(p) ?? 'null');
  const insert = h.statement(
    `INSERT INTO documents (payload, created_at, updated_at) VALUES (?, ${NOW_ISO}, ${NOW_ISO}) RETURNING id`,
  );
  return h.db
    .transaction(() => serialised.map((p) => String((insert.get(p) as { id: number }).id)))
    .immediate();
}

export function claimBatch(h: Handle, owner: ClaimOwner, limit: number, leaseMs: number): ClaimedDocument[] {
  const token = randomUUID();
  const rows = h
    .statement(
      `UPDATE documents
         SET status = 'processing', claimed_by = ?, claim_token = ?, lease_until = ${NOW_MS} + ?,
           updated_at = ${NOW_ISO}
       WHERE id IN (
         SELECT id FROM documents
         WHERE status = 'pending' OR (status = 'processing' AND lease_until < ${NOW_MS})
         ORDER BY id LIMIT ?)
       RETURNING id, payload, attempts`,
    )
    .all(owner.agentId, token, Math.floor(leaseMs), limit) as {
    id: number;
    payload: string;
    attempts: number;
  }[];
  return rows
    .sort((a, b) => a.id - b.id)
    .map((r): ClaimedDocument => ({
      id: String(r.id),
      token,
      payload: JSON.parse(r.payload),
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
  const fail = h.statement(
    `UPDATE documents SET attempts = attempts + 1, error = ?, updated_at = ${NOW_ISO}, lease_until = NULL,
       claim_token = NULL,
       status = CASE WHEN attempts + 1 > ? THEN 'failed' ELSE 'pending' END,
       claimed_by = CASE WHEN attempts + 1 > ? THEN claimed_by ELSE NULL END,
       processed_at = CASE WHEN attempts + 1 > ? THEN ${NOW_ISO} ELSE NULL END
     WHERE id = ? AND status = 'processing' AND claim_token = ? RETURNING status`,
  );
  // One IMMEDIATE transaction for the group: one lock, one commit, whatever its size.
  return h.db
    .transaction(() =>
      failures.map((f) => {
        if (!isRowId(f.id)) return null;
        const row = fail.get(f.error, maxRetries, maxRetries, maxRetries, Number(f.id), f.token) as
          { status: DocumentStatus } | undefined;
        return row?.status ?? null;
      }),
    )
    .immediate();
}

export function releaseDocuments(h: Handle, held: HeldDocument[]): number {
  const pairs = heldPairs(held);
  if (pairs === null) return 0;
  return h
    .statement(
      `UPDATE documents SET status = 'pending', claimed_by = NULL, claim_token = NULL, lease_until = NULL,
         updated_at = ${NOW_ISO}
       WHERE ${HELD}`,
    )
    .run(pairs).changes;
}

export function getDocument(h: Handle, id: string): DocumentRecord | null {
  if (!/^\d+$/.test(id)) return null;
  const row = h.statement('SELECT * FROM documents WHERE id = ?').get(Number(id)) as
    Record<string, unknown> | undefined;
  if (!row) return null;
  return {
    id: String(row.id),
    status: row.status as DocumentStatus,
    payload: JSON.parse(row.payload as string),
    attempts: row.attempts as number,
    claimed_by: (row.claimed_by as string | null) ?? null,
    error: (row.error as string | null) ?? null,
    created_at: new Date(row.created_at as string),
    processed_at: toDateOrNull(row.processed_at),
  };
}

export function countDocuments(h: Handle): DocumentCounts {
  const rows = h.statement('SELECT status, COUNT(*) AS n FROM documents GROUP BY status').all() as {
    status: string;
    n: number;
  }[];
  const counts: DocumentCounts = { pending: 0, processing: 0, processed: 0, failed: 0 };
  for (const { status, n } of rows) {
    if (status in counts) counts[status as DocumentStatus] = n;
  }
  return counts;
}

/** The documents' AUTOINCREMENT high-water mark: how many were ever inserted, read cheaply. */
export function documentsHighWater(h: Handle): number {
  const row = h.statement(`SELECT seq FROM sqlite_sequence WHERE name = 'documents'`).get() as
    { seq: number } | undefined;
  return row?.seq ?? 0;
}
