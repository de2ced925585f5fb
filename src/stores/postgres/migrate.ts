// Brings the schema up to the newest migration this agent knows, in one transaction under a
// transaction-level advisory lock keyed by the schema: ten agents starting together migrate once
// (the other nine wait, then find nothing to do), a failed migration leaves nothing behind, and
// the lock cannot leak even through a pooler in transaction mode, since it ends with the
// transaction. An agent older than the schema refuses to start.

import type pg from 'pg';

import { PullingAgentError } from '../../errors.js';
import { CONTROL_ID } from '../../model/control.js';
import { MIGRATIONS } from './migrations/index.js';
import { type Names, quoteIdent } from './names.js';

/** First key of the advisory lock ('PA'); the second is the schema's hash. */
const LOCK_CLASS = 0x5041;

export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0;

export async function migrate(client: pg.ClientBase, n: Names): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, n.schema]);
    // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema
    // exists, and a DBA may have created it for a role that lacks it.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [n.schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoteIdent(n.schema)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${n.migrations} (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ current: number | null }>(
      `SELECT max(version) AS current FROM ${n.migrations}`,
    );
    const current = rows[0]?.current ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new PullingAgentError(
        'PA_SCHEMA_TOO_NEW',
        `PostgreSQL schema ${n.schema} is at migration ${current}, newer than the ${SCHEMA_VERSION} this agent knows; upgrade the agent`,
        { schema: n.schema, schema_version: current, known_version: SCHEMA_VERSION },
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await client.query(migration.sql(n));
      await client.query(`INSERT INTO ${n.migrations} (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
    }
    // Every start, not only in a migration: someone may have deleted the row by hand.
    await client.query(
      `INSERT INTO ${n.control} (id, command, version, reason, updated_by)
       VALUES ($1, 'running', 0, NULL, 'system') ON CONFLICT (id) DO NOTHING`,
      [CONTROL_ID],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
