// The one suite every store passes. A store's test file calls describeStore() with a harness that
// opens connections to one fresh database; two connections stand for two agents (two pods).

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { VersionConflictError, WatchUnavailableError } from '../../src/errors.js';
import {
  type AgentHeartbeat,
  type ClaimedDocument,
  type ClaimOwner,
  type ControlWatch,
  type HeldDocument,
  LEASE_EXPIRED_ERROR,
  type Store,
} from '../../src/stores/types.js';
import { waitFor } from '../helpers/wait.js';
import { describeFailures } from './conformance-failures.js';
import { describePolicy, type PolicyRawWrites } from './conformance-policy.js';
import { describeQueues } from './conformance-queues.js';

export interface StoreHarness extends PolicyRawWrites {
  /** A new, initialised connection to this harness's database (like another pod). */
  open(): Promise<Store>;
  /** The seed's manual wake-up, done with the raw driver: version + 1, nothing else. */
  manualBump(): Promise<void>;
  /** Sets the control version with the raw driver (a huge one, as a bad hand edit could). */
  setVersion(version: number): Promise<void>;
  /** Drops the database/schema/file. */
  cleanup(): Promise<void>;
}

export interface DescribeStoreOptions {
  /** When set, the whole suite is skipped with this reason (printed once by the runner). */
  skip?: string | undefined;
}

function heartbeat(agentId: string, overrides: Partial<AgentHeartbeat> = {}): AgentHeartbeat {
  return {
    agent_id: agentId,
    instance_id: `${agentId}/1`,
    host: 'host-1',
    software_version: '0.0.0-test',
    state: 'running',
    applied_version: 0,
    applied_at: null,
    batch_in_flight: false,
    watch_mode: 'polling',
    started_at: new Date('2026-01-01T00:00:00Z'),
    counters: { documents_processed: 3 },
    ...overrides,
  };
}

function owner(agentId: string, instanceId = `${agentId}/1`): ClaimOwner {
  return { agentId, instanceId };
}

/** The handles the store acts on: each document's id and its claim's token. */
function held(documents: ClaimedDocument[]): HeldDocument[] {
  return documents.map(({ id, token }) => ({ id, token }));
}

