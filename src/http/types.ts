// The types every part of the HTTP layer shares: the app's options and the typed Fastify instance.
// It imports no route and nothing from app.ts, so that routes and plugins can depend on it without
// an import cycle (test/unit/import-cycles.test.ts).

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { Logger } from 'pino';

import type { Agent } from '../agent/agent.js';
import type { ApiToken } from '../auth/tokens.js';

export interface AppOptions {
  agent: Agent;
  logger: Logger;
  /** The effective settings shown by GET /api/config (already free of secrets). */
  publicConfig: Record<string, unknown>;
  /** Largest accepted request body in bytes (default 10 MiB). */
  bodyLimit?: number;
  /** Tokens, metrics protection and rate limits; default: open API, 120 commands and 600 posts a minute. */
  security?: Partial<SecurityOptions>;
}

/** What route files get: the app's options with the security settings resolved. */
export type RouteOptions = AppOptions & { security: SecurityOptions };

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
