// What the next claim may take under the fleet policy: never a paused queue, only the queues this
// agent serves (QUEUES), and no more documents than this agent's share of a throttle allows. A
// throttle's rate is shared among the live agents (rate ÷ live agents, from the registry), each
// enforcing its share with a local token bucket, so no claim writes anything shared: the fleet
// throttle is not a hot row. Without a policy the plan is one claim with no filter, as before.

import type { FleetPolicy } from '../model/policy.js';
import type { ClaimFilter } from '../stores/types.js';

/** A bucket holds at most this many seconds of its rate (and at least one document). */
const BURST_SECONDS = 0.25;
/** setTimeout's limit: a longer wait would fire after 1 ms (a tiny rate would spin the pipeline). */
const MAX_WAIT_MS = 2 ** 31 - 1;

export class TokenBucket {
  #rate: number;
  #tokens: number;
  #at: number;

  constructor(
    rate: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#rate = rate;
    this.#at = now();
    this.#tokens = this.capacity;
  }

  get rate(): number {
    return this.#rate;
  }
  get capacity(): number {
    return Math.max(1, this.#rate * BURST_SECONDS);
  }

  /** A new rate keeps what is saved, within the new capacity. */
  setRate(rate: number): void {
    this.#refill();
    this.#rate = rate;
    this.#tokens = Math.min(this.#tokens, this.capacity);
  }

  /** Takes up to n whole tokens; resolves with how many. */
  take(n: number): number {
    this.#refill();
    const taken = Math.max(0, Math.min(n, Math.floor(this.#tokens)));
    this.#tokens -= taken;
    return taken;
  }

  /** Gives back tokens a claim did not use. */
  refund(n: number): void {
    this.#tokens = Math.min(this.capacity, this.#tokens + n);
  }

  /** Milliseconds until one whole token is there. */
  msUntilOne(): number {
    this.#refill();
    if (this.#tokens >= 1) return 0;
    return Math.min(MAX_WAIT_MS, Math.ceil(((1 - this.#tokens) / this.#rate) * 1000));
  }

  #refill(): void {
    const now = this.now();
    this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
  }
}

export interface PlannedClaim {
  limit: number;
  filter?: ClaimFilter;
  /** The buckets its documents were taken from (refunded with what it did not claim). */
  buckets: TokenBucket[];
}

export interface ClaimPlan {
  claims: PlannedClaim[];
  /** Nothing may be claimed now: try again after this long (a throttle's next token); null = the poll interval. */
  waitMs: number | null;
}

export class ClaimGovernor {
  #served: readonly string[] | null;
  #paused: string[] = [];
  #fleet: TokenBucket | null = null;
  readonly #queues = new Map<string, TokenBucket>();
  #policy: FleetPolicy | null = null;
  #share = 1;
  #rotation = 0;
  #blocked: string | null = null;

  constructor(
    served: readonly string[] | null,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#served = served;
  }

  /** True while a rate limits claims (the pipeline then prefetches nothing). */
  get limited(): boolean {
    return this.#fleet !== null || this.#queues.size > 0;
  }
  get paused(): readonly string[] {
    return this.#paused;
  }
  /** This agent's share of the fleet's rates (1 ÷ live agents). */
  get share(): number {
    return this.#share;
  }
  /** This agent's documents per second under the fleet throttle, or null. */
  get fleetRate(): number | null {
    return this.#fleet?.rate ?? null;
  }
  /** The concurrency cap the policy sets, or null. */
  get concurrencyCap(): number | null {
    return this.#policy?.throttle?.concurrency ?? null;
  }

  /** Why nothing may be claimed (no policy could be read at start), or null. */
  get blocked(): string | null {
    return this.#blocked;
  }

  /** Claims nothing until the next apply(): the policy is unknown. */
  block(reason: string): void {
    this.#blocked = reason;
  }

  /** Follows a new policy, or a new count of live agents sharing its rates. */
  apply(policy: FleetPolicy, liveAgents: number): void {
    this.#blocked = null;
    this.#policy = policy;
    this.#share = 1 / Math.max(1, liveAgents);
    this.#paused = Object.keys(policy.paused_queues).sort();
    const fleetRate = policy.throttle?.rate ?? null;
    this.#fleet = this.#follow(this.#fleet, fleetRate);
    for (const name of [...this.#queues.keys()]) {
      // Own keys only: a queue may be named like an Object.prototype key (`constructor`).
      if (!Object.hasOwn(policy.queue_rates, name)) this.#queues.delete(name);
    }
    for (const [name, rule] of Object.entries(policy.queue_rates)) {
      const bucket = this.#follow(this.#queues.get(name) ?? null, rule.rate);
      if (bucket) this.#queues.set(name, bucket);
    }
  }

  /** May this agent run documents of this queue (served and not paused)? */
  serves(queue: string): boolean {
    return (this.#served === null || this.#served.includes(queue)) && !this.#paused.includes(queue);
  }

  /** The claims for up to `wanted` documents now. */
  plan(wanted: number): ClaimPlan {
    if (this.#blocked !== null) return { claims: [], waitMs: null };
    if (this.#paused.length === 0 && !this.limited) {
      return {
        claims: [{ limit: wanted, ...(this.#served && { filter: { only: this.#served } }), buckets: [] }],
        waitMs: null,
      };
    }
    const claims: PlannedClaim[] = [];
    let budget = wanted;
    const fleet = this.#fleet;
    if (fleet) {
      budget = fleet.take(budget);
      if (budget === 0) return { claims, waitMs: fleet.msUntilOne() };
    }
    const paused = new Set(this.#paused);
    const rated = [...this.#queues.entries()].filter(([name]) => this.serves(name));
    // Rated queues take turns at going first, so that a small budget does not always go to one.
    this.#rotation = (this.#rotation + 1) % Math.max(1, rated.length);
    const ordered = [...rated.slice(this.#rotation), ...rated.slice(0, this.#rotation)];
    let waitMs: number | null = null;
    for (const [name, bucket] of ordered) {
      if (budget === 0) break;
      const n = bucket.take(budget);
      if (n === 0) {
        const wait = bucket.msUntilOne();
        waitMs = waitMs === null ? wait : Math.min(waitMs, wait);
        continue;
      }
      budget -= n;
      claims.push({ limit: n, filter: { only: [name] }, buckets: fleet ? [bucket, fleet] : [bucket] });
    }
    const exclude = [...new Set([...paused, ...this.#queues.keys()])].sort();
    const others = this.#served === null ? null : this.#served.filter((q) => !exclude.includes(q));
    if (budget > 0 && (others === null || others.length > 0)) {
      claims.push({
        limit: budget,
        filter: { ...(others && { only: others }), ...(exclude.length > 0 && { exclude }) },
        buckets: fleet ? [fleet] : [],
      });
      budget = 0;
    }
    if (fleet && budget > 0) fleet.refund(budget);
    // Nothing but rated queues without tokens: wait for the first token, not the poll interval.
    return { claims, waitMs: claims.length === 0 ? waitMs : null };
  }

  /** A planned claim came back with `claimed` documents: its unused tokens go back. */
  settle(claim: PlannedClaim, claimed: number): void {
    const unused = claim.limit - claimed;
    if (unused > 0) for (const bucket of claim.buckets) bucket.refund(unused);
  }

  #follow(bucket: TokenBucket | null, fleetRate: number | null): TokenBucket | null {
    if (fleetRate === null) return null;
    const rate = fleetRate * this.#share;
    if (bucket === null) return new TokenBucket(rate, this.now);
    bucket.setRate(rate);
    return bucket;
  }
}
