// Three real agent processes sharing one store, on every store target: propagation of commands
// (event-driven and polling), readiness, exactly-once processing, lease recovery after SIGKILL,
// cluster shutdown, and adoption of the persisted state by restarted agents.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, type TestContext } from 'node:test';

import type { Store } from '../../src/stores/types.js';
import { type AgentProcess, Fleet } from '../helpers/processes.js';
import { type TargetDatabase, TARGETS } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

/** Waits until every agent reports the state; resolves with each one's delay in ms. */
async function allReach(agents: AgentProcess[], state: string, since: number): Promise<number[]> {
  return Promise.all(
    agents.map(async (agent) => {
      await waitFor(async () => (await agent.state()) === state, {
        what: `${agent.id} to be ${state}`,
        intervalMs: 10,
      });
      return Date.now() - since;
    }),
  );
}

async function readiness(agents: AgentProcess[]): Promise<number[]> {
  return Promise.all(agents.map(async (a) => (await fetch(`${a.url}/readiness`)).status));
}

for (const target of TARGETS) {
  describe(`cluster of three agent processes on ${target.name}`, { skip: target.skip ?? false }, () => {
    let db: TargetDatabase;
    let store: Store;
    let fleet: Fleet;

    beforeEach(async () => {
      db = await target.create();
      store = await db.open();
      fleet = new Fleet(db.env);
    });

    afterEach(async () => {
      try {
        await fleet.stopAll();
      } finally {
        await store.close();
        await db.cleanup();
      }
    });

    it("propagates a pause through one agent to all three by the store's own events, and readiness follows", async (t: TestContext) => {
      const pushes = target.pushes !== false;
      // With a 60 s polling interval, a pause that arrives in seconds can only have come by events.
      const interval = pushes ? '60' : '1';
      const agents = await fleet.startMany(3, {
        CONTROL_POLLING_INTERVAL: interval,
        CONTROL_RECONCILE_INTERVAL: '0',
      });
      const mode = (await agents[0]!.get<{ watch_mode: string }>('/api/cluster/control-state')).body
        .watch_mode;
      if (pushes) assert.notEqual(mode, 'polling', `${target.name} should watch event-driven`);
      else assert.equal(mode, 'polling', `${target.name} has no event-driven watch and should poll`);
      assert.deepEqual(await readiness(agents), [200, 200, 200]);

      const sent = Date.now();
      const pause = await agents[0]!.post('/api/cluster/pause?reason=Maintenance&updated_by=admin');
      assert.equal(pause.status, 200);
      const delays = await allReach(agents, 'paused', sent);
      t.diagnostic(`${target.name} ${mode}: pause reached the three agents after ${delays.join(', ')} ms`);
      assert.deepEqual(await readiness(agents), [503, 503, 503]);

      const resumed = Date.now();
      await agents[2]!.post('/api/cluster/resume?reason=Maintenance+complete&updated_by=admin');
      t.diagnostic(`resume reached them after ${(await allReach(agents, 'running', resumed)).join(', ')} ms`);
      assert.deepEqual(await readiness(agents), [200, 200, 200]);
      for (const agent of agents) {
        const log = agent.output();
        assert.match(log, /\[INFO\] \[Distributed Control\] Initializing cluster coordination/);
        assert.match(
          log,
          pushes
            ? /\[INFO\] Using .+ \(event-driven, real-time\)/
            : /\[INFO\] Using polling fallback \(interval: 1s\)/,
        );
      }
    });

    it('propagates by polling when event-driven watching is turned off', async (t) => {
      const agents = await fleet.startMany(3, {
        ENABLE_CHANGE_STREAMS: 'false',
        CONTROL_POLLING_INTERVAL: '0.5',
      });
      for (const agent of agents)
        assert.match(agent.output(), /\[INFO\] Using polling fallback \(interval: 0\.5s\)/);
      const mode = (await agents[1]!.get<{ watch_mode: string }>('/api/cluster/stats')).body.watch_mode;
      assert.equal(mode, 'polling');
      const sent = Date.now();
      await agents[1]!.post('/api/cluster/pause');
      const delays = await allReach(agents, 'paused', sent);
      t.diagnostic(
        `${target.name} polling every 0.5 s: pause reached the agents after ${delays.join(', ')} ms`,
      );
      await agents[0]!.post('/api/cluster/resume');
      await allReach(agents, 'running', Date.now());
    });

    it('processes every document fed through the API exactly once across the three', async () => {
      const agents = await fleet.startMany(3, { BATCH_SIZE: '7', CONCURRENCY: '2' });
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const payload = Array.from({ length: 100 }, (_, n) => ({ n: i * 100 + n }));
        const response = await fetch(`${agents[i]!.url}/api/documents`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(payload),
        });
        assert.equal(response.status, 201);
        ids.push(...((await response.json()) as { ids: string[] }).ids);
      }
      await waitFor(async () => (await store.countDocuments()).processed === 300, {
        what: '300 documents processed',
        timeoutMs: 60_000,
      });
      const records = await fleet.processedRecords();
      assert.equal(records.length, 300, 'each document handled once');
      assert.deepEqual(new Set(records.map((r) => r.id)), new Set(ids));
      const byAgent = new Set(records.map((r) => r.agent));
      assert.ok(byAgent.size >= 2, `work should spread across agents, got ${[...byAgent].join(', ')}`);
    });

    it("gives a SIGKILLed agent's claimed documents to the others after the lease", async (t) => {
      // A prefetch keeps the victim holding documents between two handlers, so that the kill
      // always finds some (on a slow store the check and the kill are far apart).
      const env = { BATCH_SIZE: '5', PREFETCH: '4', LEASE_TIMEOUT: '2', HANDLER_DELAY_MS: '150' };
      const [victim, ...others] = await fleet.startMany(3, env);
      await Promise.all(others.map((a) => a.post('/api/agent/pause')));
      const ids = await store.insertDocuments(Array.from({ length: 40 }, (_, n) => ({ n })));
      await waitFor(
        async () => {
          const docs = await Promise.all(ids.map((id) => store.getDocument(id)));
          return docs.some((d) => d?.status === 'processing' && d.claimed_by === victim!.id);
        },
        { what: 'the victim to hold a claim' },
      );
      victim!.child.kill('SIGKILL');
      await victim!.exited;
      const held = (await Promise.all(ids.map((id) => store.getDocument(id)))).filter(
        (d) => d?.status === 'processing' && d.claimed_by === victim!.id,
      );
      assert.ok(held.length > 0);
      const killedAt = Date.now();
      await Promise.all(others.map((a) => a.post('/api/agent/resume')));
      await waitFor(async () => (await store.countDocuments()).processed === 40, {
        what: 'all 40 processed',
        timeoutMs: 60_000,
      });
      t.diagnostic(
        `${held.length} leased documents recovered; all done ${Date.now() - killedAt} ms after the kill`,
      );
      const records = await fleet.processedRecords();
      const seen = new Map<string, number>();
      for (const r of records) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
      assert.deepEqual(new Set(seen.keys()), new Set(ids), 'nothing lost');
      const victimIds = new Set(records.filter((r) => r.agent === victim!.id).map((r) => r.id));
      for (const [id, count] of seen) {
        // Only a document the killed agent handled but could not record may be handled twice.
        if (count > 1) assert.ok(victimIds.has(id) && count === 2, `document ${id} handled ${count} times`);
      }
    });

    it('pause with wait=true answers once every agent applied it and drained; a short timeout gives 504 and the stragglers', async (t) => {
      const agents = await fleet.startMany(3, { BATCH_SIZE: '2', HANDLER_DELAY_MS: '700' });
      await store.insertDocuments(Array.from({ length: 30 }, (_, n) => ({ n })));
      await waitFor(async () => (await store.listAgents()).filter((a) => a.batch_in_flight).length >= 2, {
        what: 'batches in flight',
      });
      const timedOut = await agents[0]!.post<{
        error: string;
        barrier: { timed_out: boolean; summary: { stragglers: string[] } };
      }>('/api/cluster/pause?wait=true&timeout=0.1');
      assert.equal(timedOut.status, 504);
      assert.equal(timedOut.body.error, 'PA_WAIT_TIMEOUT');
      assert.match(
        (timedOut.body as unknown as { message: string }).message,
        /was written, but after \d+ ms/,
      );
      assert.equal(timedOut.body.barrier.timed_out, true);
      assert.ok(timedOut.body.barrier.summary.stragglers.length > 0);

      await agents[1]!.post('/api/cluster/resume?wait=true');
      await waitFor(async () => (await store.listAgents()).some((a) => a.batch_in_flight), {
        what: 'work again',
      });
      const sent = Date.now();
      const paused = await agents[2]!.post<{
        status: string;
        version: number;
        barrier: {
          complete: boolean;
          waited_ms: number;
          agents: { state: string; batch_in_flight: boolean; applied_version: number }[];
        };
      }>('/api/cluster/pause?wait=true&timeout=30&reason=deploy');
      const took = Date.now() - sent;
      assert.equal(paused.status, 200);
      assert.equal(paused.body.barrier.complete, true);
      assert.equal(paused.body.barrier.agents.length, 3);
      for (const row of paused.body.barrier.agents) {
        assert.equal(row.state, 'paused');
        assert.equal(row.batch_in_flight, false);
        assert.equal(row.applied_version, paused.body.version);
      }
      // Drained means drained: nothing is processing once the answer arrives.
      assert.equal((await store.countDocuments()).processing, 0);
      t.diagnostic(
        `${target.name}: pause?wait=true with 700 ms handlers in flight answered after ${took} ms`,
      );
    });

    it('shuts the whole cluster down: all three exit 0 and leave the registry', async () => {
      const agents = await fleet.startMany(3);
      await waitFor(async () => (await store.listAgents()).length === 3, { what: 'three agents registered' });
      const response = await agents[1]!.post('/api/cluster/shutdown?reason=Emergency&updated_by=admin');
      assert.equal(response.status, 200);
      const codes = await Promise.all(agents.map((a) => a.exited));
      assert.deepEqual(codes, [0, 0, 0]);
      assert.deepEqual(await store.listAgents(), []);
    });

    it('restarted agents adopt the persisted state: paused stays paused, shut down stays stopped until resumed', async () => {
      const [first] = await fleet.startMany(1);
      await first!.post('/api/cluster/pause?reason=deploy');
      await waitFor(async () => (await first!.state()) === 'paused', { what: 'paused' });
      first!.child.kill('SIGTERM');
      assert.equal(await first!.exited, 0);

      const [second] = await fleet.startMany(1);
      assert.equal(await second!.state(), 'paused');
      assert.deepEqual(await readiness([second!]), [503]);

      await second!.post('/api/cluster/shutdown');
      assert.equal(await second!.exited, 0);

      // A new agent in a shut-down cluster must not exit (no crash loop): it waits, stopped.
      const [third] = await fleet.startMany(1);
      assert.equal(await third!.state(), 'stopped');
      assert.deepEqual(await readiness([third!]), [503]);
      assert.equal(third!.child.exitCode, null);
      await third!.post('/api/cluster/resume');
      await waitFor(async () => (await third!.state()) === 'running', { what: 'running after resume' });
    });
  });
}
