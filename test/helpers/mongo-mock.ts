// A scripted MongoDB wire-protocol server for the change-stream logic, which cannot meet a real
// replica set here. It is mongodb-mock-server (the server the driver's own tests use) speaking the
// real protocol to the real driver; this file only scripts its answers: hello, ping, a
// `$changeStream` aggregate that opens a cursor (or is refused), getMores that wait for events,
// fail, drop the connection or invalidate. Cursor ids are Long values of the bson it bundles.
//
// Change streams on any other collection (the documents) are served by DocumentFeeds
// (mongo-mock-documents.ts), cursors of their own. With a backend (a real server such as FerretDB)
// every other command is forwarded there and answered with its reply, and an insert into a
// collection seen by those streams pushes its insert events: a replica set whose data is real, for
// agents that store, claim and are woken.

import { createRequire } from 'node:module';

import { BSON, MongoClient, MongoServerError } from 'mongodb';

import { DocumentFeeds } from './mongo-mock-documents.js';

const require = createRequire(import.meta.url);
const mockModulePath = require.resolve('mongodb-mock-server');

interface BsonLong {
  toNumber(): number;
}
interface MockBson {
  Long: { fromNumber(n: number): BsonLong; ZERO: BsonLong };
  EJSON: {
    serialize(value: unknown, options?: { relaxed: boolean }): unknown;
    deserialize(value: unknown, options?: { relaxed: boolean }): Doc;
  };
}
type Doc = Record<string, unknown>;
interface MockRequest {
  document: Doc;
  /** The OP_QUERY being answered; its ns is `<database>.$cmd`. */
  response: { ns: string };
  connection: { destroy(): void };
  reply(document: Doc | Doc[]): void;
}
interface MockServer {
  port: number;
  setMessageHandler(handler: (request: MockRequest) => void): void;
  destroy(): Promise<void>;
}
interface MockModule {
  createServer(port: number, host: string): Promise<MockServer>;
}

const mock = require('mongodb-mock-server') as MockModule;
// The Long class must be the mock's own bson (v4): the driver's (v7) would not serialise there.
const { Long, EJSON: MockEJSON } = createRequire(mockModulePath)('bson') as MockBson;

/** A server error as a command reply carries it. */
export interface ScriptedError {
  code: number;
  errmsg: string;
  codeName?: string;
  errorLabels?: string[];
}

/** What the next getMore does instead of waiting for events. */
type GetMoreFault = { error: ScriptedError } | { dropConnection: true };

const HELLO = {
  // Tells the driver to speak OP_QUERY, the only request format mongodb-mock-server parses.
  __nodejs_mock_server__: true,
  ismaster: true,
  isWritablePrimary: true,
  helloOk: true,
  maxBsonObjectSize: 16_777_216,
  maxMessageSizeBytes: 48_000_000,
  maxWriteBatchSize: 100_000,
  minWireVersion: 0,
  maxWireVersion: 21,
  ok: 1,
};

/** How long an empty getMore is held, like a server's awaitData. */
const AWAIT_MS = 100;

export class ScriptedMongoServer {
  readonly #server: MockServer;
  /** The `$changeStream` stage options of every aggregate received, in order. */
  readonly changeStreamRequests: Doc[] = [];
  /** The stages after `$changeStream` of every aggregate received (the filter), in order. */
  readonly changeStreamFilters: Doc[][] = [];
  /** Every command name received, in order. */
  readonly commands: string[] = [];
  #aggregateFaults: (ScriptedError | 'no-answer')[] = [];
  #refuseAllAggregates: ScriptedError | null = null;
  #getMoreFaults: GetMoreFault[] = [];
  #events: Doc[] = [];
  #waiting: { request: MockRequest; timer: NodeJS.Timeout }[] = [];
  #cursorId = 100;
  #tokenSeq = 0;
  #lastToken: Doc = { _data: 'T0' };
  #invalidated = false;
  readonly #controlCursors = new Set<number>();
  /** Change streams on the documents collection(s). */
  readonly documents = new DocumentFeeds(Long, 'pa_mock');
  readonly #backend: MongoClient | null;

  readonly #hello: Doc;

