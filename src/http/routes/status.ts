// Probes and status: /health (liveness), /readiness, /api/stats, /api/config and the store's
// status (also under the seed's name /api/mongo/status).

import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';

import type { Role } from '../../auth/tokens.js';
import { describeError } from '../../errors.js';
import { createMetrics } from '../../metrics.js';
import { SOFTWARE_VERSION } from '../../version.js';
import { AgentStatsBody, HealthBody, PublicConfigBody } from '../responses.js';
import type { App, RouteOptions } from '../types.js';

const ReadinessBody = Type.Object({
  ready: Type.Boolean(),
  state: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  reason: Type.Optional(Type.String({ description: 'Why the agent is not ready (503 only).' })),
});
const StoreStatusBody = Type.Object(
  { reachable: Type.Boolean(), status: Type.String(), store: Type.String() },
  { additionalProperties: true },
);

export function statusRoutes(app: App, { view, publicConfig, security }: RouteOptions): void {
  // The kubelet's probes carry no token; Prometheus scrapes without one unless METRICS_AUTH=true.
  const open: { role: Role | null } = { role: null };
  const viewer: { role: Role | null } = { role: 'viewer' };

  app.get(
    '/health',
    {
      config: open,
      schema: {
        summary: 'Liveness: 200 while the process is alive, whatever its state',
        response: { 200: HealthBody },
      },
    },
    async () => ({ status: 'ok' as const, state: view.state, timestamp: new Date().toISOString() }),
  );

  app.get(
    '/readiness',
    {
      config: open,
      schema: {
        summary: 'Readiness: 200 only while running, else 503',
        response: { 200: ReadinessBody, 503: ReadinessBody },
      },
    },
    async (_request, reply) => {
      const { ready, reason } = view.readiness;
      return reply.status(ready ? 200 : 503).send({
        ready,
        state: view.state,
        timestamp: new Date().toISOString(),
        ...(reason !== null && { reason }),
      });
    },
  );

  const statsSchema = { summary: "This agent's counters", response: { 200: AgentStatsBody } };
  app.get('/api/stats', { config: viewer, schema: statsSchema }, async () => {
    const s = view.stats;
    return {
      agent_id: view.settings.agentId,
      state: view.state,
      version: SOFTWARE_VERSION,
      uptime_seconds: Math.round((Date.now() - s.startedAt.getTime()) / 1000),
      started_at: s.startedAt.toISOString(),
      batches: s.batches,
      claims: s.claims,
      documents_processed: s.documentsProcessed,
      documents_failed: s.documentsFailed,
      documents_retried: s.documentsRetried,
      errors: s.handlerErrors + s.storeErrors,
      handler_errors: s.handlerErrors,
      store_errors: s.storeErrors,
      leases_lapsed: s.leasesLapsed,
      batch_in_flight: view.batchInFlight,
      last_batch_at: s.lastBatchAt?.toISOString() ?? null,
      last_heartbeat: s.lastHeartbeatAt?.toISOString() ?? null,
      applied_version: s.appliedVersion,
      applied_at: s.appliedAt?.toISOString() ?? null,
    };
  });

  const metrics = createMetrics(view);
  app.get(
    '/metrics',
    {
      config: security.metricsAuth ? viewer : open,
      schema: {
        summary: 'Prometheus metrics of this agent',
        produces: ['text/plain'],
        // Sent as text (a string is never run through the JSON serializer); described for the OpenAPI document.
        response: { 200: Type.String({ description: 'The Prometheus text exposition format.' }) },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()),
  );

  app.get(
    '/api/config',
    {
      config: viewer,
      schema: { summary: 'Effective settings (no secrets)', response: { 200: PublicConfigBody } },
    },
    async () => publicConfig,
  );

  const storeStatus = async (_request: unknown, reply: FastifyReply) => {
    const base = { store: view.settings.store.kind, description: safeDescription() };
    const control = view.controlStatus;
    try {
      const latency = await view.store.ping();
      return reply.send({
        ...base,
        status: 'connected',
        reachable: true,
        latency_ms: Math.round(latency * 100) / 100,
        watch_mode: control ? view.watchModeShown : null,
        control_error: control?.lastError ?? null,
      });
    } catch (error) {
      return reply.status(503).send({
        ...base,
        status: 'unreachable',
        reachable: false,
        latency_ms: null,
        error: describeError(error),
        watch_mode: control ? view.watchModeShown : null,
        control_error: control?.lastError ?? null,
      });
    }
  };
  const safeDescription = () => {
    try {
      return view.store.description;
    } catch {
      return null;
    }
  };
  const statusSchema = (summary: string) => ({
    config: viewer,
    schema: {
      summary,
      response: { 200: StoreStatusBody, 503: StoreStatusBody },
    },
  });
  app.get('/api/store/status', statusSchema('Whether the store answers, and its latency'), storeStatus);
  app.get('/api/mongo/status', statusSchema("The seed's name for /api/store/status"), storeStatus);
}
