// Environment → typed, validated, frozen settings, in one place. The schema below is the single
// list of variables: it validates them (with Ajv, as Fastify does), carries each one's default and
// description, and docs/configuration.md is checked against it by a test.

import { hostname } from 'node:os';
import { join } from 'node:path';

import { Ajv } from 'ajv';
import { type Static, Type } from 'typebox';

import type { BackoffSettings } from './agent/retry.js';
import { type ApiToken, AUTH_OFF_WARNING, loadApiTokens } from './auth/tokens.js';
import { ConfigError } from './errors.js';
import { queueNameProblem } from './model/policy.js';
import { redactUrl } from './redact.js';
import type { StoreTarget } from './stores/target.js';

export { redactUrl } from './redact.js';

const Seconds = (def: number, description: string, minimum = 0.001) =>
  Type.Number({ default: def, minimum, maximum: 86_400, description });
const Int = (def: number, minimum: number, maximum: number, description: string) =>
  Type.Integer({ default: def, minimum, maximum, description });
const Bool = (def: boolean, description: string) => Type.Boolean({ default: def, description });

export const ENV_SCHEMA = Type.Object({
  PORT: Int(8000, 0, 65_535, 'HTTP port of the agent API (0 picks a free port).'),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1, description: 'Address the HTTP API listens on.' }),
  DATA_DIR: Type.String({ default: './data', minLength: 1, description: 'Folder of the embedded store.' }),
  STORE_URL: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Where the store is: sqlite:<path>, postgres://…, mongodb://… (default sqlite:$DATA_DIR/pulling-agent.db).',
    }),
  ),
  DATABASE_URL: Type.Optional(
    Type.String({ minLength: 1, description: 'Alias of STORE_URL for postgres:// URLs.' }),
  ),
  MONGODB_URI: Type.Optional(
    Type.String({ minLength: 1, description: 'Alias of STORE_URL for mongodb:// URLs.' }),
  ),
  MONGODB_DATABASE: Type.Optional(
    Type.String({ minLength: 1, description: 'MongoDB database (when the URL does not name one).' }),
  ),
  MONGODB_COLLECTION: Type.String({
    default: 'documents',
    minLength: 1,
    description: 'MongoDB collection of documents to pull.',
  }),
  QUEUE_FIELD: Type.String({
    default: 'queue',
    pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$',
    description: 'MongoDB: the field of each document that names its queue (a plain top-level name).',
  }),
  QUEUES: Type.Optional(
    Type.String({
      description: 'The queues this agent claims from, comma-separated (unset = every queue).',
    }),
  ),
  MONGODB_WATCH_DOCUMENTS: Bool(
    true,
    'A change stream on MONGODB_COLLECTION wakes idle agents when documents are stored; false leaves them to POLL_INTERVAL.',
  ),
  PG_SCHEMA: Type.String({
    default: 'pulling_agent',
    pattern: '^[a-z_][a-z0-9_]{0,62}$',
    description: 'PostgreSQL schema that holds the tables (lower-case identifier).',
  }),
  ENABLE_DISTRIBUTED_CONTROL: Bool(true, 'Watch the cluster control document; false = local control only.'),
  ENABLE_CHANGE_STREAMS: Bool(
    true,
    "Use the store's event-driven watch when it has one; false forces polling.",
  ),
  CONTROL_POLLING_INTERVAL: Seconds(10, 'Seconds between control polls in polling mode (±10 % jitter).'),
  CONTROL_RECONCILE_INTERVAL: Seconds(
    300,
    'Seconds between safety reads of the control version in event-driven mode (0 disables).',
    0,
  ),
  POLL_INTERVAL: Seconds(5, 'Seconds to wait after an empty claim before claiming again.'),
  BATCH_SIZE: Int(
    100,
    1,
    10_000,
    'The most documents one claim takes (free slots plus prefetch, capped by this).',
  ),
  CONCURRENCY: Int(
    1,
    1,
    1_000,
    'Handlers run at the same time (slots); each takes the next document once free.',
  ),
  PREFETCH: Type.String({
    default: 'auto',
    pattern: '^(auto|[0-9]{1,5})$',
    description:
      'Documents claimed beyond the free slots: auto (what the slots finish in two claim round trips) or a number (0 = none).',
  }),
  MAX_RETRIES: Int(
    3,
    0,
    1_000,
    'Retries of a document whose handler throws (or whose agent dies on it), before it is marked failed.',
  ),
  RETRY_BACKOFF_BASE: Seconds(5, 'Seconds before the first retry; each further retry doubles it.', 0),
  RETRY_BACKOFF_MAX: Seconds(3600, 'No retry waits longer than this many seconds.', 0),
  RETRY_BACKOFF_JITTER: Type.Number({
    default: 0.25,
    minimum: 0,
    maximum: 1,
    description: 'Each retry delay is spread by ± this fraction (0 to 1).',
  }),
  LEASE_TIMEOUT: Seconds(60, 'Seconds a claim is held without renewal before other agents may take it.', 1),
  SHUTDOWN_TIMEOUT: Seconds(30, 'Seconds a shutdown waits for running handlers before aborting them.', 0),
  HEARTBEAT_INTERVAL: Seconds(5, 'Seconds between registry heartbeats.', 0.1),
  STORE_TIMEOUT: Seconds(
    10,
    'Seconds one store call may take before it fails as unavailable and its connection is discarded.',
    0.1,
  ),
  AGENT_RETENTION: Seconds(
    3600,
    'Seconds after its last heartbeat before a lost agent leaves the registry.',
    1,
  ),
  AGENT_ID: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$',
      description: "This agent's id (default: the host name, the pod name in Kubernetes).",
    }),
  ),
  HANDLER: Type.Optional(
    Type.String({ minLength: 1, description: 'Path of a module whose default export handles one document.' }),
  ),
  CONTROL_FILE: Type.String({
    default: '/tmp/control/state',
    minLength: 1,
    description: 'Local control file (pause, resume/running, shutdown), e.g. a mounted ConfigMap.',
  }),
  API_TOKENS: Type.Optional(
    Type.String({
      description:
        'Bearer tokens, comma-separated name:role:token (role viewer, operator or admin). Unset = API open.',
    }),
  ),
  API_TOKENS_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'File of name:role:token lines (a mounted Secret); # starts a comment.',
    }),
  ),
  METRICS_AUTH: Bool(false, 'Require a viewer token for /metrics too (default: open for Prometheus).'),
  RATE_LIMIT_COMMANDS: Int(
    120,
    1,
    1_000_000,
    'Commands (POST /api/cluster/*, /api/agent/*) one client may send per minute.',
  ),
  RATE_LIMIT_DOCUMENTS: Int(
    600,
    1,
    1_000_000,
    'POST /api/documents requests one client may send per minute.',
  ),
  READINESS_WHEN_PAUSED: Type.Union([Type.Literal('unready'), Type.Literal('ready')], {
    default: 'unready',
    description: "unready (paused agents fail readiness, the seed's behaviour) or ready (they pass it).",
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'fatal, error, warn, info, debug, trace or silent.' },
  ),
  LOG_FORMAT: Type.Union([Type.Literal('text'), Type.Literal('json')], {
    default: 'text',
    description: 'text ([INFO] message lines, as the seed shows them) or json (one pino object a line).',
  }),
});

