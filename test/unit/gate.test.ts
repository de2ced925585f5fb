import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { VersionGate } from '../../src/control/gate.js';
import type { ControlCommand, ControlState } from '../../src/stores/types.js';

const state = (version: number, command: ControlCommand = 'pause'): ControlState => ({
  command,
  version,
  timestamp: new Date(),
  reason: null,
  updated_by: 't',
  on_behalf_of: null,
  expires_at: null,
});

describe('version gate', () => {
  it('applies the first state, whatever its version', () => {
    const gate = new VersionGate();
    assert.equal(gate.applied, null);
    assert.ok(gate.isNew(0));
    const first = state(7);
    assert.deepEqual(gate.offer(first), { apply: true, state: first });
    assert.equal(gate.applied, first);
    assert.equal(gate.appliedVersion, 7);
  });

  it('applies each newer version exactly once and ignores repeats', () => {
    const gate = new VersionGate();
    const applied: number[] = [];
    for (const v of [1, 1, 2, 2, 2, 3, 3]) {
      const decision = gate.offer(state(v));
      if (decision.apply) applied.push(decision.state.version);
      else assert.equal(decision.reason, 'already-applied');
    }
    assert.deepEqual(applied, [1, 2, 3]);
  });

  it('never goes back to an older version', () => {
    const gate = new VersionGate();
    gate.offer(state(5, 'pause'));
    const decision = gate.offer(state(4, 'running'));
    assert.deepEqual(decision, { apply: false, reason: 'older', appliedVersion: 5 });
    assert.equal(gate.applied?.command, 'pause');
    assert.equal(gate.isNew(5), false);
    assert.equal(gate.isNew(6), true);
  });

  it('re-applies the same command when only the version moved (the manual bump)', () => {
    const gate = new VersionGate();
    gate.offer(state(1, 'pause'));
    const decision = gate.offer(state(2, 'pause'));
    assert.equal(decision.apply, true);
  });

  it('skips versions it never saw and applies the newest', () => {
    const gate = new VersionGate();
    gate.offer(state(1));
    assert.equal(gate.offer(state(9)).apply, true);
    assert.equal(gate.offer(state(5)).apply, false);
  });
});
