// Pauses that end by themselves. Every agent that applies a pause with `expires_at` arms a timer;
// when it fires, the agent writes a resume by `system` with compare-and-set on the pause's version,
// so that however many agents notice the expiry, exactly one resume is written. A newer command
// (a resume, another pause) disarms it.

import type { Logger } from 'pino';

import { describeError, VersionConflictError } from '../errors.js';
import type { ControlState } from '../model/control.js';
import { formatDuration } from './duration.js';
import type { ControlPlane } from './plane.js';

/** setTimeout's limit; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class PauseExpiry {
  #timer: NodeJS.Timeout | null = null;
  #armedFor: number | null = null;
  #stopped = false;

  constructor(
    private readonly plane: () => ControlPlane,
    private readonly logger: Logger,
    /** The store's time now (expires_at is by the store's clock, not this process's). */
    private readonly now: () => number = Date.now,
  ) {}

  /** Called with every applied cluster state. */
  follow(state: ControlState): void {
    this.#disarm();
    if (this.#stopped || state.command !== 'pause' || state.expires_at === null) return;
    this.#armedFor = state.version;
    this.#arm(state);
  }

  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  #arm(state: ControlState): void {
    // A little jitter so that a fleet does not write at the same millisecond; CAS decides anyway.
    const wait = (state.expires_at as Date).getTime() - this.now() + Math.random() * 250;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        if (wait > MAX_TIMER_MS) this.#arm(state);
        else void this.#expire(state, 0);
      },
      Math.max(0, Math.min(wait, MAX_TIMER_MS)),
    );
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#armedFor = null;
  }

  async #expire(state: ControlState, attempt: number): Promise<void> {
    if (this.#stopped || this.#armedFor !== state.version) return;
    const lasted = formatDuration((state.expires_at as Date).getTime() - state.timestamp.getTime());
    try {
      const { state: written } = await this.plane().issue({
        command: 'running',
        reason: `pause expired after ${lasted} (paused by ${state.updated_by}${state.reason ? `: ${state.reason}` : ''})`,
        actor: 'system',
        expectedVersion: state.version,
      });
      this.logger.info(
        { version: written.version },
        `[Distributed Control] Pause of version ${state.version} expired: cluster resumed`,
      );
    } catch (error) {
      if (error instanceof VersionConflictError) return; // another agent (or an operator) was first
      const delay = Math.min(30_000, 500 * 2 ** attempt);
      this.logger.warn(`Could not end the expired pause (retrying in ${delay} ms): ${describeError(error)}`);
      this.#timer = setTimeout(() => void this.#expire(state, attempt + 1), delay);
    }
  }
}
