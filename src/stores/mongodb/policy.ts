// The fleet policy document, beside the control document and never inside it: `{_id:
// "fleet_policy", version, timestamp, paused_queues: [{queue, …rule}], throttle: {…} | null,
// queue_rates: [{queue, rate, …rule}]}` in agent_control, so operators find it next to
// global_control. The per-queue maps are arrays with a `queue` field because FerretDB refuses
// keys with a dot, which queue names may have. Its history is a collection of its own,
// agent_policy_history (`_id: "policy:<version>"`), so the seed's history recipe on
// agent_control shows no policy commands. No document is seeded: none reads as version 0.
//
// A write mirrors a control command (control.ts), because FerretDB has no multi-document
// transactions and applies an update as read, then write: inserting `policy:<version+1>` claims
// the version (a unique insert is atomic everywhere), then the policy document moves from its
// version to the next with a conditional update only that writer makes.

import { randomUUID } from 'node:crypto';

import type { Collection, Document } from 'mongodb';

import { InvalidPolicyError, VersionConflictError, VersionExhaustedError } from '../../errors.js';
import {
  emptyPolicy,
  type FleetPolicy,
  parsePolicy,
  parsePolicyVersion,
  POLICY_ID,
  type PolicyBody,
  type PolicyHistoryEntry,
  tryParsePolicyHistoryEntry,
} from '../../model/policy.js';
import type { PolicyWrite } from '../types.js';
import type { ServerClock } from './clock.js';
import { isDuplicateKey, type LooseDocument } from './connection.js';
import { ensureIndexes } from './indexes.js';

export const POLICY_HISTORY_COLLECTION = 'agent_policy_history';
/** After how long a history entry whose writer never moved the policy counts as abandoned. */
const ABANDONED_AFTER_MS = 30_000;
/** Matches nothing and copies nothing into an upserted document: an upsert that only inserts. */
const NEVER = { $in: [] };

export interface PolicyCollections {
  control: Collection<LooseDocument>;
  history: Collection<LooseDocument>;
  clock: ServerClock;
}

export function policyHistoryId(version: number): string {
  return `policy:${version}`;
}

export async function ensurePolicy(history: Collection<LooseDocument>): Promise<void> {
  await ensureIndexes(history, [{ key: { version: -1 }, name: 'pa_policy_by_version' }]);
}

/** The body as the document keeps it: each per-queue map as an array of entries naming their queue. */
function toStored(body: PolicyBody): Document {
  return {
    paused_queues: Object.entries(body.paused_queues).map(([queue, rule]) => ({ queue, ...rule })),
    throttle: body.throttle === null ? null : { ...body.throttle },
    queue_rates: Object.entries(body.queue_rates).map(([queue, rate]) => ({ queue, ...rate })),
  };
}

/** A stored array of `{queue, …}` back to the model's map by queue name, or InvalidPolicyError. */
function fromStoredList(raw: unknown, field: string): Record<string, unknown> {
  if (raw === null || raw === undefined) return {};
  if (!Array.isArray(raw)) throw new InvalidPolicyError(`${field} is not an array of {queue, …} entries`);
  const entries = raw.map((item: unknown, i): [string, unknown] => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new InvalidPolicyError(`${field}[${i}] is not an object`);
    }
    const { queue, ...rest } = item as Record<string, unknown>;
    if (typeof queue !== 'string') throw new InvalidPolicyError(`${field}[${i}].queue is not a string`);
    return [queue, rest];
  });
  const names = new Set(entries.map(([queue]) => queue));
  if (names.size !== entries.length) throw new InvalidPolicyError(`${field} lists a queue twice`);
  return Object.fromEntries(entries); // own properties, whatever the names (parsing checks them)
}

function parseStored(doc: Document): FleetPolicy {
  return parsePolicy({
    ...doc,
    paused_queues: fromStoredList(doc.paused_queues, 'paused_queues'),
    queue_rates: fromStoredList(doc.queue_rates, 'queue_rates'),
  });
}

export async function readPolicy(
  control: Collection<LooseDocument>,
  maxTimeMS?: number,
): Promise<FleetPolicy> {
  const doc = await control.findOne({ _id: POLICY_ID }, maxTimeMS !== undefined ? { maxTimeMS } : {});
  return doc === null ? emptyPolicy() : parseStored(doc);
}

