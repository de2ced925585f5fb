// PostgreSQL connections and documents: unreachable servers and killed connections, bigint ids,
// jsonb payloads, and claims that use the claimable index. Timings are printed as diagnostics.

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { PullingAgentError, StoreUnavailableError } from '../../src/errors.js';
import {
  claimableIds,
  claimableIdsOfQueues,
  pendingQueuesExcept,
} from '../../src/stores/postgres/documents.js';
import { createPostgresStore } from '../../src/stores/postgres/index.js';
import { makeNames } from '../../src/stores/postgres/names.js';
import { held, owner } from '../helpers/claims.js';
import { POSTGRES_HOW_TO, POSTGRES_URL, rawQuery, usePostgresSchema } from '../helpers/postgres.js';
import { unavailable } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const skip = POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);

describe('postgres connections and documents', { skip }, () => {
  const fixture = usePostgresSchema();
  const { url, store } = fixture;
  let schema: string;
  beforeEach(() => {
    schema = fixture.schema;
  });

  it('turns an unreachable server into StoreUnavailableError and never shows the password', async () => {
    const down = createPostgresStore({
      url: 'postgres://agent:s3cret@127.0.0.1:1/db?password=s3cret',
      schema,
    });
    try {
      assert.ok(!down.description.includes('s3cret'), down.description);
      assert.match(down.description, /127\.0\.0\.1:1\/db/);
      for (const attempt of [
        () => down.init(),
        () => down.ping(),
        () => down.claimBatch(owner('a'), 10, 1000),
      ]) {
        await assert.rejects(attempt(), (error: unknown) => {
          assert.ok(error instanceof StoreUnavailableError, String(error));
          assert.equal(error.code, 'PA_STORE_UNAVAILABLE');
          assert.ok(!error.message.includes('s3cret'));
          return true;
        });
      }
    } finally {
      await down.close();
    }
  });

  it('survives its pooled connections being killed, and reconnects on the next query', async () => {
    const s = store();
    await s.init();
    // Several idle clients in the pool, whose last statement names this test's schema.
    await Promise.all([s.readControlVersion(), s.readControlVersion(), s.readControlVersion()]);
    const killed = await rawQuery<{ pid: number }>(
      url,
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'pulling-agent' AND query LIKE $1`,
      [`%"${schema}"%`],
    );
    assert.ok(killed.length > 0);
    await rawQuery(url, 'SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [
      killed.map((r) => r.pid),
    ]);
    // The idle clients' errors go to the pool's error listener instead of crashing the process;
    // the next queries either succeed on a fresh connection or report the store unavailable.
    const version = await waitFor(
      async () => {
        try {
          return { v: await s.readControlVersion() };
        } catch (error) {
          assert.ok(error instanceof StoreUnavailableError, String(error));
          return null;
        }
      },
      { what: 'a query after the pool lost its connections' },
    );
    assert.equal(version.v, 0);
  });
  it('treats ids that cannot be bigints as unknown instead of failing', async () => {
    const s = store();
    await s.init();
    const [id] = await s.insertDocuments(['x']);
    const [doc] = await s.claimBatch(owner('a'), 1, 60_000);
    const token = doc!.token;
    for (const bad of ['abc', '-1', '1.5', '99999999999999999999', '']) {
      assert.equal(await s.getDocument(bad), null);
      assert.deepEqual(await s.failDocuments([{ id: bad, token, error: 'e', retryInMs: 0 }], 1), [null]);
    }
    assert.equal(await s.extendLeases([{ id: 'nope', token }], 1000), 0);
    assert.equal(await s.releaseDocuments([{ id: 'nope', token }]), 0);
    assert.equal(
      await s.completeDocuments(['abc', '99999999999999999999', id!].map((i) => ({ id: i, token }))),
      1,
    );
  });

  it('refuses what jsonb cannot store as a bad request, and records any handler error', async () => {
    const s = store();
    await s.init();
    await assert.rejects(s.insertDocuments([{ text: 'nul \u0000 inside' }]), (error: unknown) => {
      assert.ok(error instanceof PullingAgentError, String(error));
      assert.equal(error.code, 'PA_BAD_REQUEST');
      return true;
    });
    const [id] = await s.insertDocuments(['ok']);
    const [doc] = await s.claimBatch(owner('a'), 1, 60_000);
    assert.deepEqual(
      await s.failDocuments(
        [{ id: id!, token: doc!.token, error: 'bad byte \u0000 in the message', retryInMs: 0 }],
        0,
      ),
      ['failed'],
    );
    assert.equal((await s.getDocument(id!))?.error, 'bad byte \uFFFD in the message');
  });

  it('keeps payloads as jsonb and ids in input order for a large insert', async () => {
    const s = store();
    await s.init();
    const payloads = Array.from({ length: 1000 }, (_, i) => ({
      i,
      nested: { list: [i, String(i)] },
      nil: null,
    }));
    const ids = await s.insertDocuments(payloads);
    assert.equal(ids.length, 1000);
    const numeric = ids.map(BigInt);
    assert.ok(numeric.every((id, i) => i === 0 || id > numeric[i - 1]!));
    assert.deepEqual((await s.getDocument(ids[500]!))?.payload, payloads[500]);
    const rows = await rawQuery<{ type: string }>(
      url,
      `SELECT pg_typeof(payload)::text AS type FROM "${schema}".documents LIMIT 1`,
    );
    assert.equal(rows[0]?.type, 'jsonb');
  });

  it('claims through the due index, without scanning the processed history', async (t) => {
    const s = store();
    await s.init();
    await rawQuery(
      url,
      `INSERT INTO "${schema}".documents (payload, status, processed_at)
       SELECT jsonb_build_object('i', g), 'processed', now() FROM generate_series(1, 50000) AS g`,
    );
    await s.insertDocuments(Array.from({ length: 500 }, (_, i) => i));
    await s.claimBatch(owner('in-flight'), 100, 60_000);
    await rawQuery(url, `ANALYZE "${schema}".documents`);
    const [row] = await rawQuery<{ plan: unknown }>(
      url,
      `EXPLAIN (FORMAT JSON) ${claimableIds(makeNames(schema), '100')}`,
    );
    const plan = JSON.stringify(row?.plan ?? row);
    assert.match(plan, /documents_due_idx/, plan);
    const started = performance.now();
    assert.equal((await s.claimBatch(owner('agent'), 100, 60_000)).length, 100);
    t.diagnostic(
      `claimBatch(100) beside 50,000 processed documents: ${(performance.now() - started).toFixed(1)} ms`,
    );
  });

  it('claims one queue through its own index, never reading a backlog it leaves aside', async (t) => {
    const s = store();
    await s.init();
    // A paused queue's backlog, due before everything else.
    await rawQuery(
      url,
      `INSERT INTO "${schema}".documents (payload, queue, run_at)
       SELECT jsonb_build_object('i', g), 'bulk', now() - interval '1 hour' FROM generate_series(1, 50000) AS g`,
    );
    await s.enqueueDocuments(Array.from({ length: 500 }, (_, i) => ({ payload: i, queue: 'emails' })));
    await rawQuery(url, `ANALYZE "${schema}".documents`);
    const names = makeNames(schema);
    for (const [what, text, values] of [
      ['only', claimableIdsOfQueues(names, 'unnest($1::text[])', '100'), [['emails']]],
      ['exclude', claimableIdsOfQueues(names, pendingQueuesExcept(names, '$1'), '100'), [['bulk']]],
    ] as const) {
      const [row] = await rawQuery<{ 'QUERY PLAN': unknown }>(url, `EXPLAIN (FORMAT JSON) ${text}`, [
        ...values,
      ]);
      const plan = JSON.stringify(row?.['QUERY PLAN'] ?? row);
      assert.match(plan, /documents_queue_due_idx/, `${what}: ${plan}`);
      assert.doesNotMatch(plan, /Seq Scan|documents_due_idx/, `${what}: ${plan}`);
    }
    for (const filter of [{ only: ['emails'] }, { exclude: ['bulk'] }]) {
      const started = performance.now();
      const batch = await s.claimBatch(owner('agent'), 100, 60_000, filter);
      const ms = performance.now() - started;
      assert.equal(batch.length, 100);
      assert.ok(batch.every((d) => d.queue === 'emails'));
      t.diagnostic(
        `claimBatch(100, ${JSON.stringify(filter)}) beside 50,000 due in bulk: ${ms.toFixed(1)} ms`,
      );
    }
  });

  it('claims 100 documents in one statement, and five agents share 1000 without overlap', async (t) => {
    const agents = Array.from({ length: 5 }, () => store());
    await Promise.all(agents.map((s) => s.init()));
    await agents[0]!.insertDocuments(Array.from({ length: 100 }, (_, i) => i));
    const started = performance.now();
    const batch = await agents[0]!.claimBatch(owner('bench'), 100, 60_000);
    const claimMs = performance.now() - started;
    assert.equal(batch.length, 100);
    const completeStarted = performance.now();
    assert.equal(await agents[0]!.completeDocuments(held(batch)), 100);
    t.diagnostic(
      `claimBatch(100) ${claimMs.toFixed(1)} ms, completeDocuments(100) ${(performance.now() - completeStarted).toFixed(1)} ms`,
    );

    await agents[0]!.insertDocuments(Array.from({ length: 1000 }, (_, i) => ({ i })));
    const seen: string[] = [];
    await Promise.all(
      agents.map(async (s, n) => {
        for (;;) {
          const claimed = await s.claimBatch(owner(`agent-${n}`), 37, 60_000);
          if (claimed.length === 0) return;
          seen.push(...claimed.map((d) => d.id));
          await s.completeDocuments(held(claimed));
        }
      }),
    );
    assert.equal(seen.length, 1000);
    assert.equal(new Set(seen).size, 1000);
    assert.deepEqual(await agents[1]!.countDocuments(), {
      pending: 0,
      scheduled: 0,
      processing: 0,
      processed: 1100,
      failed: 0,
    });
  });
});
