// Every error the project raises on purpose: a stable code, an HTTP status, a message that reads
// the same on every store, and the JSON body an HTTP answer carries it in. docs/errors.md documents
// each code; test/unit/errors.test.ts keeps the two in step.

import { Type } from 'typebox';

export const ERROR_CODES = {
  PA_CONFIG_INVALID: { status: 500, title: 'Invalid configuration' },
  PA_BAD_REQUEST: { status: 400, title: 'Bad request' },
  PA_INVALID_JSON: { status: 400, title: 'Malformed JSON body' },
  PA_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  PA_PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  PA_UNAUTHORIZED: { status: 401, title: 'Authentication required' },
  PA_FORBIDDEN: { status: 403, title: 'Role too low' },
  PA_RATE_LIMITED: { status: 429, title: 'Too many requests' },
  PA_NOT_FOUND: { status: 404, title: 'Not found' },
  PA_NOT_ACCEPTABLE: { status: 406, title: 'Not acceptable' },
  PA_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  PA_DISTRIBUTED_CONTROL_DISABLED: { status: 503, title: 'Distributed control is disabled' },
  PA_VERSION_CONFLICT: { status: 409, title: 'Control version moved' },
  PA_VERSION_EXHAUSTED: { status: 409, title: 'Control version cannot grow' },
  PA_STORE_UNAVAILABLE: { status: 503, title: 'Store unavailable' },
  PA_WAIT_TIMEOUT: { status: 504, title: 'Command written, agents did not all apply it in time' },
  PA_INVALID_CONTROL_STATE: { status: 500, title: 'Control document is malformed' },
  PA_INVALID_POLICY: { status: 500, title: 'Fleet policy document is malformed' },
  PA_SCHEMA_TOO_NEW: { status: 500, title: 'Store schema is newer than this agent' },
  PA_AGENT_STOPPING: { status: 409, title: 'Agent is shutting down' },
  PA_NOT_FAILED: { status: 409, title: 'Document is not failed' },
  PA_DOCUMENT_PROCESSING: { status: 409, title: 'Document is being processed' },
  PA_INTERNAL: { status: 500, title: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The body of every HTTP error answer (docs/errors.md): extra fields (details) are allowed. */
export const ErrorBody = Type.Object(
  {
    status: Type.Literal('error'),
    error: Type.String({ description: 'A stable code from docs/errors.md.' }),
    message: Type.String(),
  },
  { additionalProperties: true },
);

/** An error as the HTTP API sends it: the code, the message, then any details beside them. */
export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>) {
  return { status: 'error' as const, error: code, message, ...details };
}

export class PullingAgentError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** Extra fields for the JSON body of an HTTP error (never a secret). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PullingAgentError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.details = details;
  }
}

export class ConfigError extends PullingAgentError {
  constructor(problems: string[]) {
    super('PA_CONFIG_INVALID', `Invalid configuration:\n  - ${problems.join('\n  - ')}`, {
      problems,
    });
    this.name = 'ConfigError';
  }
}

export class VersionConflictError extends PullingAgentError {
  /** `document` is `control` for the control document, `policy` for the fleet policy. */
  constructor(expected: number, current: number, document: 'control' | 'policy' = 'control') {
    super(
      'PA_VERSION_CONFLICT',
      `expected ${document} version ${expected} but the current version is ${current}`,
      { expected_version: expected, current_version: current },
    );
    this.name = 'VersionConflictError';
  }
}

/** A command would take the control (or policy) version past 2^53 − 1, which JSON and JavaScript cannot hold. */
export class VersionExhaustedError extends PullingAgentError {
  constructor(current: number | bigint | string, document: 'control' | 'policy' = 'control') {
    super(
      'PA_VERSION_EXHAUSTED',
      document === 'control'
        ? `the control version ${String(current)} cannot grow past ${Number.MAX_SAFE_INTEGER} (2^53 - 1); nothing was written. Repair the control row by hand: set its version to 1 more than the highest history entry you keep, after deleting the larger ones (docs/stores.md, "A control version near 2^53")`
        : `the policy version ${String(current)} cannot grow past ${Number.MAX_SAFE_INTEGER} (2^53 - 1); nothing was written. Repair the policy by hand: delete the policy history entries you do not keep and set its version to 1 more than the highest one left (docs/stores.md, "Repairing the fleet policy")`,
      { current_version: String(current) },
    );
    this.name = 'VersionExhaustedError';
  }
}

export class StoreUnavailableError extends PullingAgentError {
  constructor(what: string, cause: unknown) {
    super(
      'PA_STORE_UNAVAILABLE',
      `store unavailable while ${what}: ${describeError(cause)}`,
      undefined,
      cause,
    );
    this.name = 'StoreUnavailableError';
  }
}

/**
 * A store call that missed its deadline (STORE_TIMEOUT): unavailable like any other outage (same
 * code, same retries), told apart so that the agent can count it. The connection it used has been
 * discarded by the store; the next call gets a fresh one.
 */
export class StoreTimeoutError extends StoreUnavailableError {
  readonly timedOut = true;
  constructor(what: string, cause: unknown) {
    super(what, cause);
    this.name = 'StoreTimeoutError';
  }
}

/** Whether an error is a missed store deadline (StoreTimeoutError, also across module copies). */
export function isStoreTimeout(error: unknown): boolean {
  return error instanceof StoreTimeoutError || (error as { timedOut?: unknown } | null)?.timedOut === true;
}

export class InvalidControlStateError extends PullingAgentError {
  constructor(problem: string) {
    super('PA_INVALID_CONTROL_STATE', `control document global_control is malformed: ${problem}`, {
      problem,
    });
    this.name = 'InvalidControlStateError';
  }
}

/** The fleet policy document (src/model/policy.ts) does not parse; agents keep the last one applied. */
export class InvalidPolicyError extends PullingAgentError {
  constructor(problem: string) {
    super('PA_INVALID_POLICY', `fleet policy document fleet_policy is malformed: ${problem}`, { problem });
    this.name = 'InvalidPolicyError';
  }
}

/** Thrown by Store.watchControl: `${feature} not available: ${reason}` is what the log shows. */
export class WatchUnavailableError extends Error {
  readonly feature: string;
  readonly reason: string;
  constructor(feature: string, reason: string) {
    super(`${feature} not available: ${reason}`);
    this.name = 'WatchUnavailableError';
    this.feature = feature;
    this.reason = reason;
  }
}

/** A one-line description of anything thrown, without a stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
