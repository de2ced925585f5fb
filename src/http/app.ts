// buildApp() makes the HTTP API of one agent without opening a port (tests use app.inject());
// only src/cli/pulling-agent.ts listens. Errors of every kind leave as one JSON shape with a stable
// code from src/errors.ts, never a stack trace.

import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import { fastifySSE } from '@fastify/sse';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, LogController } from 'fastify';

import { ErrorBody, errorBody, type ErrorCode, PullingAgentError } from '../errors.js';
import { redactRequestUrl } from '../logging.js';
import { SOFTWARE_VERSION } from '../version.js';
import { registerAuth } from './auth.js';
import { registerDocs } from './docs.js';
import { registerNotFound } from './not-found.js';
import { agentRoutes } from './routes/agent.js';
import { clusterGuard, clusterRoutes } from './routes/cluster.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { documentRoutes } from './routes/documents.js';
import { eventRoutes } from './routes/events.js';
import { policyRoutes } from './routes/policy.js';
import { statusRoutes } from './routes/status.js';
import { throughputRoutes } from './routes/throughput.js';
import { PATTERN_RULES } from './schemas.js';
import type { App, AppOptions, RouteOptions, SecurityOptions } from './types.js';

export type { AgentContext, App, AppOptions, AppSettings, RouteOptions, SecurityOptions } from './types.js';

/** Maps anything thrown in a request to a code, status and message that are safe to show. */
function toHttpError(
  error: FastifyError | Error,
  bodyLimit: number,
): {
  status: number;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
} {
  if (error instanceof PullingAgentError) {
    return {
      status: error.statusCode,
      code: error.code,
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    };
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const context = fastifyError.validationContext ?? 'request';
    const problems = fastifyError.validation.map((v) => {
      const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
      const params = v.params as { missingProperty?: string; additionalProperty?: string; pattern?: string };
      if (v.keyword === 'additionalProperties' && params.additionalProperty) {
        const what = context === 'querystring' ? 'query parameter' : `${context} property`;
        return `${what} ${params.additionalProperty} is not accepted here`;
      }
      const field = path || params.missingProperty || '';
      const where =
        context === 'querystring' ? `query parameter ${field}` : field ? `${context} ${field}` : context;
      const rule = v.keyword === 'pattern' ? PATTERN_RULES.get(params.pattern ?? '') : undefined;
      return `${where} ${rule ?? v.message ?? 'is invalid'}`;
    });
    return { status: 400, code: 'PA_BAD_REQUEST', message: problems.join('; ') };
  }
  const status = fastifyError.statusCode ?? 500;
  if (status === 413) {
    const mib = Math.round((bodyLimit / 1048576) * 10) / 10;
    return {
      status,
      code: 'PA_PAYLOAD_TOO_LARGE',
      message: `request body is larger than the limit of ${bodyLimit} bytes (${mib} MiB): send fewer or smaller documents per request`,
    };
  }
  if (status === 429) return { status, code: 'PA_RATE_LIMITED', message: fastifyError.message };
  if (status === 406) return { status, code: 'PA_NOT_ACCEPTABLE', message: fastifyError.message };
  if (status === 415) {
    return {
      status,
      code: 'PA_UNSUPPORTED_MEDIA_TYPE',
      message: `${fastifyError.message.replace(/\.?$/, '')}: send the body as JSON with the header Content-Type: application/json`,
    };
  }
  if (status >= 400 && status < 500) {
    const json = error instanceof SyntaxError || fastifyError.code?.includes('JSON');
    return { status, code: json ? 'PA_INVALID_JSON' : 'PA_BAD_REQUEST', message: fastifyError.message };
  }
  return { status: 500, code: 'PA_INTERNAL', message: 'internal error (logged by the agent)' };
}

