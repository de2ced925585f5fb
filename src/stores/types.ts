// The store interface: the only thing the agent, the control watcher and the HTTP API know about a
// database. Semantic operations only; no driver, connection or transaction type leaks out of here.
// Every implementation (src/stores/sqlite, postgres/, mongodb/) passes test/stores/conformance.ts.
//
// Ownership of a document is by claim token, never by name: every claimBatch call draws a fresh
// token, and renew, complete, fail and release act on (id, token) pairs, so a stale holder cannot
// touch a document someone has claimed since, whatever the agents are called. The operations on
// held documents may be called concurrently by one agent, also on the same documents (a renewal
// while a completion is on its way); each store makes that safe itself. The MongoDB adapter
// serialises them, because FerretDB applies an update as read, then write the whole document.

import type { ControlCommand, ControlState } from '../model/control.js';
import type { DocumentCounts, DocumentStatus } from '../model/documents.js';
import type { FleetPolicy, PolicyBody, PolicyHistoryEntry } from '../model/policy.js';
import type { MinuteCount } from '../model/throughput.js';
import type { EventDrivenMode, WatchMode } from '../model/watch.js';

// The domain types the interface speaks in, for its users' convenience; they are defined (once) in
// src/model/.
export type { ControlCommand, ControlState } from '../model/control.js';
export { CONTROL_COMMANDS, CONTROL_ID } from '../model/control.js';
export type { DocumentCounts, DocumentStatus } from '../model/documents.js';
export { DOCUMENT_STATUSES, LEASE_EXPIRED_ERROR } from '../model/documents.js';
export type { FleetPolicy, PolicyBody, PolicyHistoryEntry } from '../model/policy.js';
export { DEFAULT_QUEUE, POLICY_ID } from '../model/policy.js';
export type { MinuteCount } from '../model/throughput.js';
export type { EventDrivenMode, WatchMode } from '../model/watch.js';
export { WATCH_MODES } from '../model/watch.js';

export interface CommandInput {
  command: ControlCommand;
  reason: string | null;
  updated_by: string;
  on_behalf_of?: string | null;
  expires_at?: Date | null;
  /** Compare-and-set: fail with VersionConflictError when the current version differs. */
  expectedVersion?: number;
}

/** Who claims: the agent's human name (kept as `claimed_by`) and this process's own instance id. */
export interface ClaimOwner {
  agentId: string;
  instanceId: string;
}

/** A document as one claim holds it: acting on it takes both, so only that claim can. */
export interface HeldDocument {
  id: string;
  /** The claim's token, unique per claimBatch call. */
  token: string;
}

/** A document handed to an agent by claimBatch. */
export interface ClaimedDocument extends HeldDocument {
  payload: unknown;
  /** Its queue (DEFAULT_QUEUE unless it was stored with one). */
  queue: string;
  /** Failed attempts so far (0 on the first try). */
  attempts: number;
}

/** One failed attempt of a held document, for failDocuments. */
export interface FailedAttempt extends HeldDocument {
  error: string;
  /** When it may run again, from now by the store's clock (the backoff, decided above the stores). */
  retryInMs: number;
}

export interface DocumentRecord {
  id: string;
  status: DocumentStatus;
  queue: string;
  payload: unknown;
  /** Attempts that failed so far, all of them (a manual retry keeps them visible). */
  attempts: number;
  claimed_by: string | null;
  /** The last failed attempt's error. */
  error: string | null;
  created_at: Date;
  updated_at: Date;
  processed_at: Date | null;
  /** When a pending document is due (its next attempt); null once processing, processed or failed. */
  run_at: Date | null;
  /** The deduplication key it was stored with, if any. */
  key: string | null;
}

/** One document to store, with when it is due and its deduplication key. */
export interface NewDocument {
  payload: unknown;
  /** Not claimed before this time; null or absent = due now. A time in the past is due now. */
  runAt?: Date | null;
  /**
   * While a document with this key is not finished (pending, scheduled or processing), storing
   * another with the same key stores nothing and answers with the existing one's id.
   */
  key?: string | null;
  /** Its queue, a valid queue name (src/model/policy.ts); DEFAULT_QUEUE when absent. */
  queue?: string;
}

