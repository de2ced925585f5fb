// What the shared suite does not cover on MongoDB, against FerretDB (and the user's MONGODB_TEST_URI
// when set): the seed's exact layout and mongosh recipes, configuration, hand-edited and deleted
// control documents, users' own documents, races between more agents than the suite uses, and
// how an unreachable server is reported.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { Binary, Double, Int32, Long, MongoNetworkError, ObjectId } from 'mongodb';

import { loadConfig } from '../../src/config.js';
import {
  ConfigError,
  InvalidControlStateError,
  isStoreTimeout,
  StoreUnavailableError,
  WatchUnavailableError,
} from '../../src/errors.js';
import { openStore } from '../../src/stores/index.js';
import { guard } from '../../src/stores/mongodb/connection.js';
import { createMongoStore } from '../../src/stores/mongodb/index.js';
import type { Store } from '../../src/stores/types.js';
import { held, owner } from '../helpers/claims.js';
import { ScriptedMongoServer } from '../helpers/mongo-mock.js';
import {
  dropDatabase,
  FERRETDB_HOW_TO,
  FERRETDB_URL,
  freshDatabase,
  manualBump,
  MONGODB_TEST_URI,
  withDb,
} from '../helpers/mongodb.js';
import { unavailable } from '../helpers/targets.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('MongoDB store configuration and connection (no server needed)', () => {
  it('takes the database from MONGODB_DATABASE, else from the URL path, else refuses to start', async () => {
    const fromPath = await openStore(
      loadConfig({ MONGODB_URI: 'mongodb://h1:27017,h2:27017/app?replicaSet=rs' }).store,
    );
    assert.match(fromPath.description, /\(database app, collection documents\)$/);
    const explicit = await openStore(
      loadConfig({
        STORE_URL: 'mongodb://h:27017/admin',
        MONGODB_DATABASE: 'your_database',
        MONGODB_COLLECTION: 'jobs',
      }).store,
    );
    assert.match(explicit.description, /\(database your_database, collection jobs\)$/);
    for (const url of [
      'mongodb://h:27017',
      'mongodb://h:27017/',
      'mongodb+srv://cluster.example.net/?retryWrites=true',
    ]) {
      await assert.rejects(
        openStore(loadConfig({ MONGODB_URI: url }).store),
        (e: unknown) => e instanceof ConfigError && /MONGODB_DATABASE/.test(e.message),
      );
    }
    await Promise.all([fromPath.close(), explicit.close()]);
  });

  it('never shows the password in its description', async () => {
    const store = createMongoStore({
      url: 'mongodb://agent:s3cret@h:27017/app?authMechanismProperties=AWS_SESSION_TOKEN:tok3n',
    });
    assert.doesNotMatch(store.description, /s3cret|tok3n/);
    assert.match(store.description, /h:27017/);
    await store.close();
  });

  it('refuses a documents collection that is one of its own', () => {
    assert.throws(
      () => createMongoStore({ url: 'mongodb://h/app', collection: 'agent_control' }),
      (e: unknown) => e instanceof ConfigError && /MONGODB_COLLECTION/.test(e.message),
    );
  });

  it('reports an unreachable server as StoreUnavailableError, and a closed store too', async () => {
    const store = createMongoStore({
      url: 'mongodb://127.0.0.1:1/app', // nothing listens on port 1
      clientOptions: { serverSelectionTimeoutMS: 200 },
    });
    await assert.rejects(
      store.ping(),
      (e: unknown) => e instanceof StoreUnavailableError && /pinging/.test(e.message),
    );
    await assert.rejects(store.readControlVersion(), StoreUnavailableError);
    await store.close();
    await store.close(); // idempotent
    await assert.rejects(store.claimBatch(owner('a'), 1, 1000), /the store is closed/);
  });

  it('counts a call interrupted by the monitor missing its deadline as a timeout, other network errors not', async () => {
    const interrupted = await guard('writing a heartbeat', () =>
      Promise.reject(
        new MongoNetworkError('Connection to 127.0.0.1:1 interrupted due to server monitor timeout'),
      ),
    ).catch((e: unknown) => e);
    assert.ok(isStoreTimeout(interrupted), String(interrupted));
    assert.match((interrupted as Error).message, /writing a heartbeat/);
    const reset = await guard('writing a heartbeat', () =>
      Promise.reject(new MongoNetworkError('connection 3 to 127.0.0.1:1 closed')),
    ).catch((e: unknown) => e);
    assert.ok(reset instanceof StoreUnavailableError && !isStoreTimeout(reset), String(reset));
  });

  it('recovers when the server comes up after the first connection attempts failed', async () => {
    const port = await freePort();
    const store = createMongoStore({
      url: `mongodb://127.0.0.1:${port}/app?directConnection=true`,
      clientOptions: { serverSelectionTimeoutMS: 200 },
    });
    await assert.rejects(store.ping(), StoreUnavailableError);
    await assert.rejects(store.ping(), StoreUnavailableError); // not "Topology is closed"
    const server = await ScriptedMongoServer.start(port);
    try {
      assert.ok((await store.ping()) >= 0);
    } finally {
      await store.close();
      await server.close();
    }
  });
});

