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

export function describeFleet(
  control: Pick<ControlState, 'command' | 'version'>,
  records: AgentRecord[],
  heartbeatIntervalMs: number,
  now = Date.now(),
): FleetView {
  const lostAfterMs = heartbeatIntervalMs * LOST_AFTER_HEARTBEATS;
  const agents = records.map((r): FleetAgent => {
    const age = Math.max(0, now - r.heartbeat_at.getTime());
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
      counters: r.counters,
    };
  });
  const live = agents.filter((a) => a.state !== 'lost');
  const needsDrain = control.command !== 'running';
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
      stragglers: live.filter((a) => !done(a)).map(label),
      duplicate_agent_ids: duplicated.sort(),
    },
    agents,
  };
}

export interface BarrierResult {
  complete: boolean;
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
  pollMs?: number;
  signal?: AbortSignal;
}): Promise<BarrierResult> {
  const { store, state, timeoutMs, heartbeatIntervalMs, pollMs = 25, signal } = options;
  const started = Date.now();
  for (;;) {
    const view = describeFleet(state, await store.listAgents(), heartbeatIntervalMs);
    const waited = Date.now() - started;
    const complete = view.summary.stragglers.length === 0;
    if (complete || waited >= timeoutMs || signal?.aborted) {
      return {
        complete,
        timed_out: !complete,
        waited_ms: waited,
        summary: view.summary,
        agents: view.agents,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, timeoutMs - waited)));
  }
}
