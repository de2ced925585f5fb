// The continuous runtime against the in-memory store: slots that never wait for each other,
// outcomes written in groups as they happen, claims sized by the free slots and the prefetch,
// pause and abort, lapsed leases and wake-ups.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { pino } from 'pino';

import {
  type DocumentHandler,
  Pipeline,
  type PipelineOptions,
  type RuntimeStats,
} from '../../src/agent/pipeline.js';
import { ClaimGovernor } from '../../src/agent/throttle.js';
import { emptyPolicy } from '../../src/model/policy.js';
import { createMemoryStore, type MemoryStore } from '../helpers/memory-store.js';
import { waitFor } from '../helpers/wait.js';

function stats(): RuntimeStats {
  return {
    batches: 0,
    claims: 0,
    lastBatchAt: null,
    documentsProcessed: 0,
    documentsFailed: 0,
    documentsRetried: 0,
    handlerErrors: 0,
    storeErrors: 0,
    leasesLapsed: 0,
    leasesRecovered: 0,
  };
}

/** Handlers that wait until the test opens their document's gate. */
function gates() {
  const open = new Map<string, () => void>();
  const started: string[] = [];
  const signals = new Map<string, AbortSignal>();
  const handler: DocumentHandler = (doc, { signal }) => {
    started.push(String((doc.payload as { n: unknown }).n));
    signals.set(String((doc.payload as { n: unknown }).n), signal);
    return new Promise<void>((resolve, reject) => {
      open.set(String((doc.payload as { n: unknown }).n), resolve);
      signal.addEventListener('abort', () => reject(signal.reason as Error));
    });
  };
  return {
    handler,
    started,
    signals,
    release(n: number) {
      const resolve = open.get(String(n));
      assert.ok(resolve, `document ${n} has not started`);
      resolve();
    },
  };
}

const docs = (...ns: number[]) => ns.map((n) => ({ n }));

