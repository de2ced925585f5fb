// The fleet policy over HTTP: a queue's pause and resume (`?queue=` on /api/cluster/pause and
// /resume, answered here), the throttle, and the policy as stored. Commands go through the
// control plane like the global ones: same audit fields, compare-and-set (on the policy version),
// expiry, and a barrier with wait=true.

import type { FastifyReply } from 'fastify';
import { type Static, Type } from 'typebox';

import { EXPIRY_RULE, parseExpiry } from '../../control/duration.js';
import type { ControlPlane } from '../../control/plane.js';
import { describePolicyRequest } from '../../control/plane.js';
import { MAX_POLICY_EXPIRY_MS, type PolicyRequest } from '../../control/policy.js';
import { ErrorBody, errorBody, PullingAgentError } from '../../errors.js';
import {
  type FleetPolicy,
  MAX_CONCURRENCY_CAP,
  MAX_RATE,
  policyHistoryEntryToJson,
  policyToJson,
} from '../../model/policy.js';
import { PolicyHistoryJson, PolicyJson } from '../responses.js';
import { AuditQuery, CONCURRENCY_PATTERN, DurationText, QueueName, RATE_PATTERN } from '../schemas.js';
import type { App, RouteOptions } from '../types.js';

const BARRIER_QUERY = {
  ...AuditQuery.properties,
  expected_version: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        'Fail with 409 unless the current version is this one (the policy version when queue= or for a throttle).',
    }),
  ),
  wait: Type.Optional(Type.Boolean({ description: 'Answer only when every live agent applied it.' })),
  timeout: Type.Optional(
    Type.Number({
      minimum: 0.1,
      maximum: 3600,
      description: 'Seconds to wait with wait=true (default 30); then 504.',
    }),
  ),
  expires_in: Type.Optional(
    DurationText('It ends by itself after this long: seconds, or 90s, 30m, 2h, 1d, 1h30m (1 s to 30 days).'),
  ),
};

export const ThrottleQuery = Type.Object(
  {
    ...BARRIER_QUERY,
    queue: Type.Optional(QueueName('Throttle this queue only (rate only).')),
    rate: Type.Optional(
      Type.String({
        maxLength: 16,
        pattern: RATE_PATTERN,
        description: `Documents per second for the whole fleet (above 0, at most ${MAX_RATE}), or off.`,
      }),
    ),
    concurrency: Type.Optional(
      Type.String({
        maxLength: 8,
        pattern: CONCURRENCY_PATTERN,
        description: `Slots per agent at most (1 to ${MAX_CONCURRENCY_CAP}), or off for CONCURRENCY.`,
      }),
    ),
  },
  { additionalProperties: false },
);

/** `If-Match: N` (or `"N"`): compare-and-set like expected_version, on every command. */
export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ pattern: '^"?\\d{1,15}"?$' })),
});

/** expected_version, else the If-Match header's version, else undefined. */
export function expectedVersionOf(
  query: { expected_version?: number | undefined },
  ifMatch: string | undefined,
): number | undefined {
  return query.expected_version ?? (ifMatch ? Number(ifMatch.replaceAll('"', '')) : undefined);
}

type QueueCommandQuery = Static<typeof AuditQuery> & {
  queue: string;
  expected_version?: number;
  wait?: boolean;
  timeout?: number;
  expires_in?: string;
};

/** When a rule with `expires_in` ends; null without it. Queue resumes do not accept it. */
function expiryOf(expiresIn: string | undefined, now: number): Date | null {
  if (expiresIn === undefined) return null;
  const ms = parseExpiry(expiresIn);
  if (ms === null || ms > MAX_POLICY_EXPIRY_MS) {
    throw new PullingAgentError(
      'PA_BAD_REQUEST',
      `query parameter expires_in ${EXPIRY_RULE}, not ${JSON.stringify(expiresIn)}`,
    );
  }
  return new Date(now + ms);
}

function numberOrOff(value: string | undefined): number | null | undefined {
  if (value === undefined) return undefined;
  return value === 'off' ? null : Number(value);
}

/** What the policy means for the fleet, for answers and views. */
export function policySummary(policy: FleetPolicy) {
  return policyToJson(policy);
}

