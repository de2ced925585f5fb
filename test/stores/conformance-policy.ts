// The conformance suite's part on the fleet policy (src/model/policy.ts): a versioned document
// beside the control document, written by compare-and-set with a history entry, read through the
// model's parser, and a wake-up for it on the stores that push. Called by describeStore() with the
// two stores of each test and the harness's raw-write helpers; conditions are waited for, never slept.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { InvalidPolicyError, VersionConflictError, WatchUnavailableError } from '../../src/errors.js';
import type { PolicyBody } from '../../src/model/policy.js';
import type { ControlWatch, PolicyWrite, Store } from '../../src/stores/types.js';
import { waitFor } from '../helpers/wait.js';

/** What the policy cases need of a harness: writes made by hand, in the store's own layout. */
export interface PolicyRawWrites {
  /**
   * Writes the stored policy document by hand with the raw driver (as an operator could), whatever
   * it holds: the body's fields as the store keeps them (JSON text or the document's fields).
   */
  setRawPolicy(version: number, body: Record<string, unknown>): Promise<void>;
  /** Adds a policy history entry by hand, any shape (one that does not parse is skipped). */
  addRawPolicyHistory(entry: Record<string, unknown>): Promise<void>;
}

const EMPTY: PolicyBody = { paused_queues: {}, throttle: null, queue_rates: {} };

const rule = (updated_by: string, since_version: number) => ({
  reason: null,
  updated_by,
  on_behalf_of: null,
  since_version,
  expires_at: null,
});

function pauseQueue(expectedVersion: number, queue: string, base: PolicyBody = EMPTY): PolicyWrite {
  return {
    expectedVersion,
    body: { ...base, paused_queues: { ...base.paused_queues, [queue]: rule('ops', expectedVersion + 1) } },
    entry: {
      command: 'pause',
      queue,
      rate: null,
      concurrency: null,
      reason: `pause ${queue}`,
      updated_by: 'ops',
      on_behalf_of: null,
      expires_at: null,
    },
  };
}

