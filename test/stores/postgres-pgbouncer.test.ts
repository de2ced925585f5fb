// The PostgreSQL store behind PgBouncer in transaction pooling mode (PA_TEST_PGBOUNCER_URL, started
// by scripts/ci/postgres.sh): everything works except LISTEN, and the watch says so, naming
// PgBouncer, so that the control watcher polls with a warning that tells the operator why.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { WatchUnavailableError } from '../../src/errors.js';
import { createPostgresStore } from '../../src/stores/postgres/index.js';
import { dropSchema, freshSchema, policyRawWrites, rawQuery } from '../helpers/postgres.js';
import { unavailable } from '../helpers/targets.js';
import { describeStore } from './conformance.js';

const BOUNCER_URL = process.env.PA_TEST_PGBOUNCER_URL;
const skip = BOUNCER_URL
  ? undefined
  : unavailable(
      'PgBouncer',
      'PA_TEST_PGBOUNCER_URL',
      'scripts/dev/postgres.sh starts one when pgbouncer is installed',
    );

describeStore(
  'postgres through PgBouncer (transaction pooling)',
  async () => {
    const url = BOUNCER_URL as string;
    const schema = freshSchema();
    return {
      async open() {
        const store = createPostgresStore({ url, schema });
        await store.init();
        return store;
      },
      async manualBump() {
        await rawQuery(
          url,
          `UPDATE "${schema}".agent_control SET version = version + 1 WHERE id = 'global_control'`,
        );
      },
      async setVersion(version: number) {
        await rawQuery(
          url,
          `UPDATE "${schema}".agent_control SET version = ${BigInt(version)} WHERE id = 'global_control'`,
        );
      },
      ...policyRawWrites(url, schema),
      async cleanup() {
        await dropSchema(url, schema);
      },
    };
  },
  { skip },
);

describe('postgres LISTEN behind PgBouncer', { skip }, () => {
  it('is refused within the probe timeout, with a reason naming PgBouncer transaction pooling', async () => {
    const url = BOUNCER_URL as string;
    const schema = freshSchema();
    const store = createPostgresStore({ url, schema, listenProbeTimeoutMs: 500 });
    try {
      await store.init();
      const started = performance.now();
      await assert.rejects(
        store.watchControl({ onWake: () => undefined, onError: () => undefined }),
        (error: unknown) => {
          assert.ok(error instanceof WatchUnavailableError, String(error));
          assert.equal(error.feature, 'PostgreSQL LISTEN/NOTIFY');
          assert.match(error.reason, /PgBouncer/);
          assert.match(error.reason, /transaction pooling/);
          assert.match(error.message, /^PostgreSQL LISTEN\/NOTIFY not available: /);
          return true;
        },
      );
      assert.ok(performance.now() - started < 5_000);
      // The store goes on working for everything else.
      assert.equal(
        (await store.writeCommand({ command: 'pause', reason: null, updated_by: 't' })).version,
        1,
      );
    } finally {
      await store.close();
      await dropSchema(url, schema);
    }
  });
});
