// Version gating: an agent applies every control version at most once and never goes back. A
// store may deliver the same version many times (wake-ups, polls, reconciles) or, after a bad hand
// edit, an older one; only a strictly newer version passes.

import type { ControlState } from '../model/control.js';

export type GateDecision =
  | { apply: true; state: ControlState }
  | { apply: false; reason: 'already-applied' | 'older'; appliedVersion: number };

export class VersionGate {
  #applied: ControlState | null = null;

  /** The last state that passed the gate, or null before the first one. */
  get applied(): ControlState | null {
    return this.#applied;
  }

  get appliedVersion(): number {
    return this.#applied?.version ?? -1;
  }

  /** True when a version read cheaply is worth reading in full. */
  isNew(version: number): boolean {
    return version > this.appliedVersion;
  }

  /**
   * Forgets what was applied: the store behind the agent is another one now (a SQLite file
   * replaced), whose versions have nothing to do with the old one's. The next state read passes.
   */
  forget(): void {
    this.#applied = null;
  }

  offer(state: ControlState): GateDecision {
    const applied = this.appliedVersion;
    if (state.version === applied)
      return { apply: false, reason: 'already-applied', appliedVersion: applied };
    if (state.version < applied) return { apply: false, reason: 'older', appliedVersion: applied };
    this.#applied = state;
    return { apply: true, state };
  }
}
