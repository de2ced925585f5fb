// GET /api/cluster/events: server-sent events for dashboards and scripts. Each client first gets
// the current `control`, `agents` and `backlog`, then each again whenever it changes (agents at
// least every heartbeat interval; the backlog as the agent's cached read of it changes, at most
// every 5 s), and a keep-alive comment every 15 s.

import { Type } from 'typebox';

import { FleetObserver } from '../../control/observer.js';
import { describeError, PullingAgentError } from '../../errors.js';
import type { App, RouteOptions } from '../types.js';

export function eventRoutes(app: App, { view }: RouteOptions): void {
  const observer = new FleetObserver({
    store: () => view.store,
    heartbeatIntervalMs: view.settings.heartbeatIntervalMs,
    leaseMs: view.settings.leaseTimeoutMs,
    // Cached by the agent (one store read per 5 s at most), however many streams are open.
    backlog: () => view.backlog.readWithin(500),
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
      config: { role: 'viewer' },
      // 'manual': we negotiate ourselves, so that a refusal has our error shape.
      sse: { kind: 'manual', heartbeat: true },
      schema: {
        summary: 'Server-sent events: `control`, `agents` and `backlog`, on connect and on every change',
        produces: ['text/event-stream'],
        response: {
          // What one event of the stream holds (a test tool reads the stream event by event).
          200: Type.Object(
            {
              id: Type.Optional(Type.String()),
              event: Type.Optional(
                Type.String({ description: '`control`, `agents` or `backlog`, as docs/api.md shows.' }),
              ),
              data: Type.String({ description: 'The event as JSON.' }),
              retry: Type.Optional(Type.Integer()),
            },
            { description: 'One server-sent event of the text/event-stream answer.' },
          ),
        },
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
