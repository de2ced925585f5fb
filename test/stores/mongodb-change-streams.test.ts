// The change-stream watch against a scripted server that speaks the real wire protocol to the
// real driver (test/helpers/mongo-mock.ts): establishing with a forced first round trip, refusals,
// wake-ups, resuming with the last token after the errors the driver resumes by itself and after
// those it does not, invalidate, and giving up with onError once. Then the second stream, on the
// documents collection: counts, its own resuming, never costing the control stream anything; and
// agents woken by it (the scripted server in front of a real FerretDB), or polling on FerretDB.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { MongoClient } from 'mongodb';
import { pino } from 'pino';

import { type Agent, type AgentOptions, createAgent } from '../../src/agent/agent.js';
import { StoreUnavailableError, WatchUnavailableError } from '../../src/errors.js';
import { createMongoStore } from '../../src/stores/mongodb/index.js';
import type { ControlWatch, DocumentsWatchState, Store } from '../../src/stores/types.js';
import { ScriptedMongoServer } from '../helpers/mongo-mock.js';
import { dropDatabase, FERRETDB_HOW_TO, FERRETDB_URL, freshDatabase } from '../helpers/mongodb.js';
import { unavailable } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const CLIENT_OPTIONS = { serverSelectionTimeoutMS: 2_000, heartbeatFrequencyMS: 500 };

/** A watch's callbacks, counted. */
class Recorder {
  wakes = 0;
  errors: Error[] = [];
  readonly handlers = {
    onWake: () => void this.wakes++,
    onError: (error: Error) => void this.errors.push(error),
  };
}

