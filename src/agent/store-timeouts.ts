// Missed store deadlines, seen from the agent: every call through the store this wraps that fails
// with StoreTimeoutError (the store's own deadline, STORE_TIMEOUT) is counted, and the agent logs
// one line when calls start timing out and one when a call answers again, not one per retry.

import type { Logger } from 'pino';

import { describeError, isStoreTimeout } from '../errors.js';
import type { CallOptions, Store } from '../stores/types.js';

/** The deadline a call was given of its own (upsertAgent's CallOptions), if any. */
function ownDeadline(property: string | symbol, args: unknown[]): number | undefined {
  if (property !== 'upsertAgent') return undefined;
  return (args[1] as CallOptions | undefined)?.timeoutMs;
}

export interface StoreTimeoutOptions {
  logger: Logger;
  timeoutMs: number;
  /** One call missed its deadline. */
  onTimeout(): void;
}

/** The same store, with its missed deadlines counted and logged once per episode. */
export function countStoreTimeouts(store: Store, options: StoreTimeoutOptions): Store {
  let timingOut = false;
  const failed = (what: string, error: unknown, ownMs: number | undefined) => {
    if (!isStoreTimeout(error)) return;
    options.onTimeout();
    if (timingOut) return;
    timingOut = true;
    // A call with a deadline of its own (the heartbeat's, CallOptions) names that one.
    const deadline =
      ownMs === undefined ? `STORE_TIMEOUT=${options.timeoutMs / 1000}s` : `its own ${ownMs / 1000}s`;
    options.logger.warn(
      `Store call missed its deadline (${deadline}) while ${what}: ${describeError(error)}; its connection was discarded. Further timeouts are counted in pulling_agent_store_timeouts_total until a call answers in time`,
    );
  };
  const answered = () => {
    if (!timingOut) return;
    timingOut = false;
    options.logger.info('Store calls answer in time again');
  };
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'close' || property === 'watchControl') return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (v: unknown) => {
            answered();
            return v;
          },
          (error: unknown) => {
            failed(String(property), error, ownDeadline(property, args));
            throw error;
          },
        );
      };
    },
  });
}
