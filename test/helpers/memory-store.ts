// An in-memory Store for the runtime's unit tests: the documents and their claims as the real
// stores keep them (tokens, leases by a clock the test can move), with hooks to slow or fail any
// operation. It passes the same conformance suite as the real stores, so that what the runtime's
// tests learn from it holds for them too.

import { randomUUID } from 'node:crypto';

import { VersionConflictError, VersionExhaustedError, WatchUnavailableError } from '../../src/errors.js';
import { PullingAgentError } from '../../src/errors.js';
import { CONTROL_ID } from '../../src/model/control.js';
import {
  emptyPolicy,
  parsePolicy,
  parsePolicyVersion,
  policyHistoryEntryToJson,
  policyToJson,
  tryParsePolicyHistoryEntry,
} from '../../src/model/policy.js';
import { emptyCounts, groupQueueCounts, passes, queuesOf, reduceFilter } from '../../src/stores/queues.js';
import type {
  AgentHeartbeat,
  AgentRecord,
  ClaimedDocument,
  ClaimFilter,
  ClaimOwner,
  CommandInput,
  ControlState,
  DocumentCounts,
  DocumentRecord,
  DocumentStatus,
  EnqueuedDocument,
  FailedAttempt,
  FleetPolicy,
  HeldDocument,
  PolicyHistoryEntry,
  Store,
} from '../../src/stores/types.js';
import { LEASE_EXPIRED_ERROR } from '../../src/stores/types.js';

interface Row {
  id: string;
  status: DocumentStatus;
  queue: string;
  payload: unknown;
  attempts: number;
  claimed_by: string | null;
  token: string | null;
  lease_until: number;
  error: string | null;
  created_at: Date;
  updated_at: Date;
  processed_at: Date | null;
  /** When a pending row is due, by the store's clock (ms). */
  run_at: number;
  /** Attempts when it was last retried by hand: the retry budget counts from here. */
  attempt_base: number;
  key: string | null;
}

export type Operation =
  'claimBatch' | 'extendLeases' | 'completeDocuments' | 'failDocuments' | 'releaseDocuments' | 'upsertAgent';

export interface MemoryStore extends Store {
  /** Every document, in id order. */
  readonly rows: Row[];
  /** Calls made, with their argument sizes, for tests that count statements. */
  readonly calls: { op: Operation; size: number }[];
  /** Runs before each operation of that name (delay it, throw to fail it). */
  before: Partial<Record<Operation, () => Promise<void> | void>>;
  /** Moves the store's clock forward (leases run out). */
  advance(ms: number): void;
  /** The seed's manual wake-up: version + 1, nothing else. */
  bumpVersion(): void;
  /** Sets the version by hand. */
  setVersion(version: number): void;
  /** Replaces the stored policy document by hand (any shape, as a bad hand edit could). */
  setRawPolicy(raw: Record<string, unknown>): void;
  /** Adds a policy history entry by hand (any shape: one that does not parse is skipped). */
  addRawPolicyHistory(entry: Record<string, unknown>): void;
}

