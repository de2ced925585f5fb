// The fleet as the registry shows it: which agents are live, which applied the desired version,
// which are drained; and the drain barrier that waits until a command has fully landed. Shared by
// GET /api/cluster/agents, `wait=true` on commands and the events stream.

import type { ControlCommand, ControlState } from '../model/control.js';
import type { AgentRecord, Store } from '../stores/types.js';

export interface FleetAgent {
  agent_id: string;
  /** The process's own id (unique per start): two live rows may share an agent_id, never this. */
  instance_id: string;
  host: string;
  software_version: string;
  /** `lost` after three missed heartbeats; else what the agent reported. */
  state: string;
  reported_state: string;
  applied_version: number;
  applied_at: string | null;
  batch_in_flight: boolean;
  watch_mode: string;
  started_at: string;
  heartbeat_at: string;
  heartbeat_age_seconds: number;
  /** The agent's clock minus the store's, as it measured (AgentRecord.clock_offset_ms). */
  clock_offset_ms?: number;
  counters: Record<string, number>;
}

export interface FleetSummary {
  total: number;
  live: number;
  lost: number;
  applied: number;
  drained: number;
  /**
   * Live agents that have not applied (or drained) yet, by agent_id; an agent_id that more than one
   * live process holds is written `agent_id@<first 8 characters of the instance id>`, one per process.
   */
  stragglers: string[];
  /** agent_ids held by more than one live process: a configuration mistake worth showing. */
  duplicate_agent_ids: string[];
  /**
   * For pause and shutdown: agents that became lost while they reported documents in flight, so
   * may still run handlers until their leases run out; each written
   * `<agent_id> (lost while holding documents; its leases may run until <time>)`. They count as
   * stragglers until their last heartbeat is older than the lost threshold plus the lease.
   */
  unconfirmed: string[];
}

export interface FleetView {
  desired: { command: ControlCommand; version: number };
  summary: FleetSummary;
  agents: FleetAgent[];
}

/** Agents missing this many heartbeats are shown as lost. */
export const LOST_AFTER_HEARTBEATS = 3;

/** The short form of an instance id, enough to tell two processes of one agent_id apart. */
export function shortInstanceId(instanceId: string): string {
  return instanceId.slice(0, 8);
}

/** How old a record's heartbeat is: by the store's clock when it says, else by ours. */
export function heartbeatAgeMs(
  record: Pick<AgentRecord, 'heartbeat_at' | 'heartbeat_age_ms'>,
  now = Date.now(),
) {
  return Math.max(0, record.heartbeat_age_ms ?? now - record.heartbeat_at.getTime());
}

export interface DescribeFleetOptions {
  /** Our clock, only for records without heartbeat_age_ms. */
  now?: number;
  /** LEASE_TIMEOUT: how long a lost agent's leases may still run. Without it, lost is drained. */
  leaseMs?: number;
}