export async function listPolicyHistory(
  history: Collection<LooseDocument>,
  limit: number,
  maxTimeMS?: number,
): Promise<PolicyHistoryEntry[]> {
  if (limit <= 0) return []; // limit(0) means "no limit" to MongoDB
  const entries = await history
    .find(
      {},
      { sort: { version: -1 }, limit: Math.floor(limit), ...(maxTimeMS !== undefined && { maxTimeMS }) },
    )
    .toArray();
  return entries.map(tryParsePolicyHistoryEntry).filter((e): e is PolicyHistoryEntry => e !== null);
}

async function newestHistoryVersion(history: Collection<LooseDocument>): Promise<number> {
  const [newest] = await history
    .find({}, { projection: { version: 1 }, sort: { version: -1 }, limit: 1 })
    .toArray();
  try {
    return newest === undefined ? 0 : parsePolicyVersion(newest);
  } catch {
    return 0; // an entry broken by hand does not hold the versions back
  }
}

/** Inserts policy:<version> for this writer; null when another writer holds that version. */
async function claimVersion(
  history: Collection<LooseDocument>,
  version: number,
  write: PolicyWrite,
  token: string,
): Promise<Document | null> {
  try {
    return await history.findOneAndUpdate(
      { _id: policyHistoryId(version), version: NEVER },
      {
        $set: { version, ...write.entry, write_token: token },
        $currentDate: { timestamp: true },
      },
      { upsert: true, returnDocument: 'after' },
    );
  } catch (error) {
    if (isDuplicateKey(error)) return null;
    throw error;
  }
}

/**
 * Removes policy:<version> when its writer died between its two steps: the entry is old and the
 * policy still sits below it. The policy it carries was never applied, so it is withdrawn.
 * Resolves with whether it removed it.
 */
async function withdrawAbandoned(c: PolicyCollections, version: number, current: number): Promise<boolean> {
  const entry = await c.history.findOne({ _id: policyHistoryId(version) });
  if (!(entry?.timestamp instanceof Date)) return false;
  const age = (await c.clock.now()).getTime() - entry.timestamp.getTime();
  if (age < ABANDONED_AFTER_MS) return false;
  const now = await c.control.findOne({ _id: POLICY_ID }, { projection: { version: 1 } });
  if ((now === null ? 0 : parsePolicyVersion(now)) !== current) return false;
  const removed = await c.history.deleteOne({
    _id: policyHistoryId(version),
    write_token: entry.write_token,
  });
  return removed.deletedCount === 1;
}

export async function writePolicy(c: PolicyCollections, write: PolicyWrite): Promise<FleetPolicy> {
  const token = randomUUID();
  for (;;) {
    const raw = await c.control.findOne({ _id: POLICY_ID }, { projection: { version: 1 } });
    // Only the version must read: a write over a malformed body (at its version) repairs it.
    const current = raw === null ? 0 : parsePolicyVersion(raw);
    if (write.expectedVersion !== current)
      throw new VersionConflictError(write.expectedVersion, current, 'policy');
    // Above the newest history entry too, so a document deleted or rewound by hand never reuses
    // a version an agent may have applied.
    const base = Math.max(current, await newestHistoryVersion(c.history));
    if (base >= Number.MAX_SAFE_INTEGER) throw new VersionExhaustedError(base, 'policy');
    const next = base + 1;
    const entry = await claimVersion(c.history, next, write, token);
    if (entry === null) {
      // Another writer holds the next version: it is moving the policy now (a conflict for us),
      // unless it died between its two steps long ago, in which case its entry is withdrawn.
      if (await withdrawAbandoned(c, next, current)) continue;
      throw new VersionConflictError(write.expectedVersion, next, 'policy');
    }
    const policy: FleetPolicy = { ...write.body, version: next, timestamp: entry.timestamp as Date };
    const fields = { version: next, timestamp: policy.timestamp, ...toStored(write.body) };
    let moved: boolean;
    if (raw === null) {
      try {
        await c.control.updateOne({ _id: POLICY_ID, version: NEVER }, { $set: fields }, { upsert: true });
        moved = true;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        moved = false; // created meanwhile, by hand or by another writer
      }
    } else {
      // The stored value as it is (a hand edit may have left a string or a Long there).
      const result = await c.control.updateOne({ _id: POLICY_ID, version: raw.version }, { $set: fields });
      moved = result.matchedCount === 1;
    }
    if (moved) return policy;
    // The policy moved under us without a history entry (a hand edit): withdraw ours.
    await c.history.deleteOne({ _id: policyHistoryId(next), write_token: token });
    const now = await c.control.findOne({ _id: POLICY_ID }, { projection: { version: 1 } });
    throw new VersionConflictError(
      write.expectedVersion,
      now === null ? 0 : parsePolicyVersion(now),
      'policy',
    );
  }
}
