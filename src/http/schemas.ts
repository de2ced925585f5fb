// Request and response schemas shared by the routes: they validate requests (Fastify + Ajv) and
// describe responses; the same objects can feed an OpenAPI document.

import { Type } from 'typebox';

import { DURATION_PATTERN, EXPIRY_RULE } from '../control/duration.js';
import { CONTROL_COMMANDS } from '../model/control.js';
import { MAX_CONCURRENCY_CAP, MAX_RATE, QUEUE_NAME_PATTERN, QUEUE_NAME_RULE } from '../model/policy.js';
import { WATCH_MODES } from '../model/watch.js';

/** Printable text: no control characters (a log or a terminal must not be fooled by a reason). */
const NO_CONTROL_CHARS = '^[^\\u0000-\\u001f\\u007f]*$';

export const AuditText = (description: string) =>
  Type.String({ maxLength: 256, pattern: NO_CONTROL_CHARS, description });

/** A throttle's rate as a query parameter: a decimal number, or off (the range is checked after). */
export const RATE_PATTERN = '^(off|[0-9]+(\\.[0-9]+)?)$';
/** A throttle's slots cap as a query parameter: a whole number, or off. */
export const CONCURRENCY_PATTERN = '^(off|[0-9]+)$';

/**
 * What a value failing a pattern is told, by pattern: a rule in words with examples rather than a
 * regular expression (read by the error handler in app.ts).
 */
export const PATTERN_RULES: ReadonlyMap<string, string> = new Map([
  [DURATION_PATTERN, EXPIRY_RULE],
  [QUEUE_NAME_PATTERN.source, `must be a queue name: ${QUEUE_NAME_RULE}`],
  [
    RATE_PATTERN,
    `must be a number of documents per second above 0 and at most ${MAX_RATE} (30, 2.5), or off`,
  ],
  [CONCURRENCY_PATTERN, `must be a whole number from 1 to ${MAX_CONCURRENCY_CAP}, or off`],
]);

/** A queue name (src/model/policy.ts). */
export const QueueName = (description: string) =>
  Type.String({ maxLength: 64, pattern: QUEUE_NAME_PATTERN.source, description });

/** A duration in the grammar of src/control/duration.ts (`90`, `90s`, `2h`, `1h30m`, `2H`). */
export const DurationText = (description: string) =>
  Type.String({ maxLength: 32, pattern: DURATION_PATTERN, description });

export const AuditQuery = Type.Object(
  {
    reason: Type.Optional(AuditText('Why (kept in the history).')),
    updated_by: Type.Optional(AuditText('Who (kept in the history). Default: api.')),
  },
  { additionalProperties: true },
);

export const ControlCommandSchema = Type.Enum([...CONTROL_COMMANDS]);

export const ControlStateJson = Type.Object({
  command: ControlCommandSchema,
  version: Type.Integer({ minimum: 0 }),
  timestamp: Type.String({ format: 'date-time' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  updated_by: Type.String(),
  on_behalf_of: Type.Union([Type.String(), Type.Null()]),
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

/**
 * How this agent watches the control document; `starting` until it has read the cluster state and
 * established its watch (the HTTP API answers before that, so that probes can see the agent live).
 */
export const WatchModeSchema = Type.Enum([...WATCH_MODES, 'starting']);
