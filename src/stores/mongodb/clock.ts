// The server's clock, as well as it can be had. Leases and heartbeats are compared across agents,
// so they are taken from one clock: the server's. FerretDB has no pipeline updates (`$$NOW`), so
// instead of asking the server in every write we estimate its clock from the `localTime` of a
// `hello` (corrected by half the round trip) and refresh that estimate once a minute. Where a
// write can say `$currentDate`, it does, and the server's own clock is exact.

import { type Db, MongoServerError } from 'mongodb';

export class ServerClock {
  readonly #db: Db;
  readonly #maxAgeMs: number;
  #offsetMs = 0;
  #sampledAt = Number.NEGATIVE_INFINITY;
  #sampling: Promise<void> | null = null;

  constructor(db: Db, maxAgeMs = 60_000) {
    this.#db = db;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Server time minus agent time, in milliseconds, as last measured. */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  async now(): Promise<Date> {
    if (performance.now() - this.#sampledAt > this.#maxAgeMs) await this.sample();
    return new Date(Date.now() + this.#offsetMs);
  }

  /** Measures the offset again; concurrent callers share one `hello`. */
  sample(): Promise<void> {
    this.#sampling ??= (async () => {
      try {
        const sent = Date.now();
        const reply = await this.#db.command({ hello: 1 });
        const received = Date.now();
        const serverTime = reply.localTime;
        // A server without localTime leaves the agent's own clock in use (offset 0).
        if (serverTime instanceof Date) this.#offsetMs = serverTime.getTime() - (sent + received) / 2;
        this.#sampledAt = performance.now();
      } catch (error) {
        // A server that refuses `hello` leaves the agent's clock in use; one that is down is news.
        if (!(error instanceof MongoServerError)) throw error;
        this.#sampledAt = performance.now();
      } finally {
        this.#sampling = null;
      }
    })();
    return this.#sampling;
  }
}
