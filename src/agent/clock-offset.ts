// This process's clock measured against the store's: read once at start and after every heartbeat,
// reported in the registry (clock_offset_ms) and warned about when it is more than a few seconds
// off, once each time it crosses that line. The stores stamp leases, heartbeats and due times by
// their own clock; what the agent computes itself against a stored time (a pause's expiry, an
// `expires_in`, a `delay`) goes through storeNow(), so that a wrong local clock changes nothing.

import type { Logger } from 'pino';

import { OneAtATime } from '../control/deadline.js';
import type { Store } from '../stores/types.js';

/** More than this off, the agent warns (and the registry's readers flag it). */
export const CLOCK_WARN_MS = 5_000;

function seconds(ms: number): string {
  return `${(Math.abs(ms) / 1000).toFixed(1)}s`;
}

export class ClockOffset {
  #offsetMs: number | undefined;
  #over = false;
  readonly #read: OneAtATime;

  constructor(
    private readonly store: () => Store,
    private readonly logger: Logger,
    timeoutMs: number,
  ) {
    this.#read = new OneAtATime('reading the store clock', timeoutMs);
  }

  /** This process's clock minus the store's, as last measured; undefined before the first. */
  get offsetMs(): number | undefined {
    return this.#offsetMs;
  }

  /** The store's time now (ms since the epoch): this process's clock, corrected by the offset. */
  storeNow(): number {
    return Date.now() - (this.#offsetMs ?? 0);
  }

  /** One store clock read, halfway through its round trip; a failed one keeps the last offset. */
  async measure(): Promise<void> {
    let offset: number;
    try {
      const sent = Date.now();
      const store = (await this.#read.run(() => this.store().readClock())).getTime();
      const received = Date.now();
      if (!Number.isFinite(store)) return;
      offset = Math.round((sent + received) / 2 - store);
    } catch {
      return; // the heartbeat and the control reads report a store that does not answer
    }
    this.#offsetMs = offset;
    const over = Math.abs(offset) > CLOCK_WARN_MS;
    if (over && !this.#over) {
      this.logger.warn(
        { clock_offset_ms: offset },
        `[Clock] This agent's clock is ${seconds(offset)} ${offset > 0 ? 'ahead of' : 'behind'} the store's (more than ${seconds(CLOCK_WARN_MS)}): leases, heartbeats and due times follow the store's clock, but fix this host's time`,
      );
    } else if (!over && this.#over) {
      this.logger.info(
        { clock_offset_ms: offset },
        `[Clock] This agent's clock is within ${seconds(CLOCK_WARN_MS)} of the store's again`,
      );
    }
    this.#over = over;
  }
}
