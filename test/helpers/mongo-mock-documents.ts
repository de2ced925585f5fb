// The scripted server's second kind of change stream (test/helpers/mongo-mock.ts): cursors on a
// documents collection, beside the one on agent_control. Unlike that one, every cursor gets every
// event pushed while it is open (each agent has its own), a cursor opened with resumeAfter first
// gets what followed the token, and faults are scripted apart, so that the documents stream can
// break while the control stream goes on.

/** What the scripted server hands over: its bson's Long, and how to hold or answer a getMore. */
export interface FeedLong {
  toNumber(): number;
}
export interface FeedRequest {
  document: Record<string, unknown>;
  connection: { destroy(): void };
  reply(document: Record<string, unknown>): void;
}
type Doc = Record<string, unknown>;

/** A server error as a command reply carries it. */
export interface FeedError {
  code: number;
  errmsg: string;
  codeName?: string;
  errorLabels?: string[];
}

interface Cursor {
  id: number;
  collection: string;
  queue: Doc[];
  lastToken: Doc;
  waiting: { request: FeedRequest; timer: NodeJS.Timeout } | null;
}

/** How long an empty getMore is held, like a server's awaitData. */
const AWAIT_MS = 100;

export class DocumentFeeds {
  /** The `$changeStream` stage of every documents aggregate received, with its collection. */
  readonly requests: (Doc & { collection: string })[] = [];
  readonly #long: { fromNumber(n: number): FeedLong; ZERO: FeedLong };
  readonly #database: string;
  readonly #cursors = new Map<number, Cursor>();
  readonly #history: Doc[] = [];
  #nextId = 1_000_000;
  #seq = 0;
  #aggregateFaults: FeedError[] = [];
  #refuseAll: FeedError | null = null;
  #getMoreFaults: ({ error: FeedError } | { dropConnection: true })[] = [];

  constructor(long: { fromNumber(n: number): FeedLong; ZERO: FeedLong }, database: string) {
    this.#long = long;
    this.#database = database;
  }

  /** Cursors open now (not killed), on any documents collection. */
  get openCursors(): number {
    return this.#cursors.size;
  }

  owns(cursorId: number): boolean {
    return this.#cursors.has(cursorId);
  }

  failNextAggregates(...errors: FeedError[]): void {
    this.#aggregateFaults.push(...errors);
  }

  refuseAll(error: FeedError | null): void {
    this.#refuseAll = error;
  }

  failNextGetMore(error: FeedError): void {
    this.#getMoreFaults.push({ error });
    this.#flush();
  }

  dropConnectionOnNextGetMore(): void {
    this.#getMoreFaults.push({ dropConnection: true });
    this.#flush();
  }

  /** An event on a documents collection, delivered to every cursor open on it. */
  push(collection: string, change: Doc): Doc {
    return this.pushMany(collection, [change])[0]!;
  }

  /** Events that the waiting getMores answer in one batch. */
  pushMany(collection: string, changes: Doc[]): Doc[] {
    const events = changes.map((change) => ({
      _id: { _data: `D${++this.#seq}` },
      ns: { db: this.#database, coll: collection },
      clusterTime: new Date(),
      ...change,
    }));
    this.#history.push(...events);
    for (const cursor of this.#cursors.values())
      if (cursor.collection === collection) cursor.queue.push(...events);
    this.#flush();
    return events;
  }

  aggregate(request: FeedRequest, collection: string, stage: Doc): void {
    this.requests.push({ ...stage, collection });
    const fault = this.#aggregateFaults.shift() ?? this.#refuseAll;
    if (fault) return request.reply({ ok: 0, ...fault });
    const resumeAfter = stage.resumeAfter as Doc | undefined;
    const after = resumeAfter ? this.#history.findIndex((e) => sameToken(e._id, resumeAfter)) : -1;
    const replay =
      after >= 0 ? this.#history.slice(after + 1).filter((e) => inCollection(e, collection)) : [];
    const token = (replay.at(-1)?._id as Doc | undefined) ?? resumeAfter ?? this.#latestToken();
    const cursor: Cursor = { id: this.#nextId++, collection, queue: replay, lastToken: token, waiting: null };
    this.#cursors.set(cursor.id, cursor);
    request.reply({
      ok: 1,
      cursor: {
        id: this.#long.fromNumber(cursor.id),
        ns: `${this.#database}.${collection}`,
        firstBatch: [],
        postBatchResumeToken: token,
      },
    });
  }

  getMore(request: FeedRequest, cursorId: number): void {
    const cursor = this.#cursors.get(cursorId);
    if (!cursor) return request.reply({ ok: 0, code: 43, errmsg: `cursor id ${cursorId} not found` });
    if (cursor.queue.length > 0 || this.#getMoreFaults.length > 0) return this.#answer(cursor, request);
    cursor.waiting = {
      request,
      timer: setTimeout(() => {
        cursor.waiting = null;
        this.#answer(cursor, request);
      }, AWAIT_MS),
    };
  }

  /** Kills cursors; a getMore held on one is answered at once with the cursor's end (id 0). */
  kill(ids: number[]): void {
    for (const id of ids) {
      const cursor = this.#cursors.get(id);
      if (!cursor) continue;
      this.#cursors.delete(id);
      if (!cursor.waiting) continue;
      clearTimeout(cursor.waiting.timer);
      cursor.waiting.request.reply({
        ok: 1,
        cursor: {
          id: this.#long.ZERO,
          ns: `${this.#database}.${cursor.collection}`,
          nextBatch: [],
          postBatchResumeToken: cursor.lastToken,
        },
      });
      cursor.waiting = null;
    }
  }

  close(): void {
    this.kill([...this.#cursors.keys()]);
  }

  #latestToken(): Doc {
    return (this.#history.at(-1)?._id as Doc | undefined) ?? { _data: 'D0' };
  }

  #flush(): void {
    for (const cursor of this.#cursors.values()) {
      const waiting = cursor.waiting;
      if (!waiting || (cursor.queue.length === 0 && this.#getMoreFaults.length === 0)) continue;
      clearTimeout(waiting.timer);
      cursor.waiting = null;
      this.#answer(cursor, waiting.request);
    }
  }

  #answer(cursor: Cursor, request: FeedRequest): void {
    const fault = this.#getMoreFaults.shift();
    if (fault && 'dropConnection' in fault) return request.connection.destroy();
    if (fault) {
      this.#cursors.delete(cursor.id); // a failed getMore leaves no cursor behind, as on a server
      return request.reply({ ok: 0, ...fault.error });
    }
    const batch = cursor.queue.splice(0);
    const last = batch.at(-1);
    if (last) cursor.lastToken = last._id as Doc;
    const invalidated = batch.some((e) => e.operationType === 'invalidate');
    if (invalidated) this.#cursors.delete(cursor.id);
    request.reply({
      ok: 1,
      cursor: {
        id: invalidated ? this.#long.ZERO : this.#long.fromNumber(cursor.id),
        ns: `${this.#database}.${cursor.collection}`,
        nextBatch: batch,
        postBatchResumeToken: cursor.lastToken,
      },
    });
  }
}

function sameToken(a: unknown, b: Doc): boolean {
  return typeof a === 'object' && a !== null && (a as Doc)._data === b._data;
}

function inCollection(event: Doc, collection: string): boolean {
  return (event.ns as Doc | undefined)?.coll === collection;
}
