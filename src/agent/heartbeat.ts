// The agent's row in the registry: written every HEARTBEAT_INTERVAL and at once whenever the agent
// applies a command or changes state, so that whoever waits on the fleet learns it immediately.
// Also prunes agents that stopped heartbeating long ago. Owned and stopped by the agent.
//
// A connection that dies silently must not cost more than two intervals between rows written (the
// fleet counts an agent lost after three): each write has a deadline of half an interval (never
// above STORE_TIMEOUT), the store discards the connection of a write that missed it, and the beat
// is written again at once, on a fresh connection, instead of an interval later. The abandoned
// write may still be unsettled meanwhile, so at most two writes are ever in flight; with both hung
// the next beats are skipped, and one is written as soon as either settles.

import type { Logger } from 'pino';

import { BoundedCalls, OneAtATime, SkippedCallError, withDeadline } from '../control/deadline.js';
import { describeError, isStoreTimeout } from '../errors.js';
import type { AgentHeartbeat, Store } from '../stores/types.js';

/** A heartbeat write's deadline: half an interval, never above STORE_TIMEOUT. */
export function heartbeatDeadlineMs(intervalMs: number, storeTimeoutMs: number): number {
  return Math.max(1, Math.min(storeTimeoutMs, intervalMs / 2));
}

/** The write that missed its deadline and the one written again at once. */
const WRITES_IN_FLIGHT = 2;

export interface HeartbeatOptions {
  store: Store;
  intervalMs: number;
  /** Rows older than this are removed by any live agent. */
  retentionMs: number;
  snapshot(): AgentHeartbeat;
  logger: Logger;
  onError(): void;
  /** After each heartbeat written (the agent measures its clock then). */
  onWritten?(): void;
  /**
   * STORE_TIMEOUT (default: the interval). A write's own deadline is heartbeatDeadlineMs() of it;
   * pruning, which never holds a beat up, has the whole of it.
   */
  timeoutMs?: number;
}

const PRUNE_EVERY = 12;

export class Heartbeat {
  readonly #o: HeartbeatOptions;
  #timer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> | null = null;
  #again = false;
  #beats = 0;
  #stopped = false;
  #lastAt: Date | null = null;
  #failing = false;
  #startedAt: number | null = null;
  /** A beat was skipped because both writes in flight hung: written as soon as one settles. */
  #owed = false;
  #missing = false;
  readonly #writes: BoundedCalls;
  readonly #prune: OneAtATime;
  readonly #storeTimeoutMs: number;

  constructor(options: HeartbeatOptions) {
    this.#o = options;
    const storeTimeoutMs = options.timeoutMs ?? options.intervalMs;
    this.#storeTimeoutMs = storeTimeoutMs;
    this.#writes = new BoundedCalls(
      'writing a heartbeat',
      heartbeatDeadlineMs(options.intervalMs, storeTimeoutMs),
      WRITES_IN_FLIGHT,
      () => {
        if (!this.#owed || this.#stopped) return;
        this.#owed = false;
        void this.beat();
      },
    );
    this.#prune = new OneAtATime('pruning agents', storeTimeoutMs);
  }

  /** A write's deadline in milliseconds. */
  get deadlineMs(): number {
    return this.#writes.timeoutMs;
  }

  /** Writes started and not settled yet (at most two). */
  get writesInFlight(): number {
    return this.#writes.unsettled;
  }

  get lastAt(): Date | null {
    return this.#lastAt;
  }

  /** Milliseconds since the last heartbeat written (or since start, before the first); 0 before start. */
  get staleMs(): number {
    const since = this.#lastAt?.getTime() ?? this.#startedAt;
    return since === null ? 0 : Math.max(0, Date.now() - since);
  }

  start(): void {
    this.#stopped = false;
    this.#startedAt ??= Date.now();
    void this.beat();
  }

  /** Writes the row now (coalesced with a write already under way) and re-arms the timer. */
  beat(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#inFlight) {
      this.#again = true;
      return this.#inFlight;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#inFlight = (async () => {
      do {
        this.#again = false;
        await this.#write();
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#inFlight = null;
      if (!this.#stopped) this.#timer = setTimeout(() => void this.beat(), this.#o.intervalMs);
    });
    return this.#inFlight;
  }

  async #write(): Promise<void> {
    const { logger } = this.#o;
    try {
      try {
        await this.#writeOnce();
        this.#missing = false;
      } catch (error) {
        // Most likely a connection that died silently, which the store has discarded: again at
        // once on a fresh one, rather than an interval later (the abandoned write may still be
        // unsettled; a third is never started).
        if (!isStoreTimeout(error) || this.#stopped) throw error;
        if (!this.#missing) {
          logger.warn(
            `Heartbeat missed its deadline (${this.deadlineMs / 1000}s): ${describeError(error)}; writing it again at once on a fresh connection`,
          );
        }
        this.#missing = true;
        this.#o.onError();
        await this.#writeOnce();
      }
      this.#lastAt = new Date();
      this.#o.onWritten?.();
      if (this.#failing) logger.info('Heartbeat written again');
      this.#failing = false;
      if (++this.#beats % PRUNE_EVERY === 0) void this.#pruneNow();
    } catch (error) {
      if (error instanceof SkippedCallError) this.#owed = true;
      else this.#o.onError();
      if (!this.#failing) logger.warn(`Heartbeat failed: ${describeError(error)}`);
      this.#failing = true;
    }
  }

  #writeOnce(): Promise<void> {
    const deadline = { timeoutMs: this.deadlineMs };
    return this.#writes.run(() => this.#o.store.upsertAgent(this.#o.snapshot(), deadline));
  }

  /** Removes long-lost agents, beside the beats: a slow prune never delays the next write. */
  async #pruneNow(): Promise<void> {
    try {
      const pruned = await this.#prune.run(() => this.#o.store.pruneAgents(this.#o.retentionMs));
      if (pruned > 0) this.#o.logger.info({ pruned }, 'Removed agents that stopped heartbeating');
    } catch (error) {
      if (error instanceof SkippedCallError) return;
      this.#o.logger.warn(`Could not prune the agent registry: ${describeError(error)}`);
    }
  }

  /** Stops the timer and, for a clean shutdown, removes this agent's row at once. */
  async stop(remove: { instanceId: string } | null): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    // A write abandoned at its deadline must not land after the row is removed (a clean shutdown
    // would then show as lost): it settles within the store's own deadline.
    await withDeadline(this.#writes.idle(), this.#storeTimeoutMs, 'writing a heartbeat').catch(
      () => undefined,
    );
    if (remove) {
      await this.#o.store.removeAgent(remove.instanceId).catch((error: unknown) => {
        this.#o.logger.warn(`Could not remove this agent from the registry: ${describeError(error)}`);
      });
    }
  }
}
