// FINDING of the chaos suite (`npm run chaos`, "Without kills" on FerretDB: documents processed
// twice with no fault at all). BatchRun.run() renews its leases on an interval and, once the
// handlers are done, clears the interval and writes the completions; a renewal already on its way
// is not awaited, so extendLeases() and completeDocuments() of the same documents run at the same
// time. Where an update is atomic per document (PostgreSQL, SQLite, MongoDB) that is harmless, but
// FerretDB 1.x applies updateMany as read, then write the whole document: a renewal that read the
// documents before the completion wrote them writes them back as `processing` with a new lease,
// the completion is undone without an error, and every such document is handled again once the
// lease runs out. Measured directly on FerretDB: with the two calls overlapping, 217 of 750
// completed documents went back to processing (none on PostgreSQL).
//
// This test checks the agent-side invariant whose absence lets that happen: a batch's completions
// are never written while a renewal of that batch is still in flight.
// Fixed in src/agent/batch.ts (BatchRun, "store writes one at a time" and "lease lapsed").

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { Store } from '../../src/stores/types.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

/** The sandbox's store, with slow renewals, recording every renewal and completion as an interval. */
function recordingStore(inner: Store, renewalMs: number) {
  const calls: { op: 'extend' | 'complete'; start: number; end: number }[] = [];
  const store: Store = Object.create(inner) as Store;
  store.extendLeases = async (held, leaseMs) => {
    const start = performance.now();
    // A slow store, as FerretDB is under load: the renewal reads, waits, then writes.
    await new Promise((resolve) => setTimeout(resolve, renewalMs));
    const n = await inner.extendLeases(held, leaseMs);
    calls.push({ op: 'extend', start, end: performance.now() });
    return n;
  };
  store.completeDocuments = async (held) => {
    const start = performance.now();
    const n = await inner.completeDocuments(held);
    calls.push({ op: 'complete', start, end: performance.now() });
    return n;
  };
  return { store, calls };
}

describe('a batch whose lease renewal is slow', () => {
  let box: Sandbox;
  beforeEach(async () => {
    box = await sandbox();
  });
  afterEach(async () => {
    await box.cleanup();
  });

  it('never writes its completions while a renewal of the same documents is in flight', async () => {
    const { createSqliteStore } = await import('../../src/stores/sqlite/index.js');
    const { store, calls } = recordingStore(createSqliteStore({ path: box.dbPath }), 600);
    // Leases of 3 s are renewed every second; a handler of 1.3 s ends while the first renewal
    // (started at 1 s, 600 ms long) is still on its way.
    const agent = box.agent({
      storeInstance: store,
      leaseTimeoutMs: 3_000,
      handler: () => new Promise((resolve) => setTimeout(resolve, 1_300)),
    });
    await box.store.insertDocuments([{ n: 1 }]);
    await agent.start();
    await waitFor(async () => (await box.store.countDocuments()).processed === 1, { what: 'processed' });
    await waitFor(() => calls.some((c) => c.op === 'extend'), { what: 'the renewal to finish' });
    const complete = calls.find((c) => c.op === 'complete')!;
    const overlapping = calls.filter(
      (c) => c.op === 'extend' && c.start < complete.end && c.end > complete.start,
    );
    assert.deepEqual(overlapping, [], 'the completion was written while a renewal was in flight');
  });
});
