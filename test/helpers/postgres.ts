// The test PostgreSQL server: its URL (PA_TEST_POSTGRES_URL, started by scripts/ci/postgres.sh or
// scripts/dev/postgres.sh), a fresh schema name per test, and one-shot raw SQL for set-up,
// assertions and clean-up that do not go through the store.

import { randomBytes } from 'node:crypto';

import pg from 'pg';

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
