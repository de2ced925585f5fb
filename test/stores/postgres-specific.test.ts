// What only the PostgreSQL store has: migrations under an advisory lock, the NOTIFY triggers, the
// LISTEN connection's failure modes, the pool's behaviour when connections die, and ids that are
// bigints. Each test works in a schema of its own and drops it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { PullingAgentError, StoreUnavailableError, WatchUnavailableError } from '../../src/errors.js';
import {
  createPostgresStore,
  type PostgresStoreOptions,
  SCHEMA_VERSION,
} from '../../src/stores/postgres/index.js';
import { claimableIds } from '../../src/stores/postgres/documents.js';
import { makeNames } from '../../src/stores/postgres/names.js';
import type { ControlWatch, Store } from '../../src/stores/types.js';
import { dropSchema, freshSchema, POSTGRES_HOW_TO, POSTGRES_URL, rawQuery } from '../helpers/postgres.js';
import { unavailable } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const skip = POSTGRES_URL ? undefined : unavailable('PostgreSQL', 'PA_TEST_POSTGRES_URL', POSTGRES_HOW_TO);

describe('postgres store specifics', { skip }, () => {
  const url = POSTGRES_URL as string;
  let schema: string;
  let opened: Store[];
  let watches: ControlWatch[];

  /** A store on this test's schema, closed after the test. */
  function store(options: Partial<PostgresStoreOptions> = {}): Store {
    const s = createPostgresStore({ url, schema, listenKeepAliveMs: 0, ...options });
    opened.push(s);
    return s;
  }

  async function watch(s: Store, counts: { wakes: number; documents: number; errors: Error[] }) {
    const w = await s.watchControl({
      onWake: () => counts.wakes++,
      onDocuments: () => counts.documents++,
      onError: (error) => counts.errors.push(error),
    });
    watches.push(w);
    return w;
  }

  /** The backend pid of this schema's LISTEN connection (its last statement names the schema). */
  async function listenPid(): Promise<number> {
    const rows = await rawQuery<{ pid: number }>(
      url,
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'pulling-agent listen' AND query LIKE $1`,
      [`LISTEN "${schema}:control"%`],
    );
    assert.equal(rows.length, 1, 'exactly one listen connection on this schema');
    return rows[0]!.pid;
  }

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

  describe('migrations', () => {
    it('run once when ten agents start together', async () => {
      const stores = Array.from({ length: 10 }, () => store());
      await Promise.all(stores.map((s) => s.init()));
      const applied = await rawQuery<{ version: number; name: string }>(
        url,
        `SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`,
      );
      assert.deepEqual(
        applied.map((m) => m.version),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      assert.equal((await stores[3]!.readControl()).version, 0);
      const rows = await rawQuery(url, `SELECT * FROM "${schema}".agent_control`);
      assert.equal(rows.length, 1);
    });

    it('refuse to start against a schema newer than this agent knows', async () => {
      await store().init();
      await rawQuery(
        url,
        `INSERT INTO "${schema}".schema_migrations (version, name) VALUES ($1, 'from the future')`,
        [SCHEMA_VERSION + 1],
      );
      await assert.rejects(store().init(), (error: unknown) => {
        assert.ok(error instanceof PullingAgentError);
        assert.equal(error.code, 'PA_SCHEMA_TOO_NEW');
        assert.match(error.message, new RegExp(`${schema} is at migration ${SCHEMA_VERSION + 1}`));
        return true;
      });
    });

    it('use a schema that a DBA created beforehand', async () => {
      await rawQuery(url, `CREATE SCHEMA "${schema}"`);
      const s = store();
      await s.init();
      assert.equal(await s.readControlVersion(), 0);
    });
  });

  describe('LISTEN/NOTIFY watch', () => {
    it('is woken by the manual version bump, through the trigger', async (t) => {
      const s = store();
      await s.init();
      const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
      const w = await watch(s, counts);
      assert.equal(w.mode, 'listen_notify');
      assert.equal(w.description, 'PostgreSQL LISTEN/NOTIFY (event-driven, real-time)');
      const started = performance.now();
      await rawQuery(
        url,
        `UPDATE "${schema}".agent_control SET version = version + 1 WHERE id = 'global_control'`,
      );
      await waitFor(() => counts.wakes > 0, { what: 'a wake-up after the manual UPDATE', intervalMs: 1 });
      t.diagnostic(`wake-up ${(performance.now() - started).toFixed(1)} ms after the manual UPDATE was sent`);
      assert.equal(await s.readControlVersion(), 1);
      assert.deepEqual(counts.errors, []);
    });

    it('wakes within milliseconds of a command (measured over 20 commands)', async (t) => {
      const [watcher, writer] = [store(), store()];
      await watcher.init();
      await writer.init();
      let woken: () => void = () => undefined;
      const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
      await watcher
        .watchControl({
          onWake: () => {
            counts.wakes++;
            woken();
          },
          onError: (error) => counts.errors.push(error),
        })
        .then((w) => watches.push(w));
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const wake = new Promise<void>((resolve) => (woken = resolve));
        const started = performance.now();
        await writer.writeCommand({
          command: i % 2 ? 'running' : 'pause',
          reason: null,
          updated_by: 'bench',
        });
        await wake;
        latencies.push(performance.now() - started);
      }
      latencies.sort((a, b) => a - b);
      t.diagnostic(
        `writeCommand → onWake: median ${latencies[10]!.toFixed(1)} ms, max ${latencies[19]!.toFixed(1)} ms`,
      );
      assert.equal(counts.wakes, 20);
      assert.ok(latencies[10]! < 1_000);
    });

    it('calls onDocuments when documents are inserted, by the store or by hand', async () => {
      const s = store();
      await s.init();
      const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
      await watch(s, counts);
      await s.insertDocuments([{ n: 1 }, { n: 2 }]);
      await waitFor(() => counts.documents === 1, { what: 'onDocuments after insertDocuments' });
      await rawQuery(url, `INSERT INTO "${schema}".documents (payload) VALUES ('{"by":"hand"}')`);
      await waitFor(() => counts.documents === 2, { what: 'onDocuments after a hand-written INSERT' });
      assert.equal(counts.wakes, 0);
      assert.deepEqual(await s.countDocuments(), { pending: 3, processing: 0, processed: 0, failed: 0 });
    });

    it('is not woken by another schema on the same server', async () => {
      const s = store();
      await s.init();
      const otherSchema = freshSchema();
      const other = createPostgresStore({ url, schema: otherSchema });
      try {
        await other.init();
        const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
        await watch(s, counts);
        await other.writeCommand({ command: 'pause', reason: null, updated_by: 'other fleet' });
        await other.insertDocuments(['not yours']);
        // Notifications arrive in commit order: once this one is in, the other schema's would be too.
        await s.writeCommand({ command: 'pause', reason: null, updated_by: 'this fleet' });
        await waitFor(() => counts.wakes > 0, { what: 'the wake-up of this schema' });
        assert.equal(counts.wakes, 1);
        assert.equal(counts.documents, 0);
      } finally {
        await other.close();
        await dropSchema(url, otherSchema);
      }
    });

    it('reports onError once when the listen connection is terminated, and does not reconnect', async () => {
      const s = store();
      await s.init();
      const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
      await watch(s, counts);
      const pid = await listenPid();
      await rawQuery(url, 'SELECT pg_terminate_backend($1)', [pid]);
      await waitFor(() => counts.errors.length > 0, { what: 'onError after pg_terminate_backend' });
      assert.match(counts.errors[0]!.message, /terminat/i);
      // Still one report, no new listen connection, and the pool is unaffected.
      await waitFor(
        async () =>
          (await rawQuery(url, `SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [pid])).length === 0,
        { what: 'the terminated backend to go away' },
      );
      assert.equal(counts.errors.length, 1);
      await s.writeCommand({ command: 'pause', reason: null, updated_by: 'x' });
      assert.equal((await s.readControl()).version, 1);
      assert.equal(counts.wakes, 0);
      const listening = await rawQuery(url, `SELECT 1 FROM pg_stat_activity WHERE query LIKE $1`, [
        `LISTEN "${schema}:control"%`,
      ]);
      assert.equal(listening.length, 0);
    });

    it('reports a listen connection that stops answering its keep-alive query', async (t) => {
      const s = store({ listenKeepAliveMs: 200 });
      await s.init();
      const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
      await watch(s, counts);
      const pid = await listenPid();
      // A silently dead peer, simulated by freezing the backend process. Only possible when the
      // server runs on this machine: make sure the pid is that backend before signalling it.
      const database = new URL(url).pathname.slice(1);
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        // not on this machine
      }
      if (!cmdline.startsWith('postgres:') || !cmdline.includes(database)) {
        t.skip('the server does not run on this machine');
        return;
      }
      try {
        process.kill(pid, 'SIGSTOP');
      } catch (error) {
        t.skip(`cannot signal the backend: ${String(error)}`);
        return;
      }
      try {
        await waitFor(() => counts.errors.length > 0, { what: 'onError from the keep-alive query' });
        assert.match(counts.errors[0]!.message, /did not answer a keep-alive query within 200 ms/);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await waitFor(
        async () =>
          (await rawQuery(url, `SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [pid])).length === 0,
        { what: 'the frozen backend to go away once thawed' },
      );
      assert.equal(counts.errors.length, 1);
    });

    it('is released by close(), by the store closing, and says why when the server is unreachable', async () => {
      const s = store();
      await s.init();
      const counts = { wakes: 0, documents: 0, errors: [] as Error[] };
      await watch(s, counts);
      await s.close();
      await s.close(); // idempotent
      await waitFor(
        async () =>
          (await rawQuery(url, `SELECT 1 FROM pg_stat_activity WHERE query LIKE $1`, [`LISTEN "${schema}:%`]))
            .length === 0,
        { what: 'the listen connection to close with the store' },
      );
      assert.deepEqual(counts.errors, []);

      const down = createPostgresStore({ url: 'postgres://u:secret@127.0.0.1:1/db', schema });
      try {
        await assert.rejects(
          down.watchControl({ onWake: () => undefined, onError: () => undefined }),
          (error: unknown) => error instanceof WatchUnavailableError && /ECONNREFUSED/.test(error.reason),
        );
      } finally {
        await down.close();
      }
    });
  });

  describe('connections', () => {
    it('turns an unreachable server into StoreUnavailableError and never shows the password', async () => {
      const down = createPostgresStore({
        url: 'postgres://agent:s3cret@127.0.0.1:1/db?password=s3cret',
        schema,
      });
      try {
        assert.ok(!down.description.includes('s3cret'), down.description);
        assert.match(down.description, /127\.0\.0\.1:1\/db/);
        for (const attempt of [() => down.init(), () => down.ping(), () => down.claimBatch('a', 10, 1000)]) {
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
  });

  describe('documents', () => {
    it('treats ids that cannot be bigints as unknown instead of failing', async () => {
      const s = store();
      await s.init();
      const [id] = await s.insertDocuments(['x']);
      await s.claimBatch('a', 1, 60_000);
      for (const bad of ['abc', '-1', '1.5', '99999999999999999999', '']) {
        assert.equal(await s.getDocument(bad), null);
        assert.equal(await s.failDocument('a', bad, 'e', 1), null);
      }
      assert.equal(await s.completeDocuments('a', ['abc', '99999999999999999999', id!]), 1);
      assert.equal(await s.releaseDocuments('a', ['nope']), 0);
      await s.extendLeases('a', ['nope'], 1000);
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
      await s.claimBatch('a', 1, 60_000);
      assert.equal(await s.failDocument('a', id!, 'bad byte \u0000 in the message', 0), 'failed');
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

    it('claims through the claimable index, without scanning the processed history', async (t) => {
      const s = store();
      await s.init();
      await rawQuery(
        url,
        `INSERT INTO "${schema}".documents (payload, status, processed_at)
         SELECT jsonb_build_object('i', g), 'processed', now() FROM generate_series(1, 50000) AS g`,
      );
      await s.insertDocuments(Array.from({ length: 500 }, (_, i) => i));
      await s.claimBatch('in-flight', 100, 60_000);
      await rawQuery(url, `ANALYZE "${schema}".documents`);
      const [row] = await rawQuery<{ plan: unknown }>(
        url,
        `EXPLAIN (FORMAT JSON) ${claimableIds(makeNames(schema), '100')}`,
      );
      const plan = JSON.stringify(row?.plan ?? row);
      assert.match(plan, /documents_claimable_idx/, plan);
      const started = performance.now();
      assert.equal((await s.claimBatch('agent', 100, 60_000)).length, 100);
      t.diagnostic(
        `claimBatch(100) beside 50,000 processed documents: ${(performance.now() - started).toFixed(1)} ms`,
      );
    });

    it('claims 100 documents in one statement, and five agents share 1000 without overlap', async (t) => {
      const agents = Array.from({ length: 5 }, () => store());
      await Promise.all(agents.map((s) => s.init()));
      await agents[0]!.insertDocuments(Array.from({ length: 100 }, (_, i) => i));
      const started = performance.now();
      const batch = await agents[0]!.claimBatch('bench', 100, 60_000);
      const claimMs = performance.now() - started;
      assert.equal(batch.length, 100);
      const completeStarted = performance.now();
      assert.equal(
        await agents[0]!.completeDocuments(
          'bench',
          batch.map((d) => d.id),
        ),
        100,
      );
      t.diagnostic(
        `claimBatch(100) ${claimMs.toFixed(1)} ms, completeDocuments(100) ${(performance.now() - completeStarted).toFixed(1)} ms`,
      );

      await agents[0]!.insertDocuments(Array.from({ length: 1000 }, (_, i) => ({ i })));
      const seen: string[] = [];
      await Promise.all(
        agents.map(async (s, n) => {
          for (;;) {
            const claimed = await s.claimBatch(`agent-${n}`, 37, 60_000);
            if (claimed.length === 0) return;
            seen.push(...claimed.map((d) => d.id));
            await s.completeDocuments(
              `agent-${n}`,
              claimed.map((d) => d.id),
            );
          }
        }),
      );
      assert.equal(seen.length, 1000);
      assert.equal(new Set(seen).size, 1000);
      assert.deepEqual(await agents[1]!.countDocuments(), {
        pending: 0,
        processing: 0,
        processed: 1100,
        failed: 0,
      });
    });
  });
});
