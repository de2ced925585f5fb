import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BacklogReader } from '../../src/agent/backlog.js';
import { createMemoryStore } from '../helpers/memory-store.js';

describe('the backlog reader', () => {
  it('reads counts and the oldest waiting age at most once per interval, sharing concurrent reads', async () => {
    const store = createMemoryStore();
    await store.insertDocuments([{ n: 1 }, { n: 2 }]);
    let counts = 0;
    const inner = store.countDocuments.bind(store);
    store.countDocuments = async () => {
      counts++;
      return inner();
    };
    const reader = new BacklogReader(() => store, 60_000);
    const [a, b] = await Promise.all([reader.read(), reader.read()]);
    assert.equal(a, b);
    assert.equal(a.counts.pending, 2);
    assert.ok(a.oldest_pending_age_seconds >= 0);
    await store.insertDocuments([{ n: 3 }]);
    assert.equal((await reader.read()).counts.pending, 2, 'a read within the interval is the cached one');
    assert.equal(counts, 1);
  });

  it('answers with the last read when the store hangs or fails', async () => {
    const store = createMemoryStore();
    await store.insertDocuments([{ n: 1 }]);
    const reader = new BacklogReader(() => store, 0);
    const first = await reader.readWithin(1_000);
    assert.equal(first?.counts.pending, 1);
    store.countDocuments = () => new Promise(() => undefined);
    const started = Date.now();
    assert.equal(await reader.readWithin(200), first);
    assert.ok(Date.now() - started < 5_000);
    store.countDocuments = async () => {
      throw new Error('store down');
    };
    const fresh = new BacklogReader(() => store, 0);
    assert.equal(await fresh.readWithin(200), null);
  });
});
