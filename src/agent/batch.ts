// One claimed batch: its documents go through the handler up to `concurrency` at a time. A pause
// halts it (no new document starts, the ones not started go back to pending at once, the running
// ones finish); a shutdown that runs out of time aborts it (handlers get their AbortSignal, their
// documents go back to pending). Completions are written together, leases renewed meanwhile.
//
// The batch's writes (renewals, completions, failures, releases) go to the store one at a time:
// FerretDB applies an update as read, then write the whole document, so a renewal that overlapped
// a completion could write the document back as processing and undo it. And a lease whose
// renewals failed until it may have run out stops the batch: its handlers are aborted and their
// outcome ignored, because another agent may already be running the same documents.

import type { Logger } from 'pino';

import { describeError } from '../errors.js';
import type { ClaimedDocument, HeldDocument, Store } from '../stores/types.js';

export interface HandlerContext {
  /** Aborted when a shutdown runs out of time: stop and throw (or return) soon. */
  signal: AbortSignal;
  agentId: string;
  /** 0 on the first try, then the number of failed attempts so far. */
  attempt: number;
  logger: Logger;
}

export type DocumentHandler = (document: ClaimedDocument, context: HandlerContext) => unknown;

export interface BatchStats {
  documentsProcessed: number;
  documentsFailed: number;
  documentsRetried: number;
  handlerErrors: number;
  storeErrors: number;
  /** Batches stopped because their lease ran out without a renewal. */
  leasesLapsed: number;
}

export type DocumentOutcome = 'processed' | 'retried' | 'failed';

export interface BatchOptions {
  store: Store;
  agentId: string;
  handler: DocumentHandler;
  concurrency: number;
  maxRetries: number;
  leaseMs: number;
  logger: Logger;
  stats: BatchStats;
  /** Called once per handler that finished (not for aborted ones), with its duration. */
  onHandled?(outcome: DocumentOutcome, seconds: number): void;
  /** performance.now() when the claim was sent: the store's leases run from no earlier than that. */
  claimedAt?: number;
}

const MAX_ERROR_LENGTH = 4_000;

export class BatchRun {
  readonly #o: BatchOptions;
  readonly #queue: ClaimedDocument[];
  readonly #running = new Map<string, AbortController>();
  readonly #completed: string[] = [];
  /** Each document's claim token: the store acts only on (id, token) pairs. */
  readonly #tokens: Map<string, string>;
  #halted = false;
  #aborted = false;
  #abandon: (() => void) | null = null;
  /** performance.now() by which the leases may have run out, unless renewed before. */
  #leaseEnds: number;
  #lapsed = false;
  #renewing = false;
  /** The tail of the batch's store writes, which run one after the other. */
  #writes: Promise<unknown> = Promise.resolve();

  constructor(documents: ClaimedDocument[], options: BatchOptions) {
    this.#queue = [...documents];
    this.#tokens = new Map(documents.map((d) => [d.id, d.token]));
    this.#o = options;
    this.#leaseEnds = (options.claimedAt ?? performance.now()) + options.leaseMs;
  }

  /** Documents claimed but not yet started. */
  get notStarted(): number {
    return this.#queue.length;
  }

