// One claimed batch: its documents go through the handler up to `concurrency` at a time. A pause
// halts it (no new document starts, the ones not started go back to pending at once, the running
// ones finish); a shutdown that runs out of time aborts it (handlers get their AbortSignal, their
// documents go back to pending). Completions are written together, leases renewed meanwhile.

import type { Logger } from 'pino';

import { describeError } from '../errors.js';
import type { ClaimedDocument, Store } from '../stores/types.js';

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
}

const MAX_ERROR_LENGTH = 4_000;

export class BatchRun {
  readonly #o: BatchOptions;
  readonly #queue: ClaimedDocument[];
  readonly #running = new Map<string, AbortController>();
  readonly #completed: string[] = [];
  #halted = false;
  #aborted = false;
  #abandon: (() => void) | null = null;

  constructor(documents: ClaimedDocument[], options: BatchOptions) {
    this.#queue = [...documents];
    this.#o = options;
  }

  /** Documents claimed but not yet started. */
  get notStarted(): number {
    return this.#queue.length;
  }

  /** Resolves when every started handler has settled (or was abandoned) and completions are written. */
  async run(): Promise<void> {
    const { concurrency, leaseMs } = this.#o;
    const renew = setInterval(() => void this.#renewLeases(), Math.max(1_000, leaseMs / 3));
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
      if (this.#aborted) return;
      this.#completed.push(doc.id);
      stats.documentsProcessed++;
      this.#o.onHandled?.('processed', seconds());
    } catch (error) {
      if (this.#aborted) return;
      stats.handlerErrors++;
      const message = describeError(error).slice(0, MAX_ERROR_LENGTH);
      try {
        const status = await store.failDocument(agentId, doc.id, message, maxRetries);
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
    const ids = [...this.#running.keys(), ...this.#queue.map((d) => d.id), ...this.#completed];
    try {
      await this.#o.store.extendLeases(this.#o.agentId, ids, this.#o.leaseMs);
    } catch (error) {
      this.#o.stats.storeErrors++;
      this.#o.logger.warn(`Could not extend leases: ${describeError(error)}`);
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
        await this.#o.store.completeDocuments(this.#o.agentId, ids);
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
      const released = await this.#o.store.releaseDocuments(this.#o.agentId, ids);
      this.#o.logger.info({ documents: released }, `Documents ${why}`);
    } catch (error) {
      this.#o.stats.storeErrors++;
      this.#o.logger.warn(`Could not release documents (their lease will): ${describeError(error)}`);
    }
  }
}
