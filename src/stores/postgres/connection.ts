// Connections: one pg.Pool per store for queries, one small pool of its own for the heartbeat (so
// that a beat never waits for a connection held by a hung call), plus one dedicated client per
// control watch (LISTEN needs a session of its own). All use the same settings.

import { createHash } from 'node:crypto';

import pg from 'pg';

/** One query's own bounds. */
export interface QueryOptions {
  /**
   * The client's deadline for this query (its query_timeout), below the pool's: a query without an
   * answer by then fails with `Query read timeout` and its client is destroyed (a pool query).
   */
  timeoutMs?: number;
}

/** What the SQL functions need from a pool or a client: one query, one round trip. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options?: QueryOptions,
  ): Promise<pg.QueryResult<R>>;
}

/** A query as node-postgres takes it, with a query_timeout of its own when one is given. */
function queryConfig(
  text: string,
  values: unknown[] | undefined,
  name: string | undefined,
  options?: QueryOptions,
) {
  const config: pg.QueryConfig & { query_timeout?: number } = { text };
  if (values !== undefined) config.values = values;
  if (name !== undefined) config.name = name;
  if (options?.timeoutMs !== undefined) config.query_timeout = Math.max(1, Math.round(options.timeoutMs));
  return config;
}

/** The deadline of one store call when none is configured (STORE_TIMEOUT). */
export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Every connection's settings, the listen connection's too. `timeoutMs` bounds each call twice:
 * the server cancels a statement that runs longer (`statement_timeout`, SQLSTATE 57014), and the
 * client gives up on an answer that does not come (`query_timeout`, a little later, for a server
 * or network that went silent). A pool query that fails either way releases its client with the
 * error, which destroys it (pg-pool's `release(err)`): the next call has a fresh connection.
 */
export function clientConfig(
  url: string,
  applicationName: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): pg.ClientConfig {
  const ms = Math.max(1, Math.round(timeoutMs));
  return {
    connectionString: url,
    application_name: applicationName,
    // A server that does not answer within this is unavailable, rather than hanging the caller.
    connectionTimeoutMillis: ms,
    statement_timeout: ms,
    query_timeout: ms + Math.min(1_000, ms),
    // Notice a dead peer on idle connections, above all the listen connection.
    keepAlive: true,
    keepAliveInitialDelayMillis: 5_000,
  };
}

export function createPool(url: string, size: number, timeoutMs = DEFAULT_TIMEOUT_MS): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(url, 'pulling-agent', timeoutMs),
    max: size,
    idleTimeoutMillis: 30_000,
  });
  // An idle client whose server went away emits 'error' on the pool, which would crash the process
  // if nobody listened. The pool has already discarded that client; the next query reconnects or
  // fails with an error that the store reports as StoreUnavailableError.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * The heartbeat's own pool: two connections at most (a write abandoned at its deadline and the one
 * written again at once; heartbeat.ts never has more in flight), idle ones closed after a minute.
 * Apart from the main pool, a beat never waits for a connection that a hung claim or renewal holds,
 * and the connection of a beat that missed its deadline is destroyed, so the next opens a new one.
 */
export function createBeatPool(url: string, timeoutMs = DEFAULT_TIMEOUT_MS): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(url, 'pulling-agent heartbeat', timeoutMs),
    max: 2,
    idleTimeoutMillis: 60_000,
  });
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Replaces every idle connection of the pool. After one connection went silent (a call that got no
 * answer at all, the listen connection's keep-alive unanswered), those opened beside it are likely
 * dead too: a NAT or a firewall forgets them all at once, without a FIN or a RST, and each would
 * cost the next caller a whole STORE_TIMEOUT. Each idle client is checked out and released
 * destroyed (pg-pool's `release(true)`); fresh ones are opened on demand. Connections in use are
 * left to their own deadlines.
 */
export function discardIdleClients(pool: pg.Pool): number {
  // As many as are idle now (connect() hands them out on a later tick): one taken meanwhile by a
  // caller makes one of these a fresh connection, discarded at once, which only costs a connect.
  const idle = pool.idleCount;
  for (let i = 0; i < idle; i++) {
    pool.connect().then(
      (client) => client.release(true),
      () => undefined,
    );
  }
  return idle;
}

/**
 * PgBouncer refuses start-up parameters it does not know (`unsupported startup parameter:
 * statement_timeout`) unless told to ignore them: the first such refusal drops statement_timeout
 * from the pool's settings for good (query_timeout, client-side, still bounds every call), and
 * says whether the call should be tried again.
 */
export function dropRefusedStartupParameter(pool: pg.Pool, error: unknown): boolean {
  if (!/unsupported startup parameter: statement_timeout/i.test((error as Error | null)?.message ?? '')) {
    return false;
  }
  // Concurrent calls that failed the same way are tried again too (once: the caller's retry).
  delete (pool as unknown as { options: pg.PoolConfig }).options.statement_timeout;
  return true;
}

/** SQLSTATEs of a prepared statement missing from, or already on, the server connection. */
const NOT_PREPARED_HERE = new Set(['26000', '42P05']);

export interface PreparingQueryable extends Queryable {
  /** One query as is, without the start-up parameter fallback. */
  send<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options?: QueryOptions,
  ): Promise<pg.QueryResult<R>>;
  /** Whether statements are still sent as named prepared statements. */
  readonly preparing: boolean;
}

/**
 * The pool's queries as named prepared statements: each connection parses and plans a statement
 * once, then only binds and executes it (a third more claims a second at BATCH_SIZE=1, measured;
 * graphile-worker does the same). Behind PgBouncer in transaction mode a statement prepared on one
 * server connection is missing on the next: the first such error (raised before anything ran)
 * switches the store to unnamed statements for good, and the query is sent again.
 */
export function preparingQueryable(pool: pg.Pool): PreparingQueryable {
  let preparing = true;
  // The store's statements are a handful of fixed texts: each is named once, not hashed per call.
  const names = new Map<string, string>();
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (name === undefined) {
      name = `pa_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
      names.set(text, name);
    }
    return name;
  };
  return {
    get preparing() {
      return preparing;
    },
    async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
      text: string,
      values?: unknown[],
      options?: QueryOptions,
    ): Promise<pg.QueryResult<R>> {
      try {
        return await this.send<R>(text, values, options);
      } catch (error) {
        if (!dropRefusedStartupParameter(pool, error)) throw error;
        return this.send<R>(text, values, options);
      }
    },
    async send<R extends pg.QueryResultRow = pg.QueryResultRow>(
      text: string,
      values?: unknown[],
      options?: QueryOptions,
    ) {
      if (!preparing) return pool.query<R>(queryConfig(text, values, undefined, options));
      try {
        return await pool.query<R>(queryConfig(text, values, nameOf(text), options));
      } catch (error) {
        if (!NOT_PREPARED_HERE.has((error as { code?: string }).code ?? '')) throw error;
        preparing = false;
        return pool.query<R>(queryConfig(text, values, undefined, options));
      }
    },
  };
}
