import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BoundedCalls, OneAtATime, SkippedCallError, withDeadline } from '../../src/control/deadline.js';
import { isStoreTimeout, StoreUnavailableError } from '../../src/errors.js';

describe('store call deadlines', () => {
  it('a call that does not answer fails as unavailable (a timeout) at its deadline', async () => {
    const hung = new Promise<never>(() => undefined);
    const error = await withDeadline(hung, 20, 'writing a heartbeat').catch((e: unknown) => e);
    assert.ok(error instanceof StoreUnavailableError);
    assert.equal(error.code, 'PA_STORE_UNAVAILABLE');
    assert.ok(isStoreTimeout(error));
    assert.match(error.message, /writing a heartbeat/);
  });

  it('skips the next call while a hung one is unsettled, then runs again once it settles', async () => {
    const one = new OneAtATime('writing a heartbeat', 20);
    let finish!: () => void;
    let calls = 0;
    const first = one.run(() => {
      calls++;
      return new Promise<void>((resolve) => (finish = resolve));
    });
    await assert.rejects(first, (e: unknown) => isStoreTimeout(e));
    await assert.rejects(
      one.run(async () => void calls++),
      SkippedCallError,
    );
    assert.equal(calls, 1);
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(one.busy, false);
    await one.run(async () => void calls++);
    assert.equal(calls, 2);
  });
});

describe('bounded background calls', () => {
  it('refuses a call beyond its limit while the others are unsettled, and says when one settles', async () => {
    let settled = 0;
    const calls = new BoundedCalls('writing a heartbeat', 20, 2, () => settled++);
    const finish: (() => void)[] = [];
    const hung = () => new Promise<void>((resolve) => finish.push(resolve));
    await assert.rejects(calls.run(hung), (e: unknown) => isStoreTimeout(e));
    await assert.rejects(calls.run(hung), (e: unknown) => isStoreTimeout(e));
    assert.equal(calls.unsettled, 2);
    assert.equal(calls.busy, true);
    await assert.rejects(calls.run(hung), SkippedCallError);
    assert.equal(finish.length, 2, 'the refused call was never started');
    finish[0]?.();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, 1);
    assert.equal(calls.unsettled, 1);
    await calls.run(async () => undefined);
    finish[1]?.();
    await calls.idle();
    assert.equal(calls.unsettled, 0);
    assert.equal(settled, 3);
  });
});
