// Records handlers' outcomes in groups: everything that finished within one short window (or while
// the previous group was being written) goes to the store as one completeDocuments and one
// failDocuments statement. Nothing waits for a batch to end, so a killed agent re-runs only the
// documents it was running plus the last unwritten window. The idea is graphile-worker's
// completeJobBatchDelay; the window here is small enough to be invisible next to a round trip.

import type { Logger } from 'pino';

import { describeError } from '../errors.js';
import type { DocumentStatus } from '../model/documents.js';
import type { FailedAttempt, HeldDocument, Store } from '../stores/types.js';
import { traceRecord } from './tracing.js';

/** How long the first outcome of a group waits for others before the group is written. */
export const DEFAULT_COMPLETION_WINDOW_MS = 2;

export interface RecorderOptions {
  store: Store;
  maxRetries: number;
  /** Writing a group is retried for this long; after it the leases decide (at-least-once). */
  retryForMs: number;
  windowMs?: number;
  logger: Logger;
  onStoreError(): void;
}

/** What became of an outcome: written (with the status a failure led to), or not held any more. */
export type Recorded =
  { held: true; status: DocumentStatus } | { held: false } | { held: null; error: string };

interface Waiting<T> {
  item: T;
  resolve(result: Recorded): void;
}

export class OutcomeRecorder {
  readonly #o: RecorderOptions;
  #completions: Waiting<HeldDocument>[] = [];
  #failures: Waiting<FailedAttempt>[] = [];
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  /** Groups written, for the tests and the metrics. */
  groups = 0;

  constructor(options: RecorderOptions) {
    this.#o = options;
  }

  /** Outcomes not yet written. */
  get pending(): number {
    return this.#completions.length + this.#failures.length;
  }

  complete(document: HeldDocument): Promise<Recorded> {
    return this.#add(this.#completions, document);
  }

  fail(failure: FailedAttempt): Promise<Recorded> {
    return this.#add(this.#failures, failure);
  }

  /** Writes everything queued now, and resolves once nothing is left unwritten. */
  async flush(): Promise<void> {
    while (this.#writing || this.pending > 0) {
      if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
      if (!this.#writing) this.#startWrite();
      await this.#writing;
    }
  }

  #add<T>(queue: Waiting<T>[], item: T): Promise<Recorded> {
    return new Promise<Recorded>((resolve) => {
      queue.push({ item, resolve });
      // A group being written takes what arrives meanwhile as the next group, right after it.
      if (!this.#writing && !this.#timer) {
        this.#timer = setTimeout(() => {
          this.#timer = null;
          this.#startWrite();
        }, this.#o.windowMs ?? DEFAULT_COMPLETION_WINDOW_MS);
      }
    });
  }

  #startWrite(): void {
    const completions = this.#completions.splice(0);
    const failures = this.#failures.splice(0);
    this.#writing = traceRecord(completions.length, failures.length, async () => {
      const errors = await Promise.all([this.#writeCompletions(completions), this.#writeFailures(failures)]);
      return errors[0] ?? errors[1];
    }).finally(() => {
      this.#writing = null;
      this.groups++;
      if (this.pending > 0 && !this.#timer) this.#startWrite();
    });
  }

  /** Resolves with the error that kept the group from being written, if any. */
  async #writeCompletions(group: Waiting<HeldDocument>[]): Promise<string | null> {
    if (group.length === 0) return null;
    const held = group.map((w) => w.item);
    const result = await this.#withRetries('record processed documents', () =>
      this.#o.store.completeDocuments(held),
    );
    if (result.ok) {
      // The store says how many it still held, not which: a shortfall means some leases had
      // lapsed, and their documents will run again elsewhere (or already did).
      if (result.value < held.length) {
        this.#o.logger.warn(
          { documents: held.length - result.value },
          'Processed documents no longer held by this agent (their lease had run out): their completion was not recorded',
        );
      }
      for (const w of group) w.resolve({ held: true, status: 'processed' });
      return null;
    }
    for (const w of group) w.resolve({ held: null, error: result.error });
    return result.error;
  }

  async #writeFailures(group: Waiting<FailedAttempt>[]): Promise<string | null> {
    if (group.length === 0) return null;
    const failures = group.map((w) => w.item);
    const result = await this.#withRetries('record failed attempts', () =>
      this.#o.store.failDocuments(failures, this.#o.maxRetries),
    );
    group.forEach((w, i) => {
      if (!result.ok) return w.resolve({ held: null, error: result.error });
      const status = result.value[i];
      w.resolve(status ? { held: true, status } : { held: false });
    });
    return result.ok ? null : result.error;
  }

  async #withRetries<T>(
    what: string,
    write: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false; error: string }> {
    const deadline = performance.now() + this.#o.retryForMs;
    let delay = 50;
    for (;;) {
      try {
        return { ok: true, value: await write() };
      } catch (error) {
        this.#o.onStoreError();
        if (performance.now() + delay > deadline) {
          const message = describeError(error);
          this.#o.logger.error(`Could not ${what}; they run again after their lease: ${message}`);
          return { ok: false, error: message };
        }
        this.#o.logger.warn(`Could not ${what}, retrying in ${delay} ms: ${describeError(error)}`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 2_000);
      }
    }
  }
}
