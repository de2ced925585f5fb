// /api/cluster/*: the fleet-wide commands and views, stored in the shared control document. Each
// command is written through the store (version + 1, store timestamp, history) and then applied
// by this agent at once; every other agent applies it through its watch.

import { Type } from 'typebox';

import { controlStateToJson } from '../../control/state.js';
import { PullingAgentError } from '../../errors.js';
import type { ControlCommand } from '../../stores/types.js';
import type { App, AppOptions } from '../app.js';
import { AuditQuery, ControlStateJson, ErrorBody, WatchModeSchema } from '../schemas.js';

const COMMANDS: { path: string; command: ControlCommand; verb: string }[] = [
  { path: 'pause', command: 'pause', verb: 'pause' },
  { path: 'resume', command: 'running', verb: 'resume' },
  { path: 'shutdown', command: 'shutdown', verb: 'shutdown' },
];

const CommandQuery = Type.Intersect([
  AuditQuery,
  Type.Object({
    expected_version: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Fail with 409 unless the current version is this one.' }),
    ),
  }),
]);

export function registerClusterRoutes(app: App, { agent }: AppOptions): void {
  const settings = agent.settings;

  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/api/cluster/') && !settings.distributedControl) {
      throw new PullingAgentError(
        'PA_DISTRIBUTED_CONTROL_DISABLED',
        'distributed control is disabled on this agent (ENABLE_DISTRIBUTED_CONTROL=false); use /api/agent/* for this agent',
      );
    }
  });

  const watchMode = () => agent.controlStatus?.watchMode ?? 'polling';
  /** How long other agents may take to see a command, from this agent's own watch mode. */
  const expectedDelaySeconds = () =>
    watchMode() === 'polling' ? Number(((settings.controlPollingIntervalMs * 1.1) / 1000).toFixed(3)) : 1;

  for (const { path, command, verb } of COMMANDS) {
    app.post(
      `/api/cluster/${path}`,
      {
        schema: {
          summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} every agent of the cluster`,
          querystring: CommandQuery,
          headers: Type.Object({ 'if-match': Type.Optional(Type.String({ pattern: '^"?\\d+"?$' })) }),
          response: {
            200: Type.Object({ status: Type.Literal('success') }, { additionalProperties: true }),
            '4xx': ErrorBody,
            '5xx': ErrorBody,
          },
        },
      },
      async (request) => {
        const query = request.query;
        const ifMatch = request.headers['if-match'];
        const expectedVersion =
          query.expected_version ?? (ifMatch ? Number(ifMatch.replaceAll('"', '')) : undefined);
        const state = await agent.store.writeCommand({
          command,
          reason: query.reason ?? null,
          updated_by: query.updated_by ?? 'api',
          ...(expectedVersion !== undefined ? { expectedVersion } : {}),
        });
        request.log.info(
          { command, version: state.version, updated_by: state.updated_by, reason: state.reason },
          `[Distributed Control] Cluster ${verb} written (version ${state.version})`,
        );
        await agent.refreshControl();
        const agents = await agent.store.listAgents().catch(() => []);
        return {
          status: 'success' as const,
          message: `Cluster ${verb} command issued (version ${state.version}); every agent applies it within ${expectedDelaySeconds()} s`,
          ...controlStateToJson(state),
          propagation: {
            watch_mode: watchMode(),
            expected_delay_seconds: expectedDelaySeconds(),
            agents_registered: agents.length,
            applied_by_this_agent: (agent.controlStatus?.appliedVersion ?? -1) >= state.version,
          },
        };
      },
    );
  }

  app.get(
    '/api/cluster/control-state',
    {
      schema: {
        summary: 'The current cluster command, as stored',
        response: {
          200: Type.Intersect([ControlStateJson, Type.Object({ watch_mode: WatchModeSchema })]),
          '5xx': ErrorBody,
        },
      },
    },
    async () => ({ ...controlStateToJson(await agent.store.readControl()), watch_mode: watchMode() }),
  );

  app.get(
    '/api/cluster/stats',
    { schema: { summary: 'Cluster control statistics of this agent' } },
    async () => {
      const state = await agent.store.readControl();
      const status = agent.controlStatus;
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
        control_error: status?.lastError ?? null,
      };
    },
  );

  app.get(
    '/api/cluster/history',
    {
      schema: {
        summary: 'The audit trail of commands, newest first',
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }) }),
      },
    },
    async (request) => {
      const history = await agent.store.listHistory(request.query.limit);
      return { history: history.map(controlStateToJson), count: history.length };
    },
  );

  app.get(
    '/api/cluster/agents',
    { schema: { summary: 'The agents of the cluster, from the registry' } },
    async () => {
      const [state, records] = await Promise.all([agent.store.readControl(), agent.store.listAgents()]);
      const lostAfterMs = settings.heartbeatIntervalMs * 3;
      const now = Date.now();
      const agents = records.map((r) => {
        const age = now - r.heartbeat_at.getTime();
        return {
          agent_id: r.agent_id,
          host: r.host,
          software_version: r.software_version,
          state: age > lostAfterMs ? 'lost' : r.state,
          reported_state: r.state,
          applied_version: r.applied_version,
          applied_at: r.applied_at?.toISOString() ?? null,
          batch_in_flight: r.batch_in_flight,
          watch_mode: r.watch_mode,
          started_at: r.started_at.toISOString(),
          heartbeat_at: r.heartbeat_at.toISOString(),
          heartbeat_age_seconds: Math.max(0, Math.round(age / 100) / 10),
          counters: r.counters,
        };
      });
      const live = agents.filter((a) => a.state !== 'lost');
      const applied = live.filter((a) => a.applied_version >= state.version);
      return {
        desired: { command: state.command, version: state.version },
        summary: {
          total: agents.length,
          live: live.length,
          lost: agents.length - live.length,
          applied: applied.length,
          drained: live.filter((a) => !a.batch_in_flight).length,
          stragglers: live.filter((a) => a.applied_version < state.version).map((a) => a.agent_id),
        },
        agents,
      };
    },
  );
}