/** Which queues a claim takes from. */
export interface ClaimFilter {
  /** Only these queues; all queues when absent or null. An empty list claims nothing. */
  only?: readonly string[] | null;
  /** Never these queues (paused, or throttled and claimed apart), whatever `only` says. */
  exclude?: readonly string[];
}

/** One queue's counts, for countQueues. */
export interface QueueCounts {
  queue: string;
  counts: DocumentCounts;
}

/** What a policy command writes: the whole new body and its history entry, by compare-and-set. */
export interface PolicyWrite {
  /** Write only when the current policy version is this one, else VersionConflictError(…, 'policy'). */
  expectedVersion: number;
  body: PolicyBody;
  entry: Omit<PolicyHistoryEntry, 'version' | 'timestamp'>;
}

export interface EnqueuedDocument {
  id: string;
  /** True when nothing was stored because an unfinished document already held the key. */
  duplicate: boolean;
}

export interface DocumentQuery {
  /** Any status, `scheduled` included; all when absent. */
  status?: DocumentStatus;
  limit: number;
  /** The cursor a previous page answered with: documents after it, in id order. */
  after?: string | null;
  /** One queue's documents only; every queue when absent. */
  queue?: string;
}

export interface DocumentPage {
  documents: DocumentRecord[];
  /** The cursor of the next page, or null when this was the last. */
  next: string | null;
}

/** One call's own bounds, tighter than the store's (STORE_TIMEOUT). */
export interface CallOptions {
  /**
   * This call's deadline in milliseconds, below the store's own: without an answer by then it fails
   * with StoreTimeoutError and the connection it used is discarded, so that a call made right after
   * it runs on a fresh one. A store whose calls cannot be abandoned (SQLite's are synchronous)
   * ignores it.
   */
  timeoutMs?: number;
}

/** One agent process's row in the registry, written by its heartbeat. */
export interface AgentRecord {
  /** The human name (AGENT_ID); two processes may share one, by mistake or by default. */
  agent_id: string;
  /** This process's own id, unique per start: the registry's key. */
  instance_id: string;
  host: string;
  software_version: string;
  state: string;
  applied_version: number;
  applied_at: Date | null;
  /** Documents claimed and not yet recorded (buffered, running, or their outcome being written). */
  batch_in_flight: boolean;
  watch_mode: WatchMode;
  started_at: Date;
  counters: Record<string, number>;
  /**
   * Processed and failed per minute over the agent's last hour (src/model/throughput.ts), oldest
   * first; absent from an older agent's heartbeat.
   */
  recent?: MinuteCount[];
  /** The fleet policy version this agent applies; absent from an older agent's heartbeat. */
  applied_policy_version?: number;
  /** The queues of the documents it holds (buffered or running); absent from an older agent's heartbeat. */
  queues_in_flight?: string[];
  /**
   * This process's clock minus the store's, in milliseconds, as the agent measured it (positive:
   * the agent's clock is ahead); absent when not measured.
   */
  clock_offset_ms?: number;
  /** Set by the store's clock on every upsert. */
  heartbeat_at: Date;
  /**
   * How old heartbeat_at is by the store's own clock when listAgents read it (never negative), so
   * that the fleet view does not depend on the reading agent's clock. Every store fills it;
   * optional for records made by hand.
   */
  heartbeat_age_ms?: number;
}

export type AgentHeartbeat = Omit<AgentRecord, 'heartbeat_at' | 'heartbeat_age_ms'>;

/** An event-driven watch on the control document, opened by Store.watchControl. */
export interface ControlWatch {
  readonly mode: EventDrivenMode;
  /** For the start-up log line, e.g. `MongoDB Change Streams (event-driven, real-time)`. */
  readonly description: string;
  /** Stops watching and releases what the watch holds (connections, file watchers). Idempotent. */
  close(): Promise<void>;
}

