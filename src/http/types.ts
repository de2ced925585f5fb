// The types every part of the HTTP layer shares: the app's options and the typed Fastify instance.
// It imports no route and nothing from app.ts, so that routes and plugins can depend on it without
// an import cycle (test/unit/import-cycles.test.ts). HTTP sees an agent only through the control
// plane and the agent's read-only view (src/agent/view.ts), never the Agent object
// (test/unit/http-layers.test.ts).

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { Logger } from 'pino';

import type { AgentParts, AgentView } from '../agent/view.js';
import type { ApiToken } from '../auth/tokens.js';
import type { ControlPlane } from '../control/plane.js';

/** What every route group may use of the agent: the plane for commands, the view for the rest. */
export interface AgentContext {
  /** Issues cluster commands and reads the control document and the fleet. */
  plane: ControlPlane;
  /** The agent's settings, state, counters and store, read when asked. */
  view: AgentView;
}

/**
 * The app's options: the plane and the view, given as they are or as an agent that has both
 * (`{ agent }`, as `createAgent()` returns it; only its plane and view are kept).
 */
export type AppOptions = AppSettings &
  ((AgentContext & { agent?: undefined }) | { agent: AgentParts; plane?: undefined; view?: undefined });

export interface AppSettings {
  logger: Logger;
  /** The effective settings shown by GET /api/config (already free of secrets). */
  publicConfig: Record<string, unknown>;
  /** Largest accepted request body in bytes (default 10 MiB). */
  bodyLimit?: number;
  /** Tokens, metrics protection and rate limits; default: open API, 120 commands and 600 posts a minute. */
  security?: Partial<SecurityOptions>;
}

/** What route files get: the plane, the view, and the app's settings with security resolved. */
export type RouteOptions = AgentContext & Omit<AppSettings, 'security'> & { security: SecurityOptions };

export interface SecurityOptions {
  tokens: readonly ApiToken[];
  metricsAuth: boolean;
  rateLimitCommands: number;
  rateLimitDocuments: number;
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;