const servers = [
  { name: 'FerretDB', url: FERRETDB_URL },
  ...(MONGODB_TEST_URI ? [{ name: 'MONGODB_TEST_URI', url: MONGODB_TEST_URI }] : []),
];
for (const { name, url } of servers) {
  const skip = url ? undefined : unavailable('MongoDB (FerretDB)', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO);
  describe(`MongoDB store on ${name}`, { skip: skip ?? false }, () => {
    let database: string;
    const stores: Store[] = [];

    async function open(collection?: string): Promise<Store> {
      const store = createMongoStore({ url: url as string, database, ...(collection && { collection }) });
      stores.push(store);
      await store.init();
      return store;
    }
    const raw = <T>(use: Parameters<typeof withDb<T>>[2]) => withDb(url as string, database, use);

    beforeEach(() => {
      database = freshDatabase();
    });

    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await dropDatabase(url as string, database);
    });

    it("lays out agent_control exactly as the seed's mongosh recipes expect", async () => {
      const store = await open();
      await open(); // a second agent's init changes nothing
      const seeded = await raw((db) =>
        db.collection('agent_control').findOne({ _id: 'global_control' as never }),
      );
      assert.deepEqual(Object.keys(seeded ?? {}).sort(), [
        '_id',
        'command',
        'reason',
        'timestamp',
        'updated_by',
        'version',
      ]);
      assert.equal(seeded?.command, 'running');
      assert.equal(seeded?.version, 0);
      assert.equal(seeded?.reason, null);
      assert.equal(seeded?.updated_by, 'system');
      assert.ok(seeded?.timestamp instanceof Date);

      await store.writeCommand({ command: 'pause', reason: 'Maintenance', updated_by: 'admin' });
      await store.writeCommand({ command: 'running', reason: 'Maintenance complete', updated_by: 'admin' });
      // db.agent_control.find().sort({version:-1}).limit(10): the state, then the history.
      const trail = await raw((db) =>
        db.collection('agent_control').find().sort({ version: -1 }).limit(10).toArray(),
      );
      assert.deepEqual(
        trail.map((d) => [d._id, d.version, d.command, d.reason, d.updated_by]),
        [
          ['global_control', 2, 'running', 'Maintenance complete', 'admin'],
          ['history:2', 2, 'running', 'Maintenance complete', 'admin'],
          ['history:1', 1, 'pause', 'Maintenance', 'admin'],
        ],
      );
      assert.ok(trail.every((d) => d.timestamp instanceof Date));
      assert.deepEqual(trail[0]!.timestamp, trail[1]!.timestamp);

      await manualBump(url as string, database);
      assert.deepEqual(await store.readControl(), { ...(await store.listHistory(1))[0]!, version: 3 });
      const indexes = await raw((db) => db.collection('agent_control').indexes());
      assert.ok(indexes.some((i) => i.name === 'pa_history_by_version'));
    });

    it('reads versions stored as Int32, Long, Double or written by hand, and names a bad field', async () => {
      const store = await open();
      const set = (fields: Record<string, unknown>) =>
        raw((db) =>
          db.collection('agent_control').updateOne({ _id: 'global_control' as never }, { $set: fields }),
        );
      for (const version of [new Int32(7), Long.fromNumber(8), new Double(9)]) {
        await set({ version });
        assert.equal(await store.readControlVersion(), Number(version.valueOf()));
      }
      await set({ command: 'pasue' });
      await assert.rejects(
        store.readControl(),
        (e: unknown) => e instanceof InvalidControlStateError && /pasue/.test(e.message),
      );
      // A command repairs a hand-broken document: only its version is needed to write.
      const written = await store.writeCommand({ command: 'pause', reason: null, updated_by: 'ops' });
      assert.equal(written.version, 10);
      assert.deepEqual(await store.readControl(), written);
    });

    it('recreates a deleted control document after the newest history entry, never going back', async () => {
      const store = await open();
      await store.writeCommand({ command: 'pause', reason: null, updated_by: 'a' });
      await store.writeCommand({ command: 'running', reason: null, updated_by: 'a' });
      await raw((db) => db.collection('agent_control').deleteOne({ _id: 'global_control' as never }));
      await assert.rejects(store.readControlVersion(), InvalidControlStateError);
      const written = await store.writeCommand({ command: 'shutdown', reason: 'r', updated_by: 'b' });
      assert.equal(written.version, 3);
      await raw((db) => db.collection('agent_control').deleteOne({ _id: 'global_control' as never }));
      await (
        await open()
      )
        .readControl()
        .then((s) => assert.deepEqual([s.command, s.version], ['running', 3]));
    });

    it('withdraws a history entry whose writer died before moving the state', async () => {
      const store = await open();
      await raw((db) =>
        db.collection('agent_control').insertOne({
          _id: 'history:1' as never,
          kind: 'history',
          version: 1,
          command: 'shutdown',
          reason: 'never confirmed',
          updated_by: 'crashed',
          timestamp: new Date(Date.now() - 3_600_000),
          write_token: 'dead',
        }),
      );
      const written = await store.writeCommand({ command: 'pause', reason: null, updated_by: 'alive' });
      assert.equal(written.version, 1);
      assert.equal(written.command, 'pause');
      assert.deepEqual(
        (await store.listHistory(10)).map((h) => [h.version, h.command]),
        [[1, 'pause']],
      );
    });

    it('gives 40 concurrent commands from four agents 40 distinct versions', async () => {
      const agents = await Promise.all([open(), open(), open(), open()]);
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          agents[i % 4]!.writeCommand({ command: 'pause', reason: `w${i}`, updated_by: `agent-${i % 4}` }),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.version).sort((a, b) => a - b),
        Array.from({ length: 40 }, (_, i) => i + 1),
      );
      const history = await agents[0]!.listHistory(100);
      assert.equal(history.length, 40);
      assert.equal((await agents[1]!.readControl()).version, 40);
      // Each entry is the command its writer was told it wrote.
      for (const written of results) assert.deepEqual(history[40 - written.version], written);
    });

    it('never hands one document to two of five agents claiming in a loop', async () => {
      const agents = await Promise.all([open(), open(), open(), open(), open()]);
      const ids = await agents[0]!.insertDocuments(Array.from({ length: 150 }, (_, i) => ({ i })));
      const seen = new Map<string, string>();
      await Promise.all(
        agents.map(async (store, n) => {
          for (;;) {
            const batch = await store.claimBatch(owner(`agent-${n}`), 6, 60_000);
            if (batch.length === 0 && (await store.countDocuments()).pending === 0) return;
            for (const doc of batch) {
              assert.equal(
                seen.get(doc.id),
                undefined,
                `${doc.id} claimed by ${seen.get(doc.id)} and agent-${n}`,
              );
              seen.set(doc.id, `agent-${n}`);
            }
            assert.equal(await store.completeDocuments(held(batch)), batch.length);
          }
        }),
      );
      assert.deepEqual([...seen.keys()].sort(), [...ids].sort());
      assert.deepEqual(await agents[0]!.countDocuments(), {
        pending: 0,
        scheduled: 0,
        processing: 0,
        processed: 150,
        failed: 0,
      });
    });

    it("pulls the user's own documents: ObjectId, string and integer ids, the document as payload", async () => {
      const store = await open('jobs');
      const oid = new ObjectId();
      await raw((db) =>
        db.collection('jobs').insertMany([
          { _id: oid as never, status: 'pending', url: 'https://example.org/a' },
          { _id: 'job-7' as never, status: 'pending', url: 'https://example.org/b', attempts: 1 },
          { _id: 42 as never, status: 'pending', url: 'https://example.org/c' },
          { _id: new Binary(Buffer.from('0123456789abcdef'), 4) as never, status: 'pending', url: 'uuid id' },
          { _id: 'done-1' as never, status: 'processed', url: 'already done' },
        ]),
      );
      const batch = await store.claimBatch(owner('agent-a'), 10, 60_000);
      assert.deepEqual(
        batch.map((d) => [d.id, d.payload, d.attempts]),
        [
          ['42', { url: 'https://example.org/c' }, 0],
          ['job-7', { url: 'https://example.org/b' }, 1],
          [oid.toHexString(), { url: 'https://example.org/a' }, 0],
        ],
      );
      const token = batch[0]!.token;
      assert.equal(await store.completeDocuments([oid.toHexString(), '42'].map((id) => ({ id, token }))), 2);
      assert.deepEqual(
        await store.failDocuments([{ id: 'job-7', token, error: 'HTTP 500', retryInMs: 0 }], 0),
        ['failed'],
      );
      const done = await raw((db) => db.collection('jobs').findOne({ _id: oid as never }));
      assert.equal(done?.status, 'processed');
      assert.ok(done?.processed_at instanceof Date);
      assert.equal(done?.url, 'https://example.org/a');
      const failed = await store.getDocument('job-7');
      assert.deepEqual([failed?.status, failed?.attempts, failed?.error], ['failed', 2, 'HTTP 500']);
      assert.equal(
        (await store.getDocument(oid.toHexString()))?.created_at.getTime(),
        oid.getTimestamp().getTime(),
      );
      assert.equal(await store.getDocument('ffffffffffffffffffffffff'), null);
      assert.equal(await store.getDocument(''), null);
    });

    it('refuses a batch with a document MongoDB cannot store, naming the field, and stores none of it', async () => {
      const store = await open();
      for (const bad of [{ 'a\u0000b': 1 }, { $where: 'x' }, { nested: [{ 'a.b': 1 }] }]) {
        await assert.rejects(
          store.insertDocuments([{ fine: true }, bad]),
          (error: unknown) =>
            error instanceof Error &&
            (error as { code?: string }).code === 'PA_BAD_REQUEST' &&
            /MongoDB cannot store document 1(\.nested\[0\])?: the field name/.test(error.message),
        );
      }
      assert.deepEqual(await store.countDocuments(), {
        pending: 0,
        scheduled: 0,
        processing: 0,
        processed: 0,
        failed: 0,
      });
    });

    it('stores a batch the server partly refuses all or nothing (FerretDB has no nested arrays)', async (t) => {
      const store = await open();
      try {
        const ids = await store.insertDocuments([{ fine: 1 }, { matrix: [[1, 2], [3]] }, { fine: 2 }]);
        assert.equal(ids.length, 3); // a real MongoDB stores nested arrays
        t.diagnostic('this server stores nested arrays');
      } catch (error) {
        assert.equal((error as { code?: string }).code, 'PA_BAD_REQUEST');
        assert.match((error as Error).message, /the MongoDB server refused document 1: .*nested arrays/);
        assert.deepEqual(await store.countDocuments(), {
          pending: 0,
          scheduled: 0,
          processing: 0,
          processed: 0,
          failed: 0,
        });
      }
    });

    it('claims and completes batches of 100 (timings as diagnostics)', async (t) => {
      const store = await open();
      await store.insertDocuments(Array.from({ length: 1000 }, (_, i) => ({ i })));
      const claims: number[] = [];
      const completions: number[] = [];
      for (let round = 0; round < 3; round++) {
        let started = performance.now();
        const batch = await store.claimBatch(owner('agent-a'), 100, 60_000);
        claims.push(performance.now() - started);
        assert.equal(batch.length, 100);
        started = performance.now();
        assert.equal(await store.completeDocuments(held(batch)), 100);
        completions.push(performance.now() - started);
      }
      const ms = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');
      t.diagnostic(`${name}: claimBatch(100) beside 1000 documents took ${ms(claims)} ms`);
      t.diagnostic(`${name}: completeDocuments(100) took ${ms(completions)} ms`);
    });

    it('takes leases from the server clock', async () => {
      const store = await open();
      await store.insertDocuments(['x']);
      const before = Date.now();
      const [doc] = await store.claimBatch(owner('agent-a'), 1, 30_000);
      const stored = await raw((db) => db.collection('documents').findOne({}));
      const lease = (stored?.lease_until as Date).getTime();
      assert.ok(
        doc && Math.abs(lease - (before + 30_000)) < 5_000,
        `lease ends ${lease - before} ms from now`,
      );
    });

    it('says why change streams are unavailable, quickly, or watches', async (t) => {
      const store = await open();
      const started = performance.now();
      try {
        const watch = await store.watchControl({ onWake: () => undefined, onError: () => undefined });
        t.diagnostic(`change stream established in ${(performance.now() - started).toFixed(1)} ms`);
        await watch.close();
      } catch (error) {
        const ms = performance.now() - started;
        assert.ok(error instanceof WatchUnavailableError, String(error));
        assert.match(error.message, /^MongoDB Change Streams not available: /);
        t.diagnostic(`refused in ${ms.toFixed(1)} ms: ${error.message}`);
        assert.ok(ms < 5_000);
      }
    });
  });
}
