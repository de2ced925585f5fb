// Follows the fleet policy (paused queues, throttle): adopts it before the first claim, re-reads
// it when the store announces a change (or on any wake-up of a store that cannot tell) and at
// every reconcile tick, applies it to the claim governor, and ends the rules that expire (by
// `system`, compare-and-set on the policy version, so that one write ends each whatever the
// number of agents that notice). While a rate applies, the tick also counts the live agents, whose
// number divides the fleet's rates.

import type { Logger } from 'pino';

import { OneAtATime } from '../control/deadline.js';
import { heartbeatAgeMs, LOST_AFTER_HEARTBEATS } from '../control/fleet.js';
import type { ControlPlane } from '../control/plane.js';
import { expiringRules } from '../control/policy.js';
import { describeError, InvalidPolicyError, VersionConflictError } from '../errors.js';
import { emptyPolicy, type FleetPolicy } from '../model/policy.js';
import type { Store } from '../stores/types.js';
import type { ClaimGovernor } from './throttle.js';

const MAX_TIMER_MS = 2 ** 31 - 1;
/** The agents that share a fleet rate: those that claim, or will again at a resume. */
const SHARING_STATES = new Set(['running', 'paused']);

export interface PolicyFollowerOptions {
  store: () => Store;
  plane: () => ControlPlane;
  governor: ClaimGovernor;
  logger: Logger;
  instanceId: string;
  /** Whether the store pushes changes to this agent now (else the policy is polled). */
  eventDriven(): boolean;
  /** How often to read it while nothing pushes (CONTROL_POLLING_INTERVAL). */
  pollMs: number;
  /** How often to read it anyway while changes are pushed (CONTROL_RECONCILE_INTERVAL; 0 = never). */
  reconcileMs: number;
  heartbeatIntervalMs: number;
  timeoutMs: number;
  /** Now by the store's clock (expiries are store times). */
  now(): number;
  /** A newer policy was applied (previous is null at start). */
  onApplied(policy: FleetPolicy, previous: FleetPolicy | null): void;
}