export function createMemoryStore(): MemoryStore {
  const rows: Row[] = [];
  const agents = new Map<string, AgentRecord>();
  let nextId = 1;
  let offset = 0;
  const now = () => Date.now() + offset;
  let control: ControlState = {
    command: 'running',
    version: 0,
    timestamp: new Date(),
    reason: null,
    updated_by: 'system',
    on_behalf_of: null,
    expires_at: null,
  };
  const history: ControlState[] = [];
  // The fleet policy, beside the control document: its own version, its own history. Kept in its
  // JSON form and parsed on every read, as the real stores do, so a hand edit can break it.
  let policy: Record<string, unknown> | null = null;
  // Newest first; raw, as a hand edit may leave them, parsed when listed.
  const policyHistory: Record<string, unknown>[] = [];
  const historyVersion = (h: Record<string, unknown>) => tryParsePolicyHistoryEntry(h)?.version ?? 0;
  const calls: { op: Operation; size: number }[] = [];
  const before: MemoryStore['before'] = {};

  async function hook(op: Operation, size: number): Promise<void> {
    calls.push({ op, size });
    await before[op]?.();
  }
  const unfinished = (r: Row) => r.status === 'pending' || r.status === 'processing';
  const shown = (r: Row): DocumentStatus =>
    r.status === 'pending' && r.run_at > now() ? 'scheduled' : r.status;
  const toRecord = (r: Row): DocumentRecord => ({
    id: r.id,
    status: shown(r),
    queue: r.queue,
    payload: structuredClone(r.payload),
    attempts: r.attempts,
    claimed_by: r.claimed_by,
    error: r.error,
    created_at: r.created_at,
    updated_at: r.updated_at,
    processed_at: r.processed_at,
    run_at: r.status === 'pending' ? new Date(r.run_at) : null,
    key: r.key,
  });
  const heldRow = (h: HeldDocument) =>
    rows.find((r) => r.id === h.id && r.status === 'processing' && r.token === h.token);

  const store: MemoryStore = {
    kind: 'sqlite',
    description: 'memory',
    rows,
    calls,
    before,
    advance(ms) {
      offset += ms;
    },
    bumpVersion() {
      control = { ...control, version: control.version + 1 };
    },
    setVersion(version) {
      control = { ...control, version };
    },
    async init() {},
    async close() {},
    async ping() {
      return 0;
    },
    async readControlVersion() {
      return control.version;
    },
    async readControl() {
      return { ...control };
    },
    async writeCommand(input: CommandInput) {
      const highest = Math.max(control.version, ...history.map((h) => h.version));
      if (highest >= Number.MAX_SAFE_INTEGER) throw new VersionExhaustedError(highest);
      if (input.expectedVersion !== undefined && input.expectedVersion !== control.version) {
        throw new VersionConflictError(input.expectedVersion, control.version);
      }
      control = {
        command: input.command,
        version: highest + 1,
        timestamp: new Date(now()),
        reason: input.reason,
        updated_by: input.updated_by,
        on_behalf_of: input.on_behalf_of ?? null,
        expires_at: input.expires_at ?? null,
      };
      history.unshift({ ...control });
      return { ...control };
    },
    async listHistory(limit) {
      return history.slice(0, limit);
    },
    setRawPolicy(raw) {
      policy = structuredClone(raw);
    },
    addRawPolicyHistory(entry) {
      policyHistory.push(structuredClone(entry));
      policyHistory.sort((x, y) => historyVersion(y) - historyVersion(x));
    },
    async readPolicy() {
      return policy === null ? emptyPolicy() : parsePolicy(structuredClone(policy));
    },
    async writePolicy({ expectedVersion, body, entry }) {
      // Only the version must read: a write over a malformed body repairs it.
      const current = policy === null ? 0 : parsePolicyVersion(policy);
      if (expectedVersion !== current) throw new VersionConflictError(expectedVersion, current, 'policy');
      const base = Math.max(current, ...policyHistory.map(historyVersion));
      if (base >= Number.MAX_SAFE_INTEGER) throw new VersionExhaustedError(base, 'policy');
      const written: FleetPolicy = {
        ...structuredClone(body),
        version: base + 1,
        timestamp: new Date(now()),
      };
      policy = policyToJson(written);
      policyHistory.unshift(
        policyHistoryEntryToJson({ ...entry, version: written.version, timestamp: written.timestamp }),
      );
      return written;
    },
    async listPolicyHistory(limit) {
      return policyHistory
        .map(tryParsePolicyHistoryEntry)
        .filter((h): h is PolicyHistoryEntry => h !== null)
        .slice(0, Math.max(0, limit));
    },
    async watchControl() {
      throw new WatchUnavailableError('memory', `no watch on ${CONTROL_ID} in memory`);
    },
    async upsertAgent(heartbeat: AgentHeartbeat) {
      await hook('upsertAgent', 1);
      agents.set(heartbeat.instance_id, structuredClone({ ...heartbeat, heartbeat_at: new Date(now()) }));
    },
    async removeAgent(instanceId) {
      agents.delete(instanceId);
    },
    async listAgents() {
      return [...agents.values()]
        .sort((a, b) => a.agent_id.localeCompare(b.agent_id) || a.instance_id.localeCompare(b.instance_id))
        .map((a) => ({ ...a, heartbeat_age_ms: Math.max(0, now() - a.heartbeat_at.getTime()) }));
    },
    async pruneAgents(olderThanMs) {
      let n = 0;
      for (const [key, a] of agents) {
        if (a.heartbeat_at.getTime() < now() - olderThanMs) {
          agents.delete(key);
          n++;
        }
      }
      return n;
    },
    async insertDocuments(payloads) {
      return (await store.enqueueDocuments(payloads.map((payload) => ({ payload })))).map((d) => d.id);
    },
    async enqueueDocuments(documents) {
      const queues = queuesOf(documents);
      return documents.map((d, i): EnqueuedDocument => {
        const key = d.key ?? null;
        const holder = key === null ? undefined : rows.find((r) => r.key === key && unfinished(r));
        if (holder) return { id: holder.id, duplicate: true };
        const id = String(nextId++);
        const t = now();
        rows.push({
          id,
          status: 'pending',
          queue: queues[i]!,
          payload: d.payload === undefined ? null : structuredClone(d.payload),
          attempts: 0,
          claimed_by: null,
          token: null,
          lease_until: 0,
          error: null,
          created_at: new Date(t),
          updated_at: new Date(t),
          processed_at: null,
          run_at: Math.max(t, d.runAt?.getTime() ?? 0),
          attempt_base: 0,
          key,
        });
        return { id, duplicate: false };
      });
    },
    async recoverExpiredLeases(maxRetries, spreadMs) {
      const t = now();
      let retried = 0;
      let failed = 0;
      for (const r of rows) {
        if (r.status !== 'processing' || r.lease_until >= t) continue;
        Object.assign(r, {
          attempts: r.attempts + 1,
          error: LEASE_EXPIRED_ERROR,
          token: null,
          updated_at: new Date(t),
        });
        if (r.attempts - r.attempt_base > maxRetries) {
          Object.assign(r, { status: 'failed', processed_at: new Date(t) });
          failed++;
        } else {
          Object.assign(r, { status: 'pending', claimed_by: null, run_at: t + Math.random() * spreadMs });
          retried++;
        }
      }
      return { retried, failed };
    },
    async claimBatch(owner: ClaimOwner, limit, leaseMs, filter?: ClaimFilter) {
      await hook('claimBatch', limit);
      const token = randomUUID();
      const t = now();
      const wanted = reduceFilter(filter);
      const due = rows
        .filter((r) => r.status === 'pending' && r.run_at <= t && passes(wanted, r.queue))
        .sort((x, y) => x.run_at - y.run_at || Number(x.id) - Number(y.id))
        .slice(0, Math.max(0, limit));
      for (const r of due) {
        Object.assign(r, {
          status: 'processing',
          claimed_by: owner.agentId,
          token,
          lease_until: t + leaseMs,
        });
      }
      return due
        .sort((x, y) => Number(x.id) - Number(y.id))
        .map((r): ClaimedDocument => ({
          id: r.id,
          token,
          payload: structuredClone(r.payload),
          queue: r.queue,
          attempts: r.attempts,
        }));
    },
    async extendLeases(held, leaseMs) {
      await hook('extendLeases', held.length);
      let n = 0;
      for (const h of held) {
        const r = heldRow(h);
        if (r) {
          r.lease_until = now() + leaseMs;
          n++;
        }
      }
      return n;
    },
    async completeDocuments(held) {
      await hook('completeDocuments', held.length);
      let n = 0;
      for (const h of held) {
        const r = heldRow(h);
        if (r) {
          Object.assign(r, {
            status: 'processed',
            token: null,
            error: null,
            processed_at: new Date(now()),
            updated_at: new Date(now()),
          });
          n++;
        }
      }
      return n;
    },
    async failDocuments(failures: FailedAttempt[], maxRetries) {
      await hook('failDocuments', failures.length);
      return failures.map((f) => {
        const r = heldRow(f);
        if (!r) return null;
        r.attempts++;
        r.error = f.error;
        r.token = null;
        r.updated_at = new Date(now());
        if (r.attempts - r.attempt_base > maxRetries) {
          r.status = 'failed';
          r.processed_at = new Date(now());
        } else {
          r.status = 'pending';
          r.claimed_by = null;
          r.run_at = now() + Math.max(0, f.retryInMs);
        }
        return r.status;
      });
    },
    async releaseDocuments(held) {
      await hook('releaseDocuments', held.length);
      let n = 0;
      for (const h of held) {
        const r = heldRow(h);
        if (r) {
          Object.assign(r, { status: 'pending', token: null, claimed_by: null });
          n++;
        }
      }
      return n;
    },
    async getDocument(id) {
      const r = rows.find((row) => row.id === id);
      return r ? toRecord(r) : null;
    },
    async countDocuments() {
      const counts: DocumentCounts = emptyCounts();
      for (const r of rows) counts[shown(r)]++;
      return counts;
    },
    async countQueues() {
      return groupQueueCounts(rows.map((r) => ({ queue: r.queue, status: shown(r), n: 1 })));
    },
    async listDocuments({ status, limit, after, queue }) {
      if (after != null && !/^\d+$/.test(after)) {
        throw new PullingAgentError(
          'PA_BAD_REQUEST',
          `the cursor ${JSON.stringify(after)} is not one this store gave`,
        );
      }
      const from = after == null ? 0 : Number(after);
      const matching = rows.filter(
        (r) =>
          Number(r.id) > from &&
          (status === undefined || shown(r) === status) &&
          (queue === undefined || r.queue === queue),
      );
      const page = matching.slice(0, Math.max(0, limit)).map(toRecord);
      return {
        documents: page,
        next: matching.length > page.length && page.length > 0 ? page.at(-1)!.id : null,
      };
    },
    async retryDocuments(target) {
      const named = 'ids' in target ? new Set(target.ids) : null;
      const chosen = rows.filter((r) => r.status === 'failed' && (named === null || named.has(r.id)));
      const taken = new Set(rows.filter((r) => r.key !== null && unfinished(r)).map((r) => r.key));
      let n = 0;
      for (const r of [...chosen].reverse()) {
        if (r.key !== null) {
          if (taken.has(r.key)) continue;
          taken.add(r.key);
        }
        const t = now();
        Object.assign(r, {
          status: 'pending',
          run_at: t,
          attempt_base: r.attempts,
          claimed_by: null,
          processed_at: null,
          updated_at: new Date(t),
        });
        n++;
      }
      return n;
    },
    async deleteDocument(id) {
      const index = rows.findIndex((r) => r.id === id);
      if (index < 0) return 'not_found';
      if (rows[index]!.status === 'processing') return 'processing';
      rows.splice(index, 1);
      return 'deleted';
    },
  };
  return store;
}
