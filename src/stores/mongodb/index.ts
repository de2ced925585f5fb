// The MongoDB store: one MongoClient (small pool) per store, and one module per concern (control,
// agents, documents, the change-stream watch). Loaded by openStore only for mongodb:// URLs, so an
// agent on another store never loads the driver. Works on MongoDB (replica set, Atlas, standalone)
// and on FerretDB, which has no change streams: watchControl then says why and the control
// watcher polls. Where the control stream opens, a second one on the documents collection wakes
// idle agents when documents are stored (documentStream.ts), unless watchDocuments is false.

import type { Collection, MongoClientOptions } from 'mongodb';

import { StoreUnavailableError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import type { ControlWatch, Store, WatchHandlers } from '../types.js';
import * as agents from './agents.js';
import { type ChangeStreamOptions, watchControlChanges } from './changeStream.js';
import { ServerClock } from './clock.js';
import {
  checkCollectionName,
  DEFAULT_TIMEOUT_MS,
  guard,
  type LooseDocument,
  MongoConnection,
  resolveDatabase,
} from './connection.js';
import * as control from './control.js';
import * as documents from './documents.js';
import { DocumentStream, type DocumentStreamOptions } from './documentStream.js';
import * as policy from './policy.js';
import { checkQueueField, DEFAULT_QUEUE_FIELD } from './queues.js';
import * as records from './records.js';

export { REGISTRY_COLLECTION } from './agents.js';
export { CHANGE_STREAMS_DESCRIPTION } from './changeStream.js';
export { CONTROL_COLLECTION } from './control.js';
export { CLAIMS_COLLECTION } from './documents.js';
export { POLICY_HISTORY_COLLECTION } from './policy.js';

export interface MongoStoreOptions {
  /** mongodb:// or mongodb+srv:// URL; its query options (e.g. replicaSet, authSource) apply. */
  url: string;
  /** MONGODB_DATABASE; when undefined, the database named in the URL's path. */
  database?: string | undefined;
  /** MONGODB_COLLECTION: the documents to pull. Default `documents`. */
  collection?: string;
  /** QUEUE_FIELD: the field of each document that names its queue. Default `queue`. */
  queueField?: string;
  /** Extra driver options (tests shorten timeouts). */
  clientOptions?: MongoClientOptions;
  changeStream?: ChangeStreamOptions;
  /**
   * MONGODB_WATCH_DOCUMENTS: a change stream on the documents collection wakes idle agents when
   * documents are stored (default true); false leaves them to POLL_INTERVAL.
   */
  watchDocuments?: boolean;
  /** The documents stream's own timings (tests shorten them); its server-side wait is changeStream's. */
  documentStream?: DocumentStreamOptions;
  /** The deadline of every call (STORE_TIMEOUT): maxTimeMS, socketTimeoutMS. Default 10000 ms. */
  timeoutMs?: number;
}

/** The URL without its password, also inside authMechanismProperties. */
function describeUrl(url: string): string {
  return redactUrl(url).replace(/([?&]authMechanismProperties=)[^&]*/i, '$1***');
}

/** Everything bound to the connected client. */
interface Handles {
  control: Collection<LooseDocument>;
  registry: Collection<LooseDocument>;
  policy: policy.PolicyCollections;
  docs: documents.DocumentCollections;
  clock: ServerClock;
}

export function createMongoStore(options: MongoStoreOptions): Store {
  const database = resolveDatabase(options.url, options.database);
  const collectionName = options.collection ?? 'documents';
  checkCollectionName(collectionName, [
    control.CONTROL_COLLECTION,
    agents.REGISTRY_COLLECTION,
    documents.CLAIMS_COLLECTION,
    policy.POLICY_HISTORY_COLLECTION,
  ]);
  const queueField = options.queueField ?? DEFAULT_QUEUE_FIELD;
  checkQueueField(queueField, [...documents.BOOKKEEPING, 'payload']);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxTimeMS = Math.max(1, Math.round(timeoutMs));
  const connection = new MongoConnection(options.url, options.clientOptions, timeoutMs);
  // The heartbeat's own client, for a write with a deadline of its own (CallOptions): a beat then
  // never waits for a connection that a hung call holds, nor meets one of the pool's silently dead
  // ones. The driver has no per-operation timeout (timeoutMS does nothing in driver 7), so the
  // deadline is this client's socket timeout: the driver closes a connection whose answer does not
  // come within it, and the write made right after opens a new one (two at most: the heartbeat
  // never has more in flight). Made for the deadline asked, again if another is asked.
  let beat: {
    deadlineMs: number;
    connection: MongoConnection;
    registry: Collection<LooseDocument> | null;
  } | null = null;
  function beatClientFor(deadlineMs: number) {
    if (beat?.deadlineMs === deadlineMs) return beat;
    const previous = beat;
    void previous?.connection.close().catch(() => undefined);
    const bound = Math.max(1, Math.round(Math.min(5_000, deadlineMs)));
    beat = {
      deadlineMs,
      connection: new MongoConnection(
        options.url,
        {
          ...options.clientOptions,
          appName: 'pulling-agent heartbeat',
          maxPoolSize: 2,
          serverSelectionTimeoutMS: bound,
          connectTimeoutMS: bound,
          socketTimeoutMS: Math.max(1, Math.round(deadlineMs)),
        },
        timeoutMs,
      ),
      registry: null,
    };
    return beat;
  }
  // The change stream's server-side wait, well inside the socket's timeout.
  const changeStream: ChangeStreamOptions = {
    maxAwaitTimeMS: Math.min(1_000, maxTimeMS),
    ...options.changeStream,
  };
  let handles: Handles | null = null;
  const watches = new Set<ControlWatch>();
  let closing: Promise<void> | undefined;

  async function connect(): Promise<Handles> {
    if (handles) return handles;
    const db = (await connection.client()).db(database);
    const clock = new ServerClock(db);
    const controlCollection = db.collection<LooseDocument>(control.CONTROL_COLLECTION);
    handles = {
      control: controlCollection,
      registry: db.collection<LooseDocument>(agents.REGISTRY_COLLECTION),
      policy: {
        control: controlCollection,
        history: db.collection<LooseDocument>(policy.POLICY_HISTORY_COLLECTION),
        clock,
      },
      docs: {
        documents: db.collection<LooseDocument>(collectionName),
        claims: db.collection<LooseDocument>(documents.CLAIMS_COLLECTION),
        clock,
        queueField,
      },
      clock,
    };
    return handles;
  }

  /** One store operation: connected first, an unreachable server reported as StoreUnavailableError. */
  function run<T>(what: string, operation: (h: Handles) => Promise<T>): Promise<T> {
    if (closing) return Promise.reject(new StoreUnavailableError(what, new Error('the store is closed')));
    return guard(what, async () => operation(await connect()));
  }

  /** A heartbeat with a deadline of its own, on the heartbeat's own client. */
  function runBeat<T>(
    what: string,
    deadlineMs: number,
    operation: (registry: Collection<LooseDocument>) => Promise<T>,
  ): Promise<T> {
    if (closing) return Promise.reject(new StoreUnavailableError(what, new Error('the store is closed')));
    return guard(what, async () => {
      const b = beatClientFor(deadlineMs);
      b.registry ??= (await b.connection.client()).db(database).collection(agents.REGISTRY_COLLECTION);
      return operation(b.registry);
    });
  }

  // Writes to held documents (renew, complete, fail, release), one at a time per store. The runtime
  // issues them concurrently, also on the same documents (a renewal while a completion is on its
  // way), and FerretDB applies an update as read, then write the whole document without checking
  // that it still matches: a renewal that read a document before a completion and wrote after it
  // would put it back to processing. In one chain, no two of this agent's writes interleave.
  let heldWrites: Promise<unknown> = Promise.resolve();
  function serialHeld<T>(what: string, operation: (h: Handles) => Promise<T>): Promise<T> {
    const next = heldWrites.then(() => run(what, operation));
    heldWrites = next.catch(() => undefined);
    return next;
  }

  return {
    kind: 'mongodb',
    description: `${describeUrl(options.url)} (database ${database}, collection ${collectionName})`,

    init: () =>
      run('initialising the database', async (h) => {
        await h.clock.sample();
        await control.ensureControl(h.control);
        await policy.ensurePolicy(h.policy.history);
        await agents.ensureRegistry(h.registry);
        await documents.ensureDocuments(h.docs);
      }),

    close() {
      closing ??= (async () => {
        await Promise.all([...watches].map((w) => w.close()));
        await Promise.all([connection.close(), beat?.connection.close()]);
      })();
      return closing;
    },

    ping: () =>
      run('pinging', async (h) => {
        const started = performance.now();
        await h.control.db.command({ ping: 1 });
        return performance.now() - started;
      }),

    readClock: () =>
      run('reading the clock', async (h) => {
        // A fresh `hello` (its localTime, corrected by half the round trip): the agent reads this
        // once a heartbeat, and the writes stamp with the same estimate or $currentDate.
        await h.clock.sample();
        return h.clock.now();
      }),

    readControlVersion: () =>
      run('reading the control version', (h) => control.readControlVersion(h.control, maxTimeMS)),
    readControl: () => run('reading the control state', (h) => control.readControl(h.control, maxTimeMS)),
    writeCommand: (input) => run('writing a command', (h) => control.writeCommand(h.control, h.clock, input)),
    listHistory: (limit) => run('reading the history', (h) => control.listHistory(h.control, limit)),

    async watchControl(handlers: WatchHandlers) {
      const h = await run('opening a change stream', connect);
      const watch = await watchControlChanges(h.control, handlers, changeStream);
      if (closing) {
        await watch.close();
        throw new StoreUnavailableError('opening a change stream', new Error('the store is closed'));
      }
      // Its own cursor, opened only once the control stream is up, in the background: its refusal
      // or its breaking is reported through onDocumentsWatch and never fails the control watch.
      const newDocuments =
        handlers.onDocuments && options.watchDocuments !== false
          ? new DocumentStream(h.docs.documents, h.clock, handlers, {
              ...changeStream,
              ...options.documentStream,
            })
          : null;
      newDocuments?.start();
      const both: ControlWatch = {
        mode: watch.mode,
        description: watch.description,
        async close() {
          watches.delete(both);
          await Promise.all([watch.close(), newDocuments?.close()]);
        },
      };
      watches.add(both);
      return both;
    },

    readPolicy: () => run('reading the fleet policy', (h) => policy.readPolicy(h.control, maxTimeMS)),
    writePolicy: (write) => run('writing the fleet policy', (h) => policy.writePolicy(h.policy, write)),
    listPolicyHistory: (limit) =>
      run('reading the policy history', (h) => policy.listPolicyHistory(h.policy.history, limit, maxTimeMS)),

    // A deadline of the call's own is the heartbeat client's socket timeout (above); the server's
    // maxTimeMS stays below it, so that a slow but living server answers with its error first.
    upsertAgent: (heartbeat, call) => {
      const own = call?.timeoutMs === undefined ? undefined : Math.min(call.timeoutMs, timeoutMs);
      if (own === undefined) {
        return run('writing a heartbeat', (h) => agents.upsertAgent(h.registry, heartbeat, maxTimeMS));
      }
      return runBeat('writing a heartbeat', own, (registry) =>
        agents.upsertAgent(registry, heartbeat, Math.max(1, Math.floor(own * 0.8))),
      );
    },
    removeAgent: (instanceId) => run('removing an agent', (h) => agents.removeAgent(h.registry, instanceId)),
    listAgents: () => run('listing agents', (h) => agents.listAgents(h.registry, h.clock, maxTimeMS)),
    pruneAgents: (olderThanMs) =>
      run('pruning agents', (h) => agents.pruneAgents(h.registry, h.clock, olderThanMs)),

    insertDocuments: (payloads) =>
      run('inserting documents', (h) => documents.insertDocuments(h.docs, payloads)),
    claimBatch: (owner, limit, leaseMs, filter) =>
      run('claiming documents', (h) => documents.claimBatch(h.docs, owner, limit, leaseMs, filter)),
    extendLeases: (held, leaseMs) =>
      serialHeld('extending leases', (h) => documents.extendLeases(h.docs, held, leaseMs)),
    completeDocuments: (held) =>
      serialHeld('completing documents', (h) => documents.completeDocuments(h.docs, held)),
    failDocuments: (failures, maxRetries) =>
      serialHeld('recording failures', (h) => documents.failDocuments(h.docs, failures, maxRetries)),
    releaseDocuments: (held) =>
      serialHeld('releasing documents', (h) => documents.releaseDocuments(h.docs, held)),
    enqueueDocuments: (docs) => run('storing documents', (h) => documents.enqueueDocuments(h.docs, docs)),
    // In the chain: a sweep that read a document before this agent's completion of it and wrote
    // after would undo the completion on FerretDB (its filter checks the lease, the write does not).
    recoverExpiredLeases: (maxRetries, spreadMs) =>
      serialHeld('recovering expired leases', (h) =>
        documents.recoverExpiredLeases(h.docs, maxRetries, spreadMs),
      ),
    getDocument: (id) => run('reading a document', (h) => records.getDocument(h.docs, id)),
    countDocuments: () => run('counting documents', (h) => records.countDocuments(h.docs)),
    countQueues: () => run('counting documents per queue', (h) => records.countQueues(h.docs)),
    listDocuments: (query) => run('listing documents', (h) => records.listDocuments(h.docs, query)),
    retryDocuments: (target) => run('retrying documents', (h) => records.retryDocuments(h.docs, target)),
    deleteDocument: (id) => run('deleting a document', (h) => records.deleteDocument(h.docs, id)),
  };
}