describe('MongoDB change streams (scripted wire-protocol server, real driver)', () => {
  let server: ScriptedMongoServer;
  let store: Store;
  let watch: ControlWatch | undefined;
  let calls: Recorder;

  beforeEach(async () => {
    server = await ScriptedMongoServer.start();
    store = createMongoStore({
      url: server.url(),
      clientOptions: CLIENT_OPTIONS,
      changeStream: { establishTimeoutMs: 2_000, reopenDelayMs: 20 },
    });
    calls = new Recorder();
    watch = undefined;
  });

  afterEach(async () => {
    await watch?.close();
    await store.close();
    await server.close();
  });

  async function established(): Promise<ControlWatch> {
    watch = await store.watchControl(calls.handlers);
    return watch;
  }

  it('is established only once the server accepted the $changeStream aggregate', async () => {
    const w = await established();
    // watch() alone sends nothing; watchControl resolved after the aggregate's answer.
    assert.equal(server.changeStreamRequests.length, 1);
    assert.equal(server.changeStreamRequests[0]!.resumeAfter, undefined);
    assert.equal(w.mode, 'change_streams');
    assert.equal(w.description, 'MongoDB Change Streams (event-driven, real-time)');
    assert.deepEqual([calls.wakes, calls.errors], [0, []]);
  });

  const refusals = [
    {
      why: 'a standalone server',
      error: { code: 40573, errmsg: 'The $changeStream stage is only supported on replica sets' },
      reason: 'Replica set required: The $changeStream stage is only supported on replica sets (code 40573)',
    },
    {
      why: 'a server without the $changeStream stage',
      error: { code: 40324, errmsg: "Unrecognized pipeline stage name: '$changeStream'" },
      reason: "Unrecognized pipeline stage name: '$changeStream' (code 40324)",
    },
    {
      why: 'missing privileges',
      error: { code: 13, codeName: 'Unauthorized', errmsg: 'not authorized on pa_mock to execute command' },
      reason: 'not authorized on pa_mock to execute command (code 13)',
    },
  ];
  for (const { why, error, reason } of refusals) {
    it(`says why when the server refuses: ${why}`, async () => {
      server.failNextAggregates(error);
      const started = performance.now();
      await assert.rejects(store.watchControl(calls.handlers), (e: unknown) => {
        assert.ok(e instanceof WatchUnavailableError);
        assert.equal(e.feature, 'MongoDB Change Streams');
        assert.equal(e.reason, reason);
        assert.equal(e.message, `MongoDB Change Streams not available: ${reason}`);
        return true;
      });
      assert.ok(performance.now() - started < 2_000);
      assert.equal(server.commands.filter((c) => c === 'getMore').length, 0);
      assert.deepEqual([calls.wakes, calls.errors], [0, []]);
    });
  }

  it('tries the stream, never trusts hello: a server announcing a replica set may still refuse', async () => {
    const liar = await ScriptedMongoServer.start(0, { setName: 'rs0' });
    const other = createMongoStore({ url: liar.url(), clientOptions: CLIENT_OPTIONS });
    try {
      liar.failNextAggregates({
        code: 238,
        codeName: 'NotImplemented',
        errmsg: 'stage "$changeStream" is not implemented yet',
      });
      await assert.rejects(
        other.watchControl(calls.handlers),
        (e: unknown) =>
          e instanceof WatchUnavailableError && /not implemented yet \(code 238\)$/.test(e.reason),
      );
      assert.equal(liar.changeStreamRequests.length, 1);
    } finally {
      await other.close();
      await liar.close();
    }
  });

  it('gives up on a server that does not answer the aggregate within the timeout', async () => {
    await store.close();
    store = createMongoStore({
      url: server.url(),
      clientOptions: CLIENT_OPTIONS,
      changeStream: { establishTimeoutMs: 300 },
    });
    server.failNextAggregates('no-answer');
    await assert.rejects(
      store.watchControl(calls.handlers),
      (e: unknown) => e instanceof WatchUnavailableError && /did not answer .* within 0\.3 s/.test(e.reason),
    );
  });

  it('reports an unreachable server as StoreUnavailableError, not as missing change streams', async () => {
    const port = Number(new URL(server.url().replace('mongodb://', 'http://')).port);
    await server.close();
    await store.close();
    store = createMongoStore({
      url: `mongodb://127.0.0.1:${port}/pa_mock?directConnection=true`,
      clientOptions: { serverSelectionTimeoutMS: 300 },
    });
    await assert.rejects(
      store.watchControl(calls.handlers),
      (e: unknown) => e instanceof StoreUnavailableError,
    );
    server = await ScriptedMongoServer.start(); // for afterEach
  });

  it('wakes the caller on every change event', async () => {
    await established();
    server.pushControlUpdate();
    await waitFor(() => calls.wakes === 1, { what: 'a wake-up for the first event' });
    server.pushControlUpdate();
    server.pushControlUpdate();
    await waitFor(() => calls.wakes >= 2, { what: 'wake-ups for two more events' });
    assert.deepEqual(calls.errors, []);
    assert.equal(server.changeStreamRequests.length, 1);
  });

  it('watches the fleet policy document too, and calls onPolicy with the version it wrote', async () => {
    const policies: ({ version: number } | undefined)[] = [];
    watch = await store.watchControl({ ...calls.handlers, onPolicy: (v) => void policies.push(v) });
    // The server filters the events: both documents' ids are in the filter it was sent.
    assert.match(JSON.stringify(server.changeStreamFilters[0]), /"global_control","fleet_policy"/);
    server.pushPolicyUpdate(4);
    await waitFor(() => policies.length === 1, { what: 'onPolicy for the policy event' });
    assert.deepEqual(policies, [{ version: 4 }]);
    assert.equal(calls.wakes, 0, 'a policy event is not a control wake-up');
    server.pushControlUpdate();
    await waitFor(() => calls.wakes === 1, { what: 'a wake-up for the control event' });
    assert.equal(policies.length, 1, 'a control event is not a policy change');
    // After a gap (the stream resumed), either may have changed: both are told, the policy without a version.
    server.dropConnectionOnNextGetMore();
    await waitFor(() => policies.length >= 2, { what: 'onPolicy after the resume' });
    assert.equal(policies[1], undefined);
    assert.deepEqual(calls.errors, []);
  });

  // Errors the driver resumes by itself (verified below with the bare driver too): it reopens with
  // the last token, and the store wakes the caller because events may have been missed meanwhile.
  const resumable = [
    {
      why: 'CursorNotFound',
      fault: (s: ScriptedMongoServer) => s.failNextGetMore({ code: 43, errmsg: 'cursor id 7 not found' }),
    },
    {
      why: 'an error labelled ResumableChangeStreamError',
      fault: (s: ScriptedMongoServer) =>
        s.failNextGetMore({
          code: 91,
          errmsg: 'shutdown in progress',
          errorLabels: ['ResumableChangeStreamError'],
        }),
    },
    { why: 'a dropped connection', fault: (s: ScriptedMongoServer) => s.dropConnectionOnNextGetMore() },
  ];
  for (const { why, fault } of resumable) {
    it(`resumes after ${why} with the last resume token, and wakes the caller`, async () => {
      await established();
      const event = server.pushControlUpdate();
      await waitFor(() => calls.wakes === 1, { what: 'the first event' });
      fault(server);
      await waitFor(() => server.changeStreamRequests.length === 2, { what: 'the stream reopened' });
      assert.deepEqual(server.changeStreamRequests[1]!.resumeAfter, event._id);
      await waitFor(() => calls.wakes >= 2, { what: 'a wake-up after the resume' });
      const resumed = calls.wakes;
      server.pushControlUpdate();
      await waitFor(() => calls.wakes > resumed, { what: 'events flowing after the resume' });
      assert.deepEqual(calls.errors, []);
    });
  }

  // A wake-up too many is harmless (the caller reads the version once more), so after a resume the
  // tests ask for "at least one more", never an exact count.
  it('reopens itself with resumeAfter after an error the driver does not resume, and wakes the caller', async () => {
    await established();
    server.pushControlUpdate();
    const second = server.pushControlUpdate();
    await waitFor(() => calls.wakes >= 1 && server.lastToken === second._id, { what: 'two events' });
    const before = calls.wakes;
    server.failNextGetMore({ code: 11601, codeName: 'Interrupted', errmsg: 'operation was interrupted' });
    await waitFor(() => server.changeStreamRequests.length === 2, { what: 'the stream reopened' });
    assert.deepEqual(server.changeStreamRequests[1]!.resumeAfter, second._id);
    await waitFor(() => calls.wakes > before, { what: 'a wake-up after reopening' });
    const reopened = calls.wakes;
    server.pushControlUpdate();
    await waitFor(() => calls.wakes > reopened, { what: 'events after reopening' });
    assert.deepEqual(calls.errors, []);
  });

  it('reopens without the token when the server says the token is no longer usable', async () => {
    await established();
    const event = server.pushControlUpdate();
    await waitFor(() => calls.wakes === 1, { what: 'the first event' });
    server.failNextAggregates({
      code: 286,
      codeName: 'ChangeStreamHistoryLost',
      errmsg: 'resume point lost',
    });
    server.failNextGetMore({ code: 11601, errmsg: 'operation was interrupted' });
    await waitFor(() => server.changeStreamRequests.length === 3, { what: 'two reopen attempts' });
    assert.deepEqual(server.changeStreamRequests[1]!.resumeAfter, event._id);
    assert.equal(server.changeStreamRequests[2]!.resumeAfter, undefined);
    await waitFor(() => calls.wakes > 1, { what: 'a wake-up, so that the caller reads what it missed' });
    assert.deepEqual(calls.errors, []);
  });

  it('re-establishes after invalidate, without the invalidated token, and wakes the caller', async () => {
    await established();
    server.pushDropAndInvalidate();
    await waitFor(() => server.changeStreamRequests.length === 2, { what: 'the stream re-established' });
    assert.equal(server.changeStreamRequests[1]!.resumeAfter, undefined);
    assert.equal(server.changeStreamRequests[1]!.startAfter, undefined);
    await waitFor(() => calls.wakes >= 2, { what: 'wake-ups for drop and for the re-established stream' });
    const before = calls.wakes;
    server.pushControlUpdate();
    await waitFor(() => calls.wakes > before, { what: 'events on the new stream' });
    assert.deepEqual(calls.errors, []);
  });

  it('calls onError once and stops when the stream cannot be re-established', async () => {
    await established();
    server.pushControlUpdate();
    await waitFor(() => calls.wakes === 1, { what: 'the first event' });
    server.refuseAllAggregates({ code: 13, errmsg: 'not authorized any more' });
    server.failNextGetMore({ code: 11601, errmsg: 'operation was interrupted' });
    await waitFor(() => calls.errors.length === 1, { what: 'onError' });
    assert.match(
      calls.errors[0]!.message,
      /could not be re-established after 3 attempts: not authorized any more/,
    );
    // The first stream plus three attempts, and nothing after the give-up.
    assert.equal(server.changeStreamRequests.length, 4);
    const wakes = calls.wakes;
    await watch!.close();
    server.pushControlUpdate();
    assert.equal(server.changeStreamRequests.length, 4);
    assert.deepEqual([calls.errors.length, calls.wakes], [1, wakes]);
  });

  it('stops cleanly on close: the cursor is killed, no error is reported, close is idempotent', async () => {
    const w = await established();
    await waitFor(() => server.commands.includes('getMore'), { what: 'the stream waiting for events' });
    await w.close();
    await w.close();
    await waitFor(() => server.commands.includes('killCursors'), { what: 'the cursor killed' });
    server.pushControlUpdate();
    assert.deepEqual([calls.wakes, calls.errors], [0, []]);
  });

  it('closes its watches when the store closes', async () => {
    await established();
    await store.close();
    await waitFor(() => server.commands.includes('killCursors'), { what: 'the cursor killed' });
    assert.deepEqual(calls.errors, []);
  });
});

