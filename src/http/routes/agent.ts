// /api/agent/*: this agent only, not persisted (a restart reads the cluster state again).

import { Type } from 'typebox';

import { AGENT_STATES } from '../../agent/lifecycle.js';
import { ErrorBody, PullingAgentError } from '../../errors.js';
import type { App, RouteOptions } from '../types.js';

const AgentStateJson = Type.Object({
  state: Type.Enum([...AGENT_STATES]),
  timestamp: Type.String({ format: 'date-time' }),
  agent_id: Type.String(),
  instance_id: Type.String({ description: "This process's own id (unique per start)." }),
  ready: Type.Boolean(),
  applied_version: Type.Integer(),
  batch_in_flight: Type.Boolean(),
});

export function agentRoutes(app: App, { view, security }: RouteOptions): void {
  const stateJson = () => ({
    state: view.state,
    timestamp: new Date().toISOString(),
    agent_id: view.settings.agentId,
    instance_id: view.instanceId,
    ready: view.ready,
    applied_version: view.controlStatus?.appliedVersion ?? -1,
    batch_in_flight: view.batchInFlight,
  });

  app.get(
    '/api/agent/state',
    {
      config: { role: 'viewer' },
      schema: { summary: "This agent's state", response: { 200: AgentStateJson } },
    },
    async () => stateJson(),
  );

  const actions = [
    ['pause', 'operator', () => view.command('pause', 'api')],
    ['resume', 'operator', () => view.command('running', 'api')],
    ['shutdown', 'admin', () => view.command('shutdown', 'api')],
  ] as const;
  for (const [name, role, act] of actions) {
    app.post(
      `/api/agent/${name}`,
      {
        config: { role, rateLimit: { max: security.rateLimitCommands, timeWindow: 60_000 } },
        schema: {
          summary: `${name} this agent only (not persisted)`,
          response: {
            200: Type.Intersect([
              Type.Object({ status: Type.Literal('success'), message: Type.String() }),
              AgentStateJson,
            ]),
            '4xx': ErrorBody,
          },
        },
      },
      async () => {
        if (view.state === 'stopping' && name !== 'shutdown') {
          throw new PullingAgentError(
            'PA_AGENT_STOPPING',
            `agent ${view.settings.agentId} is shutting down; ${name} has no effect`,
          );
        }
        act();
        return {
          status: 'success' as const,
          message: `Agent ${view.settings.agentId}: ${name}`,
          ...stateJson(),
        };
      },
    );
  }
}
