// Which driver errors mean "the server cannot be reached right now". Those become
// StoreUnavailableError, so that the agent keeps its state and retries; anything else (a bug, a
// constraint, a dropped table) is rethrown unchanged.

import { PullingAgentError, StoreTimeoutError, StoreUnavailableError } from '../../errors.js';

/** Socket errors from Node while connecting or talking to the server. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

/**
 * SQLSTATEs that a retry later can cure: connection exceptions (08), insufficient resources such
 * as too many connections (53), shutdown and start-up (57P0x), authentication and a missing
 * database while connecting (28, 3D000), and a read-only server during a failover (25006).
 */
const SQLSTATE = /^(08|53|57P0[1-4]|28|3D000$|25006$)/;

/** Errors node-postgres raises itself, without a code, when a connection ends or cannot be had. */
const DRIVER_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|is not queryable|Query read timeout/i;

/**
 * A missed deadline: the client's query_timeout, the server's statement_timeout (57014, which is
 * also a cancel by hand or by pg_cancel_backend; both mean "try again"), or a connection that
 * could not be had in time.
 */
export function isTimeout(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if ((error as { code?: unknown }).code === '57014') return true;
  return /Query read timeout|timeout exceeded when trying to connect|connection timeout/i.test(error.message);
}

/** The client's own query_timeout: the connection gave no answer at all (not a slow statement). */
export function isSilentConnection(error: unknown): boolean {
  const cause = error instanceof StoreTimeoutError ? (error as { cause?: unknown }).cause : error;
  return cause instanceof Error && /Query read timeout/i.test(cause.message);
}

export function isUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || SQLSTATE.test(code))) return true;
  if (error instanceof AggregateError) return error.errors.some(isUnreachable); // every address failed
  return DRIVER_MESSAGES.test(error.message);
}

/** Text PostgreSQL cannot store: U+0000 in text or jsonb, or characters outside the encoding. */
const UNSTORABLE = new Set(['22P05', '22021']);

/**
 * Runs one store operation and translates an unreachable server into StoreUnavailableError, and a
 * value PostgreSQL cannot store into PA_BAD_REQUEST (SQLite would have taken it).
 */
export async function guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof PullingAgentError) throw error;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && UNSTORABLE.has(code)) {
      throw new PullingAgentError(
        'PA_BAD_REQUEST',
        `PostgreSQL cannot store this value while ${what}: ${(error as Error).message}`,
        undefined,
        error,
      );
    }
    if (isTimeout(error)) throw new StoreTimeoutError(what, error);
    if (!isUnreachable(error)) throw error;
    throw new StoreUnavailableError(what, error);
  }
}
