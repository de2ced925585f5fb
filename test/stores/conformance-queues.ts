// The conformance suite's part on queues: every document has one (`default` unless given), a bad
// name stores nothing, a claim takes only the queues its filter lets through (`exclude` wins), and
// counts and lists are per queue. A queue stays with its document through failures, retries and a
// recovered lease. Called by describeStore() with the two stores of each test.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PullingAgentError } from '../../src/errors.js';
import { DEFAULT_QUEUE, type Store } from '../../src/stores/types.js';
import { held, owner } from '../helpers/claims.js';
import { waitFor } from '../helpers/wait.js';

const EMPTY = { pending: 0, scheduled: 0, processing: 0, processed: 0, failed: 0 };

/** Claims everything a filter lets through, and answers each claimed document's payload, sorted. */
async function claimPayloads(store: Store, filter?: Parameters<Store['claimBatch']>[3]) {
  const batch = await store.claimBatch(owner('agent-q'), 100, 60_000, filter);
  return batch.map((d) => [d.payload, d.queue]).sort((x, y) => String(x[0]).localeCompare(String(y[0])));
}

export function describeQueues(stores: () => { a: Store; b: Store }): void {
  describe('queues', () => {
    it('puts a document in `default` unless it is given a queue, and shows the queue everywhere', async () => {
      const { a, b } = stores();
      const [plain] = await a.insertDocuments(['plain']);
      const [given, unnamed] = await a.enqueueDocuments([
        { payload: 'mail', queue: 'emails' },
        { payload: 'none' },
      ]);
      assert.equal((await b.getDocument(plain!))?.queue, DEFAULT_QUEUE);
      assert.equal((await b.getDocument(given!.id))?.queue, 'emails');
      assert.equal((await b.getDocument(unnamed!.id))?.queue, DEFAULT_QUEUE);
      const listed = (await b.listDocuments({ limit: 10 })).documents.map((d) => [d.payload, d.queue]);
      assert.deepEqual(listed, [
        ['plain', 'default'],
        ['mail', 'emails'],
        ['none', 'default'],
      ]);
      assert.deepEqual(await claimPayloads(b), [
        ['mail', 'emails'],
        ['none', 'default'],
        ['plain', 'default'],
      ]);
    });

    it('refuses a bad queue name, naming the rule, and stores nothing of the request', async () => {
      const { a, b } = stores();
      for (const bad of ['Emails', '', 'a b', '-x', 'x'.repeat(65), 'ü']) {
        await assert.rejects(
          a.enqueueDocuments([{ payload: 'good' }, { payload: 'bad', queue: bad }]),
          (error: unknown) =>
            error instanceof PullingAgentError &&
            error.code === 'PA_BAD_REQUEST' &&
            error.message.includes(JSON.stringify(bad)) &&
            /lowercase letters/.test(error.message),
          `queue ${JSON.stringify(bad)}`,
        );
      }
      assert.deepEqual(await b.countDocuments(), EMPTY);
      assert.deepEqual(await b.countQueues(), []);
      // The longest good name and every allowed character are stored as they are.
      const longest = 'a'.repeat(64);
      const [long, odd] = await a.enqueueDocuments([
        { payload: 1, queue: longest },
        { payload: 2, queue: '0a_b-c.d:e' },
      ]);
      assert.equal((await b.getDocument(long!.id))?.queue, longest);
      assert.equal((await b.getDocument(odd!.id))?.queue, '0a_b-c.d:e');
    });

    it('claims only the queues a filter lets through: only, exclude, and exclude wins', async () => {
      const { a, b } = stores();
      await a.enqueueDocuments([
        { payload: 'd1' },
        { payload: 'e1', queue: 'emails' },
        { payload: 'r1', queue: 'reports' },
        { payload: 'e2', queue: 'emails' },
        { payload: 'i1', queue: 'images' },
      ]);
      // Nothing to claim: an empty `only`, or every listed queue excluded; and nothing moved.
      assert.deepEqual(await b.claimBatch(owner('agent-q'), 10, 60_000, { only: [] }), []);
      assert.deepEqual(
        await b.claimBatch(owner('agent-q'), 10, 60_000, { only: ['emails'], exclude: ['emails'] }),
        [],
      );
      assert.deepEqual(await b.claimBatch(owner('agent-q'), 10, 60_000, { only: ['no-such-queue'] }), []);
      assert.equal((await a.countDocuments()).pending, 5);
      // `only` with a queue excluded: the rest of `only`.
      assert.deepEqual(await claimPayloads(b, { only: ['emails', 'reports'], exclude: ['reports'] }), [
        ['e1', 'emails'],
        ['e2', 'emails'],
      ]);
      // `exclude` alone: every other queue.
      assert.deepEqual(await claimPayloads(a, { exclude: ['images'] }), [
        ['d1', 'default'],
        ['r1', 'reports'],
      ]);
      // An empty filter, or `only: null`, restricts nothing.
      assert.deepEqual(await claimPayloads(b, { only: null, exclude: [] }), [['i1', 'images']]);
    });

    it('claims within a filter in due order, up to the limit', async () => {
      const { a, b } = stores();
      // Due times in the past are due now, so these are due in the order they were stored.
      await a.enqueueDocuments([
        { payload: 'e-first', queue: 'emails', runAt: new Date(Date.now() - 60_000) },
        { payload: 'd-first' },
        { payload: 'e-second', queue: 'emails' },
        { payload: 'e-third', queue: 'emails' },
      ]);
      const first = await b.claimBatch(owner('agent-q'), 2, 60_000, { only: ['emails'] });
      assert.deepEqual(
        first.map((d) => [d.payload, d.queue]),
        [
          ['e-first', 'emails'],
          ['e-second', 'emails'],
        ],
      );
      const second = await b.claimBatch(owner('agent-q'), 5, 60_000, { exclude: ['default'] });
      assert.deepEqual(
        second.map((d) => d.payload),
        ['e-third'],
      );
    });

    it('counts per queue, by queue name, and lists one queue a page at a time', async () => {
      const { a, b } = stores();
      assert.deepEqual(await b.countQueues(), []);
      const stored = await a.enqueueDocuments([
        { payload: 'e1', queue: 'emails' },
        { payload: 'd1' },
        { payload: 'e2', queue: 'emails' },
        { payload: 'e3', queue: 'emails', runAt: new Date(Date.now() + 3_600_000) },
        { payload: 'z1', queue: 'zeta' },
      ]);
      const [claimed] = await a.claimBatch(owner('agent-q'), 1, 60_000, { only: ['emails'] });
      assert.equal(await a.completeDocuments(held([claimed!])), 1);
      await a.claimBatch(owner('agent-q'), 1, 60_000, { only: ['zeta'] });
      assert.deepEqual(await b.countQueues(), [
        { queue: 'default', counts: { ...EMPTY, pending: 1 } },
        { queue: 'emails', counts: { ...EMPTY, pending: 1, scheduled: 1, processed: 1 } },
        { queue: 'zeta', counts: { ...EMPTY, processing: 1 } },
      ]);
      // The per-queue counts add up to the whole.
      assert.deepEqual(await b.countDocuments(), {
        ...EMPTY,
        pending: 2,
        scheduled: 1,
        processed: 1,
        processing: 1,
      });

      const ids = (query: Parameters<Store['listDocuments']>[0]) =>
        b.listDocuments(query).then((page) => [page.documents.map((d) => d.id), page.next] as const);
      const emails = [stored[0]!.id, stored[2]!.id, stored[3]!.id];
      const [page1, next] = await ids({ queue: 'emails', limit: 2 });
      assert.deepEqual(page1, emails.slice(0, 2));
      assert.deepEqual(await ids({ queue: 'emails', limit: 2, after: next }), [emails.slice(2), null]);
      assert.deepEqual(await ids({ queue: 'emails', status: 'scheduled', limit: 10 }), [
        [stored[3]!.id],
        null,
      ]);
      assert.deepEqual(await ids({ queue: 'default', limit: 10 }), [[stored[1]!.id], null]);
      assert.deepEqual(await ids({ queue: 'no-such-queue', limit: 10 }), [[], null]);
    });

    it('keeps a document in its queue through a failure, a manual retry and a recovered lease', async () => {
      const { a, b } = stores();
      const [doc] = await a.enqueueDocuments([{ payload: 'sticky', queue: 'emails' }]);
      const id = doc!.id;
      // Failed for good, retried by hand: still `emails`, and still claimed by an `emails` filter only.
      const [first] = await a.claimBatch(owner('agent-q'), 1, 60_000, { only: ['emails'] });
      assert.deepEqual(await a.failDocuments([{ ...held([first!])[0]!, error: 'x', retryInMs: 0 }], 0), [
        'failed',
      ]);
      assert.equal((await b.getDocument(id))?.queue, 'emails');
      assert.equal(await b.retryDocuments({ ids: [id] }), 1);
      assert.deepEqual(await b.claimBatch(owner('agent-q'), 1, 60_000, { only: ['default'] }), []);
      // A retry after a failure, then a lease that runs out and is recovered.
      const [second] = await b.claimBatch(owner('agent-q'), 1, 60_000, { only: ['emails'] });
      assert.equal(second?.queue, 'emails');
      assert.deepEqual(await b.failDocuments([{ ...held([second!])[0]!, error: 'y', retryInMs: 0 }], 5), [
        'pending',
      ]);
      const [third] = await a.claimBatch(owner('agent-q'), 1, 200, { exclude: ['default'] });
      assert.equal(third?.id, id);
      await waitFor(async () => (await b.recoverExpiredLeases(5, 0)).retried === 1, {
        what: 'the short lease recovered',
        timeoutMs: 20_000,
      });
      const recovered = await a.getDocument(id);
      assert.deepEqual([recovered?.status, recovered?.queue], ['pending', 'emails']);
      const [fourth] = await b.claimBatch(owner('agent-q'), 1, 60_000, { only: ['emails'] });
      assert.deepEqual([fourth?.id, fourth?.queue, fourth?.attempts], [id, 'emails', 3]);
    });
  });
}
