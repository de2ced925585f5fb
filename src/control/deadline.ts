// Deadlines for the background calls (heartbeat, control reads, lease renewal): each call gives up
// after its own timeout instead of waiting on a store that stopped answering, and a call is never
// started while the previous one of its kind is still unsettled, so a hung store makes the agent
// skip beats rather than pile calls up behind it.

import { StoreTimeoutError } from '../errors.js';

/** The previous call of this kind has not settled yet: this one was not started. */
export class SkippedCallError extends Error {
  constructor(what: string) {
    super(`skipped ${what}: the previous call has not answered yet`);
    this.name = 'SkippedCallError';
  }
}

/** Rejects with StoreTimeoutError once `ms` passed without an answer (the call itself goes on). */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return promise;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreTimeoutError(what, new Error(`no answer within ${Math.round(ms)} ms`))),
      ms,
    );
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** One call of a kind at a time, each bounded by a deadline. */
export class OneAtATime {
  #pending: Promise<unknown> | null = null;

  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {}

  /** Whether the last call has not settled yet (also after its deadline). */
  get busy(): boolean {
    return this.#pending !== null;
  }

  run<T>(call: () => Promise<T>): Promise<T> {
    if (this.#pending) return Promise.reject(new SkippedCallError(this.what));
    const promise = call();
    this.#pending = promise;
    const settle = () => {
      if (this.#pending === promise) this.#pending = null;
    };
    promise.then(settle, settle);
    return withDeadline(promise, this.timeoutMs, this.what);
  }
}