describe('the driver resumes these change-stream errors by itself (bare mongodb driver)', () => {
  const cases = [
    {
      why: 'CursorNotFound (43)',
      resumes: true,
      fault: (s: ScriptedMongoServer) => s.failNextGetMore({ code: 43, errmsg: 'x' }),
    },
    {
      why: 'a ResumableChangeStreamError label',
      resumes: true,
      fault: (s: ScriptedMongoServer) =>
        s.failNextGetMore({ code: 189, errmsg: 'x', errorLabels: ['ResumableChangeStreamError'] }),
    },
    {
      why: 'a network error',
      resumes: true,
      fault: (s: ScriptedMongoServer) => s.dropConnectionOnNextGetMore(),
    },
    {
      why: 'ShutdownInProgress (91) without the label',
      resumes: false,
      fault: (s: ScriptedMongoServer) => s.failNextGetMore({ code: 91, errmsg: 'x' }),
    },
    {
      why: 'Interrupted (11601)',
      resumes: false,
      fault: (s: ScriptedMongoServer) => s.failNextGetMore({ code: 11601, errmsg: 'x' }),
    },
  ];
  for (const { why, resumes, fault } of cases) {
    it(`${resumes ? 'resumes' : 'does not resume'} after ${why}`, async () => {
      const server = await ScriptedMongoServer.start();
      const client = new MongoClient(server.url(), CLIENT_OPTIONS);
      const stream = client.db('pa_mock').collection('agent_control').watch();
      let closedCursors = 0;
      stream.on('close', () => void closedCursors++);
      try {
        const first = server.pushControlUpdate();
        assert.deepEqual((await stream.next())._id, first._id);
        fault(server);
        const second = server.pushControlUpdate();
        if (resumes) {
          assert.deepEqual((await stream.next())._id, second._id);
          // The old cursor closed, a new one resumed: the stream itself stayed open.
          assert.equal(closedCursors, 1);
          assert.equal(stream.closed, false);
          assert.deepEqual(server.changeStreamRequests[1]!.resumeAfter, first._id);
        } else {
          await assert.rejects(stream.next());
          assert.equal(stream.closed, true);
          assert.equal(server.changeStreamRequests.length, 1);
        }
      } finally {
        await stream.close();
        await client.close();
        await server.close();
      }
    });
  }
});

