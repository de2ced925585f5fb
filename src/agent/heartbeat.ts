// The agent's row in the registry: written every HEARTBEAT_INTERVAL and at once whenever the agent
// applies a command or changes state, so that whoever waits on the fleet learns it immediately.
// Also prunes agents that stopped heartbeating long ago. Owned and stopped by the agent.

import type { Logger } from 'pino';

import { OneAtATime, SkippedCallError } from '../control/deadline.js';
import { describeError } from '../errors.js';
import type { AgentHeartbeat, Store } from '../stores/types.js';

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
   * The deadline of one write (STORE_TIMEOUT); default the interval. A write that has not answered
   * by then fails, and the next beat is skipped while it is still unsettled.
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
  readonly #write1: OneAtATime;

  constructor(options: HeartbeatOptions) {
    this.#o = options;
    this.#write1 = new OneAtATime('writing a heartbeat', options.timeoutMs ?? options.intervalMs);
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
    const { store, logger } = this.#o;
    try {
      await this.#write1.run(() => store.upsertAgent(this.#o.snapshot()));
      this.#lastAt = new Date();
      this.#o.onWritten?.();
      if (this.#failing) logger.info('Heartbeat written again');
      this.#failing = false;
      if (++this.#beats % PRUNE_EVERY === 0) {
        const pruned = await store.pruneAgents(this.#o.retentionMs);
        if (pruned > 0) logger.info({ pruned }, 'Removed agents that stopped heartbeating');
      }
    } catch (error) {
      if (!(error instanceof SkippedCallError)) this.#o.onError();
      if (!this.#failing) logger.warn(`Heartbeat failed: ${describeError(error)}`);
      this.#failing = true;
    }
  }

  /** Stops the timer and, for a clean shutdown, removes this agent's row at once. */
  async stop(remove: { instanceId: string } | null): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    if (remove) {
      await this.#o.store.removeAgent(remove.instanceId).catch((error: unknown) => {
        this.#o.logger.warn(`Could not remove this agent from the registry: ${describeError(error)}`);
      });
    }
  }
}