describe('the continuous pipeline', () => {
  const pipelines: Pipeline[] = [];
  afterEach(async () => {
    for (const p of pipelines.splice(0)) await p.abort('test over');
  });

  function pipeline(store: MemoryStore, overrides: Partial<PipelineOptions> = {}): Pipeline {
    const p = new Pipeline({
      store,
      owner: { agentId: 'a', instanceId: 'i-1' },
      handler: () => undefined,
      concurrency: 2,
      batchSize: 100,
      prefetch: 0,
      maxRetries: 2,
      leaseMs: 60_000,
      pollIntervalMs: 60_000,
      logger: pino({ level: 'silent' }),
      stats: stats(),
      ...overrides,
    });
    pipelines.push(p);
    return p;
  }

  it('never lets a slot wait for another document: fast ones finish while a slow one runs', async () => {
    const store = createMemoryStore();
    const g = gates();
    await store.insertDocuments(docs(1, 2, 3, 4, 5));
    const p = pipeline(store, { handler: g.handler, concurrency: 2 });
    p.start();
    await waitFor(() => g.started.length === 2, { what: 'two handlers to start' });
    // Document 1 stays running; 2, 3, 4, 5 go through the other slot one after the other.
    for (const n of [2, 3, 4, 5]) {
      await waitFor(() => g.started.includes(String(n)), { what: `document ${n} to start` });
      g.release(n);
    }
    await waitFor(() => store.rows.filter((r) => r.status === 'processed').length === 4, {
      what: 'four documents recorded as processed while the first still runs',
    });
    assert.equal(store.rows[0]?.status, 'processing');
    g.release(1);
    await waitFor(() => store.rows.every((r) => r.status === 'processed'), { what: 'all processed' });
  });

  it('writes outcomes within milliseconds, many in one statement, without waiting for the others', async () => {
    const store = createMemoryStore();
    const g = gates();
    await store.insertDocuments(docs(...Array.from({ length: 21 }, (_, i) => i)));
    const p = pipeline(store, { handler: g.handler, concurrency: 21 });
    p.start();
    await waitFor(() => g.started.length === 21, { what: 'all 21 handlers to start' });
    for (let n = 1; n <= 20; n++) g.release(n);
    await waitFor(() => store.rows.filter((r) => r.status === 'processed').length === 20, {
      what: 'twenty completions recorded while document 0 still runs',
    });
    const completes = store.calls.filter((c) => c.op === 'completeDocuments');
    assert.ok(completes.length < 20, `20 completions took ${completes.length} statements`);
    assert.equal(
      completes.reduce((sum, c) => sum + c.size, 0),
      20,
    );
    g.release(0);
    await waitFor(() => store.rows.every((r) => r.status === 'processed'), { what: 'the last one' });
  });

  it('records failures in groups, retrying then failing for good', async () => {
    const store = createMemoryStore();
    await store.insertDocuments(docs(1, 2, 3));
    const s = stats();
    const p = pipeline(store, {
      handler: () => {
        throw new Error('downstream refused');
      },
      concurrency: 3,
      maxRetries: 1,
      stats: s,
      pollIntervalMs: 10,
    });
    p.start();
    await waitFor(() => store.rows.every((r) => r.status === 'failed'), { what: 'all three failed' });
    assert.deepEqual(
      store.rows.map((r) => [r.attempts, r.error]),
      [
        [2, 'downstream refused'],
        [2, 'downstream refused'],
        [2, 'downstream refused'],
      ],
    );
    assert.equal(s.documentsFailed, 3);
    assert.equal(s.documentsRetried, 3);
    const failCalls = store.calls.filter((c) => c.op === 'failDocuments');
    assert.ok(
      failCalls.some((c) => c.size > 1),
      'no failure group held more than one document',
    );
  });

  it('claims the free slots and no more with prefetch 0, one at a time with one slot', async () => {
    const store = createMemoryStore();
    await store.insertDocuments(docs(1, 2, 3, 4, 5, 6));
    const p = pipeline(store, { concurrency: 1, prefetch: 0, pollIntervalMs: 10 });
    p.start();
    await waitFor(() => store.rows.every((r) => r.status === 'processed'), { what: 'all processed' });
    const claims = store.calls.filter((c) => c.op === 'claimBatch');
    assert.ok(claims.length >= 6);
    assert.ok(
      claims.every((c) => c.size === 1),
      `claim sizes ${claims.map((c) => c.size).join(',')}`,
    );
  });

  it('with prefetch auto, claims many for fast handlers and none beyond the slots for slow ones', async () => {
    const fast = createMemoryStore();
    await fast.insertDocuments(Array.from({ length: 2_000 }, (_, n) => ({ n })));
    const p = pipeline(fast, { concurrency: 1, prefetch: 'auto', batchSize: 50 });
    p.start();
    await waitFor(() => fast.rows.every((r) => r.status === 'processed'), { what: '2,000 processed' });
    const sizes = fast.calls.filter((c) => c.op === 'claimBatch').map((c) => c.size);
    assert.ok(Math.max(...sizes) > 1, `fast handlers were claimed ${Math.max(...sizes)} at a time`);
    assert.ok(Math.max(...sizes) <= 50, 'a claim took more than BATCH_SIZE');

    const slow = createMemoryStore();
    await slow.insertDocuments(docs(1, 2, 3, 4, 5, 6, 7, 8));
    const q = pipeline(slow, {
      concurrency: 2,
      prefetch: 'auto',
      handler: () => new Promise((resolve) => setTimeout(resolve, 60)),
    });
    q.start();
    await waitFor(() => slow.rows.every((r) => r.status === 'processed'), { what: 'eight processed' });
    const held = slow.calls.filter((c) => c.op === 'claimBatch').map((c) => c.size);
    assert.ok(
      held.slice(1).every((size) => size <= 2),
      `slow handlers were claimed beyond the free slots: ${held.join(',')}`,
    );
  });

  it('on stop gives the buffer back at once, lets running handlers finish, then is drained', async () => {
    const store = createMemoryStore();
    const g = gates();
    await store.insertDocuments(docs(1, 2, 3, 4, 5, 6));
    const p = pipeline(store, { handler: g.handler, concurrency: 2, prefetch: 4 });
    p.start();
    await waitFor(() => g.started.length === 2 && p.buffered === 4, { what: '2 running, 4 buffered' });
    let drained = false;
    p.stop();
    void p.drained().then(() => (drained = true));
    await waitFor(() => store.rows.filter((r) => r.status === 'pending').length === 4, {
      what: 'the four buffered documents back to pending',
    });
    assert.equal(drained, false);
    assert.ok(p.inFlight > 0);
    g.release(1);
    g.release(2);
    await waitFor(() => drained, { what: 'the pipeline to drain' });
    assert.equal(p.inFlight, 0);
    assert.deepEqual(
      store.rows.map((r) => r.status),
      ['processed', 'processed', 'pending', 'pending', 'pending', 'pending'],
    );
    assert.equal(g.started.length, 2);
  });

  it('on abort signals running handlers, gives their documents back and stops waiting', async () => {
    const store = createMemoryStore();
    const never: DocumentHandler = () => new Promise(() => undefined);
    const signals: AbortSignal[] = [];
    await store.insertDocuments(docs(1, 2));
    const p = pipeline(store, {
      handler: (doc, ctx) => {
        signals.push(ctx.signal);
        return never(doc, ctx);
      },
    });
    p.start();
    await waitFor(() => signals.length === 2, { what: 'two handlers to start' });
    p.stop();
    await p.abort('shutdown timeout');
    await p.drained();
    assert.ok(signals.every((s) => s.aborted));
    assert.deepEqual(
      store.rows.map((r) => r.status),
      ['pending', 'pending'],
    );
  });

  it('gives up a document whose lease may have lapsed: aborts its handler and ignores its outcome', async () => {
    const store = createMemoryStore();
    const g = gates();
    const s = stats();
    await store.insertDocuments(docs(1));
    // Renewals never land: the store is unreachable for them.
    store.before.extendLeases = () => new Promise(() => undefined);
    const p = pipeline(store, { handler: g.handler, leaseMs: 1_000, stats: s });
    p.start();
    await waitFor(() => g.started.length === 1, { what: 'the handler to start' });
    await waitFor(() => g.signals.get('1')?.aborted, { what: 'the handler to be aborted', timeoutMs: 5_000 });
    assert.equal(s.leasesLapsed, 1);
    // Meanwhile its lease runs out and another claim (same agent name, another process) takes it
    // over. This pipeline is stopped first, so that its own sweep does not take it back.
    p.stop();
    store.advance(2_000);
    await store.recoverExpiredLeases(5, 0);
    // Its own sweep may have been first (under load a whole lease can pass before the stop):
    // either way the lapsed attempt was counted once and the document is pending again.
    assert.deepEqual([store.rows[0]?.status, store.rows[0]?.attempts], ['pending', 1]);
    const [taken] = await store.claimBatch({ agentId: 'a', instanceId: 'i-2' }, 1, 60_000);
    assert.equal(taken?.id, '1');
    await waitFor(() => p.inFlight === 0, { what: 'nothing in flight' });
    assert.equal(store.rows[0]?.status, 'processing');
    assert.equal(store.rows[0]?.token, taken?.token);
  });

  it('rests after an empty claim until new documents wake it', async () => {
    const store = createMemoryStore();
    const seen: unknown[] = [];
    const p = pipeline(store, { handler: (doc) => void seen.push(doc.payload), pollIntervalMs: 600_000 });
    p.start();
    await waitFor(() => store.calls.some((c) => c.op === 'claimBatch'), { what: 'the first claim' });
    await store.insertDocuments(docs(7));
    p.wake({ count: 1 });
    await waitFor(() => seen.length === 1, { what: 'the woken pipeline to run the new document' });
    assert.equal(store.rows[0]?.status === 'processed' || store.rows[0]?.status === 'processing', true);
  });

  it('claims through its governor: paused queues stay pending, a resume is claimed after a nudge', async () => {
    const store = createMemoryStore();
    const seen: unknown[] = [];
    await store.enqueueDocuments([
      { payload: 'e1', queue: 'emails' },
      { payload: 'r1', queue: 'reports' },
      { payload: 'd1' },
    ]);
    const rule = { reason: null, updated_by: 't', on_behalf_of: null, since_version: 1, expires_at: null };
    const governor = new ClaimGovernor(null);
    const at = new Date('2026-12-01T00:00:00Z');
    governor.apply({ ...emptyPolicy(at), version: 1, paused_queues: { reports: rule, default: rule } }, 1);
    const p = pipeline(store, {
      handler: (doc) => void seen.push(doc.payload),
      pollIntervalMs: 600_000,
      governor,
    });
    p.start();
    await waitFor(() => seen.length === 1, { what: 'the emails document' });
    assert.deepEqual(seen, ['e1']);
    // The default queue resumed: the next claim follows the policy at once.
    governor.apply({ ...emptyPolicy(at), version: 2, paused_queues: { reports: rule } }, 1);
    p.nudge();
    await waitFor(() => seen.length === 2, { what: 'the default document' });
    assert.deepEqual(seen, ['e1', 'd1']);
    assert.equal(store.rows.find((r) => r.payload === 'r1')?.status, 'pending');
    assert.deepEqual(p.queuesInFlight(), []);
    await p.close();
  });

  it('lowers and raises its slots at runtime', async () => {
    const store = createMemoryStore();
    const g = gates();
    await store.insertDocuments(docs(1, 2, 3, 4));
    const p = pipeline(store, { handler: g.handler, concurrency: 1 });
    p.start();
    await waitFor(() => g.started.length === 1, { what: 'one handler' });
    p.setConcurrency(3);
    await waitFor(() => g.started.length === 3, { what: 'three handlers after raising the slots' });
    for (const n of [1, 2, 3]) g.release(n);
    await waitFor(() => g.started.length === 4, { what: 'the fourth' });
    g.release(4);
    await waitFor(() => store.rows.every((r) => r.status === 'processed'), { what: 'all processed' });
  });
});
