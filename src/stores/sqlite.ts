// The embedded store: one SQLite file in WAL mode, shared by every agent process on the machine.
// Writes are single statements or IMMEDIATE transactions, so the file's lock serialises them; the
// event-driven watch is a file-system watch on the database's directory (its -wal file changes on
// every commit), confirmed by reading the version.

import { type FSWatcher, mkdirSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import Database from 'better-sqlite3';

import {
  CONTROL_ID,
  parseControlState,
  parseControlVersion,
  tryParseControlState,
} from '../control/state.js';
import {
  describeError,
  PullingAgentError,
  StoreUnavailableError,
  VersionConflictError,
  WatchUnavailableError,
} from '../errors.js';
import type {
  AgentHeartbeat,
  AgentRecord,
  ClaimedDocument,
  CommandInput,
  ControlState,
  ControlWatch,
  DocumentCounts,
  DocumentRecord,
  DocumentStatus,
  Store,
  WatchHandlers,
} from './types.js';

const NOW_ISO = `strftime('%Y-%m-%dT%H:%M:%fZ','now')`;
const NOW_MS = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`;

/** Numbered migrations; PRAGMA user_version records how many have run. */
const MIGRATIONS: string[] = [
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
];

const CONTROL_FIELDS = 'command, version, timestamp, reason, updated_by, on_behalf_of, expires_at';

const FEATURE = 'SQLite file events';
const BUSY_RETRY_BUDGET_MS = 10_000;

export interface SqliteStoreOptions {
  /** Path of the database file, or ':memory:' (then no watch and no sharing). */
  path: string;
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

function toDateOrNull(value: unknown): Date | null {
  return typeof value === 'string' ? new Date(value) : null;
}

export function createSqliteStore(options: SqliteStoreOptions): Store {
  const inMemory = options.path === ':memory:';
  const path = inMemory ? options.path : resolve(options.path);
  let db: Database.Database | null = null;

  function conn(): Database.Database {
    if (db) return db;
    try {
      if (!inMemory) mkdirSync(dirname(path), { recursive: true });
      const opened = new Database(path);
      // Short in-library wait; longer contention is retried asynchronously so the event loop
      // (HTTP, heartbeats) never blocks for long on another process's lock.
      opened.pragma('busy_timeout = 50');
      opened.pragma('journal_mode = WAL');
      opened.pragma('synchronous = NORMAL');
      db = opened;
      return opened;
    } catch (error) {
      throw new StoreUnavailableError(`opening ${path}`, error);
    }
  }

  /** Runs a synchronous operation, retrying while another process holds the write lock. */
  async function run<T>(what: string, operation: (d: Database.Database) => T): Promise<T> {
    const deadline = Date.now() + BUSY_RETRY_BUDGET_MS;
    let delay = 5;
    for (;;) {
      try {
        return operation(conn());
      } catch (error) {
        if (error instanceof PullingAgentError) throw error;
        if (!isBusy(error) || Date.now() > deadline) throw new StoreUnavailableError(what, error);
        await sleep(delay * (0.5 + Math.random()));
        delay = Math.min(delay * 2, 200);
      }
    }
  }

  function migrate(d: Database.Database): void {
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
      d.prepare(
        `INSERT OR IGNORE INTO agent_control (id, command, version, timestamp, reason, updated_by)
         VALUES (?, 'running', 0, ${NOW_ISO}, NULL, 'system')`,
      ).run(CONTROL_ID);
    }).immediate();
  }

  function readControlRow(d: Database.Database): unknown {
    return d.prepare(`SELECT ${CONTROL_FIELDS} FROM agent_control WHERE id = ?`).get(CONTROL_ID);
  }

  const store: Store = {
    kind: 'sqlite',
    description: `sqlite:${path}`,

    async init() {
      await run('migrating the schema', migrate);
    },

    async close() {
      db?.close();
      db = null;
    },

    async ping() {
      const started = performance.now();
      await run('pinging', (d) => d.prepare('SELECT 1').get());
      return performance.now() - started;
    },

    async readControlVersion() {
      const row = await run('reading the control version', (d) =>
        d.prepare('SELECT version FROM agent_control WHERE id = ?').get(CONTROL_ID),
      );
      return parseControlVersion(row);
    },

    async readControl() {
      return parseControlState(await run('reading the control state', readControlRow));
    },

    async writeCommand(input: CommandInput) {
      return run('writing a command', (d) =>
        d
          .transaction((): ControlState => {
            if (input.expectedVersion !== undefined) {
              const current = parseControlVersion(readControlRow(d));
              if (input.expectedVersion !== current)
                throw new VersionConflictError(input.expectedVersion, current);
            }
            // One above both the stored version and the newest history entry, so that a command
            // also repairs a control row broken by hand (a text version, an unknown command).
            const row = d
              .prepare(
                `UPDATE agent_control SET command = ?, timestamp = ${NOW_ISO}, reason = ?, updated_by = ?,
                   on_behalf_of = ?, expires_at = ?,
                   version = MAX(
                     CASE WHEN typeof(version) = 'integer' AND version >= 0 THEN version ELSE 0 END,
                     COALESCE((SELECT MAX(version) FROM agent_control_history), 0)) + 1
                 WHERE id = ? RETURNING ${CONTROL_FIELDS}`,
              )
              .get(
                input.command,
                input.reason,
                input.updated_by,
                input.on_behalf_of ?? null,
                input.expires_at?.toISOString() ?? null,
                CONTROL_ID,
              );
            const state = parseControlState(row);
            d.prepare(
              `INSERT INTO agent_control_history (${CONTROL_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
            ).run(
              state.command,
              state.version,
              state.timestamp.toISOString(),
              state.reason,
              state.updated_by,
              state.on_behalf_of,
              state.expires_at?.toISOString() ?? null,
            );
            return state;
          })
          .immediate(),
      );
    },

    async listHistory(limit: number) {
      const rows = await run('reading the history', (d) =>
        d
          .prepare(
            `SELECT ${CONTROL_FIELDS} FROM agent_control_history
             ORDER BY version DESC LIMIT ?`,
          )
          .all(limit),
      );
      return rows.map(tryParseControlState).filter((s): s is ControlState => s !== null);
    },

    async watchControl(handlers: WatchHandlers): Promise<ControlWatch> {
      if (inMemory) throw new WatchUnavailableError(FEATURE, 'an in-memory database has no file to watch');
      conn();
      const file = basename(path);
      let watcher: FSWatcher;
      try {
        watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
          if (name === null || name.startsWith(file)) handlers.onWake();
        });
      } catch (error) {
        // No inotify here, or out of watches: the caller polls.
        throw new WatchUnavailableError(FEATURE, describeError(error));
      }
      let closed = false;
      watcher.on('error', (error) => {
        if (!closed) handlers.onError(error);
      });
      return {
        mode: 'file_events',
        description: 'SQLite file events (event-driven, real-time)',
        async close() {
          closed = true;
          watcher.close();
        },
      };
    },

    async upsertAgent(heartbeat: AgentHeartbeat) {
      await run('writing a heartbeat', (d) =>
        d
          .prepare(
            `INSERT INTO agents (agent_id, record, heartbeat_ms) VALUES (?, ?, ${NOW_MS})
             ON CONFLICT (agent_id) DO UPDATE SET record = excluded.record, heartbeat_ms = excluded.heartbeat_ms`,
          )
          .run(heartbeat.agent_id, JSON.stringify(heartbeat)),
      );
    },

    async removeAgent(agentId: string) {
      await run('removing an agent', (d) => d.prepare('DELETE FROM agents WHERE agent_id = ?').run(agentId));
    },

    async listAgents() {
      const rows = await run('listing agents', (d) =>
        d.prepare('SELECT record, heartbeat_ms FROM agents ORDER BY agent_id').all(),
      );
      return (rows as { record: string; heartbeat_ms: number }[]).flatMap((row): AgentRecord[] => {
        try {
          const r = JSON.parse(row.record) as AgentRecord;
          return [
            {
              ...r,
              applied_at: toDateOrNull(r.applied_at),
              started_at: new Date(r.started_at),
              heartbeat_at: new Date(row.heartbeat_ms),
            },
          ];
        } catch {
          return [];
        }
      });
    },

    async pruneAgents(olderThanMs: number) {
      const result = await run('pruning agents', (d) =>
        d.prepare(`DELETE FROM agents WHERE heartbeat_ms < ${NOW_MS} - ?`).run(Math.floor(olderThanMs)),
      );
      return result.changes;
    },

    async insertDocuments(payloads: unknown[]) {
      const serialised = payloads.map((p) => JSON.stringify(p) ?? 'null');
      return run('inserting documents', (d) => {
        const insert = d.prepare(
          `INSERT INTO documents (payload, created_at, updated_at) VALUES (?, ${NOW_ISO}, ${NOW_ISO}) RETURNING id`,
        );
        return d
          .transaction(() => serialised.map((p) => String((insert.get(p) as { id: number }).id)))
          .immediate();
      });
    },

    async claimBatch(agentId: string, limit: number, leaseMs: number) {
      const rows = await run('claiming documents', (d) =>
        d
          .prepare(
            `UPDATE documents
               SET status = 'processing', claimed_by = ?, lease_until = ${NOW_MS} + ?, updated_at = ${NOW_ISO}
             WHERE id IN (
               SELECT id FROM documents
               WHERE status = 'pending' OR (status = 'processing' AND lease_until < ${NOW_MS})
               ORDER BY id LIMIT ?)
             RETURNING id, payload, attempts`,
          )
          .all(agentId, Math.floor(leaseMs), limit),
      );
      return (rows as { id: number; payload: string; attempts: number }[])
        .sort((a, b) => a.id - b.id)
        .map((r): ClaimedDocument => ({
          id: String(r.id),
          payload: JSON.parse(r.payload),
          attempts: r.attempts,
        }));
    },

    async extendLeases(agentId: string, ids: string[], leaseMs: number) {
      if (ids.length === 0) return;
      await run('extending leases', (d) =>
        d
          .prepare(
            `UPDATE documents SET lease_until = ${NOW_MS} + ?
             WHERE status = 'processing' AND claimed_by = ? AND id IN (SELECT value FROM json_each(?))`,
          )
          .run(Math.floor(leaseMs), agentId, JSON.stringify(ids.map(Number))),
      );
    },

    async completeDocuments(agentId: string, ids: string[]) {
      if (ids.length === 0) return 0;
      const result = await run('completing documents', (d) =>
        d
          .prepare(
            `UPDATE documents SET status = 'processed', processed_at = ${NOW_ISO}, updated_at = ${NOW_ISO},
               lease_until = NULL, error = NULL
             WHERE status = 'processing' AND claimed_by = ? AND id IN (SELECT value FROM json_each(?))`,
          )
          .run(agentId, JSON.stringify(ids.map(Number))),
      );
      return result.changes;
    },

    async failDocument(agentId: string, id: string, error: string, maxRetries: number) {
      const row = await run('recording a failure', (d) =>
        d
          .prepare(
            `UPDATE documents SET attempts = attempts + 1, error = ?, updated_at = ${NOW_ISO}, lease_until = NULL,
               status = CASE WHEN attempts + 1 > ? THEN 'failed' ELSE 'pending' END,
               claimed_by = CASE WHEN attempts + 1 > ? THEN claimed_by ELSE NULL END,
               processed_at = CASE WHEN attempts + 1 > ? THEN ${NOW_ISO} ELSE NULL END
             WHERE id = ? AND status = 'processing' AND claimed_by = ? RETURNING status`,
          )
          .get(error, maxRetries, maxRetries, maxRetries, Number(id), agentId),
      );
      return row ? (row as { status: DocumentStatus }).status : null;
    },

    async releaseDocuments(agentId: string, ids: string[]) {
      if (ids.length === 0) return 0;
      const result = await run('releasing documents', (d) =>
        d
          .prepare(
            `UPDATE documents SET status = 'pending', claimed_by = NULL, lease_until = NULL, updated_at = ${NOW_ISO}
             WHERE status = 'processing' AND claimed_by = ? AND id IN (SELECT value FROM json_each(?))`,
          )
          .run(agentId, JSON.stringify(ids.map(Number))),
      );
      return result.changes;
    },

    async getDocument(id: string) {
      if (!/^\d+$/.test(id)) return null;
      const row = (await run('reading a document', (d) =>
        d.prepare('SELECT * FROM documents WHERE id = ?').get(Number(id)),
      )) as Record<string, unknown> | undefined;
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
      } satisfies DocumentRecord;
    },

    async countDocuments() {
      const rows = await run('counting documents', (d) =>
        d.prepare('SELECT status, COUNT(*) AS n FROM documents GROUP BY status').all(),
      );
      const counts: DocumentCounts = { pending: 0, processing: 0, processed: 0, failed: 0 };
      for (const { status, n } of rows as { status: string; n: number }[]) {
        if (status in counts) counts[status as DocumentStatus] = n;
      }
      return counts;
    },
  };
  return store;
}
