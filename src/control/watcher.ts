// Watching the control document, written once above the stores. It opens the store's
// event-driven watch when there is one and polls when there is not (or while it is broken), tries
// to upgrade back with exponential backoff and jitter, re-reads after every (re)connect, and does a
// slow reconcile read even when events flow. Every read passes through the version gate, so each
// new version reaches onState exactly once and in order, however many times it is seen.

import type { Logger } from 'pino';

import { describeError, InvalidControlStateError, WatchUnavailableError } from '../errors.js';
import type { ControlState } from '../model/control.js';
import type { WatchMode } from '../model/watch.js';
import type { ControlWatch, Store, StoreReplacement } from '../stores/types.js';
import { OneAtATime } from './deadline.js';
import { VersionGate } from './gate.js';

export interface ControlWatcherOptions {
  store: Store;
  logger: Logger;
  /** Try the store's event-driven watch (ENABLE_CHANGE_STREAMS). */
  eventDriven: boolean;
  pollingIntervalMs: number;
  /** Safety read while event-driven; 0 disables. */
  reconcileIntervalMs: number;
  /** Called once per new version, in order. May be async; reads wait for it. */
  onState(state: ControlState): void | Promise<void>;
  /** New documents were stored (when the store can tell). */
  onDocuments?(announced?: { count: number }): void;
  /** The fleet policy changed (WatchHandlers.onPolicy); stores that cannot tell wake onWake instead. */
  onPolicy?(announced?: { version: number }): void;
  /** Every wake-up, whatever it announced: a follower of the policy re-reads it on stores that cannot tell. */
  onAnyWake?(): void;
  /** Delays of the upgrade-back attempts (tests shorten them). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /**
   * The deadline of one control read (STORE_TIMEOUT); default the polling interval. While a read
   * that missed it is still unsettled, the next one is skipped rather than queued behind it.
   */
  readTimeoutMs?: number;
}

export interface ControlWatcherStatus {
  watchMode: WatchMode;
  appliedVersion: number;
  lastCheckAt: Date | null;
  /** The last problem reading the control document (store down, malformed document), if unresolved. */
  lastError: string | null;
}

