// The continuous runtime with real agent processes on every store: a backlog of slow documents
// posted to one agent spreads over the fleet with the default settings, and two processes that
// share one AGENT_ID are two registry rows that both count for the drain barrier.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type { Store } from '../../src/stores/types.js';
import { Fleet } from '../helpers/processes.js';
import { type TargetDatabase, TARGETS } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

interface AgentsBody {
  summary: { live: number; stragglers: string[]; duplicate_agent_ids?: string[] };
  agents: { agent_id: string; instance_id: string; state: string; batch_in_flight: boolean }[];
}

for (const target of TARGETS) {
  describe(
    `the document runtime with agent processes on ${target.name}`,
    { skip: target.skip ?? false },
    () => {
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

      it('spreads slow documents posted to one agent over three agents with the default settings', async (t) => {
        // The defaults for what shapes sharing (CONCURRENCY, BATCH_SIZE, PREFETCH, POLL_INTERVAL);
        // the Fleet's short POLL_INTERVAL is put back to the default, so idle agents must be woken.
        const agents = await fleet.startMany(3, { HANDLER_DELAY_MS: '500', POLL_INTERVAL: '5' });
        await waitFor(async () => (await store.listAgents()).length === 3, {
          what: 'three agents registered',
        });
        const started = Date.now();
        const response = await fetch(`${agents[0]!.url}/api/documents`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(Array.from({ length: 30 }, (_, n) => ({ n }))),
        });
        assert.equal(response.status, 201);
        await waitFor(async () => (await store.countDocuments()).processed === 30, {
          what: '30 documents processed',
          timeoutMs: 60_000,
        });
        const records = await fleet.processedRecords();
        const byAgent = new Map<string, number>();
        for (const r of records) byAgent.set(r.agent, (byAgent.get(r.agent) ?? 0) + 1);
        t.diagnostic(
          `${target.name}: 30 × 500 ms over three agents in ${Date.now() - started} ms: ${[...byAgent].map(([a, n]) => `${a} ${n}`).join(', ')}`,
        );
        assert.equal(records.length, 30);
        assert.equal(
          byAgent.size,
          3,
          `every agent should take a share, got ${[...byAgent.keys()].join(', ')}`,
        );
        for (const [agent, n] of byAgent) assert.ok(n >= 3, `${agent} ran only ${n} of 30`);
      });

      it('counts two live processes that share one AGENT_ID as two agents, for the registry and the barrier', async () => {
        const first = await fleet.start({ HANDLER_DELAY_MS: '1500' }, 'twin');
        const second = await fleet.start({ HANDLER_DELAY_MS: '1500' }, 'twin');
        const view = await waitFor(
          async () => {
            const { body } = await first.get<AgentsBody>('/api/cluster/agents');
            return body.agents.length === 2 ? body : null;
          },
          { what: 'two registry rows' },
        );
        assert.deepEqual(
          view.agents.map((a) => a.agent_id),
          ['twin', 'twin'],
        );
        assert.notEqual(view.agents[0]!.instance_id, view.agents[1]!.instance_id);
        assert.deepEqual(view.summary.duplicate_agent_ids, ['twin']);
        await waitFor(() => /Another live agent process already uses AGENT_ID=twin/.test(second.output()), {
          what: 'the second process to warn about the shared name',
        });

        // One slow document each: the barrier must wait for both handlers, not for one name.
        await store.insertDocuments([{ n: 1 }, { n: 2 }]);
        await waitFor(async () => (await store.countDocuments()).processing === 2, {
          what: 'both processes running a document',
        });
        const paused = await first.post<{ barrier: { complete: boolean } }>(
          '/api/cluster/pause?wait=true&timeout=30',
        );
        assert.equal(paused.status, 200);
        assert.equal(paused.body.barrier.complete, true);
        const counts = await store.countDocuments();
        assert.equal(counts.processing, 0, 'drained means no handler of either process still runs');
        assert.equal(counts.processed, 2);
      });
    },
  );
}
