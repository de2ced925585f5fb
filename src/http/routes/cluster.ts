// /api/cluster/*: the fleet-wide commands and views, stored in the shared control document. Each
// command is written through the store (version + 1, store timestamp, history) and then applied
// by this agent at once; every other agent applies it through its watch.

import { type Static, Type } from 'typebox';

import type { Role } from '../../auth/tokens.js';
import { EXPIRY_RULE, parseExpiry } from '../../control/duration.js';
import { ErrorBody, errorBody, PullingAgentError } from '../../errors.js';
import type { ControlCommand } from '../../model/control.js';
import { controlStateToJson } from '../../model/control.js';
import { policyToJson } from '../../model/policy.js';
import { ClusterStatsBody, FleetBody, HistoryBody, PolicyJson } from '../responses.js';
import { AuditQuery, ControlStateJson, DurationText, QueueName, WatchModeSchema } from '../schemas.js';
import type { App, RouteOptions } from '../types.js';
import { answerQueueCommand } from './policy.js';

const COMMANDS: { path: string; command: ControlCommand; verb: string; role: Role }[] = [
  { path: 'pause', command: 'pause', verb: 'pause', role: 'operator' },
  { path: 'resume', command: 'running', verb: 'resume', role: 'operator' },
  { path: 'shutdown', command: 'shutdown', verb: 'shutdown', role: 'admin' },
];

const COMMON_QUERY = {
  ...AuditQuery.properties,
  expected_version: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'Fail with 409 unless the current version is this one.',
    }),
  ),
  wait: Type.Optional(
    Type.Boolean({
      description:
        'Answer only when every live agent applied the command (and drained, for pause and shutdown).',
    }),
  ),
  timeout: Type.Optional(
    Type.Number({
      minimum: 0.1,
      maximum: 3600,
      description: 'Seconds to wait with wait=true (default 30); then 504.',
    }),
  ),
};

// Unknown query parameters are refused by name (expires_in on a resume, a misspelt one), not ignored.
const PauseQuery = Type.Object(
  {
    ...COMMON_QUERY,
    // The grammar is checked by the schema, the range (1 s to 30 days) by expiryOf.
    expires_in: Type.Optional(
      DurationText(
        'The fleet resumes by itself after this long: seconds, or 90s, 30m, 2h, 1d, 1h30m, units in either case (1 s to 30 days).',
      ),
    ),
    queue: Type.Optional(
      QueueName(
        'Pause this queue only, across the fleet (a fleet policy command: versioned apart, agents stay running).',
      ),
    ),
  },
  { additionalProperties: false },
);
const ResumeQuery = Type.Object(
  { ...COMMON_QUERY, queue: Type.Optional(QueueName('Resume this queue only (after a pause with queue=).')) },
  { additionalProperties: false },
);
const OtherCommandQuery = Type.Object(COMMON_QUERY, { additionalProperties: false });

/** When a pause with `expires_in` ends; null without it (other commands do not accept it). */
function expiryOf(expiresIn: string | undefined, now: number): Date | null {
  if (expiresIn === undefined) return null;
  const ms = parseExpiry(expiresIn);
  if (ms === null) {
    throw new PullingAgentError(
      'PA_BAD_REQUEST',
      `query parameter expires_in ${EXPIRY_RULE}, not ${JSON.stringify(expiresIn)}`,
    );
  }
  return new Date(now + ms);
}

/** The stragglers, a lost one with why it counts (its leases may still run). */
function namedStragglers(summary: { stragglers: string[]; unconfirmed?: string[] }): string {
  const why = new Map((summary.unconfirmed ?? []).map((u) => [u.slice(0, u.indexOf(' (')), u]));
  return summary.stragglers.map((s) => why.get(s) ?? s).join(', ');
}

/**
 * For the group of /api/cluster/* routes (the events stream included): 503 on an agent started
 * with ENABLE_DISTRIBUTED_CONTROL=false. A hook of the group's plugin, so no other route runs it.
 */
export function clusterGuard(app: App, { view }: RouteOptions): void {
  app.addHook('onRequest', async () => {
    if (!view.settings.distributedControl) {
      throw new PullingAgentError(
        'PA_DISTRIBUTED_CONTROL_DISABLED',
        'distributed control is disabled on this agent (ENABLE_DISTRIBUTED_CONTROL=false); use /api/agent/* for this agent',
      );
    }
  });
}

