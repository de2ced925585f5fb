import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { OneAtATime, SkippedCallError, withDeadline } from '../../src/control/deadline.js';
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
