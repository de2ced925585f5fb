// The stores and watch modes a run measures, and a fresh, empty database for one scenario on each:
// a temp SQLite file, a PostgreSQL schema, a MongoDB database. A scenario gets the environment an
// agent process needs and the StoreTarget an in-process agent needs, and drops it afterwards.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MongoClient } from 'mongodb';
import pg from 'pg';

import type { StoreTarget } from '../../src/config.js';
import type { WatchMode } from '../../src/stores/types.js';
import { onAbort } from './cleanup.js';
import type { Servers } from './servers.js';

export type StoreKind = 'sqlite' | 'postgres' | 'mongodb';

export interface BenchStore {
  kind: StoreKind;
  label: string;
}

export interface BenchMode {
  store: BenchStore;
  /** What agents are expected to report as their watch mode. */
  watchMode: WatchMode;
  /** ENABLE_CHANGE_STREAMS for this mode. */
  eventDriven: boolean;
  /** e.g. `SQLite file_events`. */
  label: string;
}

export interface FreshDatabase {
  env: Record<string, string>;
  target: StoreTarget;
  cleanup(): Promise<void>;
}

export const STORE_LABELS: Record<StoreKind, string> = {
  sqlite: 'SQLite',
  postgres: 'PostgreSQL',
  mongodb: 'MongoDB (FerretDB)',
};

export function availableStores(servers: Servers): BenchStore[] {
  const kinds: StoreKind[] = ['sqlite'];
  if (servers.postgres) kinds.push('postgres');
  if (servers.mongodb) kinds.push('mongodb');
  return kinds.map((kind) => ({ kind, label: STORE_LABELS[kind] }));
}

/** Every store and mode there is: push and poll where the store can push, poll on FerretDB. */
export function modesOf(stores: BenchStore[]): BenchMode[] {
  return stores.flatMap((store): BenchMode[] => {
    const poll: BenchMode = {
      store,
      watchMode: 'polling',
      eventDriven: false,
      label: `${store.label} polling`,
    };
    if (store.kind === 'sqlite')
      return [{ store, watchMode: 'file_events', eventDriven: true, label: 'SQLite file_events' }, poll];
    if (store.kind === 'postgres')
      return [
        { store, watchMode: 'listen_notify', eventDriven: true, label: 'PostgreSQL listen_notify' },
        poll,
      ];
    // FerretDB has no change streams: polling is the only mode (forced, so that no agent keeps
    // retrying a change stream in the background while we count its queries).
    return [poll];
  });
}

export async function freshDatabase(kind: StoreKind, servers: Servers): Promise<FreshDatabase> {
  const name = `pa_bench_${randomBytes(5).toString('hex')}`;
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'pa-bench-sqlite-'));
    const path = join(dir, 'store.db');
    const remove = () => rmSync(dir, { recursive: true, force: true });
    const unregister = onAbort(remove);
    return {
      env: { STORE_URL: `sqlite:${path}` },
      target: { kind: 'sqlite', path },
      cleanup: async () => {
        remove();
        unregister();
      },
    };
  }
  if (kind === 'postgres') {
    const url = servers.postgres?.url as string;
    return {
      env: { STORE_URL: url, PG_SCHEMA: name },
      target: { kind: 'postgres', url, schema: name },
      async cleanup() {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
        } finally {
          await client.end();
        }
      },
    };
  }
  const url = servers.mongodb?.url as string;
  return {
    env: { MONGODB_URI: url, MONGODB_DATABASE: name },
    target: { kind: 'mongodb', url, database: name, collection: 'documents' },
    async cleanup() {
      const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000, maxPoolSize: 1 });
      try {
        await client.db(name).dropDatabase();
      } finally {
        await client.close();
      }
    },
  };
}