export interface WatchHandlers {
  /**
   * Something may have changed: the caller re-reads the version. A wake-up needs no data, so a
   * lost or coalesced one changes nothing that the next read does not repair. A store whose event
   * says which version was written (PostgreSQL's NOTIFY payload) passes it: the caller then skips
   * the read for a version it already applied, and the version read for a newer one.
   */
  onWake(announced?: { version: number }): void;
  /** The watch broke after it was established; the caller falls back to polling and retries. */
  onError(error: Error): void;
  /**
   * Optional: new pending documents were stored, so an idle agent can claim now instead of at its
   * next poll. A store that knows how many passes the count, so that idle agents do not all race
   * for one document. Stores that cannot tell simply never call it.
   */
  onDocuments?(announced?: { count: number }): void;
  /**
   * Optional: the fleet policy document changed (a store whose event says which version was
   * written passes it). The caller re-reads the policy. Stores that cannot tell call onWake
   * instead, and the caller reads both.
   */
  onPolicy?(announced?: { version: number }): void;
  /**
   * Optional: for a store that announces new documents on a channel of its own (MongoDB's change
   * stream on the documents collection), that channel came up or went down. It never takes the
   * control watch with it; while it is down, idle agents find new documents at their next poll.
   * Said on a change only (an outage once, with its first reason), so that a refusal is one log line.
   */
  onDocumentsWatch?(state: DocumentsWatchState): void;
}

/** The database behind a store given up (`lost`) or taken up again at its address (`reopened`). */
export interface StoreReplacement {
  kind: 'lost' | 'reopened';
  /** One sentence for the log: what happened to what. */
  reason: string;
}

export type DocumentsWatchState =
  { watching: true; description: string } | { watching: false; reason: string };

export interface Store {
  readonly kind: 'sqlite' | 'postgres' | 'mongodb';
  /** Human description without credentials, e.g. `sqlite:./data/pulling-agent.db`. */
  readonly description: string;

  /** Creates tables/indexes/collections idempotently and seeds the control document at version 0. */
  init(): Promise<void>;
  close(): Promise<void>;
  /** One round trip; resolves with its latency in milliseconds. */
  ping(): Promise<number>;
  /**
   * The store's current time, by the clock it stamps leases, heartbeats and due times with (the
   * server's; for SQLite the file system's, see sqlite/clock.ts). The agent measures its own
   * clock's offset from it.
   */
  readClock(): Promise<Date>;
  /**
   * Optional: the database behind this store can be swapped under it (SQLite: the file at the path
   * deleted, replaced or moved). The listener hears `lost` when the one held is given up and
   * `reopened` once the one now at the address is in use; versions seen before mean nothing for
   * it, so the caller reads the control document afresh. Returns the unsubscribe.
   */
  onReplaced?(listener: (change: StoreReplacement) => void): () => void;

  // --- control ---
  /** The cheapest read there is: the current version only. */
  readControlVersion(): Promise<number>;
  /** The current control document, validated; throws InvalidControlStateError when it is malformed. */
  readControl(): Promise<ControlState>;
  /** Atomically: version + 1, timestamp from the store's clock, append a history entry. */
  writeCommand(input: CommandInput): Promise<ControlState>;
  /** History entries, newest first. Entries that do not parse are skipped. */
  listHistory(limit: number): Promise<ControlState[]>;
  /**
   * Opens an event-driven watch and resolves once it is established (a lazy driver call is forced
   * to its first round trip). Rejects with WatchUnavailableError naming the reason when this store
   * or server cannot push changes; the caller then polls and may try again later.
   */
  watchControl(handlers: WatchHandlers): Promise<ControlWatch>;

  // --- fleet policy (paused queues, throttle; src/model/policy.ts), beside the control document ---
  /** The current policy, validated; version 0 and empty when none was ever written. Throws InvalidPolicyError. */
  readPolicy(): Promise<FleetPolicy>;
  /** Atomically, by compare-and-set on the version: the new body, version + 1, store timestamp, a history entry. */
  writePolicy(write: PolicyWrite): Promise<FleetPolicy>;
  /** Policy history entries, newest first. Entries that do not parse are skipped. */
  listPolicyHistory(limit: number): Promise<PolicyHistoryEntry[]>;

