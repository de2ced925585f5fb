// An in-memory Store for the runtime's unit tests: the documents and their claims as the real
// stores keep them (tokens, leases by a clock the test can move), with hooks to slow or fail any
// operation. It passes the same conformance suite as the real stores, so that what the runtime's
// tests learn from it holds for them too.

import { randomUUID } from 'node:crypto';

import { CONTROL_ID } from '../../src/control/state.js';
import { VersionConflictError, WatchUnavailableError } from '../../src/errors.js';
import type {
  AgentHeartbeat,
  AgentRecord,
  ClaimedDocument,
  ClaimOwner,
  CommandInput,
  ControlState,
  DocumentCounts,
  DocumentRecord,
  DocumentStatus,
  FailedAttempt,
  HeldDocument,
  Store,
} from '../../src/stores/types.js';

interface Row {
  id: string;
  status: DocumentStatus;
  payload: unknown;
  attempts: number;
  claimed_by: string | null;
  token: string | null;
  lease_until: number;
  error: string | null;
  created_at: Date;
  processed_at: Date | null;
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
  const calls: { op: Operation; size: number }[] = [];
  const before: MemoryStore['before'] = {};

  async function hook(op: Operation, size: number): Promise<void> {
    calls.push({ op, size });
    await before[op]?.();
  }
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
      if (input.expectedVersion !== undefined && input.expectedVersion !== control.version) {
        throw new VersionConflictError(input.expectedVersion, control.version);
      }
      control = {
        command: input.command,
        version: control.version + 1,
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
    async watchControl() {
      throw new WatchUnavailableError('memory', `no watch on ${CONTROL_ID} in memory`);
    },
    async upsertAgent(heartbeat: AgentHeartbeat) {
      await hook('upsertAgent', 1);
      agents.set(heartbeat.instance_id, { ...heartbeat, heartbeat_at: new Date(now()) });
    },
    async removeAgent(instanceId) {
      agents.delete(instanceId);
    },
    async listAgents() {
      return [...agents.values()].sort(
        (a, b) => a.agent_id.localeCompare(b.agent_id) || a.instance_id.localeCompare(b.instance_id),
      );
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
      return payloads.map((payload) => {
        const id = String(nextId++);
        rows.push({
          id,
          status: 'pending',
          payload: payload === undefined ? null : structuredClone(payload),
          attempts: 0,
          claimed_by: null,
          token: null,
          lease_until: 0,
          error: null,
          created_at: new Date(now()),
          processed_at: null,
        });
        return id;
      });
    },
    async claimBatch(owner: ClaimOwner, limit, leaseMs) {
      await hook('claimBatch', limit);
      const token = randomUUID();
      const t = now();
      const claimed: ClaimedDocument[] = [];
      for (const r of rows) {
        if (claimed.length >= limit) break;
        if (r.status === 'pending' || (r.status === 'processing' && r.lease_until < t)) {
          Object.assign(r, {
            status: 'processing',
            claimed_by: owner.agentId,
            token,
            lease_until: t + leaseMs,
          });
          claimed.push({ id: r.id, token, payload: structuredClone(r.payload), attempts: r.attempts });
        }
      }
      return claimed;
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
          Object.assign(r, { status: 'processed', token: null, error: null, processed_at: new Date(now()) });
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
        if (r.attempts > maxRetries) {
          r.status = 'failed';
          r.processed_at = new Date(now());
        } else {
          r.status = 'pending';
          r.claimed_by = null;
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
      if (!r) return null;
      return {
        id: r.id,
        status: r.status,
        payload: structuredClone(r.payload),
        attempts: r.attempts,
        claimed_by: r.claimed_by,
        error: r.error,
        created_at: r.created_at,
        processed_at: r.processed_at,
      } satisfies DocumentRecord;
    },
    async countDocuments() {
      const counts: DocumentCounts = { pending: 0, processing: 0, processed: 0, failed: 0 };
      for (const r of rows) counts[r.status]++;
      return counts;
    },
  };
  return store;
}
