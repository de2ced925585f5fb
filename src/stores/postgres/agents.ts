// The agent registry: one row per agent process (keyed by its instance id), upserted by its heartbeat with the server's clock, so
// that pruning compares times from one clock whatever the agents' clocks say.

import { type MinuteCount, readRecent } from '../../model/throughput.js';
import type { AgentHeartbeat, AgentRecord, WatchMode } from '../types.js';
import type { Queryable, QueryOptions } from './connection.js';
import type { Names } from './names.js';

interface AgentRow {
  agent_id: string;
  instance_id: string;
  host: string;
  software_version: string;
  state: string;
  applied_version: string;
  applied_at: Date | null;
  batch_in_flight: boolean;
  watch_mode: string;
  started_at: Date;
  counters: Record<string, number>;
  heartbeat_at: Date;
  heartbeat_age_ms: number;
  /** Migration 6; null in a row an older agent wrote. */
  applied_policy_version: string | null;
  queues_in_flight: string[] | null;
  clock_offset_ms: number | null;
}

// The minutes of the last hour (AgentHeartbeat.recent) ride in the counters jsonb as numbers,
// recent_<epoch minute>_processed and _failed (no schema change, and an older agent reading the
// row still finds only numbers there); listAgents takes them out again.
const RECENT_KEY = /^recent_(\d+)_(processed|failed)$/;

function countersJson(h: AgentHeartbeat): string {
  const counters: Record<string, number> = { ...h.counters };
  for (const { minute, processed, failed } of h.recent ?? []) {
    if (processed > 0) counters[`recent_${minute}_processed`] = processed;
    if (failed > 0) counters[`recent_${minute}_failed`] = failed;
  }
  return JSON.stringify(counters);
}

function splitCounters(stored: Record<string, number>): Pick<AgentRecord, 'counters' | 'recent'> {
  const counters: Record<string, number> = {};
  const minutes = new Map<number, MinuteCount>();
  let carried = false;
  for (const [name, value] of Object.entries(stored)) {
    const match = RECENT_KEY.exec(name);
    if (!match) {
      counters[name] = value;
      continue;
    }
    carried = true;
    const minute = Number(match[1]);
    const entry = minutes.get(minute) ?? { minute, processed: 0, failed: 0 };
    entry[match[2] as 'processed' | 'failed'] = value;
    minutes.set(minute, entry);
  }
  const recent = readRecent([...minutes.values()]);
  return carried && recent ? { counters, recent } : { counters };
}

export async function upsertAgent(
  db: Queryable,
  n: Names,
  h: AgentHeartbeat,
  options?: QueryOptions,
): Promise<void> {
  await db.query(
    `INSERT INTO ${n.agents} (instance_id, agent_id, host, software_version, state, applied_version, applied_at,
       batch_in_flight, watch_mode, started_at, counters, heartbeat_at, applied_policy_version,
       queues_in_flight, clock_offset_ms)
     VALUES ($11, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp(), $12, $13, $14)
     ON CONFLICT (instance_id) DO UPDATE SET agent_id = excluded.agent_id, host = excluded.host, software_version = excluded.software_version,
       state = excluded.state, applied_version = excluded.applied_version, applied_at = excluded.applied_at,
       batch_in_flight = excluded.batch_in_flight, watch_mode = excluded.watch_mode,
       started_at = excluded.started_at, counters = excluded.counters, heartbeat_at = excluded.heartbeat_at,
       applied_policy_version = excluded.applied_policy_version,
       queues_in_flight = excluded.queues_in_flight, clock_offset_ms = excluded.clock_offset_ms`,
    [
      h.agent_id,
      h.host,
      h.software_version,
      h.state,
      h.applied_version,
      h.applied_at,
      h.batch_in_flight,
      h.watch_mode,
      h.started_at,
      countersJson(h),
      h.instance_id,
      h.applied_policy_version ?? null,
      h.queues_in_flight ?? null,
      h.clock_offset_ms ?? null,
    ],
    options,
  );
}

export async function removeAgent(db: Queryable, n: Names, instanceId: string): Promise<void> {
  await db.query(`DELETE FROM ${n.agents} WHERE instance_id = $1`, [instanceId]);
}

export async function listAgents(db: Queryable, n: Names): Promise<AgentRecord[]> {
  // The age by the server's clock, not the reader's.
  const { rows } = await db.query<AgentRow>(
    `SELECT *, (EXTRACT(EPOCH FROM (clock_timestamp() - heartbeat_at)) * 1000)::float8 AS heartbeat_age_ms
       FROM ${n.agents} ORDER BY agent_id, instance_id`,
  );
  return rows.map((r) => ({
    agent_id: r.agent_id,
    instance_id: r.instance_id,
    host: r.host,
    software_version: r.software_version,
    state: r.state,
    applied_version: Number(r.applied_version),
    applied_at: r.applied_at,
    batch_in_flight: r.batch_in_flight,
    watch_mode: r.watch_mode as WatchMode,
    started_at: r.started_at,
    ...splitCounters(r.counters),
    ...(r.applied_policy_version !== null && { applied_policy_version: Number(r.applied_policy_version) }),
    ...(r.queues_in_flight !== null && { queues_in_flight: r.queues_in_flight }),
    ...(r.clock_offset_ms !== null && { clock_offset_ms: r.clock_offset_ms }),
    heartbeat_at: r.heartbeat_at,
    heartbeat_age_ms: Math.max(0, Number(r.heartbeat_age_ms)),
  }));
}

export async function pruneAgents(db: Queryable, n: Names, olderThanMs: number): Promise<number> {
  const result = await db.query(
    `DELETE FROM ${n.agents} WHERE heartbeat_at < clock_timestamp() - $1::float8 * interval '1 millisecond'`,
    [Math.max(0, olderThanMs)],
  );
  return result.rowCount ?? 0;
}