export function clusterRoutes(app: App, { plane, view, security }: RouteOptions): void {
  const settings = view.settings;

  const watchMode = () => view.watchModeShown;

  for (const { path, command, verb, role } of COMMANDS) {
    app.post(
      `/api/cluster/${path}`,
      {
        config: { role, rateLimit: { max: security.rateLimitCommands, timeWindow: 60_000 } },
        schema: {
          summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} every agent of the cluster`,
          querystring:
            command === 'pause' ? PauseQuery : command === 'running' ? ResumeQuery : OtherCommandQuery,
          headers: Type.Object({ 'if-match': Type.Optional(Type.String({ pattern: '^"?\\d{1,15}"?$' })) }),
          response: {
            200: Type.Object({ status: Type.Literal('success') }, { additionalProperties: true }),
            '4xx': ErrorBody,
            '5xx': ErrorBody,
          },
        },
      },
      async (request, reply) => {
        const query = request.query as Static<typeof PauseQuery>;
        const ifMatch = request.headers['if-match'];
        const expectedVersion =
          query.expected_version ?? (ifMatch ? Number(ifMatch.replaceAll('"', '')) : undefined);
        if (query.queue !== undefined) {
          return answerQueueCommand(
            plane,
            command === 'pause' ? 'pause' : 'resume',
            {
              ...query,
              queue: query.queue,
              ...(expectedVersion !== undefined && { expected_version: expectedVersion }),
            },
            request.actor?.name ?? null,
            reply,
            watchMode,
            view.storeNow(),
          );
        }
        const issued = await plane.issue({
          command,
          reason: query.reason ?? null,
          actor: request.actor?.name ?? null,
          requestedBy: query.updated_by,
          expectedVersion,
          expiresAt: expiryOf(query.expires_in, view.storeNow()),
        });
        const { state } = issued;
        const body = {
          message: `Cluster ${verb} command issued (version ${state.version}); every agent applies it within ${issued.expectedDelaySeconds} s`,
          ...controlStateToJson(state),
          propagation: {
            watch_mode: watchMode(),
            expected_delay_seconds: issued.expectedDelaySeconds,
            agents_registered: issued.agentsRegistered,
            applied_by_this_agent: issued.appliedHere,
          },
        };
        if (!query.wait) return { status: 'success' as const, ...body };
        const barrier = await plane.waitFor(state, (query.timeout ?? 30) * 1000);
        if (barrier.complete) return { status: 'success' as const, ...body, barrier };
        const what = command === 'running' ? 'applied it' : 'applied it and drained';
        // The command's fields first, so that the error's status and message are the ones sent.
        const timedOut = {
          ...body,
          ...errorBody(
            'PA_WAIT_TIMEOUT',
            barrier.summary.stragglers.length === 0 && barrier.reason !== null
              ? `version ${state.version} was written, but after ${barrier.waited_ms} ms ${barrier.reason}`
              : `version ${state.version} was written, but after ${barrier.waited_ms} ms ${barrier.summary.stragglers.length} agent(s) had not ${what}: ${namedStragglers(barrier.summary)}`,
          ),
          barrier,
        };
        // The error schema admits extra fields; the command and the barrier table go with it.
        return reply.status(504).send(timedOut as typeof timedOut & { error: string });
      },
    );
  }

  app.get(
    '/api/cluster/control-state',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'The current cluster command, as stored',
        response: {
          200: Type.Intersect([
            ControlStateJson,
            Type.Object({
              watch_mode: WatchModeSchema,
              policy: Type.Optional(
                Type.Intersect([PolicyJson, Type.Object({ policy_error: Type.Optional(Type.String()) })], {
                  description:
                    'The fleet policy beside the command: paused queues and throttles (GET /api/cluster/policy).',
                }),
              ),
              control_error: Type.Optional(
                Type.String({
                  description:
                    'Present while the stored document is malformed: the state shown is the last one this agent applied.',
                }),
              ),
            }),
          ]),
          '5xx': ErrorBody,
        },
      },
    },
    async () => {
      const [{ state, control_error }, { policy, policy_error }] = await Promise.all([
        plane.readControl(),
        plane.readPolicy(),
      ]);
      return {
        ...controlStateToJson(state),
        watch_mode: watchMode(),
        policy: { ...policyToJson(policy), ...(policy_error !== null && { policy_error }) },
        ...(control_error !== null && { control_error }),
      };
    },
  );

  app.get(
    '/api/cluster/stats',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Cluster control statistics of this agent',
        response: { 200: ClusterStatsBody, '5xx': ErrorBody },
      },
    },
    async () => {
      const { state, control_error } = await plane.readControl();
      const status = view.controlStatus;
      return {
        watch_mode: watchMode(),
        polling_interval: settings.controlPollingIntervalMs / 1000,
        reconcile_interval: settings.controlReconcileIntervalMs / 1000,
        current_command: state.command,
        current_version: state.version,
        last_updated: state.timestamp.toISOString(),
        updated_by: state.updated_by,
        reason: state.reason,
        applied_version: status?.appliedVersion ?? null,
        last_check: status?.lastCheckAt?.toISOString() ?? null,
        control_error: control_error ?? status?.lastError ?? null,
      };
    },
  );

  app.get(
    '/api/cluster/history',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'The audit trail of commands, newest first',
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
        }),
        response: { 200: HistoryBody },
      },
    },
    async (request) => {
      const history = await view.store.listHistory(request.query.limit ?? 50);
      return { history: history.map(controlStateToJson), count: history.length };
    },
  );

  app.get(
    '/api/cluster/agents',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'The agents of the cluster, from the registry, with a summary',
        response: { 200: FleetBody, '5xx': ErrorBody },
      },
    },
    async () => plane.fleet(),
  );
}
