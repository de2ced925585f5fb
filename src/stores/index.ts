// openStore(target) picks the store for a configured URL. Each store lives in its own folder and is
// loaded only when used, so an agent loads only its own store's driver: one on SQLite never loads
// the MongoDB or PostgreSQL driver, and one on PostgreSQL or MongoDB never loads better-sqlite3.

import type { StoreTarget } from './target.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

export interface OpenStoreOptions {
  /** The deadline of every store call (STORE_TIMEOUT); each store's default (10 s) when absent. */
  timeoutMs?: number;
}

/** Creates (but does not initialise) the store for a target. */
export async function openStore(target: StoreTarget, options: OpenStoreOptions = {}): Promise<Store> {
  const timeout = options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {};
  switch (target.kind) {
    case 'sqlite': {
      const { createSqliteStore } = await import('./sqlite/index.js');
      return createSqliteStore({ path: target.path, ...timeout });
    }
    case 'postgres': {
      const { createPostgresStore } = await import('./postgres/index.js');
      return createPostgresStore({ url: target.url, schema: target.schema, ...timeout });
    }
    case 'mongodb': {
      const { createMongoStore } = await import('./mongodb/index.js');
      return createMongoStore({
        url: target.url,
        database: target.database,
        collection: target.collection,
        ...(target.queueField !== undefined ? { queueField: target.queueField } : {}),
        watchDocuments: target.watchDocuments !== false,
        ...timeout,
      });
    }
  }
}
