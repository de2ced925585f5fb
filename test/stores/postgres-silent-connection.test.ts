// A path to PostgreSQL that dies silently (a NAT or firewall forgetting its connections: no FIN,
// no RST, new connections work), through the relay in test/helpers/relay.ts: the call that meets a
// dead connection misses its deadline, and the next call must not meet the next dead one of the
// same pool, a whole STORE_TIMEOUT each, but a fresh connection that answers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isStoreTimeout } from '../../src/errors.js';
import { createPostgresStore } from '../../src/stores/postgres/index.js';
import { dropSchema, freshSchema, POSTGRES_HOW_TO, POSTGRES_URL } from '../helpers/postgres.js';
import { startRelay, throughRelay } from '../helpers/relay.js';
import { unavailable } from '../helpers/targets.js';

const skip = POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);

describe('postgres store behind a connection that died silently', { skip }, () => {
  it('after one call misses its deadline, the next one gets a fresh connection instead of the next dead one', async () => {
    const url = POSTGRES_URL as string;
    const target = new URL(url);
    const relay = await startRelay(target.hostname, Number(target.port));
    const schema = freshSchema();
    const timeoutMs = 1_000;
    const store = createPostgresStore({
      url: throughRelay(url, relay.port),
      schema,
      poolSize: 4,
      timeoutMs,
      listenKeepAliveMs: 0,
    });
    try {
      await store.init();
      // Four connections open and idle in the pool, as in a busy agent.
      await Promise.all(Array.from({ length: 4 }, () => store.readControlVersion()));
      assert.ok(relay.freeze() >= 2, 'the relay froze the pool connections');

      const first = await store.ping().then(
        () => null,
        (error: unknown) => error,
      );
      assert.ok(isStoreTimeout(first), `the first call meets a dead connection: ${String(first)}`);
      // The others opened beside it are as dead: without their discard this call waits a whole
      // deadline too (and so would the one after it).
      const started = performance.now();
      assert.equal(await store.readControlVersion(), 0);
      const ms = performance.now() - started;
      assert.ok(ms < timeoutMs, `answered on a fresh connection in ${ms.toFixed(0)} ms`);
      assert.ok(relay.stats().openedSinceFreeze >= 1);
    } finally {
      await store.close();
      await relay.close();
      await dropSchema(url, schema);
    }
  });
});
