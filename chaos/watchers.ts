// What the quiet-failure scenarios watch while a fault lasts, each on its own loop with a deadline:
// heartbeats as they arrive in the store (read through the harness's own connection), what each
// agent's fleet view calls `lost`, and when a command reached an agent.

import type { Store } from '../src/stores/types.js';
import type { ChaosAgent } from './agents.js';
import { sleep } from './scenario.js';

const MAX_LOOPS = 100_000;

/**
 * Heartbeats as the harness sees them arrive: every `intervalMs` it lists the registry and stamps
 * each new `heartbeat_at` with its own clock. Gaps are measured between arrivals, so they do not
 * depend on any clock but the harness's (a writer with a wrong clock stamps wrong times), with the
 * polling interval as their resolution.
 */
export class HeartbeatWatch {
  readonly #arrivals = new Map<string, number[]>();
  readonly #seen = new Map<string, number>();
  #running = true;
  readonly #loop: Promise<void>;
  errors = 0;

  constructor(
    store: Store,
    readonly intervalMs: number,
  ) {
    this.#loop = (async () => {
      for (let i = 0; this.#running && i < MAX_LOOPS; i++) {
        const started = Date.now();
        try {
          for (const row of await store.listAgents()) {
            const at = row.heartbeat_at.getTime();
            if (this.#seen.get(row.instance_id) === at) continue;
            this.#seen.set(row.instance_id, at);
            const list = this.#arrivals.get(row.agent_id) ?? [];
            list.push(Date.now());
            this.#arrivals.set(row.agent_id, list);
          }
        } catch {
          this.errors++;
        }
        await sleep(Math.max(0, intervalMs - (Date.now() - started)));
      }
    })();
  }

  /** The longest time between two heartbeats of `agentId` seen within [from, to], `to` included. */
  maxGap(agentId: string, from: number, to: number): number {
    const all = this.#arrivals.get(agentId) ?? [];
    const before = all.filter((t) => t < from).at(-1) ?? from;
    const times = [before, ...all.filter((t) => t >= from && t <= to), to];
    let max = 0;
    for (let i = 1; i < times.length; i++) max = Math.max(max, times[i]! - times[i - 1]!);
    return max;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}

/** Every `intervalMs`, each viewer's GET /api/cluster/agents: which agents it ever called lost. */
export class LostWatch {
  /** "viewer sees agent" for every row seen `lost`. */
  readonly lost = new Set<string>();
  #running = true;
  readonly #loop: Promise<void>;
  answers = 0;
  failures = 0;

  constructor(viewers: ChaosAgent[], intervalMs: number) {
    this.#loop = (async () => {
      for (let i = 0; this.#running && i < MAX_LOOPS; i++) {
        const started = Date.now();
        await Promise.all(
          viewers
            .filter((v) => v.alive)
            .map(async (viewer) => {
              try {
                const answer = await viewer.call<{ agents?: { agent_id: string; state: string }[] }>(
                  'GET',
                  '/api/cluster/agents',
                  5_000,
                );
                if (answer.status !== 200) {
                  this.failures++;
                  return;
                }
                this.answers++;
                for (const row of answer.body.agents ?? [])
                  if (row.state === 'lost') this.lost.add(`${viewer.id} saw ${row.agent_id} lost`);
              } catch {
                this.failures++;
              }
            }),
        );
        await sleep(Math.max(0, intervalMs - (Date.now() - started)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}

export interface Reached {
  agent: string;
  /** From `since` to the first answer showing the version applied and the state; null if never. */
  appliedMs: number | null;
  /** To the first answer showing it applied with no batch in flight. */
  drainedMs: number | null;
}

/**
 * Polls each agent's /api/agent/state until it shows `version` (or later) applied in `state` with
 * nothing in flight, or until the deadline; times are from `since`.
 */
export async function reached(
  agents: ChaosAgent[],
  version: number,
  state: string,
  since: number,
  deadlineMs: number,
): Promise<Reached[]> {
  return Promise.all(
    agents.map(async (agent) => {
      const r: Reached = { agent: agent.id, appliedMs: null, drainedMs: null };
      for (let i = 0; i < MAX_LOOPS && Date.now() - since < deadlineMs; i++) {
        const s = await agent.state(2_000).catch(() => null);
        if (s && s.applied_version >= version && s.state === state) {
          r.appliedMs ??= Date.now() - since;
          if (!s.batch_in_flight) {
            r.drainedMs = Date.now() - since;
            break;
          }
        }
        await sleep(100);
      }
      return r;
    }),
  );
}