export class PolicyFollower {
  readonly #o: PolicyFollowerOptions;
  readonly #read: OneAtATime;
  #current: FleetPolicy | null = null;
  #error: string | null = null;
  #live = 1;
  /** performance.now() of the last read that answered. */
  #readAt = 0;
  #again = false;
  #tick: NodeJS.Timeout | null = null;
  #expiry: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(options: PolicyFollowerOptions) {
    this.#o = options;
    this.#read = new OneAtATime('reading the fleet policy', options.timeoutMs);
  }

  /** The policy applied here; null before start. */
  get current(): FleetPolicy | null {
    return this.#current;
  }
  /** Why the stored policy could not be used (malformed), or null. */
  get error(): string | null {
    return this.#error;
  }
  get appliedVersion(): number {
    return this.#current?.version ?? -1;
  }
  /** Live agents sharing the fleet's rates, as last counted. */
  get liveAgents(): number {
    return this.#live;
  }

  /**
   * Adopts the stored policy before the agent's first claim. A store that does not answer fails
   * the start (the agent retries it, as it retries opening the store), so that a new agent never
   * claims a paused queue for want of a read; a malformed policy does not (there is nothing to
   * wait for): the agent starts with none, and says why.
   */
  async start(): Promise<void> {
    const read = await this.#read
      .run(() => this.#o.store().readPolicy())
      .catch((error: unknown) => {
        if (error instanceof InvalidPolicyError) return error;
        throw error;
      });
    if (read instanceof InvalidPolicyError) {
      // Nothing was ever applied here, so which queues are paused is unknown: claim nothing until
      // the policy is repaired (the agents that read it before keep following what they applied).
      this.#o.logger.error(
        `[Distributed Control] ${read.message}; claiming nothing until it is repaired (docs/stores.md)`,
      );
      this.#error = read.message;
      this.#o.governor.block(read.message);
    } else {
      this.#readAt = performance.now();
      this.accept(read);
    }
    if (this.#current === null && this.#error === null) this.#apply(emptyPolicy());
    // A tick every heartbeat: it reads the policy when a read is due, and recounts the live
    // agents while a rate is set (their number divides it).
    const every = Math.max(100, Math.min(this.#o.heartbeatIntervalMs, this.#o.pollMs));
    this.#tick = setInterval(() => void this.#reconcile(), every);
    this.#tick.unref?.();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#tick) clearInterval(this.#tick);
    if (this.#expiry) clearTimeout(this.#expiry);
    this.#tick = null;
    this.#expiry = null;
  }

  /** Re-reads the policy (coalesced: one read at a time, one more if asked meanwhile). */
  async refresh(announced?: { version: number }): Promise<void> {
    if (announced && this.#current && announced.version <= this.#current.version) return;
    if (this.#read.busy) {
      this.#again = true;
      return;
    }
    try {
      const policy = await this.#read.run(() => this.#o.store().readPolicy());
      this.#readAt = performance.now();
      if (this.#error !== null) this.#o.logger.info('[Distributed Control] Fleet policy readable again');
      this.#error = null;
      this.accept(policy);
    } catch (error) {
      if (error instanceof InvalidPolicyError) {
        if (this.#error !== error.message) {
          this.#o.logger.error(
            `[Distributed Control] ${error.message}; keeping the policy applied (version ${this.appliedVersion})`,
          );
        }
        this.#error = error.message;
      } else {
        this.#o.logger.warn(`[Distributed Control] Could not read the fleet policy: ${describeError(error)}`);
      }
    }
    if (this.#again && !this.#stopped) {
      this.#again = false;
      await this.refresh();
    }
  }

  /** Applies a policy if it is newer than the one applied (a write of this agent's, or a read). */
  accept(policy: FleetPolicy): boolean {
    if (this.#current !== null && policy.version <= this.#current.version) return false;
    this.#apply(policy);
    return true;
  }

  #apply(policy: FleetPolicy): void {
    const previous = this.#current;
    this.#current = policy;
    this.#o.governor.apply(policy, this.#live);
    if (previous !== null || policy.version > 0) {
      this.#o.logger.info(
        {
          policy_version: policy.version,
          paused_queues: Object.keys(policy.paused_queues),
          throttle: policy.throttle && {
            rate: policy.throttle.rate,
            concurrency: policy.throttle.concurrency,
          },
          queue_rates: Object.fromEntries(Object.entries(policy.queue_rates).map(([q, r]) => [q, r.rate])),
        },
        `[Distributed Control] Applying fleet policy version ${policy.version}`,
      );
    }
    this.#armExpiry(policy);
    this.#o.onApplied(policy, previous);
    if (this.#o.governor.limited && previous === null) void this.#countLive();
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    const since = performance.now() - this.#readAt;
    const due = this.#o.eventDriven()
      ? this.#o.reconcileMs > 0 && since >= this.#o.reconcileMs
      : since >= this.#o.pollMs * (0.9 + Math.random() * 0.2);
    if (due || this.#error !== null) await this.refresh();
    if (this.#o.governor.limited) await this.#countLive();
  }

  /**
   * The fleet's rates are divided among the live agents that are running or paused. Paused ones
   * count: under a global pause every agent would otherwise count itself alone, and the resume
   * would let each take the whole rate until its next tick.
   */
  async #countLive(): Promise<void> {
    try {
      const lostAfterMs = this.#o.heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
      const records = await this.#o.store().listAgents();
      const live = records.filter(
        (r) =>
          r.instance_id === this.#o.instanceId ||
          (heartbeatAgeMs(r) <= lostAfterMs && SHARING_STATES.has(r.state)),
      );
      const n = Math.max(1, live.length + (live.some((r) => r.instance_id === this.#o.instanceId) ? 0 : 1));
      if (n !== this.#live) {
        this.#live = n;
        if (this.#current) this.#o.governor.apply(this.#current, n);
      }
    } catch (error) {
      this.#o.logger.warn(`Could not count the live agents sharing the throttle: ${describeError(error)}`);
    }
  }

  #armExpiry(policy: FleetPolicy): void {
    if (this.#expiry) clearTimeout(this.#expiry);
    this.#expiry = null;
    const next = expiringRules(policy)[0];
    if (!next || this.#stopped) return;
    const wait = next.expires_at.getTime() - this.#o.now() + Math.random() * 250;
    this.#expiry = setTimeout(
      () => {
        this.#expiry = null;
        if (wait > MAX_TIMER_MS) this.#armExpiry(policy);
        else void this.#expire(policy, 0);
      },
      Math.max(0, Math.min(wait, MAX_TIMER_MS)),
    );
    this.#expiry.unref?.();
  }

  async #expire(policy: FleetPolicy, attempt: number): Promise<void> {
    if (this.#stopped || this.#current?.version !== policy.version) return;
    const rule = expiringRules(policy)[0];
    if (!rule) return;
    try {
      const { policy: written } = await this.#o.plane().issuePolicy({
        request: rule.request,
        reason: `${rule.what} expired (set at policy version ${rule.since_version})`,
        actor: 'system',
        expectedVersion: policy.version,
      });
      this.#o.logger.info(
        { policy_version: written.version },
        `[Distributed Control] The ${rule.what} expired: removed (policy version ${written.version})`,
      );
    } catch (error) {
      if (error instanceof VersionConflictError) {
        await this.refresh(); // another agent (or an operator) was first: follow what it wrote
        return;
      }
      const delay = Math.min(30_000, 500 * 2 ** attempt);
      this.#o.logger.warn(
        `Could not end the expired ${rule.what} (retrying in ${delay} ms): ${describeError(error)}`,
      );
      this.#expiry = setTimeout(() => void this.#expire(policy, attempt + 1), delay);
    }
  }
}