  private constructor(server: MockServer, setName: string | undefined, backend: string | undefined) {
    this.#server = server;
    this.#backend = backend
      ? new MongoClient(backend, { serverSelectionTimeoutMS: 5_000, maxPoolSize: 8 })
      : null;
    const me = `127.0.0.1:${server.port}`;
    this.#hello = setName ? { ...HELLO, setName, hosts: [me], primary: me, me } : HELLO;
    server.setMessageHandler((request) => this.#handle(request));
  }

  /**
   * Listens on 127.0.0.1, on the given port or a free one. With setName, hello announces a
   * replica set (as FerretDB can be told to) whatever the aggregates then answer. With backend (a
   * server's URL), every command but the change streams' is answered by that server.
   */
  static async start(
    port = 0,
    { setName, backend }: { setName?: string; backend?: string } = {},
  ): Promise<ScriptedMongoServer> {
    return new ScriptedMongoServer(await mock.createServer(port, '127.0.0.1'), setName, backend);
  }

  /** A URL for the store: a single server, spoken to directly. */
  url(database = 'pa_mock'): string {
    return `mongodb://127.0.0.1:${this.#server.port}/${database}?directConnection=true`;
  }

  get lastToken(): Doc {
    return this.#lastToken;
  }

  /** The next aggregates are refused with these errors (or left unanswered), one each. */
  failNextAggregates(...faults: (ScriptedError | 'no-answer')[]): void {
    this.#aggregateFaults.push(...faults);
  }

  /** Every aggregate from now on is refused (null: accepted again). */
  refuseAllAggregates(error: ScriptedError | null): void {
    this.#refuseAllAggregates = error;
  }

  /** The next getMore answers with this error. */
  failNextGetMore(error: ScriptedError): void {
    this.#getMoreFaults.push({ error });
    this.#flush();
  }

  /** The next getMore gets no answer: its connection is closed (a network error). */
  dropConnectionOnNextGetMore(): void {
    this.#getMoreFaults.push({ dropConnection: true });
    this.#flush();
  }

  /** An update of the control document, delivered to the waiting getMore. */
  pushControlUpdate(): Doc {
    return this.#push({ operationType: 'update', documentKey: { _id: 'global_control' } });
  }

  /** An update of the fleet policy document that set its version, as MongoDB reports a `$set`. */
  pushPolicyUpdate(version: number): Doc {
    return this.#push({
      operationType: 'update',
      documentKey: { _id: 'fleet_policy' },
      updateDescription: { updatedFields: { version }, removedFields: [] },
    });
  }

  /** The collection was dropped: `drop`, then `invalidate`, after which the cursor is dead. */
  pushDropAndInvalidate(): void {
    this.#push({ operationType: 'drop' });
    this.#push({ operationType: 'invalidate' });
    this.#invalidated = true;
  }

  async close(): Promise<void> {
    for (const { timer } of this.#waiting) clearTimeout(timer);
    this.#waiting = [];
    this.documents.close();
    await this.#server.destroy();
    await this.#backend?.close();
  }

  #push(change: Doc): Doc {
    const event = {
      _id: { _data: `T${++this.#tokenSeq}` },
      ns: { db: 'pa_mock', coll: 'agent_control' },
      clusterTime: new Date(),
      ...change,
    };
    this.#events.push(event);
    this.#flush();
    return event;
  }

  /** Answers the held getMores now that there is something to say. */
  #flush(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const { request, timer } of waiting) {
      clearTimeout(timer);
      this.#answerGetMore(request);
    }
  }

  #handle(request: MockRequest): void {
    const command = Object.keys(request.document)[0] ?? '';
    this.commands.push(command);
    switch (command) {
      case 'ismaster':
      case 'isMaster':
      case 'hello':
        return request.reply({ ...this.#hello, localTime: new Date() });
      case 'aggregate':
        if (this.#backend && !isChangeStream(request.document)) return void this.#forward(request);
        return this.#aggregate(request);
      case 'getMore': {
        const id = cursorNumber(request.document.getMore);
        if (this.documents.owns(id)) return this.documents.getMore(request, id);
        if (this.#backend && !this.#controlCursors.has(id)) return void this.#forward(request);
        if (this.#events.length > 0 || this.#getMoreFaults.length > 0) return this.#answerGetMore(request);
        this.#waiting.push({ request, timer: setTimeout(() => this.#answerGetMore(request), AWAIT_MS) });
        return;
      }
      case 'killCursors': {
        const ids = ((request.document.cursors ?? []) as unknown[]).map(cursorNumber);
        this.documents.kill(ids);
        if (this.#backend && ids.some((id) => !this.#controlCursors.has(id) && !this.documents.owns(id)))
          return void this.#forward(request);
        return request.reply({ ok: 1, cursorsKilled: request.document.cursors ?? [] });
      }
      default:
        if (this.#backend) return void this.#forward(request);
        return request.reply({ ok: 1 });
    }
  }

  /** Answered by the backend; a successful insert also becomes insert events for the feeds. */
  async #forward(request: MockRequest): Promise<void> {
    const database = request.response.ns.replace(/\.\$cmd$/, '');
    unwrapDocumentSequences(request.document);
    const command = BSON.EJSON.deserialize(MockEJSON.serialize(request.document, { relaxed: false }) as Doc, {
      relaxed: false,
    });
    // The mock's bson gave cursor ids as numbers; a server wants them as int64, as it sent them.
    if (typeof command.getMore === 'number') command.getMore = BSON.Long.fromNumber(command.getMore);
    if (Array.isArray(command.cursors))
      command.cursors = (command.cursors as unknown[]).map((id) =>
        typeof id === 'number' ? BSON.Long.fromNumber(id) : id,
      );
    let reply: Doc;
    try {
      // Unpromoted, so that every value goes back with its BSON type (a cursor id stays int64).
      reply = await this.#backend!.db(database).command(command, {
        promoteLongs: false,
        promoteValues: false,
      });
    } catch (error) {
      if (!(error instanceof MongoServerError)) return request.connection.destroy();
      const { code, codeName, errmsg } = error as MongoServerError & { errmsg?: string };
      return request.reply({ ok: 0, code, codeName, errmsg: errmsg ?? error.message });
    }
    if (typeof command.insert === 'string' && Array.isArray(command.documents)) {
      const failed = new Set(((reply.writeErrors ?? []) as { index: number }[]).map((e) => e.index));
      (command.documents as Doc[]).forEach((doc, index) => {
        if (!failed.has(index)) {
          const fullDocument = MockEJSON.deserialize(BSON.EJSON.serialize(doc, { relaxed: false }), {
            relaxed: false,
          });
          this.documents.push(command.insert as string, {
            operationType: 'insert',
            documentKey: { _id: fullDocument._id },
            fullDocument,
          });
        }
      });
    }
    request.reply(MockEJSON.deserialize(BSON.EJSON.serialize(reply, { relaxed: false }), { relaxed: false }));
  }

  #aggregate(request: MockRequest): void {
    const pipeline = (request.document.pipeline ?? []) as Doc[];
    const stage = pipeline[0]?.$changeStream as Doc | undefined;
    if (stage === undefined)
      return request.reply({ ok: 0, code: 2, errmsg: 'scripted server: not a change stream' });
    const collection = String(request.document.aggregate);
    if (collection !== 'agent_control') return this.documents.aggregate(request, collection, stage);
    this.changeStreamRequests.push(stage);
    this.changeStreamFilters.push(pipeline.slice(1));
    const fault = this.#aggregateFaults.shift() ?? this.#refuseAllAggregates;
    if (fault === 'no-answer') return;
    if (fault) return request.reply({ ok: 0, ...fault });
    this.#invalidated = false;
    this.#cursorId++;
    this.#controlCursors.add(this.#cursorId);
    request.reply({
      ok: 1,
      cursor: {
        id: Long.fromNumber(this.#cursorId),
        ns: 'pa_mock.agent_control',
        firstBatch: [],
        postBatchResumeToken: this.#lastToken,
      },
    });
  }

  #answerGetMore(request: MockRequest): void {
    const fault = this.#getMoreFaults.shift();
    if (fault && 'dropConnection' in fault) return request.connection.destroy();
    if (fault) return request.reply({ ok: 0, ...fault.error });
    const batch = this.#events.splice(0);
    const last = batch.at(-1);
    if (last) this.#lastToken = last._id as Doc;
    // After an invalidate the server closes the cursor (id 0).
    const id = this.#invalidated ? Long.ZERO : Long.fromNumber(this.#cursorId);
    request.reply({
      ok: 1,
      cursor: { id, ns: 'pa_mock.agent_control', nextBatch: batch, postBatchResumeToken: this.#lastToken },
    });
  }
}

function isChangeStream(command: Doc): boolean {
  const pipeline = (command.pipeline ?? []) as Doc[];
  return pipeline[0]?.$changeStream !== undefined;
}

/** A cursor id as the mock's bson decodes it: a number when it fits, else a Long. */
function cursorNumber(id: unknown): number {
  return typeof id === 'number' ? id : (id as BsonLong).toNumber();
}

/**
 * The driver sends a bulk write's documents as an OP_MSG document sequence; over OP_QUERY, which
 * the mock speaks, that object arrives as it is, `{field, documents: [...], …}`: the array again.
 */
function unwrapDocumentSequences(command: Doc): void {
  for (const field of ['documents', 'updates', 'deletes']) {
    const value = command[field] as Doc | undefined;
    if (value && !Array.isArray(value) && Array.isArray(value.documents)) command[field] = value.documents;
  }
}
