import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AGENT_STATES, type AgentState, isReady, nextState } from '../../src/agent/lifecycle.js';
import type { ControlCommand } from '../../src/stores/types.js';

const cmd = (command: ControlCommand, source: 'cluster' | 'local' = 'cluster', initial = false) =>
  ({ type: 'command', command, source, initial }) as const;

describe('agent lifecycle state machine', () => {
  it('pauses and resumes from running, paused and stopped', () => {
    for (const from of ['running', 'paused', 'stopped'] as AgentState[]) {
      assert.deepEqual(nextState(from, cmd('pause')), { state: 'paused' }, from);
      assert.deepEqual(nextState(from, cmd('running')), { state: 'running' }, from);
      assert.deepEqual(nextState(from, cmd('pause', 'local')), { state: 'paused' }, from);
    }
  });

  it('a cluster shutdown seen while working drains and then exits', () => {
    assert.deepEqual(nextState('running', cmd('shutdown')), { state: 'stopping' });
    assert.deepEqual(nextState('paused', cmd('shutdown')), { state: 'stopping' });
    assert.deepEqual(nextState('stopping', { type: 'drained' }), { state: 'stopped' });
  });

  it('an agent that starts into a shut-down cluster stays up, stopped, and does not exit again', () => {
    assert.deepEqual(nextState('paused', cmd('shutdown', 'cluster', true)), { state: 'stopped' });
    assert.deepEqual(nextState('stopped', cmd('shutdown')), { state: 'stopped' });
    assert.deepEqual(nextState('stopped', cmd('running')), { state: 'running' });
  });

  it('a local shutdown always drains and exits, even from stopped', () => {
    for (const from of ['running', 'paused', 'stopped'] as AgentState[]) {
      assert.deepEqual(nextState(from, cmd('shutdown', 'local')), { state: 'stopping' }, from);
    }
  });

  it('nothing brings a stopping agent back', () => {
    for (const command of ['running', 'pause', 'shutdown'] as ControlCommand[]) {
      for (const source of ['cluster', 'local'] as const) {
        assert.deepEqual(nextState('stopping', cmd(command, source)), { state: 'stopping' });
      }
    }
  });

  it('drained only matters while stopping', () => {
    for (const from of ['running', 'paused', 'stopped'] as AgentState[]) {
      assert.deepEqual(nextState(from, { type: 'drained' }), { state: from });
    }
  });

  it('is ready only while running', () => {
    assert.deepEqual(
      AGENT_STATES.filter((s) => isReady(s)),
      ['running'],
    );
  });
});
