// The success bodies of the read endpoints, as TypeBox schemas: Fastify serializes each answer
// through its schema (a field missing here is dropped from the answer), /openapi.json describes
// them, and agentctl derives its types from them (src/cli/agentctl/types.ts). Bodies that may grow
// (an agent row, a document, the settings) admit properties they do not list, so a field added by
// a store or a newer agent still passes through.

import { Type } from 'typebox';

import { AGENT_STATES } from '../agent/lifecycle.js';
import { DOCUMENT_STATUSES } from '../model/documents.js';
import { ControlCommandSchema, ControlStateJson, WatchModeSchema } from './schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const When = (description?: string) =>
  Type.String({ format: 'date-time', ...(description ? { description } : {}) });

export const HealthBody = Type.Object({
  status: Type.Literal('ok'),
  state: Type.Enum([...AGENT_STATES]),
  timestamp: When(),
});

export const AgentStatsBody = Type.Object({
  agent_id: Type.String(),
  state: Type.Enum([...AGENT_STATES]),
  version: Type.String({ description: 'The software version.' }),
  uptime_seconds: Type.Integer(),
  started_at: When(),
  batches: Type.Integer(),
  claims: Type.Integer(),
  documents_processed: Type.Integer(),
  documents_failed: Type.Integer(),
  documents_retried: Type.Integer(),
  errors: Type.Integer({ description: 'handler_errors + store_errors' }),
  handler_errors: Type.Integer(),
  store_errors: Type.Integer(),
  leases_lapsed: Type.Integer(),
  batch_in_flight: Type.Boolean(),
  last_batch_at: Nullable(When()),
  last_heartbeat: Nullable(When()),
  applied_version: Type.Integer({ description: '-1 until the first control state is applied.' }),
  applied_at: Nullable(When()),
});

export const PublicConfigBody = Type.Object(
  {},
  { additionalProperties: true, description: 'The effective settings, without secrets (docs/api.md).' },
);

export const ClusterStatsBody = Type.Object({
  watch_mode: WatchModeSchema,
  polling_interval: Type.Number({ description: 'Seconds.' }),
  reconcile_interval: Type.Number({ description: 'Seconds.' }),
  current_command: ControlCommandSchema,
  current_version: Type.Integer(),
  last_updated: When(),
  updated_by: Type.String(),
  reason: Nullable(Type.String()),
  applied_version: Nullable(Type.Integer()),
  last_check: Nullable(When()),
  control_error: Nullable(Type.String()),
});

export const HistoryBody = Type.Object({
  history: Type.Array(ControlStateJson, { description: 'Newest first.' }),
  count: Type.Integer(),
});

/** One agent of the registry as GET /api/cluster/agents shows it (src/control/fleet.ts). */
export const FleetAgentJson = Type.Object(
  {
    agent_id: Type.String({ description: 'The human name (AGENT_ID); two processes may share it.' }),
    instance_id: Type.String({ description: "The process's own id, unique per start: the registry's key." }),
    host: Type.String(),
    software_version: Type.String(),
    state: Type.String({ description: '`lost` after three missed heartbeats; else reported_state.' }),
    reported_state: Type.String(),
    applied_version: Type.Integer(),
    applied_at: Nullable(When()),
    batch_in_flight: Type.Boolean(),
    watch_mode: Type.String(),
    started_at: When(),
    heartbeat_at: When(),
    heartbeat_age_seconds: Type.Number(),
    clock_offset_ms: Type.Optional(
      Type.Union([Type.Number(), Type.Null()], {
        description:
          "The agent's clock minus the store's, in ms, as the agent measured it (positive: ahead); more than 5000 either way is flagged. Null when not measured (or an agent too old to measure it).",
      }),
    ),
    applied_policy_version: Type.Optional(
      Type.Union([Type.Integer(), Type.Null()], {
        description: 'The fleet policy version it applies; null for an agent too old to follow one.',
      }),
    ),
    queues_in_flight: Type.Optional(
      Type.Union([Type.Array(Type.String()), Type.Null()], {
        description:
          'The queues of the documents it holds (a queue pause waits for them); null for an older agent.',
      }),
    ),
    counters: Type.Object({}, { additionalProperties: Type.Number() }),
  },
  { additionalProperties: true },
);

