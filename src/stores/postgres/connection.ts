// Connections: one pg.Pool per store for queries, plus one dedicated client per control watch
// (LISTEN needs a session of its own). Both use the same settings.

import pg from 'pg';

/** What the SQL functions need from a pool or a client: one query, one round trip. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

export function clientConfig(url: string, applicationName: string): pg.ClientConfig {
  return {
    connectionString: url,
    application_name: applicationName,
    // A server that does not answer within this is unavailable, rather than hanging the caller.
    connectionTimeoutMillis: 10_000,
    // Notice a dead peer on idle connections, above all the listen connection.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

export function createPool(url: string, size: number): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(url, 'pulling-agent'), max: size, idleTimeoutMillis: 30_000 });
  // An idle client whose server went away emits 'error' on the pool, which would crash the process
  // if nobody listened. The pool has already discarded that client; the next query reconnects or
  // fails with an error that the store reports as StoreUnavailableError.
  pool.on('error', () => undefined);
  return pool;
}
