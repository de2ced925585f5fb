import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { pino } from 'pino';

import { buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

describe('a pause that expires', () => {
  let box: Sandbox;
  beforeEach(async () => {
    box = await sandbox();
  });
  afterEach(async () => {
    await box.cleanup();
  });

  it('resumes the fleet by itself, written once by system however many agents notice', async () => {
    const agents = [box.agent(), box.agent(), box.agent()];
    await Promise.all(agents.map((a) => a.start()));
    const app = await buildApp({ agent: agents[0]!, logger: pino({ level: 'silent' }), publicConfig: {} });
    try {
      const response = await app.inject({
        method: 'POST',
        url: '/api/cluster/pause?reason=night+batch&updated_by=ops&expires_in=1s',
      });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.ok(Date.parse(body.expires_at) > Date.now());
      await waitFor(() => agents.every((a) => a.state === 'paused'), { what: 'all paused' });
      await waitFor(() => agents.every((a) => a.state === 'running'), {
        what: 'all running again after the expiry',
      });
      const history = await box.store.listHistory(10);
      const resumes = history.filter((h) => h.command === 'running');
      assert.equal(resumes.length, 1, `exactly one resume: ${JSON.stringify(history)}`);
      assert.equal(resumes[0]?.updated_by, 'system');
      assert.match(resumes[0]?.reason ?? '', /^pause expired after 1s \(paused by ops: night batch\)$/);
      assert.equal(resumes[0]?.version, body.version + 1);
    } finally {
      await app.close();
    }
  });

  it('is disarmed by a newer command', async () => {
    const agent = box.agent();
    await agent.start();
    const expires = new Date(Date.now() + 500);
    await box.store.writeCommand({ command: 'pause', reason: null, updated_by: 'x', expires_at: expires });
    await waitFor(() => agent.state === 'paused', { what: 'paused' });
    await box.store.writeCommand({ command: 'pause', reason: 'indefinitely', updated_by: 'y' });
    await waitFor(() => agent.controlStatus?.appliedVersion === 2, { what: 'the second pause applied' });
    await waitFor(() => Date.now() > expires.getTime() + 1_000, { what: 'the first expiry to pass' });
    assert.equal(agent.state, 'paused');
    assert.equal((await box.store.readControl()).version, 2);
  });

  it('refuses expires_in on other commands and durations it cannot read', async () => {
    const agent = box.agent();
    await agent.start();
    const app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
    try {
      for (const url of [
        '/api/cluster/resume?expires_in=1h',
        '/api/cluster/pause?expires_in=soon',
        '/api/cluster/pause?expires_in=0',
        '/api/cluster/pause?expires_in=60d',
      ]) {
        const response = await app.inject({ method: 'POST', url });
        assert.equal(response.statusCode, 400, url);
        assert.match(response.json().message, /expires_in/);
      }
      // A grammar error reads as the rule with examples, not as the schema's regular expression.
      const soon = await app.inject({ method: 'POST', url: '/api/cluster/pause?expires_in=soon' });
      assert.equal(
        soon.json().message,
        'query parameter expires_in must be a duration such as 30s, 15m, 2h or 1d (1 s to 30 d)',
      );
      assert.equal((await box.store.readControl()).version, 0);
      // Units in either case, as agentctl accepts them (one grammar, src/control/duration.ts).
      const upper = await app.inject({ method: 'POST', url: '/api/cluster/pause?expires_in=2H' });
      assert.equal(upper.statusCode, 200, upper.body);
      const inMs = Date.parse(upper.json().expires_at) - Date.now();
      assert.ok(inMs > 7_100_000 && inMs <= 7_200_000, `expires in ${inMs} ms`);
    } finally {
      await app.close();
    }
  });
});
