import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { applyPolicyRequest, checkPolicyRequest, expiringRules } from '../../src/control/policy.js';
import { PullingAgentError } from '../../src/errors.js';
import { emptyPolicy, parsePolicyBody } from '../../src/model/policy.js';

const author = { reason: 'maintenance', updated_by: 'ops', on_behalf_of: null, expires_at: null };

describe('policy commands', () => {
  it('pauses and resumes one queue, leaving the rest of the body alone', () => {
    const start = emptyPolicy();
    const paused = applyPolicyRequest(start, { command: 'pause', queue: 'emails' }, author, 1);
    assert.deepEqual(Object.keys(paused.body.paused_queues), ['emails']);
    assert.equal(paused.body.paused_queues.emails?.since_version, 1);
    assert.deepEqual(paused.entry, {
      command: 'pause',
      queue: 'emails',
      rate: null,
      concurrency: null,
      ...author,
    });
    assert.deepEqual(start.paused_queues, {}, 'the input is not changed');
    const resumed = applyPolicyRequest(paused.body, { command: 'resume', queue: 'emails' }, author, 2);
    assert.deepEqual(resumed.body.paused_queues, {});
  });

  it('throttles the fleet: given fields change, absent ones stay, off removes, both off removes the throttle', () => {
    let body = applyPolicyRequest(
      emptyPolicy(),
      { command: 'throttle', queue: null, rate: 30 },
      author,
      1,
    ).body;
    assert.equal(body.throttle?.rate, 30);
    body = applyPolicyRequest(body, { command: 'throttle', queue: null, concurrency: 4 }, author, 2).body;
    assert.deepEqual([body.throttle?.rate, body.throttle?.concurrency], [30, 4]);
    body = applyPolicyRequest(body, { command: 'throttle', queue: null, rate: null }, author, 3).body;
    assert.deepEqual([body.throttle?.rate, body.throttle?.concurrency], [null, 4]);
    body = applyPolicyRequest(body, { command: 'throttle', queue: null, concurrency: null }, author, 4).body;
    assert.equal(body.throttle, null);
  });

  it('throttles one queue, and the result parses as a stored body', () => {
    const { body, entry } = applyPolicyRequest(
      emptyPolicy(),
      { command: 'throttle', queue: 'emails', rate: 2.5 },
      author,
      1,
    );
    assert.equal(body.queue_rates.emails?.rate, 2.5);
    assert.equal(entry.rate, 2.5);
    assert.deepEqual(parsePolicyBody(JSON.parse(JSON.stringify(body))).queue_rates.emails?.rate, 2.5);
  });

  it('refuses bad requests with a message naming the problem', () => {
    const refuses = (request: Parameters<typeof checkPolicyRequest>[0], pattern: RegExp) =>
      assert.throws(
        () => checkPolicyRequest(request),
        (e: unknown) =>
          e instanceof PullingAgentError && e.code === 'PA_BAD_REQUEST' && pattern.test(e.message),
      );
    refuses({ command: 'pause', queue: 'Emails!' }, /not a valid queue name/);
    refuses({ command: 'throttle', queue: null }, /needs rate/);
    refuses({ command: 'throttle', queue: null, rate: 0 }, /above 0/);
    refuses({ command: 'throttle', queue: null, rate: 1e9 }, /at most 100000/);
    refuses({ command: 'throttle', queue: null, concurrency: 0 }, /from 1 to/);
    refuses({ command: 'throttle', queue: 'q', concurrency: 2 }, /without queue=/);
    refuses({ command: 'throttle', queue: 'q', concurrency: null }, /without queue=/);
  });

  it('lists expiring rules earliest first, each with the request that ends it', () => {
    const soon = new Date('2026-12-01T10:00:00Z');
    const later = new Date('2026-12-01T11:00:00Z');
    let body = applyPolicyRequest(
      emptyPolicy(),
      { command: 'pause', queue: 'a' },
      { ...author, expires_at: later },
      1,
    ).body;
    body = applyPolicyRequest(
      body,
      { command: 'throttle', queue: null, rate: 5 },
      { ...author, expires_at: soon },
      2,
    ).body;
    const rules = expiringRules(body);
    assert.deepEqual(
      rules.map((r) => r.what),
      ['fleet throttle rate', 'pause of queue a'],
    );
    assert.deepEqual(rules[1]?.request, { command: 'resume', queue: 'a' });
  });

  it('gives the rate and the concurrency cap each its own expiry, whichever command set them', () => {
    const at = new Date('2026-12-01T00:00:00Z');
    const forAnHour = { ...author, expires_at: new Date(at.getTime() + 3_600_000) };
    // A rate for an hour, then a cap for good: the rate still ends after the hour, the cap stays.
    let body = applyPolicyRequest(
      emptyPolicy(at),
      { command: 'throttle', queue: null, rate: 30 },
      forAnHour,
      1,
    ).body;
    body = applyPolicyRequest(body, { command: 'throttle', queue: null, concurrency: 4 }, author, 2).body;
    assert.deepEqual(
      expiringRules(body).map((r) => [r.what, r.request]),
      [['fleet throttle rate', { command: 'throttle', queue: null, rate: null }]],
    );
    assert.deepEqual(body.throttle?.expires_at, forAnHour.expires_at);
    // The expiry's own command removes the rate alone.
    const after = applyPolicyRequest(
      body,
      expiringRules(body)[0]!.request,
      { ...author, updated_by: 'system' },
      3,
    ).body;
    assert.deepEqual(
      [after.throttle?.rate, after.throttle?.concurrency, after.throttle?.expires_at],
      [null, 4, null],
    );

    // A cap for good, then a rate for an hour: the expiry takes the rate, never the cap.
    body = applyPolicyRequest(
      emptyPolicy(at),
      { command: 'throttle', queue: null, concurrency: 4 },
      author,
      1,
    ).body;
    body = applyPolicyRequest(body, { command: 'throttle', queue: null, rate: 30 }, forAnHour, 2).body;
    assert.deepEqual(
      expiringRules(body).map((r) => r.request),
      [{ command: 'throttle', queue: null, rate: null }],
    );
    assert.equal(body.throttle?.concurrency_expires_at, null);
  });

  it('reads a throttle written by hand with one expires_at as ending as a whole', () => {
    const body = parsePolicyBody({
      throttle: { updated_by: 'ops', rate: 5, concurrency: 2, expires_at: '2026-12-01T10:00:00Z' },
    });
    assert.deepEqual(
      expiringRules(body).map((r) => r.what),
      ['fleet throttle rate', 'fleet concurrency cap'],
    );
  });
});
