// The PostgreSQL store: a pg.Pool for queries, a small pool of its own for the heartbeat, one
// dedicated LISTEN connection per control watch, and one small module per concern (control, agents, documents, migrate, listen), each SQL
// operation a function that takes the connection. Loaded by openStore only for postgres:// URLs.

import { WatchUnavailableError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import type { Store, WatchHandlers } from '../types.js';
import * as agents from './agents.js';
import {
  createBeatPool,
  createPool,
  DEFAULT_TIMEOUT_MS,
  discardIdleClients,
  dropRefusedStartupParameter,
  preparingQueryable,
} from './connection.js';
import * as control from './control.js';
import * as documents from './documents.js';
import { guard as guardCall, isSilentConnection } from './driver-errors.js';
import { FEATURE, openControlWatch } from './listen.js';
import { migrate } from './migrate.js';
import { makeNames } from './names.js';
import * as policy from './policy.js';
import * as records from './records.js';

export { SCHEMA_VERSION } from './migrate.js';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database?… (libpq-style parameters as node-postgres reads them). */
  url: string;
  /** Schema holding the tables, created when missing (PG_SCHEMA, default pulling_agent). */
  schema: string;
  /** Pool size; each agent also holds one LISTEN connection while it watches. Default 4. */
  poolSize?: number;
  /** How long the LISTEN connection's test notification may take at start. Default 2000 ms. */
  listenProbeTimeoutMs?: number;
  /**
   * Interval of the LISTEN connection's keep-alive query (`SELECT 1`, which must answer within the
   * same time), 0 = none. Default 5000 ms: a silently dead peer is noticed within about 10 s.
   */
  listenKeepAliveMs?: number;
  /** The deadline of every call (STORE_TIMEOUT). Default 10000 ms. */
  timeoutMs?: number;
}

/** The URL without its password, also when the password is given as a query parameter. */
function describeUrl(url: string): string {
  const redacted = redactUrl(url);
  try {
    const parsed = new URL(redacted);
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return redacted.replace(/([?&]password=)[^&]*/, '$1***');
  }
}

