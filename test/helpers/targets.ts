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

/** Every target, in the order tests run them. Store issues add theirs here. */
export const TARGETS: TestTarget[] = [sqliteTarget, postgresTarget];
