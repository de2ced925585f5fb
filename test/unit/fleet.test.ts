// The fleet view with two processes under one agent_id (a copied configuration, or the host-name
// default on two containers of one pod): both count, and the summary says which names are shared.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { describeFleet } from '../../src/control/fleet.js';
import type { AgentRecord } from '../../src/stores/types.js';

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