export function createPostgresStore(options: PostgresStoreOptions): Store {
  const names = makeNames(options.schema);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pool = createPool(options.url, options.poolSize ?? 4, timeoutMs);
  // The heartbeat's own connections, so that a beat never waits behind the pool's hung calls.
  const beatPool = createBeatPool(options.url, timeoutMs);
  // Every statement below is one fixed text: prepared once per connection (see preparingQueryable).
  const db = preparingQueryable(pool);
  const beats = preparingQueryable(beatPool);
  // After one connection went silent, those opened beside it (both pools') are likely dead too.
  const discardIdle = () => {
    discardIdleClients(pool);
    discardIdleClients(beatPool);
  };
  // A call that got no answer at all discards the pools' idle connections too (connection.ts).
  const guard = <T>(what: string, operation: () => Promise<T>): Promise<T> =>
    guardCall(what, operation).catch((error: unknown) => {
      if (isSilentConnection(error)) discardIdle();
      throw error;
    });
  const watches = new Set<{ close(): Promise<void> }>();
  let closing: Promise<void> | undefined;

  return {
    kind: 'postgres',
    description: `${describeUrl(options.url)} (schema ${names.schema})`,

    init: () =>
      guard('migrating the schema', async () => {
        const client = await pool.connect().catch(async (error: unknown) => {
          if (!dropRefusedStartupParameter(pool, error)) throw error;
          return pool.connect();
        });
        let failure: unknown;
        try {
          await migrate(client, names);
        } catch (error) {
          failure = error;
          throw error;
        } finally {
          // A client that failed mid-migration may be in a transaction or broken: discard it.
          client.release(failure instanceof Error ? failure : undefined);
        }
      }),

    close() {
      closing ??= (async () => {
        await Promise.all([...watches].map((w) => w.close()));
        await Promise.all([pool.end(), beatPool.end()]);
      })();
      return closing;
    },

    ping: () =>
      guard('pinging', async () => {
        const started = performance.now();
        await db.query('SELECT 1');
        return performance.now() - started;
      }),

    readClock: () =>
      guard('reading the clock', async () => {
        // The clock the registry's heartbeats are stamped with (leases take now(), the same clock).
        const result = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
        return result.rows[0]?.now ?? new Date(Number.NaN);
      }),

    readControlVersion: () =>
      guard('reading the control version', () => control.readControlVersion(db, names)),
    readControl: () => guard('reading the control state', () => control.readControl(db, names)),
    writeCommand: (input) => guard('writing a command', () => control.writeCommand(db, names, input)),
    listHistory: (limit) => guard('reading the history', () => control.listHistory(db, names, limit)),

    async watchControl(handlers: WatchHandlers) {
      if (closing) throw new WatchUnavailableError(FEATURE, 'the store is closed');
      const watch = await openControlWatch(
        {
          url: options.url,
          names,
          pool,
          probeTimeoutMs: options.listenProbeTimeoutMs ?? 2_000,
          keepAliveMs: options.listenKeepAliveMs ?? 5_000,
          timeoutMs,
          onSilent: discardIdle,
        },
        handlers,
      );
      if (closing) {
        await watch.close();
        throw new WatchUnavailableError(FEATURE, 'the store was closed while the watch opened');
      }
      watches.add(watch);
      return {
        mode: watch.mode,
        description: watch.description,
        async close() {
          watches.delete(watch);
          await watch.close();
        },
      };
    },

    readPolicy: () => guard('reading the fleet policy', () => policy.readPolicy(db, names)),
    writePolicy: (write) => guard('writing the fleet policy', () => policy.writePolicy(db, names, write)),
    listPolicyHistory: (limit) =>
      guard('reading the policy history', () => policy.listPolicyHistory(db, names, limit)),

    // On the heartbeat's own pool; a deadline of the call's own is the client's query_timeout,
    // which destroys the connection of a write that got no answer (CallOptions).
    upsertAgent: (heartbeat, call) =>
      guard('writing a heartbeat', () => agents.upsertAgent(beats, names, heartbeat, call)),
    removeAgent: (instanceId) => guard('removing an agent', () => agents.removeAgent(db, names, instanceId)),
    listAgents: () => guard('listing agents', () => agents.listAgents(db, names)),
    pruneAgents: (olderThanMs) => guard('pruning agents', () => agents.pruneAgents(db, names, olderThanMs)),

    insertDocuments: (payloads) =>
      guard('inserting documents', () => documents.insertDocuments(db, names, payloads)),
    claimBatch: (owner, limit, leaseMs, filter) =>
      guard('claiming documents', () => documents.claimBatch(db, names, owner, limit, leaseMs, filter)),
    extendLeases: (held, leaseMs) =>
      guard('extending leases', () => documents.extendLeases(db, names, held, leaseMs)),
    completeDocuments: (held) =>
      guard('completing documents', () => documents.completeDocuments(db, names, held)),
    failDocuments: (failures, maxRetries) =>
      guard('recording failures', () => documents.failDocuments(db, names, failures, maxRetries)),
    releaseDocuments: (held) =>
      guard('releasing documents', () => documents.releaseDocuments(db, names, held)),
    enqueueDocuments: (docs) => guard('storing documents', () => documents.enqueueDocuments(db, names, docs)),
    recoverExpiredLeases: (maxRetries, spreadMs) =>
      guard('recovering expired leases', () =>
        documents.recoverExpiredLeases(db, names, maxRetries, spreadMs),
      ),
    getDocument: (id) => guard('reading a document', () => records.getDocument(db, names, id)),
    countDocuments: () => guard('counting documents', () => records.countDocuments(db, names)),
    countQueues: () => guard('counting documents per queue', () => records.countQueues(db, names)),
    listDocuments: (query) => guard('listing documents', () => records.listDocuments(db, names, query)),
    retryDocuments: (target) => guard('retrying documents', () => records.retryDocuments(db, names, target)),
    deleteDocument: (id) => guard('deleting a document', () => records.deleteDocument(db, names, id)),
  };
}
