// The fleet policy row and its history, beside the control row (never inside it): table
// fleet_policy holds one row, id 'fleet_policy', its version, its timestamp and its body as JSON
// text (policyBodyToJson); fleet_policy_history one row per policy command. No row yet reads as
// version 0 and empty. A write is one IMMEDIATE transaction, like a command: the file's write
// lock serialises writers across processes, and the compare-and-set, the row and the history entry
// are written under it.

import { InvalidPolicyError, VersionConflictError, VersionExhaustedError } from '../../errors.js';
import {
  emptyPolicy,
  type FleetPolicy,
  parsePolicy,
  parsePolicyVersion,
  POLICY_HISTORY_FIELDS,
  POLICY_ID,
  policyBodyToJson,
  type PolicyHistoryEntry,
  tryParsePolicyHistoryEntry,
} from '../../model/policy.js';
import type { PolicyWrite } from '../types.js';
import { type Handle, NOW_ISO } from './connection.js';

const HISTORY_FIELDS = POLICY_HISTORY_FIELDS;

interface PolicyRow {
  version: unknown;
  timestamp: unknown;
  body: unknown;
}

function readRow(h: Handle): PolicyRow | undefined {
  return h.statement('SELECT version, timestamp, body FROM fleet_policy WHERE id = ?').get(POLICY_ID) as
    PolicyRow | undefined;
}

function parseRow(row: PolicyRow): FleetPolicy {
  let body: unknown;
  try {
    body = JSON.parse(String(row.body));
  } catch {
    throw new InvalidPolicyError('body is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidPolicyError('body is not a JSON object');
  }
  // The row's own columns win over same-named keys a hand edit may have put into the body.
  return parsePolicy({ ...body, version: row.version, timestamp: row.timestamp });
}

export function readPolicy(h: Handle): FleetPolicy {
  const row = readRow(h);
  return row === undefined ? emptyPolicy() : parseRow(row);
}

/** The stored version alone (null without a row): what the file watch compares between events. */
export function readPolicyStamp(h: Handle): string | null {
  const row = h.statement('SELECT version, timestamp FROM fleet_policy WHERE id = ?').get(POLICY_ID) as
    { version: unknown; timestamp: unknown } | undefined;
  return row === undefined ? null : `${String(row.version)}@${String(row.timestamp)}`;
}

export function writePolicy(h: Handle, write: PolicyWrite): FleetPolicy {
  return h.db
    .transaction((): FleetPolicy => {
      const row = readRow(h);
      // Only the version must read: a write over a malformed body (at its version) repairs it.
      const current = row === undefined ? 0 : parsePolicyVersion(row);
      if (write.expectedVersion !== current) {
        throw new VersionConflictError(write.expectedVersion, current, 'policy');
      }
      // One above both the row and the newest history entry, so that a row deleted or rewound by
      // hand never reuses a version an agent may have applied.
      const newest = h
        .statement(
          `SELECT COALESCE(MAX(version), 0) AS newest FROM fleet_policy_history WHERE typeof(version) = 'integer'`,
        )
        .safeIntegers(true)
        .get() as { newest: bigint };
      const base = newest.newest > BigInt(current) ? newest.newest : BigInt(current);
      if (base >= BigInt(Number.MAX_SAFE_INTEGER)) throw new VersionExhaustedError(base, 'policy');
      const written = h
        .statement(
          `INSERT INTO fleet_policy (id, version, timestamp, body) VALUES (?, ?, ${NOW_ISO}, ?)
           ON CONFLICT (id) DO UPDATE SET version = excluded.version, timestamp = excluded.timestamp,
             body = excluded.body
           RETURNING version, timestamp, body`,
        )
        .get(POLICY_ID, Number(base) + 1, JSON.stringify(policyBodyToJson(write.body))) as PolicyRow;
      const policy = parseRow(written);
      const { entry } = write;
      h.statement(
        `INSERT INTO fleet_policy_history (${HISTORY_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        policy.version,
        policy.timestamp.toISOString(),
        entry.command,
        entry.queue,
        entry.rate,
        entry.concurrency,
        entry.reason,
        entry.updated_by,
        entry.on_behalf_of,
        entry.expires_at?.toISOString() ?? null,
      );
      return policy;
    })
    .immediate();
}

export function listPolicyHistory(h: Handle, limit: number): PolicyHistoryEntry[] {
  const rows = h
    .statement(`SELECT ${HISTORY_FIELDS} FROM fleet_policy_history ORDER BY version DESC LIMIT ?`)
    .all(Math.max(0, Math.floor(limit)));
  return rows.map(tryParsePolicyHistoryEntry).filter((e): e is PolicyHistoryEntry => e !== null);
}
