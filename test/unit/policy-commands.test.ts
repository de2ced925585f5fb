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
      ['fleet throttle', 'pause of queue a'],
    );
    assert.deepEqual(rules[1]?.request, { command: 'resume', queue: 'a' });
  });
});
