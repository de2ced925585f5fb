// The test PostgreSQL server: its URL (PA_TEST_POSTGRES_URL, started by scripts/ci/postgres.sh or
// scripts/dev/postgres.sh), a fresh schema name per test, one-shot raw SQL for set-up, assertions
// and clean-up that do not go through the store, and a per-test fixture of stores and watches.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach } from 'node:test';

import pg from 'pg';

import { createPostgresStore, type PostgresStoreOptions } from '../../src/stores/postgres/index.js';
import type { ControlWatch, Store } from '../../src/stores/types.js';

export const POSTGRES_URL = process.env.PA_TEST_POSTGRES_URL;
export const POSTGRES_HOW_TO =
  'start a throwaway server with `bash scripts/dev/postgres.sh` and export the line it prints';

/** A schema name no other test uses. */
export function freshSchema(): string {
  return `pa_test_${randomBytes(6).toString('hex')}`;
}

/** Runs one statement on a connection of its own, closed before this resolves. */
export async function rawQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

export async function dropSchema(url: string, schema: string): Promise<void> {
  await rawQuery(url, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

export interface Counts {
  wakes: number;
  documents: number;
  errors: Error[];
}

/**
 * For a describe() block: a fresh schema per test, stores and watches on it that are closed after
 * the test, and the schema dropped. Keep-alive queries are off unless a test asks for them.
 */
export function usePostgresSchema() {
  const url = POSTGRES_URL as string;
  let schema = '';
  let opened: Store[] = [];
  let watches: ControlWatch[] = [];

  beforeEach(() => {
    schema = freshSchema();
    opened = [];
    watches = [];
  });

  afterEach(async () => {
    await Promise.all(watches.map((w) => w.close()));
    await Promise.all(opened.map((s) => s.close()));
    await dropSchema(url, schema);
  });

  return {
    url,
    get schema() {
      return schema;
    },
    /** A store on this test's schema, closed after the test. */
    store(options: Partial<PostgresStoreOptions> = {}): Store {
      const s = createPostgresStore({ url, schema, listenKeepAliveMs: 0, ...options });
      opened.push(s);
      return s;
    },
    /** A watch that counts what it is told, closed after the test. */
    async watch(s: Store, counts: Counts): Promise<ControlWatch> {
      const w = await s.watchControl({
        onWake: () => counts.wakes++,
        onDocuments: () => counts.documents++,
        onError: (error) => counts.errors.push(error),
      });
      watches.push(w);
      return w;
    },
    /** The backend pid of this schema's LISTEN connection (its last statement names the schema). */
    async listenPid(): Promise<number> {
      const rows = await rawQuery<{ pid: number }>(
        url,
        `SELECT pid FROM pg_stat_activity WHERE application_name = 'pulling-agent listen' AND query LIKE $1`,
        [`LISTEN "${schema}:control"%`],
      );
      assert.equal(rows.length, 1, 'exactly one listen connection on this schema');
      return rows[0]!.pid;
    },
  };
}

/** The conformance suite's hand edits of the fleet policy (migration 6's tables), with raw SQL. */
export function policyRawWrites(url: string, schema: string) {
  return {
    async setRawPolicy(version: number, body: Record<string, unknown>): Promise<void> {
      await rawQuery(
        url,
        `INSERT INTO "${schema}".fleet_policy (id, version, body) VALUES ('fleet_policy', $1, $2::jsonb)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, timestamp = clock_timestamp(),
           body = excluded.body`,
        [String(version), JSON.stringify(body)],
      );
    },
    async addRawPolicyHistory(entry: Record<string, unknown>): Promise<void> {
      await rawQuery(
        url,
        `INSERT INTO "${schema}".fleet_policy_history (version, timestamp, command, queue, updated_by)
         VALUES ($1, $2, $3, $4, $5)`,
        [entry.version, entry.timestamp, entry.command, entry.queue, entry.updated_by],
      );
    },
  };
}
