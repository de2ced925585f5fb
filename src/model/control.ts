// The control document of the domain: the commands, the state every agent follows, and its
// parsing. A control document can be edited by hand (the seed's mongosh recipes), so every store
// parses what it reads through here and a bad document becomes one clear InvalidControlStateError
// instead of a crash or a wrong command. Depends on nothing of ours but the error registry.

import { InvalidControlStateError } from '../errors.js';
import { toDate, toNonNegativeInteger } from './values.js';

/** The `_id` of the one control document (the seed's layout). */
export const CONTROL_ID = 'global_control';

export const CONTROL_COMMANDS = ['running', 'pause', 'shutdown'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

/** The single current control document (`_id: "global_control"`), and each history entry. */
export interface ControlState {
  command: ControlCommand;
  /** Strictly increasing by one per command; 0 for a new store. */
  version: number;
  /** Taken by the store's clock when the command was written. */
  timestamp: Date;
  reason: string | null;
  updated_by: string;
  /**
   * With authentication, `updated_by` is the token's name; a different name the caller gave is
   * kept here ("on behalf of"), never as the actor. Null otherwise.
   */
  on_behalf_of: string | null;
  /** A pause that ends by itself: the fleet resumes at this time (written by `system`). */
  expires_at: Date | null;
}

export function isControlCommand(value: unknown): value is ControlCommand {
  return typeof value === 'string' && (CONTROL_COMMANDS as readonly string[]).includes(value);
}

/** Parses the version field alone (for the cheap version-only read). */
export function parseControlVersion(raw: unknown): number {
  if (raw === null || raw === undefined) throw new InvalidControlStateError('the document is missing');
  const version = toNonNegativeInteger((raw as Record<string, unknown>).version);
  if (version === null) {
    throw new InvalidControlStateError(
      `version ${JSON.stringify(String((raw as Record<string, unknown>).version ?? 'missing'))} is not a non-negative integer`,
    );
  }
  return version;
}

/** Parses a raw record into a ControlState, or throws InvalidControlStateError naming the field. */
export function parseControlState(raw: unknown): ControlState {
  if (raw === null || raw === undefined) throw new InvalidControlStateError('the document is missing');
  if (typeof raw !== 'object') throw new InvalidControlStateError('the document is not an object');
  const r = raw as Record<string, unknown>;
  if (!isControlCommand(r.command)) {
    throw new InvalidControlStateError(
      `command ${JSON.stringify(r.command ?? null)} is not one of ${CONTROL_COMMANDS.join(', ')}`,
    );
  }
  const version = parseControlVersion(r);
  const timestamp = toDate(r.timestamp);
  if (timestamp === null) throw new InvalidControlStateError('timestamp is missing or not a date');
  if (r.reason !== null && r.reason !== undefined && typeof r.reason !== 'string') {
    throw new InvalidControlStateError('reason is not a string');
  }
  if (typeof r.updated_by !== 'string') throw new InvalidControlStateError('updated_by is not a string');
  if (r.on_behalf_of !== null && r.on_behalf_of !== undefined && typeof r.on_behalf_of !== 'string') {
    throw new InvalidControlStateError('on_behalf_of is not a string');
  }
  let expiresAt: Date | null = null;
  if (r.expires_at !== null && r.expires_at !== undefined) {
    expiresAt = toDate(r.expires_at);
    if (expiresAt === null) throw new InvalidControlStateError('expires_at is not a date');
  }
  return {
    command: r.command,
    version,
    timestamp,
    reason: typeof r.reason === 'string' ? r.reason : null,
    updated_by: r.updated_by,
    on_behalf_of: typeof r.on_behalf_of === 'string' ? r.on_behalf_of : null,
    expires_at: expiresAt,
  };
}

/** Same as parseControlState but for history listings: a bad entry is skipped, not fatal. */
export function tryParseControlState(raw: unknown): ControlState | null {
  try {
    return parseControlState(raw);
  } catch {
    return null;
  }
}

/** The JSON form used by the HTTP API and logs. */
export function controlStateToJson(state: ControlState): {
  command: ControlCommand;
  version: number;
  timestamp: string;
  reason: string | null;
  updated_by: string;
  on_behalf_of: string | null;
  expires_at: string | null;
} {
  return {
    command: state.command,
    version: state.version,
    timestamp: state.timestamp.toISOString(),
    reason: state.reason,
    updated_by: state.updated_by,
    on_behalf_of: state.on_behalf_of,
    expires_at: state.expires_at?.toISOString() ?? null,
  };
}