  /** Resolves when every started handler has settled (or was abandoned) and completions are written. */
  async run(): Promise<void> {
    const { concurrency, leaseMs } = this.#o;
    const renew = setInterval(() => void this.#renewLeases(), Math.max(250, leaseMs / 3));
    // Stop a little before the store's lease could end, so that nobody else starts these documents
    // while their handlers here still run (the margin covers timers firing late).
    const margin = Math.min(1_000, leaseMs / 10);
    const watch = setInterval(
      () => {
        if (performance.now() >= this.#leaseEnds - margin) this.#lapse();
      },
      Math.min(250, leaseMs / 10),
    );
    try {
      const workers = Array.from({ length: Math.min(concurrency, this.#queue.length) }, () => this.#work());
      await Promise.race([
        Promise.all(workers),
        new Promise<void>((resolve) => {
          this.#abandon = resolve;
        }),
      ]);
    } finally {
      clearInterval(renew);
      clearInterval(watch);
    }
    await this.#flushCompleted();
  }

  /** Pause: start nothing more and give the documents not started back at once. */
  async halt(): Promise<void> {
    if (this.#halted) return;
    this.#halted = true;
    const ids = this.#queue.splice(0).map((d) => d.id);
    await this.#release(ids, 'released on pause');
  }

  /** Shutdown timeout: abort running handlers, release their documents, stop waiting for them. */
  async abort(reason: string): Promise<void> {
    await this.halt();
    this.#aborted = true;
    const ids = [...this.#running.keys()];
    for (const controller of this.#running.values()) controller.abort(new Error(reason));
    this.#running.clear();
    await this.#release(ids, 'released after the shutdown timeout');
    this.#abandon?.();
  }

  /** The leases may have run out: abort the handlers, start nothing more, ignore what they do. */
  #lapse(): void {
    if (this.#lapsed || this.#aborted) return;
    this.#lapsed = true;
    this.#o.stats.leasesLapsed++;
    const waiting = this.#queue.splice(0).map((d) => d.id);
    this.#o.logger.warn(
      { running: this.#running.size, waiting: waiting.length },
      `Lease lapsed without a renewal: aborting ${this.#running.size} handler(s); other agents may take these documents`,
    );
    for (const controller of this.#running.values()) controller.abort(new Error('lease lapsed'));
    void this.#release(waiting, 'released after their lease lapsed');
  }

  /** The store's handles for these documents of the batch. */
  #held(ids: string[]): HeldDocument[] {
    return ids.map((id) => ({ id, token: this.#tokens.get(id) ?? '' }));
  }

  /** Runs one store write of this batch after the ones before it. */
  #serial<T>(write: () => Promise<T>): Promise<T> {
    const next = this.#writes.then(write, write);
    this.#writes = next.catch(() => undefined);
    return next;
  }

  async #work(): Promise<void> {
    for (;;) {
      if (this.#halted) return;
      const doc = this.#queue.shift();
      if (!doc) return;
      await this.#process(doc);
    }
  }

  async #process(doc: ClaimedDocument): Promise<void> {
    const { handler, agentId, logger, stats, store, maxRetries } = this.#o;
    const controller = new AbortController();
    this.#running.set(doc.id, controller);
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      await handler(doc, { signal: controller.signal, agentId, attempt: doc.attempts, logger });
      if (controller.signal.aborted) return;
      this.#completed.push(doc.id);
      stats.documentsProcessed++;
      this.#o.onHandled?.('processed', seconds());
    } catch (error) {
      if (controller.signal.aborted) return;
      stats.handlerErrors++;
      const message = describeError(error).slice(0, MAX_ERROR_LENGTH);
      try {
        const [status = null] = await this.#serial(() =>
          store.failDocuments([{ id: doc.id, token: doc.token, error: message }], maxRetries),
        );
        if (status === 'failed') stats.documentsFailed++;
        else if (status === 'pending') stats.documentsRetried++;
        if (status) this.#o.onHandled?.(status === 'failed' ? 'failed' : 'retried', seconds());
        logger.warn({ document: doc.id, attempt: doc.attempts + 1, status }, `Handler failed: ${message}`);
      } catch (storeError) {
        stats.storeErrors++;
        // The lease runs out and the document is retried by someone: nothing is lost.
        logger.error({ document: doc.id }, `Could not record a failure: ${describeError(storeError)}`);
      }
    } finally {
      this.#running.delete(doc.id);
    }
  }

  async #renewLeases(): Promise<void> {
    // One renewal at a time: a slow one is not joined by the next.
    if (this.#renewing || this.#lapsed || this.#aborted) return;
    this.#renewing = true;
    try {
      await this.#serial(async () => {
        const ids = [...this.#running.keys(), ...this.#queue.map((d) => d.id), ...this.#completed];
        const sent = performance.now();
        await this.#o.store.extendLeases(this.#held(ids), this.#o.leaseMs);
        this.#leaseEnds = sent + this.#o.leaseMs;
      });
    } catch (error) {
      this.#o.stats.storeErrors++;
      this.#o.logger.warn(`Could not extend leases: ${describeError(error)}`);
    } finally {
      this.#renewing = false;
    }
  }

  async #flushCompleted(): Promise<void> {
    const ids = this.#completed.splice(0);
    if (ids.length === 0) return;
    // Retry for up to half a lease; after that another agent may legitimately take them again.
    const deadline = Date.now() + this.#o.leaseMs / 2;
    let delay = 100;
    for (;;) {
      try {
        const completed = await this.#serial(() => this.#o.store.completeDocuments(this.#held(ids)));
        if (completed < ids.length) {
          this.#o.logger.warn(
            { documents: ids.length - completed },
            'Processed documents no longer held by this agent (their lease had run out): their completion was not recorded',
          );
        }
        return;
      } catch (error) {
        this.#o.stats.storeErrors++;
        if (Date.now() > deadline) {
          this.#o.logger.error(
            { documents: ids.length },
            `Could not record processed documents; they will be retried after their lease: ${describeError(error)}`,
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 2_000);
      }
    }
  }

  async #release(ids: string[], why: string): Promise<void> {
    if (ids.length === 0) return;
    try {
      const released = await this.#serial(() => this.#o.store.releaseDocuments(this.#held(ids)));
      this.#o.logger.info({ documents: released }, `Documents ${why}`);
    } catch (error) {
      this.#o.stats.storeErrors++;
      this.#o.logger.warn(`Could not release documents (their lease will): ${describeError(error)}`);
    }
  }
}