/** Issues a policy command, waits for its barrier with wait=true, answers like the global commands. */
export async function answerPolicyCommand(
  plane: ControlPlane,
  request: PolicyRequest,
  query: Omit<QueueCommandQuery, 'queue'>,
  actor: string | null,
  reply: FastifyReply,
  watchMode: () => string,
  now: number,
): Promise<{ status: 'success'; [field: string]: unknown } | FastifyReply> {
  const issued = await plane.issuePolicy({
    request,
    reason: query.reason ?? null,
    actor,
    requestedBy: query.updated_by,
    expectedVersion: query.expected_version,
    // By the store's clock, as every expiry (a wrong local clock changes nothing).
    expiresAt: expiryOf(query.expires_in, now),
  });
  const { policy } = issued;
  const what = describePolicyRequest(request);
  const body = {
    message: `${what} issued (policy version ${policy.version}); every agent applies it within ${issued.expectedDelaySeconds} s`,
    command: request.command,
    queue: request.queue,
    policy_version: policy.version,
    policy: policyToJson(policy),
    propagation: {
      watch_mode: watchMode(),
      expected_delay_seconds: issued.expectedDelaySeconds,
      agents_registered: issued.agentsRegistered,
      applied_by_this_agent: true,
    },
  };
  if (!query.wait) return { status: 'success' as const, ...body };
  const target =
    request.command === 'pause'
      ? { version: policy.version, pausedQueue: request.queue }
      : { version: policy.version };
  const barrier = await plane.waitForPolicy(target, (query.timeout ?? 30) * 1000);
  if (barrier.complete) return { status: 'success' as const, ...body, barrier };
  const done = request.command === 'pause' ? `applied it and finished the queue's documents` : 'applied it';
  const timedOut = {
    ...body,
    ...errorBody(
      'PA_WAIT_TIMEOUT',
      barrier.summary.stragglers.length === 0 && barrier.reason !== null
        ? `policy version ${policy.version} was written, but after ${barrier.waited_ms} ms ${barrier.reason}`
        : `policy version ${policy.version} was written, but after ${barrier.waited_ms} ms ${barrier.summary.stragglers.length} agent(s) had not ${done}: ${barrier.summary.stragglers.join(', ')}`,
    ),
    barrier,
  };
  return reply.status(504).send(timedOut as typeof timedOut & { error: string });
}

/**
 * A queue's pause or resume, called by the /api/cluster/pause and /resume routes when queue= is
 * given (the resume's schema already refuses expires_in: only a pause ends by itself).
 */
export function answerQueueCommand(
  plane: ControlPlane,
  command: 'pause' | 'resume',
  query: QueueCommandQuery,
  actor: string | null,
  reply: FastifyReply,
  watchMode: () => string,
  now: number,
): Promise<{ status: 'success'; [field: string]: unknown } | FastifyReply> {
  return answerPolicyCommand(plane, { command, queue: query.queue }, query, actor, reply, watchMode, now);
}

export function policyRoutes(app: App, { plane, view, security }: RouteOptions): void {
  const watchMode = () => view.watchModeShown;
  app.post(
    '/api/cluster/throttle',
    {
      config: { role: 'operator', rateLimit: { max: security.rateLimitCommands, timeWindow: 60_000 } },
      schema: {
        summary: 'Cap the fleet (or one queue) at a rate, and each agent at a number of slots',
        querystring: ThrottleQuery,
        headers: IfMatchHeaders,
        response: {
          200: Type.Object({ status: Type.Literal('success') }, { additionalProperties: true }),
          '4xx': ErrorBody,
          '5xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const expectedVersion = expectedVersionOf(request.query, request.headers['if-match']);
      const query = {
        ...request.query,
        ...(expectedVersion !== undefined && { expected_version: expectedVersion }),
      };
      const rate = numberOrOff(query.rate);
      const concurrency = numberOrOff(query.concurrency);
      const throttle: PolicyRequest = {
        command: 'throttle',
        queue: query.queue ?? null,
        ...(rate !== undefined && { rate }),
        ...(concurrency !== undefined && { concurrency }),
      };
      return answerPolicyCommand(
        plane,
        throttle,
        query,
        request.actor?.name ?? null,
        reply,
        watchMode,
        view.storeNow(),
      );
    },
  );

  app.get(
    '/api/cluster/policy',
    {
      config: { role: 'viewer' },
      schema: {
        summary: "The fleet policy: paused queues and throttles, as stored, with this agent's share",
        response: {
          200: Type.Intersect([
            PolicyJson,
            Type.Object({
              applied_version: Type.Integer({
                description: 'The policy version this agent applies (-1 before it read one).',
              }),
              this_agent: Type.Object({
                live_agents: Type.Integer({
                  description:
                    "Live running or paused agents sharing the fleet's rates, as this agent last counted.",
                }),
                share: Type.Number({
                  description: 'The part of each fleet rate this agent takes (1 / live agents).',
                }),
                concurrency: Type.Integer({
                  description: "Slots this agent runs: CONCURRENCY or the throttle's cap.",
                }),
              }),
              policy_error: Type.Optional(
                Type.String({
                  description:
                    'Present while the stored policy is malformed: the policy shown is the last one this agent applied.',
                }),
              ),
            }),
          ]),
          '5xx': ErrorBody,
        },
      },
    },
    async () => {
      const { policy, policy_error } = await plane.readPolicy();
      const here = view.policy;
      return {
        ...policyToJson(policy),
        applied_version: here.policy?.version ?? -1,
        this_agent: { live_agents: here.live_agents, share: here.share, concurrency: here.concurrency },
        ...(policy_error !== null && { policy_error }),
      };
    },
  );

  app.get(
    '/api/cluster/policy/history',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'The audit trail of queue pauses, resumes and throttles, newest first',
        querystring: Type.Object(
          { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ history: Type.Array(PolicyHistoryJson), count: Type.Integer() }),
          '5xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const history = await plane.policyHistory(request.query.limit ?? 50);
      return { history: history.map(policyHistoryEntryToJson), count: history.length };
    },
  );
}