export type Env = Static<typeof ENV_SCHEMA>;
export type EnvName = keyof Env;
export const ENV_NAMES = Object.keys(ENV_SCHEMA.properties) as EnvName[];

export type { StoreTarget } from './stores/target.js';

export interface Config {
  port: number;
  host: string;
  store: StoreTarget;
  distributedControl: boolean;
  eventDriven: boolean;
  controlPollingIntervalMs: number;
  controlReconcileIntervalMs: number;
  pollIntervalMs: number;
  batchSize: number;
  concurrency: number;
  prefetch: number | 'auto';
  maxRetries: number;
  retryBackoff: Readonly<BackoffSettings>;
  leaseTimeoutMs: number;
  shutdownTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** The deadline of every store call (STORE_TIMEOUT). */
  storeTimeoutMs: number;
  agentRetentionMs: number;
  agentId: string;
  /** QUEUES: the queues this agent claims from, in the order given; null = every queue. */
  queues: readonly string[] | null;
  handler: string | undefined;
  controlFile: string;
  logLevel: string;
  logFormat: 'json' | 'text';
  apiTokens: readonly ApiToken[];
  metricsAuth: boolean;
  rateLimitCommands: number;
  rateLimitDocuments: number;
  readinessWhenPaused: 'unready' | 'ready';
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false });
const validateEnv = ajv.compile<Env>(ENV_SCHEMA);

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

