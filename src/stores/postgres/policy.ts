// The fleet policy row and its history (migration 6), beside the control row. A write is one
// statement, hence one transaction: the upsert compares and sets the version under the row lock
// (a concurrent writer waits, then finds the version moved and writes nothing), the same statement
// appends the history entry, and the row's trigger sends `policy:<version>` at commit. The new
// version is above every version in the history too, so a row deleted or rewound by hand never
// reuses one an agent may have applied.

import { InvalidPolicyError, VersionConflictError, VersionExhaustedError } from '../../errors.js';
import {
  emptyPolicy,
  type FleetPolicy,
  parsePolicy,
  POLICY_HISTORY_FIELDS,
  POLICY_ID,
  policyBodyToJson,
  type PolicyHistoryEntry,
  tryParsePolicyHistoryEntry,
} from '../../model/policy.js';
import type { PolicyWrite } from '../types.js';
import type { Queryable } from './connection.js';
import type { Names } from './names.js';

const HISTORY_FIELDS = POLICY_HISTORY_FIELDS;

interface PolicyRow {
  version: string;
  timestamp: Date;
  body: unknown;
}

function parseRow(row: PolicyRow): FleetPolicy {
  const { body } = row;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidPolicyError('body is not a JSON object');
  }
  // The row's own columns win over same-named keys a hand edit may have put into the body.
  return parsePolicy({ ...body, version: row.version, timestamp: row.timestamp });
}

export async function readPolicy(db: Queryable, n: Names): Promise<FleetPolicy> {
  const { rows } = await db.query<PolicyRow>(
    `SELECT version::text AS version, timestamp, body FROM ${n.policy} WHERE id = $1`,
    [POLICY_ID],
  );
  return rows[0] === undefined ? emptyPolicy() : parseRow(rows[0]);
}

export async function writePolicy(db: Queryable, n: Names, write: PolicyWrite): Promise<FleetPolicy> {
  const { entry } = write;
  const { rows } = await db.query<PolicyRow>(
    `WITH current AS (
       SELECT COALESCE((SELECT version FROM ${n.policy} WHERE id = $1), 0) AS version
     ), base AS (
       SELECT GREATEST(version, (SELECT COALESCE(max(version), 0) FROM ${n.policyHistory})) AS version
         FROM current WHERE version = $2::bigint
     ), written AS (
       INSERT INTO ${n.policy} AS p (id, version, timestamp, body)
       SELECT $1, version + 1, clock_timestamp(), $3::jsonb FROM base
        WHERE version < ${Number.MAX_SAFE_INTEGER}
       ON CONFLICT (id) DO UPDATE
         SET version = excluded.version, timestamp = excluded.timestamp, body = excluded.body
         WHERE p.version = $2::bigint
       RETURNING version, timestamp, body
     ), appended AS (
       INSERT INTO ${n.policyHistory} (${HISTORY_FIELDS})
       SELECT version, timestamp, $4, $5, $6, $7, $8, $9, $10, $11 FROM written
     )
     SELECT version::text AS version, timestamp, body FROM written`,
    [
      POLICY_ID,
      write.expectedVersion,
      JSON.stringify(policyBodyToJson(write.body)),
      entry.command,
      entry.queue,
      entry.rate,
      entry.concurrency,
      entry.reason,
      entry.updated_by,
      entry.on_behalf_of,
      entry.expires_at,
    ],
  );
  if (rows[0] !== undefined) return parseRow(rows[0]);
  // Nothing written: the expected version had moved on, or the version cannot grow any more.
  const { rows: found } = await db.query<{ current: string; base: string }>(
    `SELECT c.version::text AS current,
            GREATEST(c.version, (SELECT COALESCE(max(version), 0) FROM ${n.policyHistory}))::text AS base
       FROM (SELECT COALESCE((SELECT version FROM ${n.policy} WHERE id = $1), 0) AS version) c`,
    [POLICY_ID],
  );
  const current = Number(found[0]?.current ?? 0);
  if (current === write.expectedVersion && BigInt(found[0]?.base ?? 0) >= BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VersionExhaustedError(found[0]!.base, 'policy');
  }
  throw new VersionConflictError(write.expectedVersion, current, 'policy');
}

export async function listPolicyHistory(
  db: Queryable,
  n: Names,
  limit: number,
): Promise<PolicyHistoryEntry[]> {
  const { rows } = await db.query(
    `SELECT version::text AS version, timestamp, command, queue, rate, concurrency, reason, updated_by,
            on_behalf_of, expires_at
       FROM ${n.policyHistory} ORDER BY version DESC LIMIT $1`,
    [Math.max(0, Math.floor(limit))],
  );
  return rows.map(tryParsePolicyHistoryEntry).filter((e): e is PolicyHistoryEntry => e !== null);
}
