// Deadlines for the background calls (heartbeat, control reads, lease renewal): each call gives up
// after its own timeout instead of waiting on a store that stopped answering, and a call is never
// started while the previous one of its kind (for the heartbeat: the previous two) is still
// unsettled, so a hung store makes the agent skip beats rather than pile calls up behind it.

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

/**
 * At most `limit` calls of a kind unsettled at a time, each bounded by a deadline. A call that
 * missed its deadline still counts until it settles, so a hung store never holds more than
 * `limit` of them; `onSettled` hears each one settle (a caller that was refused can go again).
 */
export class BoundedCalls {
  readonly #pending = new Set<Promise<unknown>>();

  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly limit: number,
    readonly onSettled?: () => void,
  ) {}

  /** Calls started and not settled yet (also after their deadline). */
  get unsettled(): number {
    return this.#pending.size;
  }

  /** Resolves once no call is unsettled. */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Whether the next call would be refused. */
  get busy(): boolean {
    return this.#pending.size >= this.limit;
  }

  run<T>(call: () => Promise<T>): Promise<T> {
    if (this.busy) return Promise.reject(new SkippedCallError(this.what));
    const promise = call();
    this.#pending.add(promise);
    const settle = () => {
      this.#pending.delete(promise);
      this.onSettled?.();
    };
    promise.then(settle, settle);
    return withDeadline(promise, this.timeoutMs, this.what);
  }
}

/** One call of a kind at a time, each bounded by a deadline. */
export class OneAtATime extends BoundedCalls {
  constructor(what: string, timeoutMs: number) {
    super(what, timeoutMs, 1);
  }
}
