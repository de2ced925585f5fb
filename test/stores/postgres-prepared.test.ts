// Prepared statements (src/stores/postgres/connection.ts, preparingQueryable): on a direct
// connection the store's statements are parsed once per connection and then only executed; behind
// PgBouncer in transaction mode, where a statement prepared on one server connection is missing on
// the next, the first error switches to unnamed statements and the query still answers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createPool, preparingQueryable } from '../../src/stores/postgres/connection.js';
import { POSTGRES_HOW_TO, POSTGRES_URL } from '../helpers/postgres.js';
import { unavailable } from '../helpers/targets.js';

const BOUNCER_URL = process.env.PA_TEST_PGBOUNCER_URL;
const TEXT = 'SELECT $1::int * 2 AS doubled';

describe(
  'prepared statements on a direct connection',
  {
    skip: POSTGRES_URL ? false : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO),
  },
  () => {
    it('are prepared once per connection and then reused', async () => {
      const pool = createPool(POSTGRES_URL!, 1);
      try {
        const db = preparingQueryable(pool);
        for (let i = 1; i <= 5; i++) {
          assert.equal((await db.query<{ doubled: number }>(TEXT, [i])).rows[0]?.doubled, i * 2);
        }
        const { rows } = await pool.query<{ name: string; statement: string }>(
          "SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'pa\\_%'",
        );
        assert.deepEqual(
          rows.map((r) => r.statement),
          [TEXT],
          'one prepared statement on the only connection, for five queries',
        );
        assert.equal(db.preparing, true);
      } finally {
        await pool.end();
      }
    });
  },
);

describe(
  'prepared statements behind PgBouncer in transaction mode',
  {
    skip: BOUNCER_URL
      ? false
      : unavailable(
          'PgBouncer',
          'PA_TEST_PGBOUNCER_URL',
          'scripts/dev/postgres.sh starts one when pgbouncer is installed',
        ),
  },
  () => {
    it('fall back to unnamed statements, and every query answers', async () => {
      const pool = createPool(BOUNCER_URL!, 4);
      try {
        const db = preparingQueryable(pool);
        // Concurrent queries spread over PgBouncer's server connections until one lands where its
        // statement is missing (or already there under the same name).
        for (let round = 0; round < 50 && db.preparing; round++) {
          const answers = await Promise.all(
            Array.from({ length: 8 }, (_, i) => db.query<{ doubled: number }>(TEXT, [round * 8 + i])),
          );
          answers.forEach((answer, i) => assert.equal(answer.rows[0]?.doubled, (round * 8 + i) * 2));
        }
        assert.equal(
          db.preparing,
          false,
          'PgBouncer in transaction mode must have refused a prepared statement',
        );
        assert.equal((await db.query<{ doubled: number }>(TEXT, [21])).rows[0]?.doubled, 42);
      } finally {
        await pool.end();
      }
    });
  },
);