export function describePolicy(context: () => { a: Store; b: Store; raw: PolicyRawWrites }): void {
  describe('fleet policy', () => {
    it('reads version 0 and empty on a fresh store, with no history', async () => {
      const { a, b } = context();
      const policy = await a.readPolicy();
      assert.deepEqual({ ...policy, timestamp: undefined }, { version: 0, timestamp: undefined, ...EMPTY });
      assert.ok(policy.timestamp instanceof Date && policy.timestamp.getTime() <= Date.now() + 60_000);
      assert.deepEqual(await b.listPolicyHistory(10), []);
    });

    it('writes by compare-and-set: version + 1, the body, the store timestamp, a history entry', async () => {
      const { a, b } = context();
      const before = Date.now();
      const expires = new Date(Date.now() + 3_600_000);
      const body: PolicyBody = {
        // Names with every character the queue name rule allows beside letters and digits.
        paused_queues: { 'emails.eu:1': { ...rule('alice', 1), reason: 'spam wave', expires_at: expires } },
        throttle: {
          ...rule('bob', 1),
          on_behalf_of: 'carol',
          rate: 30.5,
          concurrency: 4,
          rate_expires_at: null,
          concurrency_expires_at: null,
        },
        queue_rates: { 'reports_x-2': { ...rule('bob', 1), rate: 2 } },
      };
      const written = await a.writePolicy({
        expectedVersion: 0,
        body,
        entry: {
          command: 'throttle',
          queue: null,
          rate: 30.5,
          concurrency: 4,
          reason: 'load',
          updated_by: 'bob',
          on_behalf_of: 'carol',
          expires_at: expires,
        },
      });
      assert.equal(written.version, 1);
      // The store's clock, not ours: allow for skew between us and a server, but not much.
      assert.ok(Math.abs(written.timestamp.getTime() - before) < 60_000, `timestamp ${written.timestamp}`);
      assert.deepEqual(written, { ...body, version: 1, timestamp: written.timestamp });
      assert.deepEqual(await b.readPolicy(), written);

      const second = await b.writePolicy(pauseQueue(1, 'default', body));
      assert.equal(second.version, 2);
      assert.ok(second.timestamp.getTime() >= written.timestamp.getTime(), 'timestamps never go back');
      assert.deepEqual(Object.keys((await a.readPolicy()).paused_queues).sort(), ['default', 'emails.eu:1']);

      const history = await a.listPolicyHistory(10);
      assert.deepEqual(
        history.map((h) => [h.version, h.command, h.queue, h.rate, h.concurrency, h.updated_by]),
        [
          [2, 'pause', 'default', null, null, 'ops'],
          [1, 'throttle', null, 30.5, 4, 'bob'],
        ],
      );
      assert.deepEqual(history[1], {
        version: 1,
        timestamp: written.timestamp,
        command: 'throttle',
        queue: null,
        rate: 30.5,
        concurrency: 4,
        reason: 'load',
        updated_by: 'bob',
        on_behalf_of: 'carol',
        expires_at: expires,
      });
      assert.equal(history[0]!.timestamp.getTime(), second.timestamp.getTime());
      assert.deepEqual(
        (await b.listPolicyHistory(1)).map((h) => h.version),
        [2],
      );
      assert.deepEqual(await b.listPolicyHistory(0), []);
    });

    it('refuses a write whose expected version has moved, naming the current one, and writes nothing', async () => {
      const { a, b } = context();
      const first = await a.writePolicy(pauseQueue(0, 'emails'));
      await assert.rejects(
        b.writePolicy(pauseQueue(0, 'reports')),
        (error: unknown) =>
          error instanceof VersionConflictError &&
          /expected policy version 0 but the current version is 1/.test(error.message),
      );
      assert.deepEqual(await b.readPolicy(), first);
      assert.deepEqual(
        (await a.listPolicyHistory(10)).map((h) => [h.version, h.queue]),
        [[1, 'emails']],
      );
    });

    it('lets exactly one of two concurrent writes with the same expected version through', async () => {
      const { a, b } = context();
      const results = await Promise.allSettled([
        a.writePolicy(pauseQueue(0, 'from-a')),
        b.writePolicy(pauseQueue(0, 'from-b')),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
      assert.ok(lost[0]?.status === 'rejected' && lost[0].reason instanceof VersionConflictError);
      const policy = await a.readPolicy();
      assert.equal(policy.version, 1);
      assert.equal(Object.keys(policy.paused_queues).length, 1);
      assert.equal((await b.listPolicyHistory(10)).length, 1);
    });

    it('leaves the control document and its history alone, and control commands leave the policy alone', async () => {
      const { a, b } = context();
      const control = await a.readControl();
      await b.writePolicy(pauseQueue(0, 'emails'));
      await b.writePolicy(pauseQueue(1, 'reports'));
      assert.deepEqual(await a.readControl(), control);
      assert.equal(await a.readControlVersion(), control.version);
      assert.deepEqual(await a.listHistory(10), []);

      const paused = await a.writeCommand({ command: 'pause', reason: 'r', updated_by: 'u' });
      assert.equal(paused.version, control.version + 1, 'the control version does not count policy writes');
      const policy = await b.readPolicy();
      assert.equal(policy.version, 2);
      assert.deepEqual(
        (await b.listHistory(10)).map((h) => [h.version, h.command]),
        [[paused.version, 'pause']],
      );
      assert.deepEqual(
        (await a.listPolicyHistory(10)).map((h) => h.version),
        [2, 1],
      );
    });

    it('reads a policy malformed by hand as InvalidPolicyError naming the field; a write at its version repairs it', async () => {
      const { a, b, raw } = context();
      await a.writePolicy(pauseQueue(0, 'emails'));
      await raw.setRawPolicy(3, {
        paused_queues: {},
        throttle: { ...rule('hand', 3), rate: -5, concurrency: null },
        queue_rates: {},
      });
      await assert.rejects(
        b.readPolicy(),
        (error: unknown) => error instanceof InvalidPolicyError && /throttle\.rate/.test(error.message),
      );
      // A stale version still conflicts, naming the stored one.
      await assert.rejects(
        a.writePolicy(pauseQueue(1, 'reports')),
        (error: unknown) =>
          error instanceof VersionConflictError && /current version is 3/.test(error.message),
      );
      const repaired = await a.writePolicy(pauseQueue(3, 'reports'));
      assert.equal(repaired.version, 4);
      assert.deepEqual(await b.readPolicy(), repaired);
      assert.deepEqual(Object.keys(repaired.paused_queues), ['reports']);
    });

    it('skips history entries that do not parse', async () => {
      const { a, b, raw } = context();
      await a.writePolicy(pauseQueue(0, 'emails'));
      await raw.addRawPolicyHistory({
        version: 7,
        timestamp: new Date().toISOString(),
        command: 'pasue',
        queue: 'emails',
        updated_by: 'hand',
      });
      assert.deepEqual(
        (await b.listPolicyHistory(10)).map((h) => [h.version, h.command]),
        [[1, 'pause']],
      );
    });

    it('never reuses a version below the history, and refuses one past 2^53 − 1, changing nothing', async () => {
      const { a, b, raw } = context();
      await a.writePolicy(pauseQueue(0, 'emails'));
      await a.writePolicy(pauseQueue(1, 'reports'));
      // Rewound by hand: the next version still continues after the newest history entry.
      await raw.setRawPolicy(0, { paused_queues: {}, throttle: null, queue_rates: {} });
      const next = await b.writePolicy(pauseQueue(0, 'default'));
      assert.equal(next.version, 3);

      await raw.setRawPolicy(Number.MAX_SAFE_INTEGER, { paused_queues: {}, throttle: null, queue_rates: {} });
      await assert.rejects(
        a.writePolicy(pauseQueue(Number.MAX_SAFE_INTEGER, 'emails')),
        (error: unknown) => (error as { code?: string }).code === 'PA_VERSION_EXHAUSTED',
      );
      const after = await b.readPolicy();
      assert.deepEqual([after.version, after.paused_queues], [Number.MAX_SAFE_INTEGER, {}]);
      assert.equal((await b.listPolicyHistory(10))[0]?.version, 3);
    });

    it('wakes a watcher with onPolicy when another connection writes the policy, or says why it cannot watch', async (t) => {
      const { a, b } = context();
      const announced: ({ version: number } | undefined)[] = [];
      const errors: Error[] = [];
      let watch: ControlWatch;
      try {
        watch = await a.watchControl({
          onWake: () => undefined,
          onPolicy: (version) => announced.push(version),
          onError: (error) => errors.push(error),
        });
      } catch (error) {
        assert.ok(error instanceof WatchUnavailableError, `unexpected ${String(error)}`);
        t.diagnostic(`no event-driven watch: ${error.message}`);
        return;
      }
      try {
        await b.writePolicy(pauseQueue(0, 'emails'));
        await waitFor(() => announced.length > 0, { what: 'onPolicy after a policy write' });
        // A store that can tell passes the version written; none announces another one.
        assert.ok(
          announced.every((v) => v === undefined || v.version === 1),
          JSON.stringify(announced),
        );
        await b.writePolicy(pauseQueue(1, 'reports'));
        await waitFor(() => announced.some((v) => v === undefined || v.version === 2), {
          what: 'onPolicy after the second policy write',
        });
        assert.deepEqual(errors, []);
      } finally {
        await watch.close();
      }
    });
  });
}