export const FleetSummaryJson = Type.Object({
  total: Type.Integer(),
  live: Type.Integer(),
  lost: Type.Integer(),
  applied: Type.Integer(),
  drained: Type.Integer(),
  stragglers: Type.Array(Type.String(), {
    description:
      'Live agents not yet applied (or drained); agent_id@<instance id prefix> where two live processes share the agent_id.',
  }),
  duplicate_agent_ids: Type.Array(Type.String(), {
    description: 'agent_ids held by more than one live process: a configuration mistake.',
  }),
  unconfirmed: Type.Optional(
    Type.Array(Type.String(), {
      description:
        'For pause and shutdown: agents lost while holding documents, whose leases may still run (`<agent_id> (lost while holding documents; its leases may run until <time>)`); they count as stragglers until then.',
    }),
  ),
});

export const FleetBody = Type.Object({
  desired: Type.Object({ command: ControlCommandSchema, version: Type.Integer() }),
  summary: FleetSummaryJson,
  agents: Type.Array(FleetAgentJson),
  control_error: Type.Optional(
    Type.String({
      description:
        'Present while the stored control document is malformed: `desired` is the last state this agent applied.',
    }),
  ),
});

/** POST /api/documents (201): the ids in the order the documents were given. */
export const EnqueuedBody = Type.Object({
  status: Type.Literal('success'),
  count: Type.Integer({ description: 'How many documents were given (the length of ids).' }),
  ids: Type.Array(Type.String(), { description: 'One per document given, in input order.' }),
  duplicates: Type.Array(Type.String(), {
    description:
      'The ids among `ids` that already existed: an unfinished document held the same key, so nothing was stored for it.',
  }),
});

const CountsJson = Type.Object(
  Object.fromEntries(DOCUMENT_STATUSES.map((status) => [status, Type.Integer()])) as Record<
    (typeof DOCUMENT_STATUSES)[number],
    ReturnType<typeof Type.Integer>
  >,
  { additionalProperties: true },
);

export const DocumentCountsBody = Type.Object({ counts: CountsJson });

/** The fields of a document that a list shows: everything but the payload, to keep pages small. */
const documentFields = {
  id: Type.String(),
  status: Type.Enum([...DOCUMENT_STATUSES], {
    description: '`scheduled`: pending but not due yet (run_at is later).',
  }),
  queue: Type.String({ description: 'Its queue (`default` unless it was stored with one).' }),
  attempts: Type.Integer({ description: 'Failed attempts so far, all of them (a manual retry keeps them).' }),
  claimed_by: Nullable(Type.String()),
  error: Nullable(Type.String({ description: "The last failed attempt's error." })),
  created_at: When(),
  updated_at: When(),
  processed_at: Nullable(When()),
  run_at: Nullable(When('When a pending document is due (its next attempt); null otherwise.')),
  key: Nullable(Type.String({ description: 'Its deduplication key, if it was stored with one.' })),
};

/** One row of GET /api/documents. */
export const DocumentSummaryJson = Type.Object(documentFields, { additionalProperties: true });

/** GET /api/queues: every queue that has documents, by name, with its counts. */
export const QueueListBody = Type.Object({
  queues: Type.Array(
    Type.Object({ queue: Type.String(), counts: CountsJson }, { additionalProperties: false }),
    { description: 'Every queue that has documents, by name.' },
  ),
  count: Type.Integer({ description: 'How many queues.' }),
});

/** GET /api/documents: the counts (as before), then a page of documents. */
export const DocumentListBody = Type.Object({
  counts: Type.Object(CountsJson.properties, {
    additionalProperties: true,
    description: "Every document's, or with `queue` that queue's.",
  }),
  documents: Type.Array(DocumentSummaryJson, { description: 'In id order; without their payloads.' }),
  next_cursor: Nullable(Type.String({ description: 'Pass as `cursor` for the next page; null at the end.' })),
});

