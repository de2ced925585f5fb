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

export function registerAgentRoutes(app: App, { agent, security }: RouteOptions): void {
  const view = () => ({
    state: agent.state,
    timestamp: new Date().toISOString(),
    agent_id: agent.settings.agentId,
    instance_id: agent.instanceId,
    ready: agent.ready,
    applied_version: agent.controlStatus?.appliedVersion ?? -1,
    batch_in_flight: agent.batchInFlight,
  });

  app.get(
    '/api/agent/state',
    { schema: { summary: "This agent's state", response: { 200: AgentStateJson } } },
    async () => view(),
  );

  const actions = [
    ['pause', () => agent.pause('api')],
    ['resume', () => agent.resume('api')],
    ['shutdown', () => agent.shutdown('api')],
  ] as const;
  for (const [name, act] of actions) {
    app.post(
      `/api/agent/${name}`,
      {
        config: { rateLimit: { max: security.rateLimitCommands, timeWindow: 60_000 } },
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
        if (agent.state === 'stopping' && name !== 'shutdown') {
          throw new PullingAgentError(
            'PA_AGENT_STOPPING',
            `agent ${agent.settings.agentId} is shutting down; ${name} has no effect`,
          );
        }
        act();
        return { status: 'success' as const, message: `Agent ${agent.settings.agentId}: ${name}`, ...view() };
      },
    );
  }
}
