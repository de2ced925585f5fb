import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';

import Database from 'better-sqlite3';
import { pino } from 'pino';

import type { HandlerContext } from '../../src/agent/pipeline.js';
import { ConfigError } from '../../src/errors.js';
import type { ClaimedDocument } from '../../src/stores/types.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

/** A handler whose calls wait until the test lets them go. */
function gatedHandler() {
  const started: string[] = [];
  const signals: AbortSignal[] = [];
  let open!: () => void;
  let gate = new Promise<void>((resolve) => (open = resolve));
  return {
    started,
    signals,
    release: () => open(),
    reset: () => (gate = new Promise<void>((resolve) => (open = resolve))),
    handler: async (doc: ClaimedDocument, ctx: HandlerContext) => {
      started.push(doc.id);
      signals.push(ctx.signal);
      await gate;
    },
  };
}

describe('one agent', () => {
  let box: Sandbox;
  beforeEach(async () => {
    box = await sandbox();
  });
  afterEach(async () => {
    await box.cleanup();
  });

  it('processes documents and marks them processed', async () => {
    const seen: unknown[] = [];
    const agent = box.agent({ handler: (doc) => void seen.push(doc.payload) });
    await box.store.insertDocuments([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await agent.start();
    await waitFor(async () => (await box.store.countDocuments()).processed === 3, {
      what: 'three processed',
    });
    assert.deepEqual(seen, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.equal(agent.stats.documentsProcessed, 3);
  });

  it('claims only the queues of QUEUES, and refuses a bad queue name before it starts', async () => {
    const seen: unknown[] = [];
    const agent = box.agent({ handler: (doc) => void seen.push(doc.payload), queues: ['emails', 'reports'] });
    await box.store.enqueueDocuments([
      { payload: 'e', queue: 'emails' },
      { payload: 'd' },
      { payload: 'r', queue: 'reports' },
    ]);
    await agent.start();
    await waitFor(async () => (await box.store.countDocuments()).processed === 2, { what: 'two processed' });
    assert.deepEqual([...seen].sort(), ['e', 'r']);
    assert.equal(
      (await box.store.listDocuments({ limit: 10, queue: 'default' })).documents[0]?.status,
      'pending',
    );
    assert.throws(
      () => box.agent({ queues: ['emails', 'Bad Name'] }),
      (e: unknown) => e instanceof ConfigError && /"Bad Name" is not a valid queue name/.test(e.message),
    );
  });

  it('on pause lets the running document finish and releases the rest of the batch at once', async () => {
    const gated = gatedHandler();
    const agent = box.agent({ handler: gated.handler, batchSize: 5, concurrency: 1 });
    await box.store.insertDocuments([1, 2, 3, 4, 5]);
    await agent.start();
    await waitFor(() => gated.started.length === 1, { what: 'the first handler to start' });
    agent.pause('test');
    // The four not started go back to pending while the first is still running.
    await waitFor(async () => (await box.store.countDocuments()).pending === 4, {
      what: 'four documents released',
    });
    assert.equal((await box.store.countDocuments()).processing, 1);
    assert.equal(agent.batchInFlight, true);
    gated.release();
    await waitFor(() => !agent.batchInFlight, { what: 'the batch to drain' });
    assert.deepEqual(await box.store.countDocuments(), {
      pending: 4,
      scheduled: 0,
      processing: 0,
      processed: 1,
      failed: 0,
    });
    assert.equal(gated.started.length, 1, 'nothing starts while paused');
    assert.equal(gated.signals[0]?.aborted, false, 'a pause never interrupts a handler');
    agent.resume('test');
    await waitFor(async () => (await box.store.countDocuments()).processed === 5, {
      what: 'the rest after resume',
    });
  });

  it('retries a throwing handler MAX_RETRIES times, then marks the document failed with the error', async () => {
    let calls = 0;
    const agent = box.agent({
      maxRetries: 2,
      handler: () => {
        calls++;
        throw new Error('cannot parse invoice');
      },
    });
    const [id] = await box.store.insertDocuments([{ bad: true }]);
    await agent.start();
    await waitFor(async () => (await box.store.getDocument(id!))?.status === 'failed', {
      what: 'the document to fail',
    });
    const doc = await box.store.getDocument(id!);
    assert.equal(calls, 3);
    assert.equal(doc?.attempts, 3);
    assert.equal(doc?.error, 'cannot parse invoice');
    assert.equal(agent.stats.documentsFailed, 1);
  });

  it('adopts a paused queue before pulling anything, even when its first policy read fails', async () => {
    await box.store.writePolicy({
      expectedVersion: 0,
      body: {
        paused_queues: {
          emails: { reason: null, updated_by: 'ops', on_behalf_of: null, since_version: 1, expires_at: null },
        },
        throttle: null,
        queue_rates: {},
      },
      entry: {
        command: 'pause',
        queue: 'emails',
        rate: null,
        concurrency: null,
        reason: null,
        updated_by: 'ops',
        on_behalf_of: null,
        expires_at: null,
      },
    });
    const [email] = await box.store.enqueueDocuments([{ payload: 'e', queue: 'emails' }]);
    // The policy table goes away after the store was initialised: the first read fails (not a
    // malformed policy, a store that cannot answer for it), as a timeout would.
    const raw = new Database(box.dbPath);
    raw.exec('ALTER TABLE fleet_policy RENAME TO fleet_policy_away');
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) });
    const { started, handler, release } = gatedHandler();
    const agent = box.agent({ handler, logger: pino({ level: 'warn' }, sink) });
    try {
      const starting = agent.start();
      // Either the start gave up on the policy (and pulled), or it tries the read again.
      await Promise.race([
        starting,
        waitFor(() => lines.filter((l) => /reading the fleet policy/.test(l)).length >= 2, {
          what: 'the agent to try the policy read again',
        }),
      ]);
      raw.exec('ALTER TABLE fleet_policy_away RENAME TO fleet_policy');
      await starting;
      const [other] = await box.store.enqueueDocuments([{ payload: 'd' }]);
      await waitFor(() => started.includes(other!.id) || started.includes(email!.id), {
        what: 'a document to start',
      });
      assert.ok(!started.includes(email!.id), 'a document of the paused queue started');
      assert.ok(agent.policy.policy?.paused_queues.emails, 'the agent does not apply the pause');
    } finally {
      release();
      raw.close();
    }
  });

  it('claims nothing while the policy it never read is malformed, and works once it is repaired', async () => {
    const raw = new Database(box.dbPath);
    // A hand edit that broke the body: which queues are paused cannot be known.
    raw
      .prepare(
        "INSERT OR REPLACE INTO fleet_policy (id, version, timestamp, body) VALUES ('fleet_policy', 4, ?, ?)",
      )
      .run(new Date().toISOString(), JSON.stringify({ paused_queues: { emails: 'yes' } }));
    const [doc] = await box.store.enqueueDocuments([{ payload: 'd' }]);
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) });
    const { started, handler, release } = gatedHandler();
    const agent = box.agent({ handler, logger: pino({ level: 'error' }, sink) });
    try {
      await agent.start();
      assert.equal(agent.state, 'running');
      await waitFor(() => lines.some((l) => /claiming nothing until it is repaired/.test(l)), {
        what: 'the agent to say it claims nothing',
      });
      assert.match(agent.policy.policy_error ?? '', /paused_queues\.emails is not an object/);
      // Three heartbeats later (at 200 ms each, with a 100 ms poll: several claim cycles), nothing
      // was claimed and the document is still pending.
      const beats = new Set<number>();
      await waitFor(
        () => {
          const at = agent.stats.lastHeartbeatAt?.getTime();
          if (at !== undefined) beats.add(at);
          return beats.size >= 4;
        },
        { what: 'three more heartbeats', intervalMs: 10 },
      );
      assert.equal(agent.stats.claims, 0, 'the agent claimed while its policy was unknown');
      assert.equal((await box.store.getDocument(doc!.id))?.status, 'pending');
      assert.equal(started.length, 0);
      raw
        .prepare("UPDATE fleet_policy SET version = 5, body = ? WHERE id = 'fleet_policy'")
        .run(JSON.stringify({ paused_queues: {}, throttle: null, queue_rates: {} }));
      await waitFor(() => started.includes(doc!.id), {
        what: 'the document to start once the policy is repaired',
      });
    } finally {
      release();
      raw.close();
    }
  });

  it('adopts a paused cluster before pulling anything', async () => {
    await box.store.writeCommand({ command: 'pause', reason: 'before start', updated_by: 't' });
    await box.store.insertDocuments([1, 2]);
    let calls = 0;
    const agent = box.agent({ handler: () => void calls++ });
    await agent.start();
    assert.equal(agent.state, 'paused');
    assert.equal(agent.ready, false);
    // Give it several poll intervals' worth of chances to (wrongly) claim.
    await waitFor(() => agent.stats.lastHeartbeatAt !== null, { what: 'a heartbeat' });
    assert.equal(calls, 0);
    assert.deepEqual(await box.store.countDocuments(), {
      pending: 2,
      scheduled: 0,
      processing: 0,
      processed: 0,
      failed: 0,
    });
  });

  it('starts stopped into a shut-down cluster, stays up, and works after a resume', async () => {
    await box.store.writeCommand({ command: 'shutdown', reason: null, updated_by: 't' });
    const agent = box.agent();
    await agent.start();
    assert.equal(agent.state, 'stopped');
    let finished = false;
    void agent.done.then(() => (finished = true));
    await box.store.writeCommand({ command: 'shutdown', reason: 'again', updated_by: 't' });
    await waitFor(() => agent.controlStatus?.appliedVersion === 2, { what: 'the second shutdown seen' });
    assert.equal(agent.state, 'stopped');
    assert.equal(finished, false);
    await box.store.writeCommand({ command: 'running', reason: null, updated_by: 't' });
    await waitFor(() => agent.state === 'running', { what: 'running after resume' });
  });

  it('a cluster shutdown drains and finishes the agent', async () => {
    const agent = box.agent();
    await agent.start();
    await box.store.writeCommand({ command: 'shutdown', reason: null, updated_by: 't' });
    await agent.done;
    assert.equal(agent.state, 'stopped');
    assert.deepEqual(
      await box.store.listAgents(),
      [],
      'a clean shutdown removes the agent from the registry',
    );
  });

  it('re-applies a command when only the version moves (the manual bump)', async () => {
    const agent = box.agent();
    await agent.start();
    await box.store.writeCommand({ command: 'pause', reason: null, updated_by: 't' });
    await waitFor(() => agent.state === 'paused', { what: 'paused' });
    agent.resume('local override');
    assert.equal(agent.state, 'running');
    // Same as the seed's $inc recipe: version + 1, same command.
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(box.dbPath);
    raw.prepare(`UPDATE agent_control SET version = version + 1 WHERE id = 'global_control'`).run();
    raw.close();
    await waitFor(() => agent.state === 'paused', { what: 'the pause re-applied' });
  });

  it('aborts handlers after SHUTDOWN_TIMEOUT and gives their documents back', async () => {
    const gated = gatedHandler();
    const agent = box.agent({ handler: gated.handler, shutdownTimeoutMs: 300, concurrency: 2 });
    await box.store.insertDocuments([1, 2, 3]);
    await agent.start();
    await waitFor(() => gated.started.length === 2, { what: 'two handlers running' });
    const started = Date.now();
    await agent.stop();
    const took = Date.now() - started;
    assert.ok(took < 10_000, `stop took ${took} ms`);
    assert.ok(
      gated.signals.every((s) => s.aborted),
      'handlers got their abort signal',
    );
    assert.deepEqual(await box.store.countDocuments(), {
      pending: 3,
      scheduled: 0,
      processing: 0,
      processed: 0,
      failed: 0,
    });
    gated.release();
  });

  it('keeps its state and keeps running while the control document is malformed', async () => {
    const agent = box.agent();
    await agent.start();
    await box.store.writeCommand({ command: 'pause', reason: null, updated_by: 't' });
    await waitFor(() => agent.state === 'paused', { what: 'paused' });
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(box.dbPath);
    raw
      .prepare(
        `UPDATE agent_control SET command = 'explode', version = version + 1 WHERE id = 'global_control'`,
      )
      .run();
    await waitFor(() => agent.controlStatus?.lastError?.includes('explode'), {
      what: 'the problem reported',
    });
    assert.equal(agent.state, 'paused');
    raw
      .prepare(
        `UPDATE agent_control SET command = 'running', version = version + 1 WHERE id = 'global_control'`,
      )
      .run();
    raw.close();
    await waitFor(() => agent.state === 'running', { what: 'running once the document is fixed' });
    assert.equal(agent.controlStatus?.lastError, null);
  });

  it('does not let a control file that says running at start undo a cluster pause', async () => {
    const { writeFileSync } = await import('node:fs');
    await box.store.writeCommand({ command: 'pause', reason: 'rollout', updated_by: 't' });
    const agent = box.agent();
    writeFileSync(agent.settings.controlFile, 'running\n');
    await agent.start();
    await waitFor(() => agent.stats.lastHeartbeatAt !== null, { what: 'a heartbeat' });
    // The file is read at start; give its first read the time of a few polls before looking.
    await waitFor(() => agent.stats.claims === 0 && Date.now() - agent.stats.startedAt.getTime() > 500, {
      what: 'half a second after start',
    });
    assert.equal(agent.state, 'paused');
    // A pause in the file at start does apply.
    const other = box.agent();
    writeFileSync(other.settings.controlFile, 'pause');
    await box.store.writeCommand({ command: 'running', reason: null, updated_by: 't' });
    await other.start();
    await waitFor(() => other.state === 'paused', { what: 'the second agent paused by its file' });
  });

  it('follows the control file', async () => {
    const { writeFileSync } = await import('node:fs');
    const agent = box.agent();
    await agent.start();
    const file = agent.settings.controlFile;
    writeFileSync(file, 'pause\n');
    await waitFor(() => agent.state === 'paused', { what: 'paused by the control file' });
    writeFileSync(file, 'gibberish');
    writeFileSync(file, 'resume');
    await waitFor(() => agent.state === 'running', { what: 'resumed by the control file' });
  });
});

describe('a control document broken by hand', () => {
  it('is repaired by the next command, which gets a version above everything seen', async () => {
    const box = await sandbox();
    try {
      const agent = box.agent();
      await agent.start();
      await box.store.writeCommand({ command: 'pause', reason: null, updated_by: 't' });
      const { default: Database } = await import('better-sqlite3');
      const raw = new Database(box.dbPath);
      raw
        .prepare(`UPDATE agent_control SET command = 'explode', version = 'ten' WHERE id = 'global_control'`)
        .run();
      raw.close();
      await waitFor(() => agent.controlStatus?.lastError?.includes('ten'), { what: 'the problem reported' });
      const written = await box.store.writeCommand({ command: 'running', reason: 'repair', updated_by: 't' });
      assert.equal(written.version, 2);
      await waitFor(() => agent.state === 'running' && agent.controlStatus?.lastError === null, {
        what: 'the agent to apply the repaired document',
      });
    } finally {
      await box.cleanup();
    }
  });
});
