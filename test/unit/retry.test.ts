import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  backoffDelayMs,
  DEFAULT_BACKOFF,
  MAX_RETRY_AFTER_MS,
  requestedDelayMs,
  retryDelayMs,
  RetryLaterError,
} from '../../src/agent/retry.js';

const middle = () => 0.5; // no jitter
describe('retry backoff', () => {
  it('doubles from the base and stops at the cap', () => {
    const s = { baseMs: 1_000, maxMs: 10_000, jitter: 0.25 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, s, middle)),
      [1_000, 2_000, 4_000, 8_000, 10_000, 10_000],
    );
    assert.equal(backoffDelayMs(10_000, s, middle), 10_000);
  });

  it('spreads each delay by the jitter and never beyond the cap', () => {
    const s = { baseMs: 1_000, maxMs: 1_100, jitter: 0.25 };
    assert.equal(
      backoffDelayMs(1, s, () => 0),
      750,
    );
    assert.equal(
      backoffDelayMs(1, s, () => 0.999999),
      1_100,
    );
  });

  it('defaults to 5 s, 10 s, 20 s … up to an hour', () => {
    assert.deepEqual(
      [1, 2, 3].map((n) => backoffDelayMs(n, DEFAULT_BACKOFF, middle)),
      [5_000, 10_000, 20_000],
    );
    assert.equal(backoffDelayMs(30, DEFAULT_BACKOFF, middle), 3_600_000);
  });

  it("takes a handler's retryAfter (seconds, a Date, a Retry-After string) over the backoff", () => {
    const now = Date.parse('2026-12-01T10:00:00Z');
    assert.equal(requestedDelayMs(new RetryLaterError('busy', { retryAfter: 30 }), now), 30_000);
    assert.equal(
      requestedDelayMs(new RetryLaterError('busy', { retryAfter: new Date(now + 1_500) }), now),
      1_500,
    );
    assert.equal(requestedDelayMs(Object.assign(new Error('x'), { retryAfter: '2' }), now), 2_000);
    assert.equal(
      requestedDelayMs(Object.assign(new Error('x'), { retryAfter: 'Tue, 01 Dec 2026 10:01:00 GMT' }), now),
      60_000,
    );
    assert.equal(retryDelayMs(new RetryLaterError('busy', { retryAfter: 0 }), 3, DEFAULT_BACKOFF), 0);
  });

  it('ignores nonsense and clamps what is out of range', () => {
    assert.equal(requestedDelayMs(new Error('plain')), null);
    assert.equal(requestedDelayMs('a string'), null);
    assert.equal(requestedDelayMs(Object.assign(new Error('x'), { retryAfter: 'soon' })), null);
    assert.equal(requestedDelayMs(Object.assign(new Error('x'), { retryAfter: Number.NaN })), null);
    assert.equal(requestedDelayMs(Object.assign(new Error('x'), { retryAfter: -5 })), 0);
    assert.equal(requestedDelayMs(Object.assign(new Error('x'), { retryAfter: 1e12 })), MAX_RETRY_AFTER_MS);
    assert.equal(retryDelayMs(new Error('plain'), 2, DEFAULT_BACKOFF, middle), 10_000);
  });
});
