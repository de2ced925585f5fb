// The change-stream watch against a scripted server that speaks the real wire protocol to the
// real driver (test/helpers/mongo-mock.ts): establishing with a forced first round trip, refusals,
// wake-ups, resuming with the last token after the errors the driver resumes by itself and after
// those it does not, invalidate, and giving up with onError once.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { MongoClient } from 'mongodb';

import { StoreUnavailableError, WatchUnavailableError } from '../../src/errors.js';
import { createMongoStore } from '../../src/stores/mongodb/index.js';
import type { ControlWatch, Store } from '../../src/stores/types.js';
import { ScriptedMongoServer } from '../helpers/mongo-mock.js';
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