export function describeFleet(
  control: Pick<ControlState, 'command' | 'version'>,
  records: AgentRecord[],
  heartbeatIntervalMs: number,
  options: DescribeFleetOptions | number = {},
): FleetView {
  const { now = Date.now(), leaseMs } = typeof options === 'number' ? { now: options } : options;
  const lostAfterMs = heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
  const needsDrain = control.command !== 'running';
  // Lost while holding documents, and its leases may not have run out: not known to be drained.
  const unconfirmed: { agent: FleetAgent; until: Date }[] = [];
  const agents = records.map((r): FleetAgent => {
    const age = heartbeatAgeMs(r, now);
    return {
      agent_id: r.agent_id,
      instance_id: r.instance_id,
      host: r.host,
      software_version: r.software_version,
      state: age > lostAfterMs ? 'lost' : r.state,
      reported_state: r.state,
      applied_version: r.applied_version,
      applied_at: r.applied_at?.toISOString() ?? null,
      batch_in_flight: r.batch_in_flight,
      watch_mode: r.watch_mode,
      started_at: r.started_at.toISOString(),
      heartbeat_at: r.heartbeat_at.toISOString(),
      heartbeat_age_seconds: Math.round(age / 100) / 10,
      ...(typeof r.clock_offset_ms === 'number' ? { clock_offset_ms: r.clock_offset_ms } : {}),
      counters: r.counters,
    };
  });
  agents.forEach((a, i) => {
    const age = heartbeatAgeMs(records[i]!, now);
    if (!needsDrain || leaseMs === undefined || a.state !== 'lost' || !a.batch_in_flight) return;
    if (age > lostAfterMs + leaseMs) return;
    unconfirmed.push({ agent: a, until: new Date(Date.now() + (lostAfterMs + leaseMs - age)) });
  });
  const live = agents.filter((a) => a.state !== 'lost');
  const done = (a: FleetAgent) => a.applied_version >= control.version && (!needsDrain || !a.batch_in_flight);
  const liveById = new Map<string, number>();
  for (const a of live) liveById.set(a.agent_id, (liveById.get(a.agent_id) ?? 0) + 1);
  const duplicated = [...liveById].filter(([, count]) => count > 1).map(([id]) => id);
  const label = (a: FleetAgent) =>
    (liveById.get(a.agent_id) ?? 0) > 1 ? `${a.agent_id}@${shortInstanceId(a.instance_id)}` : a.agent_id;
  return {
    desired: { command: control.command, version: control.version },
    summary: {
      total: agents.length,
      live: live.length,
      lost: agents.length - live.length,
      applied: live.filter((a) => a.applied_version >= control.version).length,
      drained: live.filter((a) => !a.batch_in_flight).length,
      stragglers: [...live.filter((a) => !done(a)).map(label), ...unconfirmed.map((u) => u.agent.agent_id)],
      duplicate_agent_ids: duplicated.sort(),
      unconfirmed: unconfirmed.map(
        (u) =>
          `${u.agent.agent_id} (lost while holding documents; its leases may run until ${u.until.toISOString()})`,
      ),
    },
    agents,
  };
}

export interface BarrierResult {
  complete: boolean;
  /** Why it is not complete when no straggler says so (no live agent at all), else null. */
  reason: string | null;
  timed_out: boolean;
  waited_ms: number;
  summary: FleetSummary;
  agents: FleetAgent[];
}

/**
 * Waits until every live agent has applied `state.version` and, for pause and shutdown, has no
 * batch in flight (an agent that shut down and left the registry counts as done), or until the
 * timeout. Agents report an applied version the moment they apply it, so this costs no more than
 * the propagation itself.
 */
export async function waitForBarrier(options: {
  store: Store;
  state: Pick<ControlState, 'command' | 'version'>;
  timeoutMs: number;
  heartbeatIntervalMs: number;
  /** LEASE_TIMEOUT: agents lost while holding documents count until their leases may have run out. */
  leaseMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
}): Promise<BarrierResult> {
  const { store, state, timeoutMs, heartbeatIntervalMs, leaseMs, pollMs = 25, signal } = options;
  const started = Date.now();
  for (;;) {
    const view = describeFleet(state, await store.listAgents(), heartbeatIntervalMs, {
      ...(leaseMs !== undefined && { leaseMs }),
    });
    const waited = Date.now() - started;
    // No live agent at all (not even the one answering) confirms nothing for a pause or a resume;
    // after a shutdown an empty registry is what done looks like (every agent left cleanly).
    const reason =
      view.summary.live === 0 && state.command !== 'shutdown'
        ? 'no live agent in the registry has confirmed it (not even this one)'
        : null;
    const complete = view.summary.stragglers.length === 0 && reason === null;
    if (complete || waited >= timeoutMs || signal?.aborted) {
      return {
        complete,
        reason,
        timed_out: !complete,
        waited_ms: waited,
        summary: view.summary,
        agents: view.agents,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, timeoutMs - waited)));
  }
}
