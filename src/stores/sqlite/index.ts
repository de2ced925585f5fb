// The embedded store: one SQLite file in WAL mode, shared by every agent process on the machine.
// Writes are single statements or IMMEDIATE transactions, so the file's lock serialises them; the
// event-driven watch is a file-system watch on the database's directory (watch.ts). One module per
// concern (control, agents, documents, migrations), each operation a function of the connection.

import { resolve } from 'node:path';

import type { Store } from '../types.js';
import * as agents from './agents.js';
import { SqliteConnection } from './connection.js';
import * as control from './control.js';
import * as documents from './documents.js';
import { migrate, MIGRATIONS } from './migrations.js';
import * as policy from './policy.js';
import * as records from './records.js';
import { openFileWatch } from './watch.js';

export interface SqliteStoreOptions {
  /** Path of the database file, or ':memory:' (then no watch and no sharing). */
  path: string;
  /** How long one call may wait for another process's lock (STORE_TIMEOUT). Default 10000 ms. */
  timeoutMs?: number;
}

export function createSqliteStore(options: SqliteStoreOptions): Store {
  const inMemory = options.path === ':memory:';
  const path = inMemory ? options.path : resolve(options.path);
  const conn = new SqliteConnection(path, inMemory, options.timeoutMs);
  const run = conn.run.bind(conn);
  // A file that comes back at the path (restored, recreated by hand) gets the schema a starting
  // agent would give it; one that has it is only read (no write lock taken).
  conn.onReopen = (h) => {
    const current = h.db.pragma('user_version', { simple: true }) as number;
    if (current !== MIGRATIONS.length || !control.hasControlRow(h)) migrate(h, path);
  };

  return {
    kind: 'sqlite',
    description: `sqlite:${path}`,

    async init() {
      await run('migrating the schema', (h) => migrate(h, path));
    },

    async close() {
      conn.close();
    },

    async ping() {
      const started = performance.now();
      await run('pinging', (h) => h.statement('SELECT 1').get());
      return performance.now() - started;
    },

    async readClock() {
      // Measured afresh: the agent reads it once a heartbeat to report its offset.
      await run('reading the clock', () => conn.clock.measure());
      return new Date(conn.clock.nowMs());
    },

    onReplaced: (listener) => conn.onFileChange(listener),

    readControlVersion: () => run('reading the control version', control.readControlVersion),
    readControl: () => run('reading the control state', control.readControl),
    writeCommand: (input) => run('writing a command', (h) => control.writeCommand(h, input)),
    listHistory: (limit) => run('reading the history', (h) => control.listHistory(h, limit)),

    watchControl: (handlers) => openFileWatch(conn, handlers),

    readPolicy: () => run('reading the fleet policy', policy.readPolicy),
    writePolicy: (write) => run('writing the fleet policy', (h) => policy.writePolicy(h, write)),
    listPolicyHistory: (limit) =>
      run('reading the policy history', (h) => policy.listPolicyHistory(h, limit)),

    upsertAgent: (heartbeat) => run('writing a heartbeat', (h) => agents.upsertAgent(h, heartbeat)),
    removeAgent: (instanceId) => run('removing an agent', (h) => agents.removeAgent(h, instanceId)),
    listAgents: () => run('listing agents', agents.listAgents),
    pruneAgents: (olderThanMs) => run('pruning agents', (h) => agents.pruneAgents(h, olderThanMs)),

    insertDocuments: (payloads) => run('inserting documents', (h) => documents.insertDocuments(h, payloads)),
    claimBatch: (owner, limit, leaseMs, filter) =>
      run('claiming documents', (h) => documents.claimBatch(h, owner, limit, leaseMs, filter)),
    extendLeases: (held, leaseMs) => run('extending leases', (h) => documents.extendLeases(h, held, leaseMs)),
    completeDocuments: (held) => run('completing documents', (h) => documents.completeDocuments(h, held)),
    failDocuments: (failures, maxRetries) =>
      run('recording failures', (h) => documents.failDocuments(h, failures, maxRetries)),
    releaseDocuments: (held) => run('releasing documents', (h) => documents.releaseDocuments(h, held)),
    enqueueDocuments: (docs) => run('storing documents', (h) => documents.enqueueDocuments(h, docs)),
    recoverExpiredLeases: (maxRetries, spreadMs) =>
      run('recovering expired leases', (h) => documents.recoverExpiredLeases(h, maxRetries, spreadMs)),
    getDocument: (id) => run('reading a document', (h) => records.getDocument(h, id)),
    countDocuments: () => run('counting documents', records.countDocuments),
    countQueues: () => run('counting documents per queue', records.countQueues),
    listDocuments: (query) => run('listing documents', (h) => records.listDocuments(h, query)),
    retryDocuments: (target) => run('retrying documents', (h) => records.retryDocuments(h, target)),
    deleteDocument: (id) => run('deleting a document', (h) => records.deleteDocument(h, id)),
  };
}