/** The callbacks of a watch that takes documents too, in order. */
class DocumentsRecorder {
  wakes = 0;
  errors: Error[] = [];
  announced: ({ count: number } | undefined)[] = [];
  reports: DocumentsWatchState[] = [];
  readonly handlers = {
    onWake: () => void this.wakes++,
    onError: (error: Error) => void this.errors.push(error),
    onDocuments: (a?: { count: number }) => void this.announced.push(a),
    onDocumentsWatch: (state: DocumentsWatchState) => void this.reports.push(state),
  };
  get total(): number {
    return this.announced.reduce((sum, a) => sum + (a?.count ?? 0), 0);
  }
  get downReports(): number {
    return this.reports.filter((r) => !r.watching).length;
  }
}

const pendingInsert = (runAt = new Date(Date.now() - 1_000)) => ({
  operationType: 'insert',
  documentKey: { _id: `d${Math.random()}` },
  fullDocument: { run_at: runAt },
});

describe('MongoDB change stream on the documents collection (scripted server, real driver)', () => {
  let server: ScriptedMongoServer;
  let store: Store;
  let watch: ControlWatch | undefined;
  let calls: DocumentsRecorder;

  function open(options: { watchDocuments?: boolean } = {}): Store {
    return createMongoStore({
      url: server.url(),
      clientOptions: CLIENT_OPTIONS,
      changeStream: { establishTimeoutMs: 2_000, reopenDelayMs: 20 },
      documentStream: { retryBaseMs: 20, retryMaxMs: 100 },
      ...options,
    });
  }

  beforeEach(async () => {
    server = await ScriptedMongoServer.start();
    store = open();
    calls = new DocumentsRecorder();
    watch = undefined;
  });

  afterEach(async () => {
    await watch?.close();
    await store.close();
    await server.close();
  });

  async function watching(): Promise<ControlWatch> {
    watch = await store.watchControl(calls.handlers);
    await waitFor(() => calls.reports.some((r) => r.watching), { what: 'the documents stream up' });
    return watch;
  }

  it('opens a cursor of its own on the documents collection, after the control stream', async () => {
    await watching();
    assert.equal(server.changeStreamRequests.length, 1);
    assert.equal(server.documents.requests.length, 1);
    assert.equal(server.documents.requests[0]!.collection, 'documents');
    assert.equal(server.documents.openCursors, 1);
    assert.deepEqual(calls.reports, [
      { watching: true, description: 'a MongoDB change stream on documents' },
    ]);
  });

  it('announces the documents of one batch of events as one count', async () => {
    await watching();
    server.documents.pushMany('documents', [pendingInsert(), pendingInsert(), pendingInsert()]);
    await waitFor(() => calls.total === 3, { what: 'three documents announced' });
    assert.deepEqual(calls.announced, [{ count: 3 }]);
    // Control events are not documents, and documents are not control events.
    assert.equal(calls.wakes, 0);
    server.pushControlUpdate();
    await waitFor(() => calls.wakes === 1, { what: 'the control wake-up' });
    assert.deepEqual(calls.announced, [{ count: 3 }]);
  });

  it('counts documents put back to pending and not those due later', async () => {
    await watching();
    server.documents.pushMany('documents', [
      pendingInsert(new Date(Date.now() + 60_000)), // scheduled: found by polling when due
      { operationType: 'update', updateDescription: { updatedFields: { status: 'pending' } } }, // released
      {
        operationType: 'update', // a retry after its backoff
        updateDescription: { updatedFields: { status: 'pending', run_at: new Date(Date.now() + 30_000) } },
      },
      { operationType: 'insert', fullDocument: {} }, // inserted by hand, without run_at: due
    ]);
    await waitFor(() => calls.announced.length === 1, { what: 'one announcement' });
    assert.deepEqual(calls.announced, [{ count: 2 }]);
  });

  it('resumes after a dropped connection with its own token; the control stream is not touched', async () => {
    await watching();
    const first = server.documents.push('documents', pendingInsert());
    await waitFor(() => calls.total === 1, { what: 'the first document' });
    server.documents.dropConnectionOnNextGetMore();
    server.documents.push('documents', pendingInsert());
    await waitFor(() => server.documents.requests.length === 2, { what: 'the documents stream resumed' });
    assert.deepEqual(server.documents.requests[1]!.resumeAfter, first._id);
    await waitFor(() => calls.total === 2, { what: 'the document stored while it was down' });
    assert.equal(server.changeStreamRequests.length, 1);
    assert.deepEqual(calls.errors, []);
  });

  it('when it breaks for good it says so once, leaves the control watch up, and comes back', async () => {
    await watching();
    server.documents.refuseAll({ code: 13, errmsg: 'not authorized on documents' });
    server.documents.failNextGetMore({ code: 11601, errmsg: 'operation was interrupted' });
    // Three reopen attempts, then a retry after each backoff: many refusals, one report.
    await waitFor(() => server.documents.requests.length >= 8, { what: 'repeated attempts' });
    assert.equal(calls.downReports, 1);
    const down = calls.reports.find((r) => !r.watching);
    assert.match(down && !down.watching ? down.reason : '', /broke: .*not authorized on documents/);
    assert.deepEqual(calls.errors, []);
    server.pushControlUpdate();
    await waitFor(() => calls.wakes >= 1, { what: 'the control stream still waking' });
    assert.equal(server.changeStreamRequests.length, 1);

    server.documents.refuseAll(null);
    await waitFor(() => calls.reports.at(-1)?.watching === true, { what: 'the documents stream back' });
    // What was stored while it was down is announced, without a count, at once.
    await waitFor(() => calls.announced.includes(undefined), { what: 'a wake-up after coming back' });
    server.documents.push('documents', pendingInsert());
    await waitFor(() => calls.total === 1, { what: 'documents announced again' });
  });

  it('a refusal at start is one report, and the control watch is established all the same', async () => {
    server.documents.refuseAll({
      code: 238,
      codeName: 'NotImplemented',
      errmsg: 'stage "$changeStream" is not implemented yet',
    });
    watch = await store.watchControl(calls.handlers);
    assert.equal(watch.mode, 'change_streams');
    await waitFor(() => server.documents.requests.length >= 4, { what: 'attempts with backoff' });
    assert.equal(calls.downReports, 1);
    assert.deepEqual(calls.reports, [
      {
        watching: false,
        reason:
          'MongoDB Change Streams not available: stage "$changeStream" is not implemented yet (code 238)',
      },
    ]);
    assert.deepEqual(calls.errors, []);
  });

  it('is closed with the watch: its cursor killed, nothing announced after', async () => {
    const w = await watching();
    await w.close();
    assert.equal(server.documents.openCursors, 0);
    server.documents.push('documents', pendingInsert());
    server.pushControlUpdate();
    // The control cursor was killed too; a control wake-up would have been answered by now.
    await waitFor(() => server.commands.filter((c) => c === 'killCursors').length >= 2, {
      what: 'both cursors killed',
    });
    assert.deepEqual([calls.announced, calls.wakes], [[], 0]);
  });

  it('is not opened with MONGODB_WATCH_DOCUMENTS=false, nor for a caller that takes no documents', async () => {
    await store.close();
    store = open({ watchDocuments: false });
    watch = await store.watchControl(calls.handlers);
    await watch.close();
    const plain = open();
    try {
      const w = await plain.watchControl({ onWake: () => undefined, onError: () => undefined });
      await w.close();
    } finally {
      await plain.close();
    }
    assert.equal(server.changeStreamRequests.length, 2);
    assert.equal(server.documents.requests.length, 0);
    assert.deepEqual(calls.reports, []);
  });
});

