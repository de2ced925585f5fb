// The agent registry: one document per agent process in agent_registry, `_id` = its instance id
// (two processes may share one agent id), rewritten by each heartbeat with `heartbeat_at` from the
// server's clock ($currentDate). A document an older agent wrote (`_id` = agent id, no
// instance_id) reads with its `_id` as the instance id until it is pruned.

import type { Collection, Document } from 'mongodb';

import { readRecent } from '../../model/throughput.js';
import type { AgentHeartbeat, AgentRecord, WatchMode } from '../types.js';
import type { ServerClock } from './clock.js';
import { isDuplicateKey, type LooseDocument } from './connection.js';
import { ensureIndexes } from './indexes.js';

export const REGISTRY_COLLECTION = 'agent_registry';
const OPTIONAL_FIELDS = ['applied_policy_version', 'queues_in_flight', 'clock_offset_ms'] as const;

export async function ensureRegistry(registry: Collection<LooseDocument>): Promise<void> {
  await ensureIndexes(registry, [{ key: { heartbeat_at: 1 }, name: 'pa_by_heartbeat' }]);
}

export async function upsertAgent(
  registry: Collection<LooseDocument>,
  heartbeat: AgentHeartbeat,
  maxTimeMS?: number,
): Promise<void> {
  // The optional fields an agent may not send (an older one never does): removed when absent, so
  // that a row never keeps a value its agent stopped reporting.
  const absent = OPTIONAL_FIELDS.filter((field) => heartbeat[field] === undefined);
  const set = Object.fromEntries(Object.entries(heartbeat).filter(([, value]) => value !== undefined));
  const write = () =>
    registry.updateOne(
      { _id: heartbeat.instance_id },
      {
        $set: set,
        $currentDate: { heartbeat_at: true },
        // An empty $unset is an error on some servers.
        ...(absent.length > 0 && { $unset: Object.fromEntries(absent.map((field) => [field, ''])) }),
      },
      { upsert: true, ...(maxTimeMS !== undefined && { maxTimeMS }) },
    );
  try {
    await write();
  } catch (error) {
    // Two first heartbeats of one agent raced to insert: the second one is now an update.
    if (!isDuplicateKey(error)) throw error;
    await write();
  }
}

export async function removeAgent(registry: Collection<LooseDocument>, instanceId: string): Promise<void> {
  await registry.deleteOne({ _id: instanceId });
}

function toDate(value: unknown): Date | null {
  return value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null;
}

function toRecord(doc: Document): AgentRecord | null {
  const heartbeatAt = toDate(doc.heartbeat_at);
  const startedAt = toDate(doc.started_at);
  if (typeof doc.agent_id !== 'string' || heartbeatAt === null || startedAt === null) return null;
  const counters: Record<string, number> = {};
  for (const [name, value] of Object.entries((doc.counters ?? {}) as Record<string, unknown>)) {
    if (typeof value === 'number') counters[name] = value;
  }
  const recent = readRecent(doc.recent);
  return {
    agent_id: doc.agent_id,
    instance_id: typeof doc.instance_id === 'string' ? doc.instance_id : String(doc._id),
    host: String(doc.host ?? ''),
    software_version: String(doc.software_version ?? ''),
    state: String(doc.state ?? ''),
    applied_version: Number(doc.applied_version ?? 0),
    applied_at: toDate(doc.applied_at),
    batch_in_flight: doc.batch_in_flight === true,
    watch_mode: String(doc.watch_mode ?? 'polling') as WatchMode,
    started_at: startedAt,
    counters,
    ...(recent ? { recent } : {}),
    ...(typeof doc.applied_policy_version === 'number' && {
      applied_policy_version: doc.applied_policy_version,
    }),
    ...(Array.isArray(doc.queues_in_flight) && {
      queues_in_flight: doc.queues_in_flight.filter((q): q is string => typeof q === 'string'),
    }),
    ...(typeof doc.clock_offset_ms === 'number' && { clock_offset_ms: doc.clock_offset_ms }),
    heartbeat_at: heartbeatAt,
  };
}

/** Every registered process, by agent id then instance id; documents that do not read as a heartbeat are skipped. */
export async function listAgents(
  registry: Collection<LooseDocument>,
  clock: ServerClock,
  maxTimeMS?: number,
): Promise<AgentRecord[]> {
  const docs = await registry
    .find({}, { sort: { agent_id: 1, _id: 1 }, ...(maxTimeMS !== undefined && { maxTimeMS }) })
    .toArray();
  // heartbeat_at is the server's ($currentDate); its age by the server's clock as estimated.
  const now = (await clock.now()).getTime();
  return docs
    .map(toRecord)
    .filter((r): r is AgentRecord => r !== null)
    .map((r) => ({ ...r, heartbeat_age_ms: Math.max(0, now - r.heartbeat_at.getTime()) }));
}

export async function pruneAgents(
  registry: Collection<LooseDocument>,
  clock: ServerClock,
  olderThanMs: number,
): Promise<number> {
  const cutoff = new Date((await clock.now()).getTime() - olderThanMs);
  const result = await registry.deleteMany({ heartbeat_at: { $lt: cutoff } });
  return result.deletedCount;
}
