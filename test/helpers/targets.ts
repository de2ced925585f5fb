// The stores that store-agnostic tests run against. Each target makes a fresh, empty database for
// one test (a temp file, a PostgreSQL schema, a MongoDB database) and says how an agent process
// reaches it. A target whose server is not configured is skipped with one line saying so, except
// under CI=true, where a missing server is a failure: CI never skips a store.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '../../src/config.js';
import { openStore } from '../../src/stores/index.js';
import type { Store } from '../../src/stores/types.js';
import { dropDatabase, FERRETDB_HOW_TO, FERRETDB_URL, freshDatabase, MONGODB_TEST_URI } from './mongodb.js';
import { dropSchema, freshSchema, POSTGRES_HOW_TO, POSTGRES_URL } from './postgres.js';

export interface TargetDatabase {
  /** Environment variables that point an agent process at this database. */
  env: Record<string, string>;
  /** A connection for the test's own assertions (initialised). */
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

export interface TestTarget {
  name: string;
  /** Why this target is skipped, or undefined when it runs. */
  skip: string | undefined;
  /**
   * False for a server known to have no event-driven watch (FerretDB: no change streams), where
   * agents are expected to fall back to polling. Default: the store pushes.
   */
  pushes?: boolean;
  create(): Promise<TargetDatabase>;
}

async function openFromEnv(env: Record<string, string>): Promise<Store> {
  const store = await openStore(loadConfig(env).store);
  await store.init();
  return store;
}

/** Skips outside CI, fails under CI, when a server a target needs is not configured. */
export function unavailable(name: string, variable: string, howTo: string): string {
  const reason = `${name} tests skipped: ${variable} is not set (${howTo})`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  return reason;
}

export const sqliteTarget: TestTarget = {
  name: 'sqlite',
  skip: undefined,
  async create() {
    const dir = mkdtempSync(join(tmpdir(), 'pa-target-'));
    const env = { STORE_URL: `sqlite:${join(dir, 'store.db')}` };
    return {
      env,
      open: () => openFromEnv(env),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

export const postgresTarget: TestTarget = {
  name: 'postgres',
  // A getter, so that under CI=true a missing server fails the tests that use this target.
  get skip() {
    return POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);
  },
  async create() {
    const url = POSTGRES_URL as string;
    const schema = freshSchema();
    const env = { STORE_URL: url, PG_SCHEMA: schema };
    return {
      env,
      open: () => openFromEnv(env),
      cleanup: () => dropSchema(url, schema),
    };
  },
};

/** A fresh MongoDB database per test on `url`, reached through the seed's variables. */
async function createMongoDatabase(url: string): Promise<TargetDatabase> {
  const database = freshDatabase();
  const env = { MONGODB_URI: url, MONGODB_DATABASE: database };
  return {
    env,
    open: () => openFromEnv(env),
    cleanup: () => dropDatabase(url, database),
  };
}

/** FerretDB: a real MongoDB wire-protocol server without change streams, so agents poll. */
export const mongodbTarget: TestTarget = {
  name: 'mongodb (FerretDB)',
  get skip() {
    return FERRETDB_URL
      ? undefined
      : unavailable('MongoDB (FerretDB)', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO);
  },
  pushes: false,
  create: () => createMongoDatabase(FERRETDB_URL as string),
};

/**
 * The user's own MongoDB (MONGODB_TEST_URI), only when set. Whether it pushes (a replica set) or
 * not (a standalone) is found out by opening a change stream once, never assumed.
 */
function userMongodbTarget(url: string): TestTarget {
  let pushes: boolean | undefined;
  return {
    name: 'mongodb (MONGODB_TEST_URI)',
    skip: undefined,
    get pushes() {
      return pushes;
    },
    async create() {
      const db = await createMongoDatabase(url);
      if (pushes === undefined) {
        const store = await db.open();
        try {
          const watch = await store.watchControl({ onWake: () => undefined, onError: () => undefined });
          await watch.close();
          pushes = true;
        } catch {
          pushes = false;
        } finally {
          await store.close();
        }
      }
      return db;
    },
  };
}

/** Every target, in the order tests run them. Store issues add theirs here. */
export const TARGETS: TestTarget[] = [
  sqliteTarget,
  postgresTarget,
  mongodbTarget,
  ...(MONGODB_TEST_URI ? [userMongodbTarget(MONGODB_TEST_URI)] : []),
];