export function describeStore(
  name: string,
  makeHarness: () => Promise<StoreHarness>,
  options: DescribeStoreOptions = {},
): void {
  describe(`store conformance: ${name}`, { skip: options.skip ?? false }, () => {
    let harness: StoreHarness;
    let a: Store;
    let b: Store;

    beforeEach(async () => {
      harness = await makeHarness();
      a = await harness.open();
      b = await harness.open();
    });

    afterEach(async () => {
      await a.close();
      await b.close();
      await harness.cleanup();
    });

    describe('control document', () => {
      it('starts at running, version 0, by system, and init is idempotent', async () => {
        await a.init();
        const state = await b.readControl();
        assert.equal(state.command, 'running');
        assert.equal(state.version, 0);
        assert.equal(state.updated_by, 'system');
        assert.equal(state.reason, null);
        assert.ok(state.timestamp instanceof Date && !Number.isNaN(state.timestamp.getTime()));
        assert.equal(await a.readControlVersion(), 0);
        assert.deepEqual(await a.listHistory(10), []);
      });

      it('writes a command atomically: version + 1, store timestamp, history entry', async () => {
        const before = Date.now();
        const written = await a.writeCommand({
          command: 'pause',
          reason: 'Maintenance',
          updated_by: 'admin',
        });
        assert.equal(written.command, 'pause');
        assert.equal(written.version, 1);
        assert.equal(written.reason, 'Maintenance');
        assert.equal(written.updated_by, 'admin');
        // The store's clock, not ours: allow for clock skew between us and a server, but not much.
        assert.ok(Math.abs(written.timestamp.getTime() - before) < 60_000);

        const seen = await b.readControl();
        assert.deepEqual(seen, written);
        assert.equal(await b.readControlVersion(), 1);

        await b.writeCommand({ command: 'running', reason: null, updated_by: 'ops' });
        const history = await a.listHistory(10);
        assert.deepEqual(
          history.map((h) => [h.version, h.command, h.updated_by]),
          [
            [2, 'running', 'ops'],
            [1, 'pause', 'admin'],
          ],
        );
        assert.deepEqual(history[1], written);
        assert.equal((await a.listHistory(1)).length, 1);
      });

      it('keeps on whose behalf a command was written and when a pause expires, in the state and the history', async () => {
        const expires = new Date(Date.now() + 3_600_000);
        const written = await a.writeCommand({
          command: 'pause',
          reason: 'deploy',
          updated_by: 'deploy-bot',
          on_behalf_of: 'alice',
          expires_at: expires,
        });
        assert.equal(written.on_behalf_of, 'alice');
        assert.equal(written.expires_at?.getTime(), expires.getTime());
        const seen = await b.readControl();
        assert.equal(seen.on_behalf_of, 'alice');
        assert.equal(seen.expires_at?.getTime(), expires.getTime());
        const [entry] = await b.listHistory(1);
        assert.equal(entry?.on_behalf_of, 'alice');
        assert.equal(entry?.expires_at?.getTime(), expires.getTime());
        // The next command without them clears both.
        const next = await b.writeCommand({ command: 'running', reason: null, updated_by: 'ops' });
        assert.equal(next.on_behalf_of, null);
        assert.equal(next.expires_at, null);
        const current = await a.readControl();
        assert.equal(current.on_behalf_of, null);
        assert.equal(current.expires_at, null);
      });

      it('gives concurrent commands from two connections distinct, contiguous versions', async () => {
        const writes = [];
        for (let i = 0; i < 20; i++) {
          const store = i % 2 === 0 ? a : b;
          writes.push(
            store.writeCommand({
              command: i % 3 === 0 ? 'pause' : 'running',
              reason: `w${i}`,
              updated_by: 't',
            }),
          );
        }
        const results = await Promise.all(writes);
        const versions = results.map((r) => r.version).sort((x, y) => x - y);
        assert.deepEqual(
          versions,
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        const history = await a.listHistory(100);
        assert.equal(history.length, 20);
        assert.deepEqual(
          history.map((h) => h.version),
          Array.from({ length: 20 }, (_, i) => 20 - i),
        );
        assert.equal((await b.readControl()).version, 20);
      });

      it('rejects a command whose expected version has moved, and changes nothing', async () => {
        await a.writeCommand({ command: 'pause', reason: null, updated_by: 'x' });
        await assert.rejects(
          b.writeCommand({ command: 'shutdown', reason: null, updated_by: 'y', expectedVersion: 0 }),
          (error: unknown) =>
            error instanceof VersionConflictError && /current version is 1/.test(error.message),
        );
        const state = await a.readControl();
        assert.equal(state.version, 1);
        assert.equal(state.command, 'pause');
        assert.equal((await a.listHistory(10)).length, 1);
        const ok = await b.writeCommand({
          command: 'running',
          reason: null,
          updated_by: 'y',
          expectedVersion: 1,
        });
        assert.equal(ok.version, 2);
      });

      it('sees the manual version bump (the seed recipe) as a new version of the same command', async () => {
        await a.writeCommand({ command: 'pause', reason: 'r', updated_by: 'u' });
        await harness.manualBump();
        const state = await b.readControl();
        assert.equal(state.version, 2);
        assert.equal(state.command, 'pause');
      });

      it('resumes a fleet whose version is huge but valid, and refuses one past 2^53 − 1, changing nothing', async () => {
        await a.writeCommand({ command: 'pause', reason: 'r', updated_by: 'u' });
        await harness.setVersion(Number.MAX_SAFE_INTEGER - 5);
        const resumed = await b.writeCommand({ command: 'running', reason: 'huge', updated_by: 'u' });
        assert.equal(resumed.version, Number.MAX_SAFE_INTEGER - 4);
        await harness.setVersion(Number.MAX_SAFE_INTEGER);
        await assert.rejects(
          a.writeCommand({ command: 'pause', reason: 'too far', updated_by: 'u' }),
          (error: unknown) =>
            (error as { code?: string }).code === 'PA_VERSION_EXHAUSTED' &&
            /repair the control row/i.test((error as Error).message),
        );
        const after = await b.readControl();
        assert.deepEqual(
          [after.version, after.command, after.reason],
          [Number.MAX_SAFE_INTEGER, 'running', 'huge'],
        );
      });

      it('wakes a watcher when another connection writes a command, or says why it cannot watch', async (t) => {
        let wakes = 0;
        const errors: Error[] = [];
        let watch: ControlWatch;
        try {
          watch = await a.watchControl({ onWake: () => wakes++, onError: (error) => errors.push(error) });
        } catch (error) {
          // A store or server may not push (FerretDB has no change streams); the control watcher
          // then polls. The refusal must say why.
          assert.ok(error instanceof WatchUnavailableError, `unexpected ${String(error)}`);
          assert.ok(error.reason.length > 0);
          t.diagnostic(`no event-driven watch: ${error.message}`);
          return;
        }
        try {
          assert.ok(watch.description.length > 0);
          assert.ok(['file_events', 'listen_notify', 'change_streams'].includes(watch.mode));
          await b.writeCommand({ command: 'pause', reason: null, updated_by: 'w' });
          await waitFor(() => wakes > 0, { what: 'a wake-up after a command' });
          assert.deepEqual(errors, []);
        } finally {
          await watch.close();
          await watch.close(); // idempotent
        }
      });
    });

    describe('agent registry', () => {
      it("gives each row's heartbeat age by the store's clock: small and non-negative right after an upsert", async () => {
        await a.upsertAgent(heartbeat('agent-1'));
        const [row] = await b.listAgents();
        assert.equal(typeof row!.heartbeat_age_ms, 'number');
        assert.ok(row!.heartbeat_age_ms! >= 0, `age ${row!.heartbeat_age_ms}`);
        assert.ok(row!.heartbeat_age_ms! < 5_000, `age ${row!.heartbeat_age_ms}`);
      });

      it('upserts, lists with the store heartbeat time, removes and prunes', async () => {
        await a.upsertAgent(heartbeat('agent-1'));
        await b.upsertAgent(
          heartbeat('agent-2', {
            state: 'paused',
            applied_version: 4,
            applied_at: new Date(),
            recent: [
              { minute: 29_500_000, processed: 4, failed: 1 },
              { minute: 29_500_002, processed: 0, failed: 2 },
            ],
          }),
        );
        await a.upsertAgent(heartbeat('agent-1', { batch_in_flight: true }));
        const agents = await b.listAgents();
        assert.deepEqual(
          agents.map((r) => [r.agent_id, r.instance_id, r.state, r.batch_in_flight, r.applied_version]),
          [
            ['agent-1', 'agent-1/1', 'running', true, 0],
            ['agent-2', 'agent-2/1', 'paused', false, 4],
          ],
        );
        const first = agents[0]!;
        assert.ok(
          first.heartbeat_at instanceof Date && Math.abs(first.heartbeat_at.getTime() - Date.now()) < 60_000,
        );
        assert.ok(first.started_at instanceof Date);
        assert.equal(first.started_at.toISOString(), '2026-01-01T00:00:00.000Z');
        assert.ok(agents[1]!.applied_at instanceof Date);
        assert.deepEqual(first.counters, { documents_processed: 3 });
        // The minutes of the last hour survive the round trip, apart from the counters.
        assert.equal(first.recent, undefined);
        assert.deepEqual(agents[1]!.counters, { documents_processed: 3 });
        assert.deepEqual(agents[1]!.recent, [
          { minute: 29_500_000, processed: 4, failed: 1 },
          { minute: 29_500_002, processed: 0, failed: 2 },
        ]);

        await a.removeAgent('agent-1/1');
        assert.deepEqual(
          (await b.listAgents()).map((r) => r.agent_id),
          ['agent-2'],
        );
        assert.equal(await a.pruneAgents(60_000), 0);
        await waitFor(async () => (await a.pruneAgents(1)) === 1, { what: 'agent-2 pruned' });
        assert.deepEqual(await b.listAgents(), []);
      });

      it('keeps the fleet policy fields of a heartbeat, and reads a row without them', async () => {
        await a.upsertAgent(
          heartbeat('agent-new', {
            applied_policy_version: 3,
            queues_in_flight: ['emails', 'default'],
            clock_offset_ms: -12.5,
          }),
        );
        await b.upsertAgent(heartbeat('agent-old'));
        const [fresh, old] = await b.listAgents();
        assert.deepEqual(
          [fresh!.agent_id, fresh!.applied_policy_version, fresh!.queues_in_flight, fresh!.clock_offset_ms],
          ['agent-new', 3, ['emails', 'default'], -12.5],
        );
        assert.deepEqual(
          [old!.agent_id, old!.applied_policy_version, old!.queues_in_flight, old!.clock_offset_ms],
          ['agent-old', undefined, undefined, undefined],
        );
        // Nothing in flight is an empty list, not an absent one; a later heartbeat replaces them.
        await a.upsertAgent(
          heartbeat('agent-new', { applied_policy_version: 4, queues_in_flight: [], clock_offset_ms: 0 }),
        );
        const [again] = await b.listAgents();
        assert.deepEqual(
          [again!.applied_policy_version, again!.queues_in_flight, again!.clock_offset_ms],
          [4, [], 0],
        );
      });

      it('keys rows by instance id: two processes sharing one agent_id are both listed', async () => {
        // Listed by agent_id then instance_id, whatever order they were written in.
        await a.upsertAgent(heartbeat('shared', { instance_id: 'shared/2', state: 'paused' }));
        await b.upsertAgent(heartbeat('shared', { instance_id: 'shared/1' }));
        await b.upsertAgent(heartbeat('alone'));
        await a.upsertAgent(heartbeat('shared', { instance_id: 'shared/2', applied_version: 7 }));
        assert.deepEqual(
          (await b.listAgents()).map((r) => [r.agent_id, r.instance_id, r.state, r.applied_version]),
          [
            ['alone', 'alone/1', 'running', 0],
            ['shared', 'shared/1', 'running', 0],
            ['shared', 'shared/2', 'running', 7],
          ],
        );
        await b.removeAgent('shared/1');
        assert.deepEqual(
          (await a.listAgents()).map((r) => [r.agent_id, r.instance_id]),
          [
            ['alone', 'alone/1'],
            ['shared', 'shared/2'],
          ],
        );
      });
    });

    describe('documents', () => {
      it('inserts pending documents and returns their ids in order', async () => {
        const ids = await a.insertDocuments([{ n: 1 }, { n: 2 }, 'text', [1, 2]]);
        assert.equal(ids.length, 4);
        assert.equal(new Set(ids).size, 4);
        const doc = await b.getDocument(ids[0]!);
        assert.equal(doc?.status, 'pending');
        assert.deepEqual(doc?.payload, { n: 1 });
        assert.equal(doc?.attempts, 0);
        assert.deepEqual((await b.getDocument(ids[2]!))?.payload, 'text');
        assert.deepEqual(await a.countDocuments(), {
          pending: 4,
          scheduled: 0,
          processing: 0,
          processed: 0,
          failed: 0,
        });
        assert.equal(await a.getDocument('no-such-id'), null);
      });

      it('claims a batch atomically: two agents never hold the same document', async () => {
        const ids = await a.insertDocuments(Array.from({ length: 50 }, (_, i) => ({ i })));
        const claims = await Promise.all([
          a.claimBatch(owner('agent-a'), 20, 60_000),
          b.claimBatch(owner('agent-b'), 20, 60_000),
          a.claimBatch(owner('agent-c'), 20, 60_000),
        ]);
        const claimed = claims.flat().map((d) => d.id);
        assert.equal(claimed.length, 50);
        assert.equal(new Set(claimed).size, 50);
        assert.deepEqual([...claimed].sort(), [...ids].sort());
        assert.ok(claims.every((c) => c.length <= 20));
        assert.deepEqual(await b.claimBatch(owner('agent-d'), 20, 60_000), []);
        const doc = await a.getDocument(claims[1]![0]!.id);
        assert.equal(doc?.status, 'processing');
        assert.equal(doc?.claimed_by, 'agent-b');
      });

      it('gives every claim a fresh token, carried by each of its documents', async () => {
        await a.insertDocuments([1, 2, 3, 4]);
        // One agent, one name, two claims: still two tokens.
        const first = await a.claimBatch(owner('agent-a'), 2, 60_000);
        const second = await a.claimBatch(owner('agent-a'), 2, 60_000);
        assert.equal(first.length, 2);
        assert.equal(second.length, 2);
        for (const batch of [first, second]) {
          assert.ok(typeof batch[0]!.token === 'string' && batch[0]!.token.length > 0);
          assert.ok(batch.every((d) => d.token === batch[0]!.token));
        }
        assert.notEqual(first[0]!.token, second[0]!.token);
        // A token opens only its own claim's documents.
        assert.equal(await a.completeDocuments(second.map((d) => ({ id: d.id, token: first[0]!.token }))), 0);
        assert.equal(await a.completeDocuments(held(first)), 2);
      });

      it('completes only what the claim holds', async () => {
        const ids = await a.insertDocuments([1, 2, 3]);
        const batch = await a.claimBatch(owner('agent-a'), 10, 60_000);
        assert.equal(batch.length, 3);
        assert.equal(await b.completeDocuments(ids.map((id) => ({ id, token: 'not-a-claim' }))), 0);
        assert.equal(await a.completeDocuments(held(batch.slice(0, 2))), 2);
        const done = await b.getDocument(ids[0]!);
        assert.equal(done?.status, 'processed');
        assert.ok(done?.processed_at instanceof Date);
        assert.deepEqual(await a.countDocuments(), {
          pending: 0,
          scheduled: 0,
          processing: 1,
          processed: 2,
          failed: 0,
        });
        assert.equal(await a.completeDocuments(held(batch.slice(0, 2))), 0);
        assert.equal(await a.completeDocuments([]), 0);
        assert.equal(await a.completeDocuments([{ id: 'no-such-id', token: batch[0]!.token }]), 0);
      });

      it('retries a failed document up to maxRetries, then marks it failed with the error', async () => {
        const [id] = await a.insertDocuments([{ poison: true }]);
        let last: HeldDocument | undefined;
        for (let attempt = 0; attempt < 3; attempt++) {
          const [doc] = await b.claimBatch(owner('agent-b'), 1, 60_000);
          assert.equal(doc?.id, id);
          assert.equal(doc?.attempts, attempt);
          const expected = attempt < 2 ? 'pending' : 'failed';
          assert.deepEqual(
            await b.failDocuments([{ ...held([doc!])[0]!, error: `boom ${attempt}`, retryInMs: 0 }], 2),
            [expected],
          );
          last = held([doc!])[0];
        }
        const failed = await a.getDocument(id!);
        assert.equal(failed?.status, 'failed');
        assert.equal(failed?.attempts, 3);
        assert.equal(failed?.error, 'boom 2');
        assert.deepEqual(await a.claimBatch(owner('agent-a'), 1, 60_000), []);
        assert.deepEqual(await a.failDocuments([{ ...last!, error: 'not held', retryInMs: 0 }], 2), [null]);
        assert.deepEqual(await a.failDocuments([], 2), []);
      });

      it('records a group of failures in input order: retried, failed, and null for one not held', async () => {
        const [worn, fresh, other] = await a.insertDocuments(['worn', 'fresh', 'other']);
        // `worn` fails once first, so that with maxRetries 1 its next failure is final.
        const [first] = await a.claimBatch(owner('agent-a'), 1, 60_000);
        assert.equal(first?.id, worn);
        assert.deepEqual(
          await a.failDocuments([{ ...held([first!])[0]!, error: 'warm-up', retryInMs: 0 }], 5),
          ['pending'],
        );
        const batch = await a.claimBatch(owner('agent-a'), 3, 60_000);
        assert.deepEqual(batch.map((d) => d.id).sort(), [fresh, worn, other].sort());
        const tokenOf = (id: string | undefined) => batch.find((d) => d.id === id)!.token;
        const statuses = await b.failDocuments(
          [
            { id: worn!, token: tokenOf(worn), error: 'e-worn', retryInMs: 0 },
            { id: other!, token: 'someone-elses-token', error: 'e-other', retryInMs: 0 },
            { id: fresh!, token: tokenOf(fresh), error: 'e-fresh', retryInMs: 0 },
            { id: 'no-such-id', token: tokenOf(fresh), error: 'e-none', retryInMs: 0 },
          ],
          1,
        );
        assert.deepEqual(statuses, ['failed', null, 'pending', null]);
        const [w, o, f] = await Promise.all([worn, other, fresh].map((id) => a.getDocument(id!)));
        assert.deepEqual([w?.status, w?.attempts, w?.error], ['failed', 2, 'e-worn']);
        assert.deepEqual([o?.status, o?.attempts, o?.error], ['processing', 0, null]);
        assert.deepEqual([f?.status, f?.attempts, f?.error], ['pending', 1, 'e-fresh']);
      });

      it('releases claimed documents to pending without counting an attempt', async () => {
        const ids = await a.insertDocuments([1, 2]);
        const batch = await a.claimBatch(owner('agent-a'), 10, 60_000);
        assert.equal(await b.releaseDocuments(ids.map((id) => ({ id, token: 'not-a-claim' }))), 0);
        assert.equal(await a.releaseDocuments(held(batch)), 2);
        assert.equal(await a.releaseDocuments(held(batch)), 0);
        const again = await b.claimBatch(owner('agent-b'), 10, 60_000);
        assert.deepEqual(
          again.map((d) => [d.id, d.attempts]),
          ids.map((id) => [id, 0]),
        );
      });

      it('returns documents with an expired lease to another agent; an extended lease holds', async () => {
        const [first, second] = await a.insertDocuments(['x', 'y']);
        const claimed = await a.claimBatch(owner('agent-a'), 2, 300);
        assert.equal(claimed.length, 2);
        const [heldFirst, heldSecond] = held(claimed);
        // Keep one lease alive, let the other expire.
        let reclaimed: ClaimedDocument[] = [];
        await waitFor(
          async () => {
            assert.equal(await a.extendLeases([heldSecond!], 60_000), 1);
            await b.recoverExpiredLeases(5, 0);
            reclaimed = await b.claimBatch(owner('agent-b'), 10, 60_000);
            return reclaimed.length > 0;
          },
          { what: 'the unrenewed lease expired and reclaimed', timeoutMs: 20_000 },
        );
        assert.deepEqual(
          reclaimed.map((d) => d.id),
          [first],
        );
        // The claim that lost the lease can no longer complete it; the new holder can.
        assert.equal(await a.completeDocuments([heldFirst!]), 0);
        assert.equal(await b.completeDocuments(held(reclaimed)), 1);
        assert.equal(await a.completeDocuments([heldSecond!]), 1);
        assert.equal(second, heldSecond!.id);
      });

      it('a stale holder with the same agent_id can neither complete, renew, fail nor release', async () => {
        const [id] = await a.insertDocuments(['contested']);
        const stale = await a.claimBatch(owner('same-name', 'first-process'), 1, 200);
        assert.equal(stale.length, 1);
        // Wait until the short lease has run out and a second process of the same name holds it.
        let fresh: ClaimedDocument[] = [];
        await waitFor(
          async () => {
            await b.recoverExpiredLeases(5, 0);
            fresh = await b.claimBatch(owner('same-name', 'second-process'), 1, 60_000);
            return fresh.length === 1;
          },
          { what: 'the document reclaimed after its lease expired', timeoutMs: 20_000 },
        );
        assert.equal(fresh[0]!.id, id);
        assert.notEqual(fresh[0]!.token, stale[0]!.token);
        const oldHandle = held(stale);
        assert.equal(await a.extendLeases(oldHandle, 60_000), 0);
        assert.equal(await a.completeDocuments(oldHandle), 0);
        assert.deepEqual(await a.failDocuments([{ ...oldHandle[0]!, error: 'stale', retryInMs: 0 }], 0), [
          null,
        ]);
        assert.equal(await a.releaseDocuments(oldHandle), 0);
        const untouched = await b.getDocument(id!);
        assert.deepEqual(
          [untouched?.status, untouched?.attempts, untouched?.error, untouched?.claimed_by],
          ['processing', 1, LEASE_EXPIRED_ERROR, 'same-name'],
        );
        // The new holder's handle works for all of them.
        const newHandle = held(fresh);
        assert.equal(await b.extendLeases(newHandle, 60_000), 1);
        assert.equal(await b.releaseDocuments(newHandle), 1);
        const again = await b.claimBatch(owner('same-name', 'second-process'), 1, 60_000);
        assert.deepEqual(await b.failDocuments([{ ...held(again)[0]!, error: 'once', retryInMs: 0 }], 3), [
          'pending',
        ]);
        const last = await a.claimBatch(owner('same-name', 'first-process'), 1, 60_000);
        assert.equal(await a.completeDocuments(held(last)), 1);
        assert.equal((await b.getDocument(id!))?.status, 'processed');
        // Even the right token does nothing once the document is no longer processing.
        assert.equal(await a.completeDocuments(held(last)), 0);
      });
    });

    describeFailures(() => ({ a, b }));
    describeQueues(() => ({ a, b }));
    describePolicy(() => ({ a, b, raw: harness }));

    it('reads its clock: the one heartbeats are stamped with, moving forward', async () => {
      const before = await a.readClock();
      await b.upsertAgent(heartbeat('clocked'));
      const after = await a.readClock();
      assert.ok(!Number.isNaN(before.getTime()) && after.getTime() >= before.getTime());
      const stamped = (await a.listAgents()).find((r) => r.agent_id === 'clocked')?.heartbeat_at;
      assert.ok(stamped, 'the heartbeat is listed');
      // A store that estimates its server's clock (MongoDB: hello's localTime and half the round
      // trip) is within a round trip of it; the others read the very clock.
      const slack = 1_000;
      assert.ok(
        stamped.getTime() >= before.getTime() - slack && stamped.getTime() <= after.getTime() + slack,
        `heartbeat ${stamped.toISOString()} between ${before.toISOString()} and ${after.toISOString()}`,
      );
    });

    it('answers ping with a latency', async () => {
      const ms = await a.ping();
      assert.ok(typeof ms === 'number' && ms >= 0 && ms < 10_000);
    });
  });
}
