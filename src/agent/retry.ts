// When a failed attempt runs again: exponential backoff with jitter, written once above the stores
// (which only store the due time they are given). A handler may ask for its own delay by throwing
// an error that carries `retryAfter` (seconds, as in an HTTP Retry-After header, or a Date), for
// example RetryLaterError.

export interface BackoffSettings {
  /** Delay before the first retry, in ms; each further one doubles it. */
  baseMs: number;
  /** No delay is longer than this. */
  maxMs: number;
  /** Each delay is spread by ± this fraction, so that documents failed together do not return together. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = { baseMs: 5_000, maxMs: 3_600_000, jitter: 0.25 };

/** The longest delay a handler may ask for: beyond it, its document is as good as dropped. */
export const MAX_RETRY_AFTER_MS = 30 * 86_400_000;

/**
 * Throw this (or any error with a `retryAfter` property) from a handler to say when to try again:
 * `retryAfter` in seconds, or a Date. It still counts as a failed attempt.
 */
export class RetryLaterError extends Error {
  readonly retryAfter: number | Date;
  constructor(message: string, options: { retryAfter: number | Date; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetryLaterError';
    this.retryAfter = options.retryAfter;
  }
}

/** The delay before attempt `failedAttempts + 1`, after `failedAttempts` failures (1 or more). */
export function backoffDelayMs(failedAttempts: number, s: BackoffSettings, random = Math.random): number {
  const exponent = Math.max(0, Math.min(failedAttempts - 1, 60));
  const plain = Math.min(s.maxMs, s.baseMs * 2 ** exponent);
  const spread = 1 + s.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(s.maxMs, plain * spread)));
}

/** The delay a thrown error asks for, or null when it asks for none (or for nonsense). */
export function requestedDelayMs(error: unknown, now = Date.now()): number | null {
  if (error === null || typeof error !== 'object' || !('retryAfter' in error)) return null;
  const value = (error as { retryAfter: unknown }).retryAfter;
  let ms: number;
  if (value instanceof Date) ms = value.getTime() - now;
  else if (typeof value === 'number') ms = value * 1000;
  else if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
    ms = Number(value) * 1000;
  else if (typeof value === 'string' && Number.isFinite(Date.parse(value))) ms = Date.parse(value) - now;
  else return null;
  if (!Number.isFinite(ms)) return null;
  return Math.round(Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)));
}

/** When a failed document runs again: what its error asks for, else the backoff. */
export function retryDelayMs(
  error: unknown,
  failedAttempts: number,
  settings: BackoffSettings,
  random = Math.random,
): number {
  return requestedDelayMs(error) ?? backoffDelayMs(failedAttempts, settings, random);
}
