// While the stored control document is malformed (edited by hand), the cluster reads answer with
// what is readable, the state the fleet still follows, and the problem in `control_error`: exactly
// when operators need them, they must not answer 500. A command repairs the document.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Database from 'better-sqlite3';
import { pino } from 'pino';

import type { Agent } from '../../src/agent/agent.js';
import { loadConfig, publicConfig } from '../../src/config.js';
import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

describe('cluster reads while the control document is malformed', () => {
  let box: Sandbox;
  let agent: Agent;
  let app: App;

  before(async () => {
    box = await sandbox();
    agent = box.agent();
    await agent.start();
    app = await buildApp({
      agent,
      logger: pino({ level: 'silent' }),
      publicConfig: publicConfig(loadConfig({})),
    });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  it('answers control-state, stats and agents with the applied state and control_error, never 500', async () => {
    const paused = await app.inject({ method: 'POST', url: '/api/cluster/pause?reason=before' });
    assert.equal(paused.statusCode, 200, paused.body);
    const raw = new Database(box.dbPath);
    raw
      .prepare(
        `UPDATE agent_control SET command = 'explode', version = version + 1 WHERE id = 'global_control'`,
      )
      .run();
    raw.close();
    await waitFor(() => agent.controlStatus?.lastError?.includes('explode'), { what: 'the problem seen' });

    const state = await app.inject('/api/cluster/control-state');
    assert.equal(state.statusCode, 200, state.body);
    assert.equal(state.json().command, 'pause');
    assert.match(state.json().control_error, /explode/);

    const stats = await app.inject('/api/cluster/stats');
    assert.equal(stats.statusCode, 200, stats.body);
    assert.equal(stats.json().current_command, 'pause');
    assert.match(stats.json().control_error, /explode/);

    const agents = await app.inject('/api/cluster/agents');
    assert.equal(agents.statusCode, 200, agents.body);
    assert.equal(agents.json().desired.command, 'pause');
    assert.match(agents.json().control_error, /explode/);

    // A command repairs it, and the reads say nothing is wrong any more.
    const resumed = await app.inject({ method: 'POST', url: '/api/cluster/resume?reason=repair' });
    assert.equal(resumed.statusCode, 200, resumed.body);
    const repaired = await app.inject('/api/cluster/control-state');
    assert.equal(repaired.json().command, 'running');
    assert.equal(repaired.json().control_error, undefined);
  });
});