interface LogLine {
  level: number;
  msg: string;
}

/**
 * Whole agents on MongoDB: behind the scripted replica set, whose data is a real FerretDB (every
 * command but the change streams' is forwarded there), and on FerretDB itself, which has no change
 * streams. POLL_INTERVAL is far longer than the deadlines, so a document can only be claimed in
 * time through the wake-up.
 */
const agentsSkip = FERRETDB_URL
  ? undefined
  : unavailable('MongoDB (FerretDB)', 'PA_TEST_MONGODB_URL', FERRETDB_HOW_TO);
describe(
  'MongoDB agents: woken by new documents, or polling on FerretDB',
  { skip: agentsSkip ?? false },
  () => {
    let database: string;
    let dir: string;
    let replicaSet: ScriptedMongoServer | null;
    const agents: Agent[] = [];
    const stores: Store[] = [];

    beforeEach(() => {
      database = freshDatabase();
      dir = mkdtempSync(join(tmpdir(), 'pa-mongo-wake-'));
      replicaSet = null;
    });

    afterEach(async () => {
      const stuck: string[] = [];
      await Promise.all(
        agents.splice(0).map(async (agent) => {
          const stopped = await Promise.race([
            agent.stop().then(() => true),
            new Promise<false>((resolve) => setTimeout(() => resolve(false), 15_000).unref()),
          ]);
          if (!stopped) stuck.push(agent.settings.agentId);
        }),
      );
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await replicaSet?.close();
      await dropDatabase(FERRETDB_URL!, database);
      rmSync(dir, { recursive: true, force: true });
      if (stuck.length > 0) throw new Error(`agents that would not stop: ${stuck.join(', ')}`);
    });

    function store(url: string): Store {
      const s = createMongoStore({ url, database, clientOptions: CLIENT_OPTIONS });
      stores.push(s);
      return s;
    }

    function agent(url: string, options: AgentOptions & { lines?: LogLine[] }): Agent {
      const { lines, ...rest } = options;
      const n = agents.length + 1;
      const a = createAgent({
        storeInstance: createMongoStore({
          url,
          database,
          clientOptions: CLIENT_OPTIONS,
          documentStream: { retryBaseMs: 100 },
        }),
        agentId: `agent-${n}`,
        controlFile: join(dir, `control-${n}`),
        pollIntervalMs: 300_000,
        controlPollingIntervalMs: 1_000,
        heartbeatIntervalMs: 500,
        logger: pino(
          { level: 'debug' },
          { write: (line: string) => void lines?.push(JSON.parse(line) as LogLine) },
        ),
        ...rest,
      });
      agents.push(a);
      return a;
    }

    /** Resolves once the agent made a claim that found nothing: from then on it rests. */
    function idle(a: Agent): Promise<void> {
      return new Promise((resolve) => a.on('claimed', (count) => count === 0 && resolve()));
    }

    it('an idle agent is woken by documents another process stored, without waiting for POLL_INTERVAL', async () => {
      replicaSet = await ScriptedMongoServer.start(0, { backend: FERRETDB_URL! });
      const url = replicaSet.url(database);
      const processed = new Map<string, string>();
      const fleet = [1, 2].map(() => {
        const a = agent(url, {
          handler: (doc) => void processed.set(doc.id, a.settings.agentId),
        });
        return a;
      });
      const resting = Promise.all(fleet.map(idle));
      await Promise.all(fleet.map((a) => a.start()));
      await resting;
      await waitFor(() => replicaSet!.documents.openCursors === 2, { what: 'both documents streams up' });
      assert.deepEqual(
        fleet.map((a) => a.watchModeShown),
        ['change_streams', 'change_streams'],
      );

      const stored = await store(url).enqueueDocuments([{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
      const ids = stored.map((d) => d.id);
      await waitFor(() => ids.every((id) => processed.has(id)), {
        what: 'the three documents processed by the idle agents',
        timeoutMs: 60_000,
      });
      // Once, and by agents whose only way to learn of them was the documents stream.
      assert.deepEqual([...processed.keys()].sort(), [...ids].sort());
      assert.ok(fleet.every((a) => a.stats.documentsProcessed <= 3));
    });

    it('on FerretDB (no change streams) an agent polls for documents, after one log line and no error loop', async () => {
      const lines: LogLine[] = [];
      const processed = new Set<string>();
      const a = agent(FERRETDB_URL!, {
        pollIntervalMs: 300,
        lines,
        handler: (doc) => void processed.add(doc.id),
      });
      await a.start();
      // The watcher tries the stream again after 1 s and 2 s: those refusals are debug lines only.
      await waitFor(() => lines.filter((l) => /Still polling/.test(l.msg)).length >= 2, {
        what: 'two more attempts at the change stream',
        timeoutMs: 30_000,
      });
      const [id] = await store(FERRETDB_URL!).insertDocuments([{ n: 1 }]);
      await waitFor(() => processed.has(id!), { what: 'the document found by polling' });

      const loud = lines.filter((l) => l.level >= 40);
      assert.equal(loud.length, 1, JSON.stringify(loud));
      assert.match(
        loud[0]!.msg,
        /^MongoDB Change Streams not available: .*\(code 238\)\. Using polling fallback\.$/,
      );
      assert.ok(!lines.some((l) => /New documents wake/.test(l.msg)), 'no documents stream is tried');
      assert.equal(a.watchModeShown, 'polling');
    });
  },
);
