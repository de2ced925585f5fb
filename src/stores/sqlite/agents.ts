// The agent registry: one row per agent process, keyed by its instance id, holding its heartbeat
// as JSON and the time of the heartbeat from SQLite's clock (one clock for every process).

import { readRecent } from '../../model/throughput.js';
import type { AgentHeartbeat, AgentRecord } from '../types.js';
import { type Handle, NOW_MS, toDateOrNull } from './connection.js';

export function upsertAgent(h: Handle, heartbeat: AgentHeartbeat): void {
  h.statement(
    `INSERT INTO agents (instance_id, agent_id, record, heartbeat_ms) VALUES (?, ?, ?, ${NOW_MS})
     ON CONFLICT (instance_id) DO UPDATE SET agent_id = excluded.agent_id, record = excluded.record,
       heartbeat_ms = excluded.heartbeat_ms`,
  ).run(heartbeat.instance_id, heartbeat.agent_id, JSON.stringify(heartbeat));
}

export function removeAgent(h: Handle, instanceId: string): void {
  h.statement('DELETE FROM agents WHERE instance_id = ?').run(instanceId);
}

export function listAgents(h: Handle): AgentRecord[] {
  const rows = h
    .statement(
      `SELECT instance_id, record, heartbeat_ms, ${NOW_MS} - heartbeat_ms AS age_ms FROM agents ORDER BY agent_id, instance_id`,
    )
    .all() as { instance_id: string; record: string; heartbeat_ms: number; age_ms: number }[];
  return rows.flatMap((row): AgentRecord[] => {
    try {
      const { recent, ...r } = JSON.parse(row.record) as AgentRecord;
      const minutes = readRecent(recent);
      return [
        {
          ...r,
          ...(minutes ? { recent: minutes } : {}),
          instance_id: row.instance_id,
          applied_at: toDateOrNull(r.applied_at),
          started_at: new Date(r.started_at),
          heartbeat_at: new Date(row.heartbeat_ms),
          heartbeat_age_ms: Math.max(0, Number(row.age_ms)),
        },
      ];
    } catch {
      return [];
    }
  });
}

export function pruneAgents(h: Handle, olderThanMs: number): number {
  return h.statement(`DELETE FROM agents WHERE heartbeat_ms < ${NOW_MS} - ?`).run(Math.floor(olderThanMs))
    .changes;
}
