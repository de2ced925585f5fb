// This agent's processed and failed documents per minute over the last hour, counted as outcomes
// are recorded and sent with every heartbeat. Only minutes with an outcome are kept (at most 60).

import { epochMinute, type MinuteCount, RECENT_MINUTES } from '../model/throughput.js';

export class MinuteCounts {
  readonly #minutes = new Map<number, MinuteCount>();

  /** Counts one outcome; a retried attempt is neither processed nor failed yet. */
  record(outcome: 'processed' | 'retried' | 'failed', now = Date.now()): void {
    if (outcome === 'retried') return;
    const minute = epochMinute(now);
    let entry = this.#minutes.get(minute);
    if (!entry) {
      entry = { minute, processed: 0, failed: 0 };
      this.#minutes.set(minute, entry);
      this.#forget(minute);
    }
    entry[outcome]++;
  }

  /** The minutes of the last hour that had an outcome, oldest first (copies). */
  recent(now = Date.now()): MinuteCount[] {
    this.#forget(epochMinute(now));
    return [...this.#minutes.values()].sort((a, b) => a.minute - b.minute).map((m) => ({ ...m }));
  }

  #forget(current: number): void {
    for (const minute of this.#minutes.keys())
      if (minute <= current - RECENT_MINUTES) this.#minutes.delete(minute);
  }
}
