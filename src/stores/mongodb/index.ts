// The MongoDB store: one MongoClient (small pool) per store, and one module per concern (control,
// agents, documents, the change-stream watch). Loaded by openStore only for mongodb:// URLs, so an
// agent on another store never loads the driver. Works on MongoDB (replica set, Atlas, standalone)
// and on FerretDB, which has no change streams: watchControl then says why and the control
// watcher polls.

import type { MongoClientOptions } from 'mongodb';

import { redactUrl } from '../../config.js';
import { StoreUnavailableError } from '../../errors.js';
import type { ControlWatch, Store, WatchHandlers } from '../types.js';
import * as agents from './agents.js';
import { type ChangeStreamOptions, watchControlChanges } from './changeStream.js';
import { ServerClock } from './clock.js';
import {
  checkCollectionName,
  createClient,
  guard,
  type LooseDocument,
  resolveDatabase,
} from './connection.js';
import * as control from './control.js';
import * as documents from './documents.js';

export { REGISTRY_COLLECTION } from './agents.js';
export { CHANGE_STREAMS_DESCRIPTION } from './changeStream.js';
export { CONTROL_COLLECTION } from './control.js';
export { CLAIMS_COLLECTION } from './documents.js';

export interface MongoStoreOptions {
  /** mongodb:// or mongodb+srv:// URL; its query options (e.g. replicaSet, authSource) apply. */
  url: string;
  /** MONGODB_DATABASE; when undefined, the database named in the URL's path. */
  database?: string | undefined;
  /** MONGODB_COLLECTION: the documents to pull. Default `documents`. */
  collection?: string;
  /** Extra driver options (tests shorten timeouts). */
  clientOptions?: MongoClientOptions;
  changeStream?: ChangeStreamOptions;
}

/** The URL without its password, also inside authMechanismProperties. */
function describeUrl(url: string): string {
  return redactUrl(url).replace(/([?&]authMechanismProperties=)[^&]*/i, '$1***');
}

export function createMongoStore(options: MongoStoreOptions): Store {
  const database = resolveDatabase(options.url, options.database);
  const collectionName = options.collection ?? 'documents';
  checkCollectionName(collectionName, [
    control.CONTROL_COLLECTION,
    agents.REGISTRY_COLLECTION,
    documents.CLAIMS_COLLECTION,
  ]);
  const client = createClient(options.url, options.clientOptions);
  const db = client.db(database);
  const controlCollection = db.collection<LooseDocument>(control.CONTROL_COLLECTION);
  const registry = db.collection<LooseDocument>(agents.REGISTRY_COLLECTION);
  const clock = new ServerClock(db);
  const docs: documents.DocumentCollections = {
    documents: db.collection<LooseDocument>(collectionName),
    claims: db.collection<LooseDocument>(documents.CLAIMS_COLLECTION),
    clock,
  };
  const watches = new Set<ControlWatch>();
  let closing: Promise<void> | undefined;

  /** guard() plus a clear error instead of the driver silently reconnecting after close(). */
  function run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (closing) return Promise.reject(new StoreUnavailableError(what, new Error('the store is closed')));
    return guard(what, operation);
  }

  return {
    kind: 'mongodb',
    description: `${describeUrl(options.url)} (database ${database}, collection ${collectionName})`,

    init: () =>
      run('initialising the database', async () => {
        await clock.sample();
        await control.ensureControl(controlCollection);
        await agents.ensureRegistry(registry);
        await documents.ensureDocuments(docs);
      }),

    close() {
      closing ??= (async () => {
        await Promise.all([...watches].map((w) => w.close()));
        await client.close();
      })();
      return closing;
    },

    ping: () =>
      run('pinging', async () => {
        const started = performance.now();
        await db.command({ ping: 1 });
        return performance.now() - started;
      }),

    readControlVersion: () =>
      run('reading the control version', () => control.readControlVersion(controlCollection)),
    readControl: () => run('reading the control state', () => control.readControl(controlCollection)),
    writeCommand: (input) =>
      run('writing a command', () => control.writeCommand(controlCollection, clock, input)),
    listHistory: (limit) => run('reading the history', () => control.listHistory(controlCollection, limit)),

    async watchControl(handlers: WatchHandlers) {
      if (closing)
        throw new StoreUnavailableError('opening a change stream', new Error('the store is closed'));
      const watch = await watchControlChanges(controlCollection, handlers, options.changeStream);
      watches.add(watch);
      return {
        mode: watch.mode,
        description: watch.description,
        async close() {
          watches.delete(watch);
          await watch.close();
        },
      };
    },

    upsertAgent: (heartbeat) => run('writing a heartbeat', () => agents.upsertAgent(registry, heartbeat)),
    removeAgent: (agentId) => run('removing an agent', () => agents.removeAgent(registry, agentId)),
    listAgents: () => run('listing agents', () => agents.listAgents(registry)),
    pruneAgents: (olderThanMs) =>
      run('pruning agents', () => agents.pruneAgents(registry, clock, olderThanMs)),

    insertDocuments: (payloads) =>
      run('inserting documents', () => documents.insertDocuments(docs, payloads)),
    claimBatch: (agentId, limit, leaseMs) =>
      run('claiming documents', () => documents.claimBatch(docs, agentId, limit, leaseMs)),
    extendLeases: (agentId, ids, leaseMs) =>
      run('extending leases', () => documents.extendLeases(docs, agentId, ids, leaseMs)),
    completeDocuments: (agentId, ids) =>
      run('completing documents', () => documents.completeDocuments(docs, agentId, ids)),
    failDocument: (agentId, id, error, maxRetries) =>
      run('recording a failure', () => documents.failDocument(docs, agentId, id, error, maxRetries)),
    releaseDocuments: (agentId, ids) =>
      run('releasing documents', () => documents.releaseDocuments(docs, agentId, ids)),
    getDocument: (id) => run('reading a document', () => documents.getDocument(docs, id)),
    countDocuments: () => run('counting documents', () => documents.countDocuments(docs)),
  };
}