function describeAllowed(name: string): string {
  const schema = (ENV_SCHEMA.properties as unknown as Record<string, Record<string, unknown>>)[name];
  if (!schema) return 'not a known variable';
  if (schema.type === 'boolean') return 'true or false';
  if (schema.anyOf) return (schema.anyOf as { const: string }[]).map((s) => s.const).join(', ');
  if (schema.type === 'integer') return `a whole number from ${schema.minimum} to ${schema.maximum}`;
  if (schema.type === 'number') return `a number of seconds from ${schema.minimum} to ${schema.maximum}`;
  if (schema.pattern) return `a value matching ${schema.pattern}`;
  return 'a non-empty string';
}

function parseStore(env: Env): { target?: StoreTarget; problem?: string } {
  const url =
    env.STORE_URL ??
    env.DATABASE_URL ??
    env.MONGODB_URI ??
    `sqlite:${join(env.DATA_DIR, 'pulling-agent.db')}`;
  const source = env.STORE_URL
    ? 'STORE_URL'
    : env.DATABASE_URL
      ? 'DATABASE_URL'
      : env.MONGODB_URI
        ? 'MONGODB_URI'
        : 'STORE_URL';
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '')
      return {
        problem: `${source}=${url}: a sqlite: URL needs a file path, e.g. sqlite:./data/pulling-agent.db`,
      };
    return { target: { kind: 'sqlite', path } };
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { target: { kind: 'postgres', url, schema: env.PG_SCHEMA } };
  if (/^mongodb(\+srv)?:\/\//.test(url)) {
    return {
      target: {
        kind: 'mongodb',
        url,
        database: env.MONGODB_DATABASE,
        collection: env.MONGODB_COLLECTION,
        queueField: env.QUEUE_FIELD,
        watchDocuments: env.MONGODB_WATCH_DOCUMENTS,
      },
    };
  }
  return {
    problem: `${source}=${redactUrl(url)}: must start with sqlite:, postgres://, postgresql://, mongodb:// or mongodb+srv://`,
  };
}

/** QUEUES as a list of valid names, or the problem naming the first bad one. */
function parseQueues(value: string | undefined): { queues: string[] | null; problem?: string } {
  if (value === undefined) return { queues: null };
  const queues: string[] = [];
  for (const item of value.split(',')) {
    const name = item.trim();
    const problem = queueNameProblem(name);
    if (problem !== null) return { queues: null, problem: `QUEUES=${JSON.stringify(value)}: ${problem}` };
    if (!queues.includes(name)) queues.push(name);
  }
  return { queues };
}