export const DocumentBody = Type.Object(
  {
    ...documentFields,
    // Optional as JSON.stringify had it: a MongoDB document stored without the field has none.
    payload: Type.Optional(Type.Unknown({ description: 'The document as it was stored.' })),
  },
  { additionalProperties: true },
);

/** POST /api/documents/{id}/retry: the document as it is now (pending, due now). */
export const RetriedBody = Type.Object({
  status: Type.Literal('success'),
  count: Type.Integer({ description: '1.' }),
  document: DocumentBody,
});

/** POST /api/documents/retry?status=failed. */
export const RetriedAllBody = Type.Object({
  status: Type.Literal('success'),
  count: Type.Integer({
    description: 'How many failed documents went back to pending (0 when none was failed).',
  }),
});

/** DELETE /api/documents/{id}. */
export const DiscardedBody = Type.Object({
  status: Type.Literal('success'),
  id: Type.String(),
  message: Type.String(),
});

const MinuteJson = Type.Object({
  minute: When('The start of the minute (UTC).'),
  processed: Type.Integer(),
  failed: Type.Integer(),
});

/** GET /api/cluster/throughput: the live agents' last hour, summed per minute. */
export const ThroughputBody = Type.Object({
  minutes: Type.Array(MinuteJson, {
    description: 'The last 60 minutes, oldest first; the last one is the current, unfinished minute.',
  }),
  total: Type.Object(
    { processed: Type.Integer(), failed: Type.Integer() },
    { description: 'The sum of the minutes.' },
  ),
  agents: Type.Array(
    Type.Object(
      {
        agent_id: Type.String(),
        instance_id: Type.String(),
        processed: Type.Integer({
          description: 'Since the agent started (its documents_processed counter).',
        }),
        failed: Type.Integer({ description: 'Since the agent started (its documents_failed counter).' }),
        processed_last_hour: Type.Integer(),
        failed_last_hour: Type.Integer(),
        processed_per_minute: Type.Number({
          description:
            'Processed per minute over the last 5 minutes (over its uptime when shorter, at least 1 minute).',
        }),
      },
      { additionalProperties: true },
    ),
    { description: 'The live agents summed, by agent_id then instance_id.' },
  ),
  read_at: When('When the registry was read (answers are shared for up to 2 s).'),
});

// The fleet policy (src/model/policy.ts): GET /api/cluster/policy, control-state's `policy`.

const RuleJson = {
  reason: Type.Union([Type.String(), Type.Null()]),
  updated_by: Type.String(),
  on_behalf_of: Type.Union([Type.String(), Type.Null()]),
  since_version: Type.Integer({ minimum: 0, description: 'The policy version that set it.' }),
  expires_at: Nullable(When()),
};

export const PolicyJson = Type.Object({
  version: Type.Integer({
    minimum: 0,
    description: 'The policy version: +1 per queue pause, resume or throttle.',
  }),
  timestamp: When(),
  paused_queues: Type.Record(Type.String(), Type.Object(RuleJson), { description: 'Paused queues by name.' }),
  throttle: Type.Union([
    Type.Object({
      ...RuleJson,
      rate: Type.Union([Type.Number(), Type.Null()], { description: 'Documents per second, whole fleet.' }),
      concurrency: Type.Union([Type.Integer(), Type.Null()], { description: 'Slots per agent at most.' }),
      rate_expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
        description: 'When the rate ends by itself (each field keeps the expiry of the command that set it).',
      }),
      concurrency_expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
        description: 'When the concurrency cap ends by itself.',
      }),
    }),
    Type.Null(),
  ]),
  queue_rates: Type.Record(Type.String(), Type.Object({ ...RuleJson, rate: Type.Number() }), {
    description: 'Documents per second per queue, whole fleet.',
  }),
});

export const PolicyHistoryJson = Type.Object({
  version: Type.Integer(),
  timestamp: When(),
  command: Type.Enum(['pause', 'resume', 'throttle']),
  queue: Type.Union([Type.String(), Type.Null()]),
  rate: Type.Union([Type.Number(), Type.Null()]),
  concurrency: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  updated_by: Type.String(),
  on_behalf_of: Type.Union([Type.String(), Type.Null()]),
  expires_at: Nullable(When()),
});
