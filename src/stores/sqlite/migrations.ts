// Numbered migrations; PRAGMA user_version records how many have run. A released migration is
// never edited: a change to the schema is a new entry at the end.

import { PullingAgentError } from '../../errors.js';
import { CONTROL_ID } from '../../model/control.js';
import { type Handle, NOW_ISO } from './connection.js';

export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE agent_control (
     id TEXT PRIMARY KEY,
     command TEXT NOT NULL,
     version INTEGER NOT NULL,
     timestamp TEXT NOT NULL,
     reason TEXT,
     updated_by TEXT NOT NULL
   );
   CREATE TABLE agent_control_history (
     version INTEGER PRIMARY KEY,
     command TEXT NOT NULL,
     timestamp TEXT NOT NULL,
     reason TEXT,
     updated_by TEXT NOT NULL
   );
   CREATE TABLE agents (
     agent_id TEXT PRIMARY KEY,
     record TEXT NOT NULL,
     heartbeat_ms INTEGER NOT NULL
   );
   CREATE TABLE documents (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     status TEXT NOT NULL DEFAULT 'pending',
     payload TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     claimed_by TEXT,
     lease_until INTEGER,
     error TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     processed_at TEXT
   );
   CREATE INDEX documents_pending ON documents (status, id);
   CREATE INDEX documents_lease ON documents (status, lease_until);`,
  // 2: who a command was on behalf of (with authentication), and pauses that expire.
  `ALTER TABLE agent_control ADD COLUMN on_behalf_of TEXT;
   ALTER TABLE agent_control ADD COLUMN expires_at TEXT;
   ALTER TABLE agent_control_history ADD COLUMN on_behalf_of TEXT;
   ALTER TABLE agent_control_history ADD COLUMN expires_at TEXT;`,
  // 3: claims owned by token, and the registry keyed by process instance. The old registry rows
  // are dropped rather than converted: they have no instance id, and every live agent's next
  // heartbeat (within seconds) writes its row again.
  `ALTER TABLE documents ADD COLUMN claim_token TEXT;
   DROP TABLE agents;
   CREATE TABLE agents (
     instance_id TEXT PRIMARY KEY,
     agent_id TEXT NOT NULL,
     record TEXT NOT NULL,
     heartbeat_ms INTEGER NOT NULL
   );
   CREATE INDEX agents_by_agent_id ON agents (agent_id, instance_id);`,
  // 4: due times, the attempt baseline of manual retries, deduplication keys. ADD COLUMN cannot
  // default to the clock, so pending rows are backfilled (due since they were created) and every
  // insert writes run_at; a NULL run_at (a row inserted by hand) is due. The claim reads the
  // pending rows by due time; the old (status, id) index still serves lists by status.
  `ALTER TABLE documents ADD COLUMN run_at INTEGER;
   ALTER TABLE documents ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE documents ADD COLUMN key TEXT;
   UPDATE documents SET run_at = CAST(unixepoch(created_at, 'subsec') * 1000 AS INTEGER)
     WHERE status = 'pending';
   CREATE INDEX documents_due ON documents (run_at, id) WHERE status = 'pending';
   CREATE UNIQUE INDEX documents_key_unfinished ON documents (key)
     WHERE key IS NOT NULL AND status IN ('pending', 'processing');
   CREATE INDEX documents_key ON documents (key, id) WHERE key IS NOT NULL;`,
  // 5: a queue on every document; the rows of before are `default`. An unfiltered claim keeps
  // reading documents_due; a filtered one reads the pending rows of one queue by due time.
  `ALTER TABLE documents ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
   CREATE INDEX documents_queue_due ON documents (queue, run_at, id) WHERE status = 'pending';
   CREATE INDEX documents_queue ON documents (queue, id);`,
  // 6: the fleet policy (src/stores/sqlite/policy.ts), beside the control row and never inside it:
  // one row, its body as JSON text, and its own history. No row is seeded: none reads as version 0.
  `CREATE TABLE fleet_policy (
     id TEXT PRIMARY KEY,
     version INTEGER NOT NULL,
     timestamp TEXT NOT NULL,
     body TEXT NOT NULL
   );
   CREATE TABLE fleet_policy_history (
     version INTEGER PRIMARY KEY,
     timestamp TEXT NOT NULL,
     command TEXT NOT NULL,
     queue TEXT,
     rate REAL,
     concurrency INTEGER,
     reason TEXT,
     updated_by TEXT NOT NULL,
     on_behalf_of TEXT,
     expires_at TEXT
   );`,
];

export function migrate(h: Handle, path: string): void {
  const d = h.db;
  d.transaction(() => {
    const current = d.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new PullingAgentError(
        'PA_SCHEMA_TOO_NEW',
        `database ${path} has schema version ${current}, newer than the ${MIGRATIONS.length} this agent knows; upgrade the agent`,
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) d.exec(MIGRATIONS[v] as string);
    d.pragma(`user_version = ${MIGRATIONS.length}`);
    // Every start, not only in a migration: someone may have deleted the row by hand.
    d.prepare(
      `INSERT OR IGNORE INTO agent_control (id, command, version, timestamp, reason, updated_by)
       VALUES (?, 'running', 0, ${NOW_ISO}, NULL, 'system')`,
    ).run(CONTROL_ID);
  }).immediate();
}
