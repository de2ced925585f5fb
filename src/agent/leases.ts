// Every document an agent holds, from its claim until its outcome is written or it is given back,
// with the time by which its lease may have run out. One renewal statement extends them all every
// lease/3 (never two at once: a slow renewal skips a beat instead of queueing another), and a
// watch gives up any document whose lease could lapse before the next renewal lands, because
// another agent may then start it: its handler is aborted and its outcome ignored.

import type { Logger } from 'pino';

import { withDeadline } from '../control/deadline.js';
import { describeError } from '../errors.js';
import type { ClaimedDocument, Store } from '../stores/types.js';

export type HoldingPhase = 'buffered' | 'running' | 'recording';

export interface Holding {
  readonly document: ClaimedDocument;
  phase: HoldingPhase;
  /** performance.now() by which the store's lease may have run out, unless renewed. */
  leaseEnds: number;
  /** Set while the handler runs. */
  controller?: AbortController;
  /** Set once the lease may have run out: whatever the handler does is ignored. */
  lapsed?: boolean;
}

export interface LeaseKeeperOptions {
  store: Store;
  leaseMs: number;
  logger: Logger;
  onStoreError(): void;
  /** A holding whose lease may have run out; the keeper has already forgotten it. */
  onLapse(holding: Holding): void;
  /** The deadline of one renewal (STORE_TIMEOUT); default a third of the lease. */
  timeoutMs?: number;
}

export class LeaseKeeper {
  readonly #o: LeaseKeeperOptions;
  readonly #held = new Map<string, Holding>();
  #renewal: NodeJS.Timeout | null = null;
  #watch: NodeJS.Timeout | null = null;
  #renewing = false;

  constructor(options: LeaseKeeperOptions) {
    this.#o = options;
  }

  get size(): number {
    return this.#held.size;
  }

  /** The queues of the documents held, for the registry (a per-queue barrier waits on them). */
  queues(): Set<string> {
    const queues = new Set<string>();
    for (const h of this.#held.values()) queues.add(h.document.queue);
    return queues;
  }

  /** How many are in each phase, for the registry and the API. */
  count(phase: HoldingPhase): number {
    let n = 0;
    for (const h of this.#held.values()) if (h.phase === phase) n++;
    return n;
  }

  /** Starts holding claimed documents; `claimSentAt` is when the claim left (the lease runs from no earlier). */
  add(documents: ClaimedDocument[], claimSentAt: number): Holding[] {
    const leaseEnds = claimSentAt + this.#o.leaseMs;
    const added = documents.map((document): Holding => ({ document, phase: 'buffered', leaseEnds }));
    for (const h of added) this.#held.set(h.document.id, h);
    if (added.length > 0) this.#arm();
    return added;
  }

  /** Stops holding a document (recorded, released or lapsed). */
  forget(holding: Holding): void {
    if (this.#held.get(holding.document.id) === holding) this.#held.delete(holding.document.id);
    if (this.#held.size === 0) this.#disarm();
  }

  holds(holding: Holding): boolean {
    return this.#held.get(holding.document.id) === holding;
  }

  stop(): void {
    this.#disarm();
  }

  #arm(): void {
    const { leaseMs } = this.#o;
    this.#renewal ??= setInterval(() => void this.#renew(), Math.max(250, leaseMs / 3));
    this.#watch ??= setInterval(() => this.#checkLapses(), Math.min(250, leaseMs / 10));
  }

  #disarm(): void {
    if (this.#renewal) clearInterval(this.#renewal);
    if (this.#watch) clearInterval(this.#watch);
    this.#renewal = null;
    this.#watch = null;
  }

  async #renew(): Promise<void> {
    if (this.#renewing || this.#held.size === 0) return;
    this.#renewing = true;
    const holdings = [...this.#held.values()];
    const sent = performance.now();
    const call = this.#o.store.extendLeases(
      holdings.map((h) => ({ id: h.document.id, token: h.document.token })),
      this.#o.leaseMs,
    );
    // Still "renewing" until the store answers, also after the deadline: the next renewal is
    // skipped rather than queued behind a hung one. A late success still extends the leases.
    call
      .then(
        () => {
          for (const h of holdings) h.leaseEnds = Math.max(h.leaseEnds, sent + this.#o.leaseMs);
        },
        () => undefined,
      )
      .finally(() => {
        this.#renewing = false;
      });
    try {
      await withDeadline(call, this.#o.timeoutMs ?? this.#o.leaseMs / 3, 'extending leases');
    } catch (error) {
      this.#o.onStoreError();
      this.#o.logger.warn(`Could not extend leases: ${describeError(error)}`);
    }
  }

  #checkLapses(): void {
    // Give up a little before the store's lease could end, so that nobody else starts a document
    // while its handler here still runs (the margin covers timers that fire late).
    const margin = Math.min(1_000, this.#o.leaseMs / 10);
    const now = performance.now();
    for (const h of [...this.#held.values()]) {
      if (h.phase === 'recording' || now < h.leaseEnds - margin) continue;
      h.lapsed = true;
      this.forget(h);
      this.#o.onLapse(h);
    }
  }
}