  // --- agent registry ---
  /**
   * Writes this process's row, keyed by `instance_id`. A store with connections writes it on one
   * of its own (PostgreSQL, MongoDB), so that a heartbeat never waits behind the pool's hung calls.
   */
  upsertAgent(heartbeat: AgentHeartbeat, options?: CallOptions): Promise<void>;
  removeAgent(instanceId: string): Promise<void>;
  listAgents(): Promise<AgentRecord[]>;
  /** Removes agents whose last heartbeat is older than the given age; resolves with how many. */
  pruneAgents(olderThanMs: number): Promise<number>;

  // --- documents ---
  /** Stores each payload as a pending document; resolves with their ids, in order. */
  insertDocuments(payloads: unknown[]): Promise<string[]>;
  /**
   * Stores documents, each with an optional due time and deduplication key, in one round trip
   * where the store can; resolves in input order with each one's id (an existing one's for a
   * duplicate key). A bad document stores none of them.
   */
  enqueueDocuments(documents: NewDocument[]): Promise<EnqueuedDocument[]>;
  /**
   * A crash is an attempt: documents still processing after their lease ran out (their agent
   * died, or lost the store for a whole lease) count a failed attempt with LEASE_EXPIRED_ERROR and
   * go back to pending, due now, or to `failed` once their attempts exceed maxRetries. Cheap when
   * there are none (an index on the lease). Each one retried is due at a random time within
   * `spreadMs` from now, so that documents that died together (with a poison document, say) are not
   * claimed together again. Resolves with how many went each way.
   */
  recoverExpiredLeases(maxRetries: number, spreadMs: number): Promise<{ retried: number; failed: number }>;
  /**
   * Atomically claims up to `limit` documents that are pending and due (run_at not after the
   * store's clock), the earliest due first, with a lease of `leaseMs` and a fresh token. No
   * document is ever held by two claims. `claimed_by` records `owner.agentId`. Documents whose
   * lease expired are not claimed here: recoverExpiredLeases counts their attempt first.
   */
  claimBatch(
    owner: ClaimOwner,
    limit: number,
    leaseMs: number,
    filter?: ClaimFilter,
  ): Promise<ClaimedDocument[]>;
  /** Extends the leases of documents these claims still hold; resolves with how many. */
  extendLeases(held: HeldDocument[], leaseMs: number): Promise<number>;
  /** Marks documents these claims still hold as processed; ignores the rest; resolves with how many. */
  completeDocuments(held: HeldDocument[]): Promise<number>;
  /**
   * Records failed attempts of documents these claims hold: each goes back to pending with
   * attempts + 1, due after its retryInMs (so `scheduled` until then), or to `failed` with its
   * error once its attempts since the last manual retry exceed maxRetries. Resolves with each
   * one's new status in input order ('pending' for a retry, whatever its due time), or null for
   * one its claim no longer held.
   */
  failDocuments(failures: FailedAttempt[], maxRetries: number): Promise<(DocumentStatus | null)[]>;
  /** Returns documents these claims hold to pending without counting an attempt. */
  releaseDocuments(held: HeldDocument[]): Promise<number>;
  getDocument(id: string): Promise<DocumentRecord | null>;
  countDocuments(): Promise<DocumentCounts>;
  /** Counts per queue, for every queue that has documents, by queue name. */
  countQueues(): Promise<QueueCounts[]>;
  /** A page of documents in id order, of one status or all. */
  listDocuments(query: DocumentQuery): Promise<DocumentPage>;
  /**
   * Puts failed documents back to pending, due now, with a fresh retry budget (their attempts so
   * far stay visible): the ones named, or every failed one. Ignores any that is not failed.
   * Resolves with how many.
   */
  retryDocuments(target: { ids: string[] } | { status: 'failed' }): Promise<number>;
  /** Discards a document that is not being processed. */
  deleteDocument(id: string): Promise<'deleted' | 'not_found' | 'processing'>;
}
