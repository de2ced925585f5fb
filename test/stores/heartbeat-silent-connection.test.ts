// The heartbeat's write behind a connection that died silently (the relay in test/helpers/relay.ts
// freezes every open connection; new ones work), on PostgreSQL and on MongoDB (FerretDB): with a
// deadline of its own (CallOptions) the write fails at that deadline, not the store's, even while
// the pool's connections are held by hung calls, and the write made right after it lands on a
// fresh connection.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isStoreTimeout } from '../../src/errors.js';
import { createMongoStore } from '../../src/stores/mongodb/index.js';
import { createPostgresStore } from '../../src/stores/postgres/index.js';
import type { AgentHeartbeat, Store } from '../../src/stores/types.js';
import { dropDatabase, FERRETDB_HOW_TO, FERRETDB_URL, freshDatabase } from '../helpers/mongodb.js';
import { dropSchema, freshSchema, POSTGRES_HOW_TO, POSTGRES_URL } from '../helpers/postgres.js';
import { type Relay, startRelay, throughRelay } from '../helpers/relay.js';
import { unavailable } from '../helpers/targets.js';

/** The store's own deadline: far above the heartbeat's, so that the two cannot be mistaken. */
const STORE_TIMEOUT_MS = 8_000;
const BEAT_DEADLINE_MS = 1_000;

function heartbeat(state: string): AgentHeartbeat {
  return {
    agent_id: 'agent-1',
    instance_id: 'agent-1/1',
    host: 'test',
    software_version: '0.0.0',
    state,
    applied_version: 0,
    applied_at: null,
    batch_in_flight: false,
    watch_mode: 'polling',
    started_at: new Date(0),
    counters: {},
  };
}

/**
 * Freezes every connection `relayed` holds (its pool's, busy with `busy` calls, and the heartbeat's),
 * then checks that a heartbeat misses its own deadline and the next is written on a fresh one,
 * as `direct` (not behind the relay) reads it.
 */
async function heartbeatOnFreshConnection(relay: Relay, relayed: Store, direct: Store): Promise<void> {
  await relayed.init();
  await relayed.upsertAgent(heartbeat('running'), { timeoutMs: BEAT_DEADLINE_MS });
  await Promise.all(Array.from({ length: 4 }, () => relayed.readControlVersion()));
  assert.ok(relay.freeze() >= 2, 'the relay froze the open connections');
  // Calls that hold the pool's connections until the store's own deadline.
  const hung = Array.from({ length: 4 }, () => relayed.readControlVersion().catch((e: unknown) => e));

  const started = performance.now();
  const missed = await relayed.upsertAgent(heartbeat('paused'), { timeoutMs: BEAT_DEADLINE_MS }).then(
    () => null,
    (error: unknown) => error,
  );
  const missedMs = performance.now() - started;
  assert.ok(
    isStoreTimeout(missed),
    `the write on the dead connection missed its deadline: ${String(missed)}`,
  );
  assert.ok(
    missedMs < STORE_TIMEOUT_MS / 2,
    `it failed at its own deadline, not the store's (${missedMs.toFixed(0)} ms)`,
  );

  await relayed.upsertAgent(heartbeat('paused'), { timeoutMs: BEAT_DEADLINE_MS });
  const [row] = await direct.listAgents();
  assert.equal(row?.state, 'paused', 'the write made right after landed');
  assert.ok(relay.stats().openedSinceFreeze >= 1, 'on a connection opened after the freeze');
  // The pool's hung calls end at the store's deadline, as timeouts too.
  for (const outcome of await Promise.all(hung)) {
    if (typeof outcome !== 'number') assert.ok(isStoreTimeout(outcome), String(outcome));
  }
}

const pgSkip = POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);

describe('postgres heartbeat behind a connection that died silently', { skip: pgSkip }, () => {
  it('misses its own deadline while the pool hangs, and the next write lands on a fresh connection', async () => {
    const url = POSTGRES_URL as string;
    const target = new URL(url);
    const relay = await startRelay(target.hostname, Number(target.port));
    const schema = freshSchema();
    const options = { schema, poolSize: 4, timeoutMs: STORE_TIMEOUT_MS, listenKeepAliveMs: 0 };
    const relayed = createPostgresStore({ ...options, url: throughRelay(url, relay.port) });
    const direct = createPostgresStore({ ...options, url });
    try {
      await heartbeatOnFreshConnection(relay, relayed, direct);
    } finally {
      await relay.close();
      await relayed.close();
      await direct.close();
      await dropSchema(url, schema);
    }
  });
});

const mongoSkip = FERRETDB_URL ? undefined : unavailable('FerretDB', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO);

describe('mongodb heartbeat behind a connection that died silently', { skip: mongoSkip }, () => {
  it('misses its own deadline while the pool hangs, and the next write lands on a fresh connection', async () => {
    const url = FERRETDB_URL as string;
    const target = new URL(url);
    const relay = await startRelay(target.hostname, Number(target.port));
    const database = freshDatabase();
    const relayed = createMongoStore({
      url: throughRelay(url, relay.port),
      database,
      timeoutMs: STORE_TIMEOUT_MS,
    });
    const direct = createMongoStore({ url, database, timeoutMs: STORE_TIMEOUT_MS });
    try {
      await heartbeatOnFreshConnection(relay, relayed, direct);
    } finally {
      await relay.close();
      await relayed.close();
      await direct.close();
      await dropDatabase(url, database);
    }
  });
});
