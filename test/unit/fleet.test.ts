// The fleet view with two processes under one agent_id (a copied configuration, or the host-name
// default on two containers of one pod): both count, and the summary says which names are shared.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { describeFleet, waitForBarrier } from '../../src/control/fleet.js';
import type { AgentRecord, Store } from '../../src/stores/types.js';

const now = Date.parse('2026-12-01T10:00:00Z');

function record(agentId: string, instanceId: string, overrides: Partial<AgentRecord> = {}): AgentRecord {
  return {
    agent_id: agentId,
    instance_id: instanceId,
    host: 'h',
    software_version: '0.0.0',
    state: 'paused',
    applied_version: 2,
    applied_at: null,
    batch_in_flight: false,
    watch_mode: 'polling',
    started_at: new Date(now - 60_000),
    counters: {},
    heartbeat_at: new Date(now - 1_000),
    ...overrides,
  };
}

describe('fleet view', () => {
  it("uses the store's heartbeat age over the reader's clock", () => {
    // heartbeat_at says an hour ago by our (skewed) clock; the store says 1 s.
    const view = describeFleet(
      { command: 'running', version: 2 },
      [record('a', 'aaaaaaaa-0000', { heartbeat_at: new Date(now - 3_600_000), heartbeat_age_ms: 1_000 })],
      5_000,
      now,
    );
    assert.equal(view.summary.live, 1);
    assert.equal(view.agents[0]!.heartbeat_age_seconds, 1);
  });

  it('does not count an agent lost while holding documents as drained until its leases may have run out', () => {
    const lost = record('agent-2', 'bbbbbbbb-0000', { batch_in_flight: true, heartbeat_age_ms: 20_000 });
    const pause = describeFleet(
      { command: 'pause', version: 2 },
      [record('agent-1', 'aaaaaaaa-0000'), lost],
      5_000,
      { leaseMs: 60_000, now },
    );
    assert.equal(pause.summary.lost, 1);
    assert.deepEqual(pause.summary.stragglers, ['agent-2']);
    assert.equal(pause.summary.unconfirmed.length, 1);
    assert.match(
      pause.summary.unconfirmed[0]!,
      /^agent-2 \(lost while holding documents; its leases may run until \d{4}-/,
    );
    // Once the lost threshold plus the lease have passed, it is drained for good.
    const later = describeFleet(
      { command: 'pause', version: 2 },
      [record('agent-1', 'aaaaaaaa-0000'), { ...lost, heartbeat_age_ms: 76_000 }],
      5_000,
      { leaseMs: 60_000, now },
    );
    assert.deepEqual(later.summary.stragglers, []);
    assert.deepEqual(later.summary.unconfirmed, []);
    // A resume needs no drain.
    const resume = describeFleet(
      { command: 'running', version: 2 },
      [record('agent-1', 'aaaaaaaa-0000'), lost],
      5_000,
      { leaseMs: 60_000, now },
    );
    assert.deepEqual(resume.summary.unconfirmed, []);
  });

  it('never calls an empty registry done for pause or resume; shutdown with every agent gone is', async () => {
    const empty = { listAgents: async () => [] } as unknown as Store;
    for (const command of ['pause', 'running'] as const) {
      const result = await waitForBarrier({
        store: empty,
        state: { command, version: 3 },
        timeoutMs: 30,
        heartbeatIntervalMs: 5_000,
      });
      assert.equal(result.complete, false, command);
      assert.match(result.reason ?? '', /no live agent/);
    }
    const shutdown = await waitForBarrier({
      store: empty,
      state: { command: 'shutdown', version: 3 },
      timeoutMs: 30,
      heartbeatIntervalMs: 5_000,
    });
    assert.equal(shutdown.complete, true);
  });

  it('counts both processes of a shared agent_id and tells them apart among the stragglers', () => {
    const view = describeFleet(
      { command: 'pause', version: 2 },
      [
        record('alone', 'aaaaaaaa-0000', { applied_version: 1 }),
        record('shared', '11111111-aaaa', { applied_version: 1 }),
        record('shared', '22222222-bbbb', { batch_in_flight: true }),
        // A lost process does not make its name a duplicate.
        record('gone', 'cccccccc-0000', { heartbeat_at: new Date(now - 60_000) }),
        record('gone', 'dddddddd-0000'),
      ],
      5_000,
      now,
    );
    assert.deepEqual(
      view.agents.map((a) => a.instance_id),
      ['aaaaaaaa-0000', '11111111-aaaa', '22222222-bbbb', 'cccccccc-0000', 'dddddddd-0000'],
    );
    assert.equal(view.summary.live, 4);
    assert.equal(view.summary.lost, 1);
    assert.deepEqual(view.summary.duplicate_agent_ids, ['shared']);
    assert.deepEqual(view.summary.stragglers, ['alone', 'shared@11111111', 'shared@22222222']);
  });
});
