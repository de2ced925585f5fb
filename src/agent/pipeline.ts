// The document runtime: CONCURRENCY slots, each taking the next document from a small local buffer
// the moment it is free. The agent claims again as soon as slots free up (one claim at a time, so
// the slots that free while a claim is on its way are filled by the next one): the claim asks for
// the free slots plus a prefetch, capped by BATCH_SIZE. No slot ever waits for another document.
//
// Prefetch `auto` keeps just enough documents buffered to cover one claim round trip at the rate
// the slots finish them: fast handlers get claims of up to BATCH_SIZE, slow ones get none, so a
// fleet shares a backlog of slow documents instead of one agent holding it unstarted.
//
// Stopping (pause): nothing new starts, the buffer goes back to pending at once, running handlers
// finish and their outcomes are written. Abort (shutdown timeout, forced shutdown): running
// handlers get their AbortSignal, their documents go back to pending, and nobody waits for them.

import type { Logger } from 'pino';

import { describeError } from '../errors.js';
import type { ClaimedDocument, ClaimFilter, ClaimOwner, HeldDocument, Store } from '../stores/types.js';
import { type Holding, LeaseKeeper } from './leases.js';
import { OutcomeRecorder } from './recorder.js';
import { type BackoffSettings, DEFAULT_BACKOFF, retryDelayMs } from './retry.js';
import {
  endHandleSpan,
  endHandleSpanAfter,
  inHandleSpan,
  startHandleSpan,
  traceClaim,
  type TracedOutcome,
  tracedOutcome,
} from './tracing.js';

export interface HandlerContext {
  /** Aborted when a shutdown runs out of time or the lease lapsed: stop and throw (or return) soon. */
  signal: AbortSignal;
  agentId: string;
  /** 0 on the first try, then the number of failed attempts so far. */
  attempt: number;
  logger: Logger;
}

export type DocumentHandler = (document: ClaimedDocument, context: HandlerContext) => unknown;

export type DocumentOutcome = 'processed' | 'retried' | 'failed';

export interface RuntimeStats {
  /** Claims that returned documents. */
  batches: number;
  claims: number;
  lastBatchAt: Date | null;
  documentsProcessed: number;
  documentsFailed: number;
  documentsRetried: number;
  handlerErrors: number;
  storeErrors: number;
  /** Documents given up because their lease could have run out without a renewal. */
  leasesLapsed: number;
  /** Documents whose lease had run out on a dead agent, counted as a failed attempt here. */
  leasesRecovered: number;
}

export interface PipelineOptions {
  store: Store;
  owner: ClaimOwner;
  handler: DocumentHandler;
  concurrency: number;
  /** The most one claim takes. */
  batchSize: number;
  /** Documents claimed beyond the free slots; `auto` follows the handlers' rate. */
  prefetch: number | 'auto';
  maxRetries: number;
  /** When a failed document runs again (a handler's own retryAfter wins). */
  backoff?: BackoffSettings;
  leaseMs: number;
  /** Wait after an empty claim, unless new documents wake the pipeline first. */
  pollIntervalMs: number;
  /**
   * Which queues the next claim takes from, asked before every claim (QUEUES today; the queues
   * paused across the fleet can be excluded through it). Every queue when absent.
   */
  claimFilter?: () => ClaimFilter;
  completionWindowMs?: number;
  logger: Logger;
  stats: RuntimeStats;
  onClaimed?(count: number, seconds: number): void;
  onHandled?(outcome: DocumentOutcome, seconds: number): void;
  /** Nothing is held any more (every outcome written or given back) while the pipeline is stopped. */
  onDrained?(): void;
}

const MAX_ERROR_LENGTH = 4_000;
/** Smoothing of the handler-duration and claim-latency estimates behind `auto` prefetch. */
const EWMA = 0.2;