/** Reads and validates the environment; throws one ConfigError listing every problem. */
export function loadConfig(environment: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const name of ENV_NAMES) {
    const value = environment[name];
    if (value === undefined || value.trim() === '') continue; // empty = unset, never 0
    const schema = (ENV_SCHEMA.properties as unknown as Record<string, { type?: string }>)[name];
    if (schema?.type === 'boolean') {
      const lower = value.trim().toLowerCase();
      if (TRUE.has(lower)) raw[name] = true;
      else if (FALSE.has(lower)) raw[name] = false;
      else problems.push(`${name}=${JSON.stringify(value)} must be ${describeAllowed(name)}`);
      continue;
    }
    raw[name] = value.trim();
  }
  if (!validateEnv(raw)) {
    const seen = new Set<string>();
    for (const error of validateEnv.errors ?? []) {
      const name = error.instancePath.replace(/^\//, '').split('/')[0] ?? '';
      if (seen.has(name)) continue;
      seen.add(name);
      const shown =
        name.includes('URL') || name.includes('URI')
          ? redactUrl(String(environment[name]))
          : environment[name];
      problems.push(`${name}=${JSON.stringify(shown)} must be ${describeAllowed(name)}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const env = raw as Env;
  const store = parseStore(env);
  if (store.problem) problems.push(store.problem);
  const queues = parseQueues(env.QUEUES);
  if (queues.problem) problems.push(queues.problem);
  const tokens = loadApiTokens(env.API_TOKENS, env.API_TOKENS_FILE);
  problems.push(...tokens.problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    port: env.PORT,
    host: env.HOST,
    store: Object.freeze(store.target as StoreTarget),
    distributedControl: env.ENABLE_DISTRIBUTED_CONTROL,
    eventDriven: env.ENABLE_CHANGE_STREAMS,
    controlPollingIntervalMs: env.CONTROL_POLLING_INTERVAL * 1000,
    controlReconcileIntervalMs: env.CONTROL_RECONCILE_INTERVAL * 1000,
    pollIntervalMs: env.POLL_INTERVAL * 1000,
    batchSize: env.BATCH_SIZE,
    concurrency: env.CONCURRENCY,
    prefetch: env.PREFETCH === 'auto' ? 'auto' : Number(env.PREFETCH),
    maxRetries: env.MAX_RETRIES,
    retryBackoff: Object.freeze({
      baseMs: env.RETRY_BACKOFF_BASE * 1000,
      maxMs: Math.max(env.RETRY_BACKOFF_MAX, env.RETRY_BACKOFF_BASE) * 1000,
      jitter: env.RETRY_BACKOFF_JITTER,
    }),
    leaseTimeoutMs: env.LEASE_TIMEOUT * 1000,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT * 1000,
    heartbeatIntervalMs: env.HEARTBEAT_INTERVAL * 1000,
    storeTimeoutMs: env.STORE_TIMEOUT * 1000,
    agentRetentionMs: env.AGENT_RETENTION * 1000,
    agentId: env.AGENT_ID ?? hostname(),
    queues: queues.queues === null ? null : Object.freeze(queues.queues),
    handler: env.HANDLER,
    controlFile: env.CONTROL_FILE,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    apiTokens: Object.freeze(tokens.tokens),
    metricsAuth: env.METRICS_AUTH,
    rateLimitCommands: env.RATE_LIMIT_COMMANDS,
    rateLimitDocuments: env.RATE_LIMIT_DOCUMENTS,
    readinessWhenPaused: env.READINESS_WHEN_PAUSED,
  });
}

/** The effective settings as shown by GET /api/config: no secret, no credential inside a URL. */
export function publicConfig(config: Readonly<Config>): Record<string, unknown> {
  const store =
    config.store.kind === 'sqlite'
      ? { kind: 'sqlite', path: config.store.path }
      : { ...config.store, url: redactUrl(config.store.url) };
  const { apiTokens, ...rest } = config;
  return {
    ...rest,
    store,
    // Names and roles only: a token never leaves the agent.
    auth: {
      enabled: apiTokens.length > 0,
      tokens: apiTokens.map(({ name, role }) => ({ name, role })),
      ...(apiTokens.length === 0 ? { warning: AUTH_OFF_WARNING } : {}),
    },
  };
}
