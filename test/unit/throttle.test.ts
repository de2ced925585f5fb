import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ClaimGovernor, TokenBucket } from '../../src/agent/throttle.js';
import { emptyPolicy, type FleetPolicy } from '../../src/model/policy.js';

const rule = { reason: null, updated_by: 'op', on_behalf_of: null, since_version: 1, expires_at: null };

function policy(body: Partial<FleetPolicy>): FleetPolicy {
  return { ...emptyPolicy(new Date('2026-12-01T00:00:00Z')), version: 1, ...body };
}

describe('TokenBucket', () => {
  it('holds a quarter second of its rate, refills at its rate, and refunds up to its capacity', () => {
    let now = 0;
    const bucket = new TokenBucket(40, () => now);
    assert.equal(bucket.capacity, 10);
    assert.equal(bucket.take(25), 10);
    assert.equal(bucket.take(1), 0);
    assert.equal(bucket.msUntilOne(), 25);
    now += 100; // 4 tokens
    assert.equal(bucket.take(10), 4);
    bucket.refund(50);
    assert.equal(bucket.take(100), 10, 'a refund never exceeds the capacity');
  });

  it('never holds less than one document, so a slow rate still lets one through', () => {
    let now = 0;
    const bucket = new TokenBucket(0.5, () => now);
    assert.equal(bucket.take(3), 1);
    assert.equal(bucket.msUntilOne(), 2000);
    now += 2000;
    assert.equal(bucket.take(3), 1);
  });

  it('over a long run lets through its rate, within one burst', () => {
    let now = 0;
    const bucket = new TokenBucket(30, () => now);
    let taken = 0;
    for (let t = 0; t < 60_000; t += 7) {
      now = t;
      taken += bucket.take(5);
    }
    assert.ok(Math.abs(taken - 30 * 60) <= bucket.capacity + 1, `took ${taken} in 60 s at 30/s`);
  });
});

describe('ClaimGovernor', () => {
  it('without a policy plans one claim from every queue, or the served ones', () => {
    const all = new ClaimGovernor(null);
    all.apply(policy({}), 3);
    assert.deepEqual(all.plan(8), { claims: [{ limit: 8, buckets: [] }], waitMs: null });
    assert.equal(all.limited, false);
    const some = new ClaimGovernor(['a', 'b']);
    some.apply(policy({}), 1);
    assert.deepEqual(some.plan(2).claims[0]?.filter, { only: ['a', 'b'] });
  });

  it('excludes paused queues, and claims nothing when every served queue is paused', () => {
    const g = new ClaimGovernor(null);
    g.apply(policy({ paused_queues: { emails: rule } }), 1);
    assert.deepEqual(g.plan(5).claims[0]?.filter, { exclude: ['emails'] });
    assert.equal(g.serves('emails'), false);
    assert.equal(g.serves('default'), true);
    const only = new ClaimGovernor(['emails']);
    only.apply(policy({ paused_queues: { emails: rule } }), 1);
    assert.deepEqual(only.plan(5), { claims: [], waitMs: null });
  });

  it('divides the fleet rate among the live agents and waits for the next token', () => {
    const now = 0;
    const g = new ClaimGovernor(null, () => now);
    g.apply(policy({ throttle: { ...rule, rate: 30, concurrency: null } }), 3);
    assert.equal(g.fleetRate, 10);
    assert.equal(g.limited, true);
    const first = g.plan(50);
    assert.equal(first.claims.length, 1);
    assert.equal(first.claims[0]?.limit, 2, 'a burst of a quarter second of 10/s, rounded down');
    const empty = g.plan(50);
    assert.deepEqual(empty.claims, []);
    assert.equal(empty.waitMs, 50);
    g.settle(first.claims[0]!, 0);
    assert.equal(g.plan(50).claims[0]?.limit, 2, 'tokens of an empty claim go back');
    g.apply(policy({ throttle: { ...rule, rate: 30, concurrency: null } }), 1);
    assert.equal(g.fleetRate, 30, 'an agent alone takes the whole rate');
  });

  it('claims a rated queue apart from the rest, within its own bucket and the fleet one', () => {
    const now = 0;
    const g = new ClaimGovernor(null, () => now);
    g.apply(policy({ queue_rates: { slow: { ...rule, rate: 4 } } }), 1);
    const plan = g.plan(10);
    assert.deepEqual(
      plan.claims.map((c) => ({ limit: c.limit, filter: c.filter })),
      [
        { limit: 1, filter: { only: ['slow'] } },
        { limit: 9, filter: { exclude: ['slow'] } },
      ],
    );
    const next = g.plan(10);
    assert.deepEqual(
      next.claims.map((c) => c.filter),
      [{ exclude: ['slow'] }],
      'the rest keeps flowing while slow waits',
    );
  });

  it('a rated queue that is also paused is not claimed at all', () => {
    const g = new ClaimGovernor(null, () => 0);
    g.apply(policy({ queue_rates: { q: { ...rule, rate: 100 } }, paused_queues: { q: rule } }), 1);
    assert.deepEqual(
      g.plan(10).claims.map((c) => c.filter),
      [{ exclude: ['q'] }],
    );
  });

  it('reports the concurrency cap of the fleet throttle', () => {
    const g = new ClaimGovernor(null);
    g.apply(policy({ throttle: { ...rule, rate: null, concurrency: 3 } }), 2);
    assert.equal(g.concurrencyCap, 3);
    assert.equal(g.limited, false, 'a concurrency cap alone does not limit claims by rate');
  });
});