export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #leases: LeaseKeeper;
  readonly #recorder: OutcomeRecorder;
  readonly #buffer: Holding[] = [];
  #concurrency: number;
  #active = 0;
  #running = false;
  #closed = false;
  #claiming: Promise<void> | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #idle = false;
  #claimBackoffMs = 0;
  /** Wake-up count to cap the next claim at (new documents announced while idle). */
  #announced: number | null = null;
  #handlerSeconds: number | null = null;
  #claimSeconds = 0.002;
  #drainWaiters: (() => void)[] = [];
  /** Documents whose handler is running (a lapsed one too, until its handler returns). */
  readonly #active_ = new Set<Holding>();
  /** Handlers aborted by abort(): nobody waits for them any more. */
  readonly #abandoned = new Set<Holding>();
  /** New documents were announced while a claim was on its way: claim again if it comes back empty. */
  #wokenWhileClaiming = false;
  #sweepTimer: NodeJS.Timeout | null = null;
  #sweeping = false;

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#concurrency = options.concurrency;
    this.#leases = new LeaseKeeper({
      store: options.store,
      leaseMs: options.leaseMs,
      logger: options.logger,
      onStoreError: () => options.stats.storeErrors++,
      onLapse: (h) => this.#lapse(h),
    });
    this.#recorder = new OutcomeRecorder({
      store: options.store,
      maxRetries: options.maxRetries,
      retryForMs: options.leaseMs / 2,
      windowMs: options.completionWindowMs,
      logger: options.logger,
      onStoreError: () => options.stats.storeErrors++,
    });
  }

  /** Documents held: buffered, running, or with their outcome being written; plus a claim on its way. */
  get inFlight(): number {
    let lapsedRunning = 0;
    for (const h of this.#active_) if (h.lapsed && !this.#abandoned.has(h)) lapsedRunning++;
    return this.#leases.size + lapsedRunning + (this.#claiming ? 1 : 0);
  }
  get running(): number {
    return this.#leases.count('running');
  }
  get buffered(): number {
    return this.#buffer.length;
  }
  get concurrency(): number {
    return this.#concurrency;
  }
  /** Outcome groups written so far. */
  get groupsWritten(): number {
    return this.#recorder.groups;
  }

  /** Claims and runs documents until stop(). */
  start(): void {
    if (this.#closed) return;
    this.#running = true;
    if (!this.#sweepTimer) {
      // A dead agent's documents come back within a lease and a quarter (at most 15 s more).
      const every = Math.min(15_000, Math.max(250, this.#o.leaseMs / 4));
      this.#sweepTimer = setInterval(() => void this.#recoverExpired(), every);
      void this.#recoverExpired();
    }
    this.#pump();
  }

  /** Pause: start nothing more, give the buffer back at once; running handlers finish. */
  stop(): void {
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    if (!this.#running) return;
    this.#running = false;
    this.#clearIdle();
    void this.#giveBack(this.#buffer.splice(0), 'released on pause');
    this.#checkDrained();
  }

  /** Changes the number of slots at once; running handlers beyond it finish first. */
  setConcurrency(n: number): void {
    this.#concurrency = Math.max(1, Math.floor(n));
    this.#pump();
  }

  /** New documents were stored: an idle pipeline claims now instead of after its poll interval. */
  wake(announced?: { count: number }): void {
    if (!this.#running) return;
    if (this.#claiming) this.#wokenWhileClaiming = true;
    if (!this.#idle) return;
    if (announced) this.#announced = Math.max(1, announced.count);
    this.#clearIdle();
    this.#pump();
  }

  /** Resolves when nothing is held any more (after stop(), once running handlers finished). */
  drained(): Promise<void> {
    if (this.#isDrained()) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Shutdown timeout: aborts running handlers, gives their documents back, stops waiting for them. */
  async abort(reason: string): Promise<void> {
    this.stop();
    const running = [...this.#active_].filter((h) => !h.lapsed);
    for (const h of running) {
      this.#abandoned.add(h);
      h.controller?.abort(new Error(reason));
      this.#leases.forget(h);
    }
    await this.#giveBack(running, `released after the ${reason}`);
    await this.#claiming;
    await this.#recorder.flush();
    this.#checkDrained();
  }

  /** Stops for good: waits for the claim on its way and the outcomes being written. */
  async close(): Promise<void> {
    this.stop();
    this.#closed = true;
    await this.#claiming;
    await this.#recorder.flush();
    this.#leases.stop();
  }

  /** Handlers still running that someone waits for (not those abort() gave up on). */
  #handlersRunning(): number {
    let n = 0;
    for (const h of this.#active_) if (!this.#abandoned.has(h)) n++;
    return n;
  }

  #isDrained(): boolean {
    return (
      !this.#running && this.#leases.size === 0 && this.#claiming === null && this.#handlersRunning() === 0
    );
  }

  #checkDrained(): void {
    if (!this.#isDrained()) return;
    const waiters = this.#drainWaiters.splice(0);
    for (const resolve of waiters) resolve();
    this.#o.onDrained?.();
  }

  /** Fills free slots from the buffer, then claims if the buffer runs low. */
  #pump(): void {
    if (!this.#running) return;
    while (this.#active < this.#concurrency && this.#buffer.length > 0) {
      this.#active++;
      void this.#slot();
    }
    if (this.#claiming || this.#idle) return;
    const prefetch = this.#prefetch();
    const free = this.#concurrency - this.#active;
    // Claim when a slot has nothing to take, or when the buffer fell to half its prefetch: a
    // claim per finished document would cost a round trip per document.
    if (free <= 0 && this.#buffer.length > Math.floor(prefetch / 2)) return;
    let wanted = Math.min(this.#o.batchSize, free + prefetch - this.#buffer.length);
    if (this.#announced !== null) wanted = Math.min(wanted, Math.max(this.#announced, free));
    this.#announced = null;
    if (wanted <= 0) return;
    this.#claiming = this.#claim(wanted).finally(() => {
      this.#claiming = null;
      if (this.#running) this.#pump();
      else this.#checkDrained();
    });
  }

  #prefetch(): number {
    const { prefetch, batchSize } = this.#o;
    if (prefetch !== 'auto') return prefetch;
    if (this.#handlerSeconds === null) return 0;
    // As many as the slots finish in two claim round trips.
    const rate = this.#concurrency / Math.max(this.#handlerSeconds, 1e-6);
    return Math.min(batchSize, Math.floor(rate * this.#claimSeconds * 2));
  }

  async #claim(wanted: number): Promise<void> {
    const { store, owner, leaseMs, stats, logger, claimFilter } = this.#o;
    const sent = performance.now();
    this.#wokenWhileClaiming = false;
    let documents: ClaimedDocument[];
    try {
      const filter = claimFilter?.();
      documents = await traceClaim(store.kind, wanted, () =>
        store.claimBatch(owner, wanted, leaseMs, filter),
      );
      stats.claims++;
      this.#claimBackoffMs = 0;
    } catch (error) {
      stats.storeErrors++;
      this.#claimBackoffMs = Math.min(Math.max(this.#claimBackoffMs * 2, 250), 30_000);
      logger.warn(`Claim failed, retrying in ${this.#claimBackoffMs} ms: ${describeError(error)}`);
      this.#rest(this.#claimBackoffMs);
      return;
    }
    const seconds = (performance.now() - sent) / 1000;
    this.#claimSeconds = this.#claimSeconds * (1 - EWMA) + seconds * EWMA;
    this.#o.onClaimed?.(documents.length, seconds);
    if (documents.length === 0) {
      // Documents announced while this claim was on its way may have missed it: look again.
      if (!this.#wokenWhileClaiming) this.#rest(this.#o.pollIntervalMs);
      return;
    }
    stats.batches++;
    stats.lastBatchAt = new Date();
    const holdings = this.#leases.add(documents, sent);
    // A pause may have come while the claim was on its way: give them back at once.
    if (!this.#running) {
      await this.#giveBack(holdings, 'released on pause');
      return;
    }
    this.#buffer.push(...holdings);
  }

  /** A crash is an attempt: documents left processing by a dead agent count one and come back. */
  async #recoverExpired(): Promise<void> {
    if (this.#sweeping || !this.#running) return;
    this.#sweeping = true;
    try {
      // Spread over up to a lease (30 s at most): documents that died together, beside a poison
      // document, come back at different times and are not claimed with it again.
      const spreadMs = Math.min(30_000, this.#o.leaseMs);
      const { retried, failed } = await this.#o.store.recoverExpiredLeases(this.#o.maxRetries, spreadMs);
      if (retried + failed === 0) return;
      this.#o.stats.leasesRecovered += retried + failed;
      this.#o.stats.documentsRetried += retried;
      this.#o.stats.documentsFailed += failed;
      this.#o.logger.warn(
        { retried, failed },
        `Recovered ${retried + failed} document(s) whose agent stopped before finishing (lease expired): ${retried} back to pending, ${failed} failed for good`,
      );
      if (retried > 0) this.wake({ count: retried });
    } catch (error) {
      this.#o.stats.storeErrors++;
      this.#o.logger.warn(`Could not recover expired leases: ${describeError(error)}`);
    } finally {
      this.#sweeping = false;
    }
  }

  /** Claims nothing for ms, unless woken by new documents (after an empty claim) or stopped. */
  #rest(ms: number): void {
    this.#idle = true;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.#idle = false;
      this.#pump();
    }, ms);
  }

  #clearIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    this.#idle = false;
  }

  async #slot(): Promise<void> {
    try {
      for (;;) {
        if (!this.#running || this.#active > this.#concurrency) return;
        const holding = this.#buffer.shift();
        if (!holding) return;
        await this.#process(holding);
      }
    } finally {
      this.#active--;
      this.#pump();
    }
  }

  async #process(h: Holding): Promise<void> {
    const { handler, owner, logger } = this.#o;
    const { document } = h;
    const controller = new AbortController();
    h.phase = 'running';
    h.controller = controller;
    this.#active_.add(h);
    const started = performance.now();
    const span = startHandleSpan(document);
    let outcome: { ok: true } | { ok: false; message: string; retryInMs: number };
    try {
      await inHandleSpan(span, () =>
        handler(document, {
          signal: controller.signal,
          agentId: owner.agentId,
          attempt: document.attempts,
          logger,
        }),
      );
      outcome = { ok: true };
    } catch (error) {
      outcome = {
        ok: false,
        message: describeError(error).slice(0, MAX_ERROR_LENGTH),
        retryInMs: retryDelayMs(error, document.attempts + 1, this.#o.backoff ?? DEFAULT_BACKOFF),
      };
    } finally {
      this.#active_.delete(h);
    }
    const seconds = (performance.now() - started) / 1000;
    this.#handlerSeconds =
      this.#handlerSeconds === null ? seconds : this.#handlerSeconds * (1 - EWMA) + seconds * EWMA;
    // Aborted (shutdown timeout) or lapsed: its document is someone else's business now.
    if (this.#abandoned.delete(h) || h.lapsed || !this.#leases.holds(h)) {
      endHandleSpan(span, 'abandoned', started + seconds * 1000);
      this.#checkDrained();
      return;
    }
    h.phase = 'recording';
    h.controller = undefined;
    // The slot takes its next document now; the outcome is written in the background.
    endHandleSpanAfter(span, this.#record(h, outcome, seconds), started + seconds * 1000);
  }

  async #record(
    h: Holding,
    outcome: { ok: true } | { ok: false; message: string; retryInMs: number },
    seconds: number,
  ): Promise<TracedOutcome> {
    const { stats, logger } = this.#o;
    const held: HeldDocument = { id: h.document.id, token: h.document.token };
    try {
      if (outcome.ok) {
        const recorded = await this.#recorder.complete(held);
        if (recorded.held === true) {
          stats.documentsProcessed++;
          this.#o.onHandled?.('processed', seconds);
        }
        return tracedOutcome(recorded);
      }
      stats.handlerErrors++;
      const recorded = await this.#recorder.fail({
        ...held,
        error: outcome.message,
        retryInMs: outcome.retryInMs,
      });
      if (recorded.held === true) {
        const failed = recorded.status === 'failed';
        if (failed) stats.documentsFailed++;
        else stats.documentsRetried++;
        this.#o.onHandled?.(failed ? 'failed' : 'retried', seconds);
      }
      const status = recorded.held === true ? recorded.status : null;
      const retry = status === 'pending' ? `; retrying in ${Math.round(outcome.retryInMs / 100) / 10} s` : '';
      logger.warn(
        { document: held.id, attempt: h.document.attempts + 1, status, retry_in_ms: outcome.retryInMs },
        `Handler failed: ${outcome.message}${retry}`,
      );
      return tracedOutcome(recorded);
    } finally {
      this.#leases.forget(h);
      this.#checkDrained();
    }
  }

  #lapse(h: Holding): void {
    this.#o.stats.leasesLapsed++;
    const index = this.#buffer.indexOf(h);
    if (index >= 0) this.#buffer.splice(index, 1);
    if (h.phase === 'running') {
      this.#o.logger.warn(
        { document: h.document.id },
        'Lease lapsed without a renewal: aborting its handler; other agents may take this document',
      );
      h.controller?.abort(new Error('lease lapsed'));
    } else {
      void this.#giveBack([h], 'released after their lease lapsed');
    }
    this.#checkDrained();
  }

  async #giveBack(holdings: Holding[], why: string): Promise<void> {
    if (holdings.length === 0) return;
    for (const h of holdings) this.#leases.forget(h);
    try {
      const released = await this.#o.store.releaseDocuments(
        holdings.map((h) => ({ id: h.document.id, token: h.document.token })),
      );
      this.#o.logger.info({ documents: released }, `Documents ${why}`);
    } catch (error) {
      this.#o.stats.storeErrors++;
      this.#o.logger.warn(`Could not release documents (their lease will): ${describeError(error)}`);
    } finally {
      this.#checkDrained();
    }
  }
}