/** ±10 % so that a fleet does not poll in lock step. */
export function jitter(ms: number, fraction = 0.1): number {
  return ms * (1 - fraction + Math.random() * 2 * fraction);
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

export class ControlWatcher {
  readonly #o: ControlWatcherOptions;
  readonly #gate = new VersionGate();
  #watch: ControlWatch | null = null;
  #mode: WatchMode = 'polling';
  #stopped = false;
  #pollTimer: NodeJS.Timeout | null = null;
  #reconcileTimer: NodeJS.Timeout | null = null;
  #upgradeTimer: NodeJS.Timeout | null = null;
  /** A read that failed while event-driven is tried again after this (polling retries on its own). */
  #retryTimer: NodeJS.Timeout | null = null;
  #upgradeAttempts = 0;
  #checking: Promise<void> | null = null;
  #checkAgain = false;
  #lastCheckAt: Date | null = null;
  /** Also what was last logged: a problem is logged when it differs from this, once. */
  #lastError: string | null = null;
  #lastWatchReason: string | null = null;
  #unsubscribe: (() => void) | null = null;
  /** The state applied before the store was replaced, until the new store's is read. */
  #beforeReplacement: ControlState | null = null;

  readonly #reads: OneAtATime;

  constructor(options: ControlWatcherOptions) {
    this.#o = options;
    this.#reads = new OneAtATime(
      'reading the control document',
      options.readTimeoutMs ?? options.pollingIntervalMs,
    );
  }

  get status(): ControlWatcherStatus {
    return {
      watchMode: this.#mode,
      appliedVersion: this.#gate.appliedVersion,
      lastCheckAt: this.#lastCheckAt,
      lastError: this.#lastError,
    };
  }

  get current(): ControlState | null {
    return this.#gate.applied ?? this.#beforeReplacement;
  }

  /**
   * The store swapped the database under us (a SQLite file replaced): one line each way; once the
   * new one is in use, its versions are read afresh (the old ones mean nothing there) and the watch
   * is opened again on it.
   */
  #onReplaced(change: StoreReplacement): void {
    if (this.#stopped) return;
    const { logger } = this.#o;
    if (change.kind === 'lost') {
      logger.error(`[Distributed Control] Store lost: ${change.reason}; keeping the last applied state`);
      return;
    }
    logger.warn(`[Distributed Control] Store reopened: ${change.reason}; reading the control state afresh`);
    this.#beforeReplacement = this.#gate.applied ?? this.#beforeReplacement;
    this.#gate.forget();
    const watch = this.#watch;
    if (watch) {
      this.#watch = null;
      if (this.#reconcileTimer) clearTimeout(this.#reconcileTimer);
      this.#reconcileTimer = null;
      void watch.close().catch(() => undefined);
      void this.#openWatch();
    } else {
      void this.check();
    }
  }

  /**
   * Reads the control state until it succeeds (the store may be down at start), applies it, then
   * starts watching. Resolves with the adopted state, or null when stopped first.
   */
  async start(): Promise<ControlState | null> {
    const { logger } = this.#o;
    logger.info('[Distributed Control] Initializing cluster coordination');
    this.#unsubscribe ??= this.#o.store.onReplaced?.((change) => this.#onReplaced(change)) ?? null;
    let delay = 250;
    while (!this.#stopped && this.#gate.applied === null) {
      await this.check();
      if (this.#gate.applied !== null || this.#stopped) break;
      await new Promise((resolve) => setTimeout(resolve, jitter(delay, 0.2)));
      delay = Math.min(delay * 2, 10_000);
    }
    if (this.#stopped) return null;
    if (this.#o.eventDriven) await this.#openWatch();
    else this.#startPolling('event-driven watching is disabled (ENABLE_CHANGE_STREAMS=false)');
    return this.#gate.applied;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const timer of [this.#pollTimer, this.#reconcileTimer, this.#upgradeTimer, this.#retryTimer]) {
      if (timer) clearTimeout(timer);
    }
    this.#pollTimer = this.#reconcileTimer = this.#upgradeTimer = this.#retryTimer = null;
    const watch = this.#watch;
    this.#watch = null;
    await watch?.close().catch(() => undefined);
    await this.#checking;
  }

  /**
   * A state this agent wrote itself: applied through the gate at once, without reading it back.
   * Resolves with whether it was applied (false when a newer one already was).
   */
  async accept(state: ControlState): Promise<boolean> {
    const decision = this.#gate.offer(state);
    if (decision.apply) await this.#o.onState(state);
    return decision.apply || decision.reason === 'already-applied';
  }

  /**
   * Reads the version and, when it moved, the document; applies it through the gate. Concurrent
   * calls coalesce into one read plus, if anything asked meanwhile, one more. `announced` is the
   * version a store's event named: the one applied already needs no read at all, a newer one
   * only the document's.
   */
  check(announced?: number): Promise<void> {
    if (announced === this.#gate.appliedVersion) return this.#checking ?? Promise.resolve();
    if (this.#checking) {
      this.#checkAgain = true;
      return this.#checking;
    }
    this.#checking = (async () => {
      try {
        do {
          this.#checkAgain = false;
          await this.#readOnce(announced);
          announced = undefined;
        } while (this.#checkAgain && !this.#stopped);
      } finally {
        this.#checking = null;
      }
    })();
    return this.#checking;
  }

  async #readOnce(announced?: number): Promise<void> {
    const { store, logger } = this.#o;
    try {
      const version =
        announced !== undefined && this.#gate.isNew(announced)
          ? announced
          : await this.#reads.run(() => store.readControlVersion());
      this.#lastCheckAt = new Date();
      if (this.#gate.isNew(version)) {
        const state = await this.#reads.run(() => store.readControl());
        const decision = this.#gate.offer(state);
        if (decision.apply) {
          this.#beforeReplacement = null;
          await this.#o.onState(state);
        }
      } else if (version < this.#gate.appliedVersion) {
        this.#reportError(
          `control version went backwards to ${version} (applied ${this.#gate.appliedVersion}); keeping the last applied state`,
        );
        return;
      }
      if (this.#lastError !== null) logger.info('[Distributed Control] Control document readable again');
      this.#lastError = null;
    } catch (error) {
      const prefix = error instanceof InvalidControlStateError ? '' : 'cannot read the control document: ';
      this.#reportError(`${prefix}${describeError(error)}; keeping the last applied state`);
      this.#scheduleRetry();
    }
  }

  /**
   * While polling, the next poll reads again. While event-driven, a failed read (the catch-up read
   * after a reconnect, a read an event asked for) may be the only one that would have seen a
   * version written while the watch was down: nothing else reads until the next event or the
   * reconcile read, minutes later. So it is tried again after a polling interval, until one answers.
   */
  #scheduleRetry(): void {
    if (this.#stopped || this.#pollTimer !== null || this.#retryTimer !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.check();
    }, jitter(this.#o.pollingIntervalMs));
  }

  #reportError(message: string): void {
    // One line per distinct problem, not one per poll.
    if (this.#lastError !== message) this.#o.logger.error(`[Distributed Control] ${message}`);
    this.#lastError = message;
  }

  async #openWatch(): Promise<void> {
    const { store, logger } = this.#o;
    let opened: ControlWatch | null = null;
    try {
      const watch = await store.watchControl({
        onWake: (announced) => {
          this.#o.onAnyWake?.();
          void this.check(announced?.version);
        },
        onError: (error) => {
          if (opened) this.#onWatchError(opened, error);
        },
        onDocuments: (announced) => this.#o.onDocuments?.(announced),
        onPolicy: (announced) => this.#o.onPolicy?.(announced),
        onDocumentsWatch: (state) => {
          if (this.#stopped) return;
          if (state.watching) logger.info(`New documents wake idle agents through ${state.description}`);
          else
            logger.warn(
              `New documents wake no idle agent: ${state.reason}. Idle agents find them at their next poll (POLL_INTERVAL) until it is back.`,
            );
        },
      });
      opened = watch;
      if (this.#stopped) {
        await watch.close();
        return;
      }
      this.#watch = watch;
      this.#mode = watch.mode;
      this.#upgradeAttempts = 0;
      this.#lastWatchReason = null;
      this.#stopPolling();
      logger.info(`Using ${watch.description}`);
      this.#scheduleReconcile();
      // Anything written while we were not watching is picked up here.
      void this.check();
    } catch (error) {
      const reason =
        error instanceof WatchUnavailableError
          ? `${error.message}.`
          : `event-driven watch failed: ${describeError(error)}.`;
      // The first refusal is a warning (the seed's line); the same refusal again is only debug.
      if (reason !== this.#lastWatchReason) logger.warn(`${reason} Using polling fallback.`);
      else logger.debug(`${reason} Still polling.`);
      this.#lastWatchReason = reason;
      this.#startPolling(reason);
      this.#scheduleUpgrade();
    }
  }

  #onWatchError(watch: ControlWatch, error: Error): void {
    if (this.#stopped || this.#watch !== watch) return;
    this.#o.logger.warn(
      `[Distributed Control] ${watch.description} lost: ${describeError(error)}. Polling until it is re-established.`,
    );
    this.#watch = null;
    void watch.close().catch(() => undefined);
    this.#lastWatchReason = null;
    this.#startPolling('the event-driven watch broke');
    this.#scheduleUpgrade();
  }

  #startPolling(why: string): void {
    if (this.#reconcileTimer) clearTimeout(this.#reconcileTimer);
    this.#reconcileTimer = null;
    const wasPolling = this.#pollTimer !== null;
    this.#mode = 'polling';
    if (!wasPolling) {
      this.#o.logger.info(
        { reason: why },
        `Using polling fallback (interval: ${seconds(this.#o.pollingIntervalMs)})`,
      );
    }
    this.#schedulePoll();
    void this.check();
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = setTimeout(() => {
      void this.check().finally(() => {
        if (this.#pollTimer !== null) this.#schedulePoll();
      });
    }, jitter(this.#o.pollingIntervalMs));
  }

  #stopPolling(): void {
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
  }

  #scheduleReconcile(): void {
    const interval = this.#o.reconcileIntervalMs;
    if (this.#stopped || interval <= 0) return;
    this.#reconcileTimer = setTimeout(() => {
      void this.check().finally(() => {
        if (this.#watch !== null) this.#scheduleReconcile();
      });
    }, jitter(interval));
  }

  #scheduleUpgrade(): void {
    if (this.#stopped || this.#upgradeTimer) return;
    const base = this.#o.retryBaseMs ?? 1_000;
    const max = this.#o.retryMaxMs ?? 300_000;
    const delay = Math.min(max, base * 2 ** this.#upgradeAttempts);
    this.#upgradeAttempts++;
    this.#upgradeTimer = setTimeout(
      () => {
        this.#upgradeTimer = null;
        void this.#openWatch();
      },
      jitter(delay, 0.25),
    );
  }
}
