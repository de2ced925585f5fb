// Watches the fleet for the events stream: while anyone listens, reads the control document and
// the registry a few times a second and publishes what changed. It stops reading when the last
// listener leaves, so an agent nobody watches pays nothing for it. With a backlog reader it also
// publishes the documents by status whenever they change (the reader asks the store at most once
// per its interval, however many listen).

import type { Backlog } from '../agent/backlog.js';
import { controlStateToJson } from '../model/control.js';
import type { Store } from '../stores/types.js';
import { describeFleet, type FleetView } from './fleet.js';

export type ControlJson = ReturnType<typeof controlStateToJson>;

export interface BacklogJson {
  counts: Backlog['counts'];
  oldest_pending_age_seconds: number;
  read_at: string;
}

export type FleetEvent =
  | { event: 'control'; data: ControlJson }
  | { event: 'agents'; data: FleetView }
  | { event: 'backlog'; data: BacklogJson };

export interface FleetObserverOptions {
  /** The store, read when needed (an agent opens its store when it starts). */
  store: () => Store;
  heartbeatIntervalMs: number;
  /** LEASE_TIMEOUT: how long a lost agent may still run what it held (see describeFleet). */
  leaseMs?: number;
  /** How often to read while someone listens. */
  pollMs?: number;
  /** Send the agents table at least this often even if nothing changed (heartbeat ages move). */
  refreshMs?: number;
  /** The backlog, or null when it cannot be read now (then no `backlog` event is sent). */
  backlog?: () => Promise<Backlog | null>;
  onError?(error: unknown): void;
}

type Listener = (event: FleetEvent) => void;

/** What makes two registry views differ for a reader (not the heartbeat ages). */
function agentsKey(view: FleetView): string {
  return JSON.stringify([
    view.desired,
    view.agents.map((a) => [
      a.agent_id,
      a.instance_id,
      a.state,
      a.applied_version,
      a.batch_in_flight,
      a.watch_mode,
    ]),
  ]);
}

export class FleetObserver {
  readonly #o: FleetObserverOptions;
  readonly #listeners = new Set<Listener>();
  #timer: NodeJS.Timeout | null = null;
  #lastControl: string | null = null;
  #lastAgents: string | null = null;
  #lastAgentsAt = 0;
  #lastBacklog: string | null = null;

  constructor(options: FleetObserverOptions) {
    this.#o = options;
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  /** The current control state and fleet, for a new listener's first events. */
  async snapshot(): Promise<FleetEvent[]> {
    const store = this.#o.store();
    const [control, records, backlog] = await Promise.all([
      store.readControl(),
      store.listAgents(),
      this.#o.backlog?.().catch(() => null) ?? null,
    ]);
    const events: FleetEvent[] = [
      { event: 'control', data: controlStateToJson(control) },
      {
        event: 'agents',
        data: describeFleet(control, records, this.#o.heartbeatIntervalMs, {
          ...(this.#o.leaseMs !== undefined && { leaseMs: this.#o.leaseMs }),
        }),
      },
    ];
    if (backlog) {
      const { counts, oldest_pending_age_seconds, read_at } = backlog;
      events.push({
        event: 'backlog',
        data: { counts, oldest_pending_age_seconds, read_at: read_at.toISOString() },
      });
    }
    return events;
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    if (this.#timer === null) this.#schedule();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#lastControl = this.#lastAgents = this.#lastBacklog = null;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#poll(), this.#o.pollMs ?? 250);
  }

  async #poll(): Promise<void> {
    try {
      for (const event of await this.snapshot()) {
        if (event.event === 'control') {
          const key = JSON.stringify(event.data);
          if (key !== this.#lastControl) this.#publish(event);
          this.#lastControl = key;
        } else if (event.event === 'backlog') {
          const key = JSON.stringify(event.data.counts);
          if (key !== this.#lastBacklog) this.#publish(event);
          this.#lastBacklog = key;
        } else {
          const key = agentsKey(event.data);
          const stale = Date.now() - this.#lastAgentsAt >= (this.#o.refreshMs ?? this.#o.heartbeatIntervalMs);
          if (key !== this.#lastAgents || stale) {
            this.#publish(event);
            this.#lastAgentsAt = Date.now();
          }
          this.#lastAgents = key;
        }
      }
    } catch (error) {
      this.#o.onError?.(error);
    } finally {
      if (this.#listeners.size > 0) this.#schedule();
      else this.#timer = null;
    }
  }

  #publish(event: FleetEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
