// Policy commands, written once above the stores: what a pause or resume of one queue, or a
// throttle, makes of the current fleet policy, and which rules have run out. The plane reads the
// policy, computes the new body here and writes it by compare-and-set; the stores only keep it.

import { PullingAgentError } from '../errors.js';
import {
  makeThrottle,
  MAX_CONCURRENCY_CAP,
  MAX_RATE,
  type PolicyBody,
  type PolicyHistoryEntry,
  type PolicyRule,
  queueNameProblem,
} from '../model/policy.js';

/** The longest a throttle or queue pause may be set to last by itself. */
export const MAX_POLICY_EXPIRY_MS = 30 * 86_400_000;

/** What a caller asks for; `undefined` leaves a throttle field as it is, `null` removes it ("off"). */
export type PolicyRequest =
  | { command: 'pause' | 'resume'; queue: string }
  | { command: 'throttle'; queue: string | null; rate?: number | null; concurrency?: number | null };

export interface PolicyAuthor {
  reason: string | null;
  updated_by: string;
  on_behalf_of: string | null;
  expires_at: Date | null;
}

export type PolicyEntryInput = Omit<PolicyHistoryEntry, 'version' | 'timestamp'>;

const bad = (message: string) => new PullingAgentError('PA_BAD_REQUEST', message);

/** Checks a request's values; throws a 400 naming the problem. */
export function checkPolicyRequest(request: PolicyRequest): void {
  if (request.queue !== null) {
    const problem = queueNameProblem(request.queue);
    if (problem !== null) throw bad(problem);
  }
  if (request.command !== 'throttle') return;
  const { rate, concurrency, queue } = request;
  if (rate === undefined && concurrency === undefined) {
    throw bad('throttle needs rate (documents per second, or off) or concurrency (slots per agent, or off)');
  }
  if (rate !== undefined && rate !== null && !(Number.isFinite(rate) && rate > 0 && rate <= MAX_RATE)) {
    throw bad(
      `rate must be a number of documents per second above 0 and at most ${MAX_RATE}, or off; got ${String(rate)}`,
    );
  }
  if (concurrency !== undefined && queue !== null) {
    throw bad("concurrency caps an agent's slots for every queue: give it without queue=");
  }
  if (concurrency !== undefined && concurrency !== null) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY_CAP) {
      throw bad(
        `concurrency must be a whole number from 1 to ${MAX_CONCURRENCY_CAP}, or off; got ${String(concurrency)}`,
      );
    }
  }
  if (queue !== null && rate === undefined) throw bad('a throttle with queue= needs rate (a number, or off)');
}

/** The body after a request, and its history entry. `version` is the version being written. */
export function applyPolicyRequest(
  body: PolicyBody,
  request: PolicyRequest,
  author: PolicyAuthor,
  version: number,
): { body: PolicyBody; entry: PolicyEntryInput } {
  checkPolicyRequest(request);
  const rule: PolicyRule = {
    reason: author.reason,
    updated_by: author.updated_by,
    on_behalf_of: author.on_behalf_of,
    since_version: version,
    expires_at: author.expires_at,
  };
  const next: PolicyBody = {
    paused_queues: { ...body.paused_queues },
    throttle: body.throttle,
    queue_rates: { ...body.queue_rates },
  };
  const entry: PolicyEntryInput = {
    command: request.command,
    queue: request.queue,
    rate: null,
    concurrency: null,
    reason: author.reason,
    updated_by: author.updated_by,
    on_behalf_of: author.on_behalf_of,
    expires_at: author.expires_at,
  };
  if (request.command === 'throttle') return applyThrottle(next, body, request, rule, entry);
  if (request.command === 'pause') next.paused_queues[request.queue] = rule;
  else delete next.paused_queues[request.queue];
  return { body: next, entry };
}

function applyThrottle(
  next: PolicyBody,
  body: PolicyBody,
  request: Extract<PolicyRequest, { command: 'throttle' }>,
  rule: PolicyRule,
  entry: PolicyEntryInput,
): { body: PolicyBody; entry: PolicyEntryInput } {
  if (request.queue !== null) {
    if (request.rate === null || request.rate === undefined) delete next.queue_rates[request.queue];
    else next.queue_rates[request.queue] = { ...rule, rate: request.rate };
    entry.rate = request.rate ?? null;
  } else {
    // Each field keeps its own expiry: a command that sets only one leaves the other's as it was.
    const old = body.throttle;
    const rate = request.rate === undefined ? (old?.rate ?? null) : request.rate;
    const concurrency = request.concurrency === undefined ? (old?.concurrency ?? null) : request.concurrency;
    const rateExpires =
      rate === null ? null : request.rate === undefined ? (old?.rate_expires_at ?? null) : rule.expires_at;
    const concurrencyExpires =
      concurrency === null
        ? null
        : request.concurrency === undefined
          ? (old?.concurrency_expires_at ?? null)
          : rule.expires_at;
    next.throttle = makeThrottle(rule, { rate, concurrency, rateExpires, concurrencyExpires });
    entry.rate = rate;
    entry.concurrency = concurrency;
  }
  return { body: next, entry };
}

/** A rule that ends by itself, as the request that removes it. */
export interface ExpiringRule {
  expires_at: Date;
  since_version: number;
  request: PolicyRequest;
  what: string;
}

/** Every rule with an expiry, earliest first. */
export function expiringRules(body: PolicyBody): ExpiringRule[] {
  const out: ExpiringRule[] = [];
  for (const [queue, rule] of Object.entries(body.paused_queues)) {
    if (rule.expires_at) {
      out.push({
        expires_at: rule.expires_at,
        since_version: rule.since_version,
        request: { command: 'resume', queue },
        what: `pause of queue ${queue}`,
      });
    }
  }
  for (const [queue, rule] of Object.entries(body.queue_rates)) {
    if (rule.expires_at) {
      out.push({
        expires_at: rule.expires_at,
        since_version: rule.since_version,
        request: { command: 'throttle', queue, rate: null },
        what: `throttle of queue ${queue}`,
      });
    }
  }
  const t = body.throttle;
  if (t?.rate !== null && t?.rate_expires_at) {
    out.push({
      expires_at: t.rate_expires_at,
      since_version: t.since_version,
      request: { command: 'throttle', queue: null, rate: null },
      what: 'fleet throttle rate',
    });
  }
  if (t?.concurrency !== null && t?.concurrency_expires_at) {
    out.push({
      expires_at: t.concurrency_expires_at,
      since_version: t.since_version,
      request: { command: 'throttle', queue: null, concurrency: null },
      what: 'fleet concurrency cap',
    });
  }
  return out.sort((a, b) => a.expires_at.getTime() - b.expires_at.getTime());
}