export async function buildApp(options: AppOptions): Promise<App> {
  const bodyLimit = options.bodyLimit ?? 10 * 1024 * 1024;
  const app = Fastify({
    loggerInstance: options.logger,
    // Our own onResponse hook logs requests (mutations at info, reads at debug).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    routerOptions: { maxParamLength: 256 },
    // Errors the router raises before any route runs (a bad or too long URL) get our shape too.
    frameworkErrors: (error, _request, reply) => {
      const plain = reply as unknown as { status(code: number): { send(body: unknown): unknown } };
      plain.status(400).send(errorBody('PA_BAD_REQUEST', `bad request URL: ${error.message}`));
    },
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  // JSON only: a text/plain body is refused with 415 rather than parsed as a string.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body is no body (curl -X POST -H 'Content-Type: application/json' with no data).
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(
        new PullingAgentError('PA_INVALID_JSON', `malformed JSON body: ${(error as Error).message}`),
        undefined,
      );
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const mapped = toHttpError(error as FastifyError, bodyLimit);
    if (mapped.status >= 500 && mapped.code === 'PA_INTERNAL')
      request.log.error({ err: error }, 'Request failed');
    else request.log.info({ code: mapped.code, status: mapped.status }, mapped.message);
    return reply.status(mapped.status).send(errorBody(mapped.code, mapped.message, mapped.details));
  });

  app.addHook('onRoute', (route) => {
    // Every route documents its error answers, so the OpenAPI document lists every status it can send.
    if (route.schema && !route.schema.hide) {
      const response = (route.schema.response ??= {}) as Record<string, unknown>;
      response['4xx'] ??= ErrorBody;
      response['5xx'] ??= ErrorBody;
    }
  });
  registerNotFound(app);

  app.addHook('onResponse', (request, reply, done) => {
    const line = {
      method: request.method,
      url: redactRequestUrl(request.url),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    if (request.method === 'GET' || request.method === 'HEAD') request.log.debug(line, 'request');
    else request.log.info(line, 'request');
    done();
  });

  const security: SecurityOptions = {
    tokens: [],
    metricsAuth: false,
    rateLimitCommands: 120,
    rateLimitDocuments: 600,
    ...options.security,
  };
  // Only the plane and the view go further: no route reaches the Agent object.
  const { agent, plane, view, ...settings } = options;
  const context = agent ? { plane: agent.plane, view: agent.view } : { plane: plane!, view: view! };
  const routeOptions: RouteOptions = { ...settings, ...context, security };
  registerAuth(app, security.tokens);
  // Security headers on every answer; the dashboard sets its own stricter policy.
  await app.register(helmet, { contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });
  // Limits apply per route (commands, documents), per authenticated name or else per address.
  await app.register(rateLimit, {
    global: false,
    hook: 'preHandler',
    keyGenerator: (request) => request.actor?.name ?? request.ip,
    errorResponseBuilder: (_request, context) =>
      new PullingAgentError(
        'PA_RATE_LIMITED',
        `more than ${context.max} requests per minute to this endpoint; retry in ${Math.ceil(context.ttl / 1000)} s`,
      ),
  });

  // The OpenAPI document is generated from the same schemas that validate requests.
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'pulling-agent',
        version: SOFTWARE_VERSION,
        description: 'HTTP API of one pulling agent: cluster-wide control, this agent, documents, status.',
      },
    },
  });
  // The interactive viewer (/docs) is loaded on its first request.
  registerDocs(app);
  app.get('/openapi.json', { config: { role: null }, schema: { hide: true } }, async () => app.swagger());

  // Each group of routes is an encapsulated plugin: a hook one group needs (the cluster's
  // distributed-control check) applies to that group only.
  await app.register(async (group) => statusRoutes(group, routeOptions));
  await app.register(async (group) => {
    clusterGuard(group, routeOptions);
    clusterRoutes(group, routeOptions);
    policyRoutes(group, routeOptions);
    throughputRoutes(group, routeOptions);
    await group.register(fastifySSE, { heartbeatInterval: 15_000 });
    eventRoutes(group, routeOptions);
  });
  await app.register(async (group) => agentRoutes(group, routeOptions));
  await app.register(async (group) => documentRoutes(group, routeOptions));
  await app.register(async (group) => dashboardRoutes(group, routeOptions));
  return app;
}
