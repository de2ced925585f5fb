// Queues on MongoDB, beyond the shared suite: the queue is a field of the user's own document,
// named by QUEUE_FIELD; a document without it, or with a value that is not a queue name, is in
// `default` (claimed, counted and listed so, its field untouched); a bad QUEUE_FIELD stops the
// start. Against FerretDB (and MONGODB_TEST_URI when set).

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { openStore } from '../../src/stores/index.js';
import { createMongoStore } from '../../src/stores/mongodb/index.js';
import type { ClaimFilter, Store } from '../../src/stores/types.js';
import { owner } from '../helpers/claims.js';
import {
  dropDatabase,
  FERRETDB_HOW_TO,
  FERRETDB_URL,
  freshDatabase,
  MONGODB_TEST_URI,
  withDb,
} from '../helpers/mongodb.js';
import { unavailable } from '../helpers/targets.js';

describe('MongoDB QUEUE_FIELD (no server needed)', () => {
  it('refuses a field name that is not a plain top-level name, or one the agents keep', () => {
    for (const bad of ['a.b', '$type', 'status', 'payload', 'claim_token', '1st', 'x'.repeat(65)]) {
      assert.throws(
        () => createMongoStore({ url: 'mongodb://h/app', queueField: bad }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(`QUEUE_FIELD=${JSON.stringify(bad)}`),
        bad,
      );
    }
  });

  it('takes QUEUE_FIELD from the environment, `queue` when unset', async () => {
    const set = loadConfig({ MONGODB_URI: 'mongodb://h/app', QUEUE_FIELD: 'type' });
    assert.equal(set.store.kind === 'mongodb' && set.store.queueField, 'type');
    const unset = loadConfig({ MONGODB_URI: 'mongodb://h/app' });
    assert.equal(unset.store.kind === 'mongodb' && unset.store.queueField, 'queue');
    assert.throws(
      () => loadConfig({ MONGODB_URI: 'mongodb://h/app', QUEUE_FIELD: 'a.b' }),
      (e: unknown) => e instanceof ConfigError && /QUEUE_FIELD="a\.b"/.test(e.message),
    );
    const store = await openStore(set.store);
    await store.close();
  });
});

const servers = [
  { name: 'FerretDB', url: FERRETDB_URL },
  ...(MONGODB_TEST_URI ? [{ name: 'MONGODB_TEST_URI', url: MONGODB_TEST_URI }] : []),
];
for (const { name, url } of servers) {
  const skip = url ? undefined : unavailable('MongoDB (FerretDB)', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO);
  describe(`MongoDB queues on ${name}`, { skip: skip ?? false }, () => {
    let database: string;
    const stores: Store[] = [];

    async function open(queueField?: string): Promise<Store> {
      const store = createMongoStore({
        url: url as string,
        database,
        collection: 'jobs',
        ...(queueField && { queueField }),
      });
      stores.push(store);
      await store.init();
      return store;
    }

    beforeEach(() => {
      database = freshDatabase();
    });
    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await dropDatabase(url as string, database);
    });

    /** Users' own documents, written with the raw driver: every odd value a `type` field may hold. */
    async function insertUserDocuments() {
      await withDb(url as string, database, (db) =>
        db.collection('jobs').insertMany([
          { _id: 'mail' as never, status: 'pending', type: 'emails', to: 'a@example.com' },
          { _id: 'none' as never, status: 'pending', to: 'b@example.com' },
          { _id: 'null' as never, status: 'pending', type: null },
          { _id: 'number' as never, status: 'pending', type: 42 },
          { _id: 'upper' as never, status: 'pending', type: 'Emails' },
          { _id: 'report' as never, status: 'pending', type: 'reports' },
        ]),
      );
    }

    const claimIds = async (store: Store, filter?: ClaimFilter) =>
      (await store.claimBatch(owner('agent-q'), 100, 60_000, filter)).map((d) => [d.id, d.queue]).sort();

    it("reads the queue from the user's own field, and puts what is not a queue name in default", async () => {
      const store = await open('type');
      await insertUserDocuments();
      assert.deepEqual(
        (await store.listDocuments({ limit: 10 })).documents.map((d) => [d.id, d.queue]),
        [
          ['mail', 'emails'],
          ['none', 'default'],
          ['null', 'default'],
          ['number', 'default'],
          ['report', 'reports'],
          ['upper', 'default'],
        ],
      );
      // The field stays the user's: it is part of the payload, as it was written.
      assert.deepEqual((await store.getDocument('number'))?.payload, { type: 42 });
      assert.deepEqual(
        (await store.countQueues()).map((q) => [q.queue, q.counts.pending]),
        [
          ['default', 4],
          ['emails', 1],
          ['reports', 1],
        ],
      );
      assert.deepEqual(
        (await store.listDocuments({ limit: 10, queue: 'default' })).documents.map((d) => d.id),
        ['none', 'null', 'number', 'upper'],
      );
      assert.deepEqual(await claimIds(store, { exclude: ['default', 'reports'] }), [['mail', 'emails']]);
      assert.deepEqual(await claimIds(store, { only: ['default'] }), [
        ['none', 'default'],
        ['null', 'default'],
        ['number', 'default'],
        ['upper', 'default'],
      ]);
      assert.deepEqual(await claimIds(store, { exclude: ['emails'] }), [['report', 'reports']]);
    });

    it('writes the queue of what it stores to the configured field', async () => {
      const store = await open('type');
      const [stored] = await store.enqueueDocuments([{ payload: { n: 1 }, queue: 'emails' }]);
      const raw = await withDb(url as string, database, (db) =>
        db.collection('jobs').findOne({ type: 'emails' }, { projection: { _id: 0, type: 1, payload: 1 } }),
      );
      assert.deepEqual(raw, { type: 'emails', payload: { n: 1 } });
      assert.deepEqual(await claimIds(store, { only: ['emails'] }), [[stored!.id, 'emails']]);
    });
  });
}
