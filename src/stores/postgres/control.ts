// The control row and its history. A command is one statement, hence one transaction: the UPDATE
// bumps the version under the row lock (a concurrent command waits, then sees the new version),
// the same statement appends the history entry, and the row's trigger sends the NOTIFY at commit.
// The new version is also above every version in the history, so that a row deleted (and seeded
// again at 0 by the next start) or rewound by hand never reuses a version.

import { VersionConflictError, VersionExhaustedError } from '../../errors.js';
import {
  CONTROL_ID,
  parseControlState,
  parseControlVersion,
  tryParseControlState,
} from '../../model/control.js';
import type { CommandInput, ControlState } from '../types.js';
import type { Queryable } from './connection.js';
import type { Names } from './names.js';

const FIELDS = 'command, version, timestamp, reason, updated_by, on_behalf_of, expires_at';

export async function readControlVersion(db: Queryable, n: Names): Promise<number> {
  const { rows } = await db.query(`SELECT version FROM ${n.control} WHERE id = $1`, [CONTROL_ID]);
  return parseControlVersion(rows[0]);
}

export async function readControl(db: Queryable, n: Names): Promise<ControlState> {
  const { rows } = await db.query(`SELECT ${FIELDS} FROM ${n.control} WHERE id = $1`, [CONTROL_ID]);
  return parseControlState(rows[0]);
}

export async function writeCommand(db: Queryable, n: Names, input: CommandInput): Promise<ControlState> {
  const { rows } = await db.query(
    `WITH updated AS (
       UPDATE ${n.control}
          SET command = $2, timestamp = clock_timestamp(), reason = $3, updated_by = $4,
              on_behalf_of = $6, expires_at = $7,
              version = GREATEST(version, (SELECT COALESCE(max(version), 0) FROM ${n.history})) + 1
        WHERE id = $1 AND ($5::bigint IS NULL OR version = $5::bigint)
          AND GREATEST(version, (SELECT COALESCE(max(version), 0) FROM ${n.history})) < ${Number.MAX_SAFE_INTEGER}
       RETURNING ${FIELDS}
     ), appended AS (
       INSERT INTO ${n.history} (${FIELDS}) SELECT ${FIELDS} FROM updated
     )
     SELECT ${FIELDS} FROM updated`,
    [
      CONTROL_ID,
      input.command,
      input.reason,
      input.updated_by,
      input.expectedVersion ?? null,
      input.on_behalf_of ?? null,
      input.expires_at ?? null,
    ],
  );
  if (rows[0] !== undefined) return parseControlState(rows[0]);
  // Nothing changed: the version cannot grow any more, or the expected version had moved on (or
  // the row is missing, which reads as such).
  const { rows: bases } = await db.query<{ base: string }>(
    `SELECT GREATEST(version, (SELECT COALESCE(max(version), 0) FROM ${n.history}))::text AS base
       FROM ${n.control} WHERE id = $1`,
    [CONTROL_ID],
  );
  const base = bases[0]?.base;
  if (base !== undefined && BigInt(base) >= BigInt(Number.MAX_SAFE_INTEGER))
    throw new VersionExhaustedError(base);
  const current = await readControlVersion(db, n);
  throw new VersionConflictError(input.expectedVersion ?? current, current);
}

export async function listHistory(db: Queryable, n: Names, limit: number): Promise<ControlState[]> {
  const { rows } = await db.query(`SELECT ${FIELDS} FROM ${n.history} ORDER BY version DESC LIMIT $1`, [
    Math.max(0, Math.floor(limit)),
  ]);
  return rows.map(tryParseControlState).filter((s): s is ControlState => s !== null);
}
