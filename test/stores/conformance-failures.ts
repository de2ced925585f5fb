// The conformance suite's part on failures: due times and scheduled documents, retries with a
// delay, a crash counted as an attempt, deduplication keys, pages, manual retries and deletion.
// Called by describeStore() with the two stores of each test; conditions are waited for, never slept.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PullingAgentError } from '../../src/errors.js';
import { type FailedAttempt, LEASE_EXPIRED_ERROR, type Store } from '../../src/stores/types.js';
import { held, owner } from '../helpers/claims.js';
import { waitFor } from '../helpers/wait.js';

const soon = (ms: number) => new Date(Date.now() + ms);

/** Claims the one document `id` (the only one due) and records a failure of it. */
async function claimAndFail(store: Store, id: string, maxRetries: number, retryInMs = 0) {
  const [doc] = await store.claimBatch(owner('agent-f'), 1, 60_000);
  assert.equal(doc?.id, id);
  const failure: FailedAttempt = { ...held([doc!])[0]!, error: `boom ${doc!.attempts}`, retryInMs };
  return (await store.failDocuments([failure], maxRetries))[0];
}

export function describeFailures(stores: () => { a: Store; b: Store }): void {
  describe('failures: due times, retries, keys, pages', () => {
    it('does not claim a document before it is due, counts and lists it as scheduled, then claims it', async () => {
      const { a, b } = stores();
      const [later, now] = await a.enqueueDocuments([
        { payload: 'later', runAt: soon(300) },
        { payload: 'now' },
      ]);
      assert.equal(later?.duplicate, false);
      const first = await b.claimBatch(owner('agent-b'), 10, 60_000);
      assert.deepEqual(
        first.map((d) => d.id),
        [now!.id],
      );
      const counts = await a.countDocuments();
      assert.equal(counts.scheduled + counts.pending, 1);
      const doc = await a.getDocument(later!.id);
      if (doc?.status === 'scheduled') {
        assert.ok(doc.run_at instanceof Date && doc.run_at.getTime() > doc.created_at.getTime());
        assert.deepEqual(
          (await a.listDocuments({ status: 'scheduled', limit: 10 })).documents.map((d) => d.id),
          [later!.id],
        );
      }
      const claimed = await waitFor(
        async () => {
          const batch = await b.claimBatch(owner('agent-b'), 10, 60_000);
          return batch.length > 0 ? batch : null;
        },
        { what: 'the scheduled document claimed once due' },
      );
      assert.deepEqual(
        claimed.map((d) => d.id),
        [later!.id],
      );
      const inFlight = await a.getDocument(later!.id);
      assert.equal(inFlight?.status, 'processing');
      assert.equal(inFlight?.run_at, null);
    });

    it('claims the earliest due first, and a due time in the past is due now', async () => {
      const { a } = stores();
      const [late, early, now, past] = await a.enqueueDocuments([
        { payload: 'late', runAt: soon(400) },
        { payload: 'early', runAt: soon(200) },
        { payload: 'now' },
        { payload: 'past', runAt: new Date(Date.now() - 3_600_000) },
      ]);
      await waitFor(async () => (await a.getDocument(late!.id))?.status === 'pending', {
        what: 'every document due',
      });
      const order: string[] = [];
      for (let i = 0; i < 4; i++) {
        const [doc] = await a.claimBatch(owner('agent-a'), 1, 60_000);
        order.push(doc!.id);
      }
      assert.deepEqual(order, [now!.id, past!.id, early!.id, late!.id]);
    });

    it('retries after retryInMs: scheduled until then, due after, attempts counted', async () => {
      const { a, b } = stores();
      const [id] = await a.insertDocuments(['flaky']);
      assert.equal(await claimAndFail(a, id!, 3, 300), 'pending');
      const doc = await b.getDocument(id!);
      assert.equal(doc?.attempts, 1);
      assert.equal(doc?.error, 'boom 0');
      assert.equal(doc?.claimed_by, null);
      if (doc?.status === 'scheduled') assert.deepEqual(await b.claimBatch(owner('agent-b'), 1, 60_000), []);
      const [again] = await waitFor(
        async () => {
          const batch = await b.claimBatch(owner('agent-b'), 1, 60_000);
          return batch.length > 0 ? batch : null;
        },
        { what: 'the retried document claimable once due' },
      );
      assert.deepEqual([again?.id, again?.attempts], [id, 1]);
    });

    it('counts a crash as an attempt: an expired lease is retried, then failed; a live claim is untouched', async () => {
      const { a, b } = stores();
      const [crashing, live] = await a.insertDocuments(['crashing', 'live']);
      assert.deepEqual(await b.recoverExpiredLeases(1, 0), { retried: 0, failed: 0 });
      const [liveClaim] = await b.claimBatch(owner('live-holder'), 1, 60_000);
      assert.equal(liveClaim?.id, crashing);
      // The first document is held for a minute; the second crashes twice with short leases.
      for (const expected of [
        { retried: 1, failed: 0 },
        { retried: 0, failed: 1 },
      ]) {
        const [doc] = await a.claimBatch(owner('dying'), 1, 200);
        assert.equal(doc?.id, live);
        await waitFor(
          async () => {
            const result = await b.recoverExpiredLeases(1, 0);
            if (result.retried + result.failed === 0) return false;
            assert.deepEqual(result, expected);
            return true;
          },
          { what: 'the expired lease recovered' },
        );
        assert.equal(await a.completeDocuments(held([doc!])), 0);
      }
      const crashed = await a.getDocument(live!);
      assert.deepEqual(
        [crashed?.status, crashed?.attempts, crashed?.error],
        ['failed', 2, LEASE_EXPIRED_ERROR],
      );
      assert.ok(crashed?.processed_at instanceof Date);
      const untouched = await a.getDocument(crashing!);
      assert.deepEqual([untouched?.status, untouched?.attempts, untouched?.error], ['processing', 0, null]);
      assert.equal(await b.completeDocuments(held([liveClaim!])), 1);
    });

    it('spreads the due times of documents that died together over the given window', async () => {
      const { a, b } = stores();
      await a.insertDocuments(['one', 'two', 'three']);
      const died = await a.claimBatch(owner('dying'), 3, 200);
      assert.equal(died.length, 3);
      const started = Date.now();
      await waitFor(async () => (await b.recoverExpiredLeases(5, 60_000)).retried === 3, {
        what: 'the three expired leases recovered',
      });
      for (const doc of died) {
        const after = await a.getDocument(doc.id);
        // Due within the next minute (a few ms of clock difference between store and test allowed).
        assert.ok(after?.run_at instanceof Date, `${doc.id} has a due time`);
        assert.ok(after.run_at.getTime() <= started + 61_000 + 5_000, `${doc.id} due within the spread`);
        assert.equal(after.attempts, 1);
      }
      // Claimed together again only if their random due times all passed: with a minute's spread
      // at least one is still scheduled (the chance of all three under the 2 s it took is tiny).
      const counts = await a.countDocuments();
      assert.ok(counts.scheduled >= 1, `scheduled ${counts.scheduled}, pending ${counts.pending}`);
    });

    it('stores a key once while its document is unfinished, also within one request', async () => {
      const { a, b } = stores();
      const first = await a.enqueueDocuments([
        { payload: 1, key: 'order-1' },
        { payload: 2, key: 'order-2' },
        { payload: 3, key: 'order-1' },
        { payload: 4 },
      ]);
      assert.deepEqual(
        first.map((d) => d.duplicate),
        [false, false, true, false],
      );
      assert.equal(first[2]!.id, first[0]!.id);
      assert.equal((await a.getDocument(first[0]!.id))?.key, 'order-1');
      const counts = await b.countDocuments();
      assert.equal(counts.pending, 3);
      // Pending, then processing: still a duplicate.
      assert.deepEqual(await b.enqueueDocuments([{ payload: 5, key: 'order-1' }]), [
        { id: first[0]!.id, duplicate: true },
      ]);
      const batch = await a.claimBatch(owner('agent-a'), 10, 60_000);
      assert.deepEqual(await b.enqueueDocuments([{ payload: 6, key: 'order-2' }]), [
        { id: first[1]!.id, duplicate: true },
      ]);
      // Processed or failed: the key is free again.
      const one = batch.filter((d) => d.id === first[0]!.id);
      const two = batch.filter((d) => d.id === first[1]!.id);
      assert.equal(await a.completeDocuments(held(one)), 1);
      assert.deepEqual(await a.failDocuments([{ ...held(two)[0]!, error: 'x', retryInMs: 0 }], 0), [
        'failed',
      ]);
      const again = await b.enqueueDocuments([
        { payload: 7, key: 'order-1' },
        { payload: 8, key: 'order-2' },
      ]);
      assert.deepEqual(
        again.map((d) => d.duplicate),
        [false, false],
      );
      assert.ok(again.every((d, i) => d.id !== first[i]!.id));
      assert.deepEqual(await b.insertDocuments([]), []);
      assert.deepEqual(await b.enqueueDocuments([]), []);
    });

    it('lists documents in id order, a page at a time, and by status', async () => {
      const { a, b } = stores();
      const ids = await a.insertDocuments([1, 2, 3, 4, 5, 6, 7]);
      const seen: string[] = [];
      let after: string | null = null;
      const sizes: number[] = [];
      for (let page = 0; page < 5; page++) {
        const result = await b.listDocuments({ limit: 3, after });
        sizes.push(result.documents.length);
        seen.push(...result.documents.map((d) => d.id));
        after = result.next;
        if (after === null) break;
      }
      assert.deepEqual(sizes, [3, 3, 1]);
      assert.deepEqual(seen, ids);
      const record = (await b.listDocuments({ limit: 1 })).documents[0];
      assert.deepEqual([record?.status, record?.payload, record?.key], ['pending', 1, null]);
      assert.ok(record?.updated_at instanceof Date && record.run_at instanceof Date);

      const claimed = await a.claimBatch(owner('agent-a'), 2, 60_000);
      const [scheduled] = await a.enqueueDocuments([{ payload: 'later', runAt: soon(3_600_000) }]);
      const byStatus = async (status: 'pending' | 'processing' | 'scheduled' | 'failed') =>
        (await b.listDocuments({ status, limit: 100 })).documents.map((d) => d.id);
      assert.deepEqual(
        await byStatus('processing'),
        claimed.map((d) => d.id),
      );
      assert.deepEqual(await byStatus('scheduled'), [scheduled!.id]);
      assert.deepEqual(await byStatus('pending'), ids.slice(2));
      assert.deepEqual(await byStatus('failed'), []);
      const pendingPage = await b.listDocuments({ status: 'pending', limit: 2 });
      assert.equal(pendingPage.documents.length, 2);
      const rest = await b.listDocuments({ status: 'pending', limit: 10, after: pendingPage.next });
      assert.deepEqual(
        rest.documents.map((d) => d.id),
        ids.slice(4),
      );
      assert.equal(rest.next, null);
      await assert.rejects(
        b.listDocuments({ limit: 10, after: 'not a cursor' }),
        (error: unknown) =>
          error instanceof PullingAgentError &&
          error.code === 'PA_BAD_REQUEST' &&
          /cursor/.test(error.message),
      );
    });

    it('retries failed documents by id and in bulk, with a fresh budget and the attempts kept', async () => {
      const { a, b } = stores();
      const [doomed] = await a.insertDocuments(['doomed']);
      assert.equal(await claimAndFail(a, doomed!, 0), 'failed');
      const [pending] = await a.insertDocuments(['pending']);
      assert.equal(await b.retryDocuments({ ids: [doomed!, pending!, 'no-such-id'] }), 1);
      const retried = await b.getDocument(doomed!);
      assert.deepEqual(
        [retried?.status, retried?.attempts, retried?.error, retried?.claimed_by, retried?.processed_at],
        ['pending', 1, 'boom 0', null, null],
      );
      const both = await a.claimBatch(owner('agent-a'), 2, 60_000);
      assert.equal(await a.completeDocuments(held(both.filter((d) => d.id === pending))), 1);
      assert.equal(await a.releaseDocuments(held(both.filter((d) => d.id === doomed))), 1);
      // A fresh budget: with maxRetries 1 it fails once more as a retry, then for good.
      assert.equal(await claimAndFail(a, doomed!, 1), 'pending');
      assert.equal(await claimAndFail(a, doomed!, 1), 'failed');
      assert.equal((await a.getDocument(doomed!))?.attempts, 3);
      const [other] = await a.insertDocuments(['other']);
      assert.equal(await claimAndFail(a, other!, 0), 'failed');
      assert.equal((await a.countDocuments()).failed, 2);
      assert.equal(await b.retryDocuments({ status: 'failed' }), 2);
      assert.equal(await b.retryDocuments({ status: 'failed' }), 0);
      assert.equal(await b.retryDocuments({ ids: [] }), 0);
      const counts = await a.countDocuments();
      assert.deepEqual([counts.failed, counts.pending + counts.scheduled], [0, 2]);
    });

    it('deletes a document unless it is being processed', async () => {
      const { a, b } = stores();
      const [done, failed, processing, pending] = await a.insertDocuments([
        'done',
        'failed',
        'processing',
        'pending',
      ]);
      const [scheduled] = await a.enqueueDocuments([{ payload: 'later', runAt: soon(3_600_000) }]);
      const [d] = await a.claimBatch(owner('agent-a'), 1, 60_000);
      assert.equal(await a.completeDocuments(held([d!])), 1);
      assert.equal(await claimAndFail(a, failed!, 0), 'failed');
      await a.claimBatch(owner('agent-a'), 1, 60_000);
      assert.equal(await b.deleteDocument(processing!), 'processing');
      for (const id of [done!, failed!, pending!, scheduled!.id])
        assert.equal(await b.deleteDocument(id), 'deleted');
      assert.equal(await b.deleteDocument(done!), 'not_found');
      assert.equal(await b.deleteDocument('no-such-id'), 'not_found');
      assert.equal(await a.getDocument(done!), null);
      assert.equal((await a.getDocument(processing!))?.status, 'processing');
    });

    it('never undoes a completion with a renewal racing it', async () => {
      const { a } = stores();
      for (let round = 0; round < 10; round++) {
        const ids = await a.insertDocuments([1, 2, 3, 4, 5]);
        const batch = await a.claimBatch(owner('agent-a'), 5, 60_000);
        assert.equal(batch.length, 5);
        const handles = held(batch);
        const [, completed] = await Promise.all([
          a.extendLeases(handles, 60_000),
          a.completeDocuments(handles),
          a.extendLeases(handles, 60_000),
        ]);
        assert.equal(completed, 5);
        const docs = await Promise.all(ids.map((id) => a.getDocument(id)));
        assert.deepEqual(
          docs.map((doc) => doc?.status),
          ['processed', 'processed', 'processed', 'processed', 'processed'],
        );
      }
    });
  });
}
