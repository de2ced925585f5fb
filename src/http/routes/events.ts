// GET /api/cluster/events: server-sent events for dashboards and scripts. Each client first gets
// the current `control` and `agents`, then each again whenever it changes (agents at least every
// heartbeat interval), and a keep-alive comment every 15 s.

import { FleetObserver } from '../../control/observer.js';
import { describeError, PullingAgentError } from '../../errors.js';
import type { App, RouteOptions } from '../types.js';

export function registerEventRoutes(app: App, { agent }: RouteOptions): void {
  const observer = new FleetObserver({
    store: () => agent.store,
    heartbeatIntervalMs: agent.settings.heartbeatIntervalMs,
    onError: (error) => app.log.warn(`Events stream: cannot read the fleet: ${describeError(error)}`),
  });
  // Open streams would hold app.close() (and so an agent's exit) for ever: end them first.
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const close of streams) close();
    streams.clear();
  });
  app.addHook('onClose', async () => observer.stop());

  app.get(
    '/api/cluster/events',
    {
      // 'manual': we negotiate ourselves, so that a refusal has our error shape.
      sse: { kind: 'manual', heartbeat: true },
      schema: {
        summary: 'Server-sent events: `control` and `agents`, on connect and on every change',
        produces: ['text/event-stream'],
      },
    },
    async (request, reply) => {
      const accept = request.headers.accept ?? '*/*';
      if (
        !/text\/event-stream|text\/\*|\*\/\*/.test(accept) ||
        /text\/event-stream\s*;\s*q=0(?![.\d]*[1-9])/.test(accept)
      ) {
        throw new PullingAgentError(
          'PA_NOT_ACCEPTABLE',
          `this endpoint sends text/event-stream; Accept was ${accept}`,
        );
      }
      const first = await observer.snapshot();
      reply.sse.keepAlive();
      let id = 0;
      const send = (event: { event: string; data: unknown }) => {
        if (reply.sse.isConnected) void reply.sse.send({ id: String(++id), ...event }).catch(() => undefined);
      };
      for (const event of first) send(event);
      const unsubscribe = observer.subscribe(send);
      const close = () => reply.sse.close();
      streams.add(close);
      reply.sse.onClose(() => {
        streams.delete(close);
        unsubscribe();
        request.log.debug('Events client left');
      });
    },
  );
}
