import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import type { Agent } from '../../src/agent/agent.js';
import { loadConfig, publicConfig } from '../../src/config.js';
import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

/** No error answer may carry a stack trace or be a 5xx for bad input. */
function assertCleanError(
  response: { statusCode: number; body: string },
  status: number,
  code: string,
): Record<string, unknown> {
  assert.equal(response.statusCode, status, response.body);
  const body = JSON.parse(response.body) as Record<string, unknown>;
  assert.equal(body.status, 'error');
  assert.equal(body.error, code, response.body);
  assert.equal(typeof body.message, 'string');
  assert.ok(!/\bat .+:\d+:\d+/.test(response.body), `stack trace in ${response.body}`);
  return body;
}

describe('HTTP API on the embedded store', () => {
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
      publicConfig: publicConfig(loadConfig({ STORE_URL: 'postgres://admin:s3cret@db/app' })),
      bodyLimit: 64 * 1024,
    });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  const version = async () => (await box.store.readControl()).version;

  it("pauses the cluster with the seed's query parameters and answers with every field", async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/cluster/pause?reason=Maintenance&updated_by=admin',
    });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.status, 'success');
    assert.equal(body.command, 'pause');
    assert.equal(body.version, 1);
    assert.equal(body.reason, 'Maintenance');
    assert.equal(body.updated_by, 'admin');
    assert.match(body.message, /pause/);
    assert.ok(!Number.isNaN(Date.parse(body.timestamp)));
    assert.equal(body.propagation.watch_mode, 'file_events');
    assert.equal(body.propagation.applied_by_this_agent, true);
    assert.equal(agent.state, 'paused');

    const state = (await app.inject('/api/cluster/control-state')).json();
    // The fleet policy rides beside the seed's fields (nothing paused or throttled here).
    assert.deepEqual(
      [state.policy.version, state.policy.paused_queues, state.policy.throttle],
      [0, {}, null],
    );
    assert.deepEqual(
      { ...state, timestamp: undefined, policy: undefined },
      {
        command: 'pause',
        version: 1,
        reason: 'Maintenance',
        updated_by: 'admin',
        on_behalf_of: null,
        expires_at: null,
        watch_mode: 'file_events',
        timestamp: undefined,
        policy: undefined,
      },
    );
    assert.equal((await app.inject('/readiness')).statusCode, 503);
    assert.equal((await app.inject('/health')).statusCode, 200);
    assert.equal((await app.inject('/api/agent/state')).json().state, 'paused');
  });

  it('resumes (command running), and readiness follows', async () => {
    const body = (
      await app.inject({
        method: 'POST',
        url: '/api/cluster/resume?reason=Maintenance+complete&updated_by=admin',
      })
    ).json();
    assert.equal(body.command, 'running');
    assert.equal(body.reason, 'Maintenance complete');
    assert.equal(agent.state, 'running');
    assert.equal((await app.inject('/readiness')).statusCode, 200);
  });

  it('lists the history newest first, with a limit', async () => {
    const all = (await app.inject('/api/cluster/history')).json();
    assert.deepEqual(
      all.history.map((h: { version: number; command: string }) => [h.version, h.command]),
      [
        [2, 'running'],
        [1, 'pause'],
      ],
    );
    assert.equal((await app.inject('/api/cluster/history?limit=1')).json().history.length, 1);
    assertCleanError(await app.inject('/api/cluster/history?limit=0'), 400, 'PA_BAD_REQUEST');
    assertCleanError(await app.inject('/api/cluster/history?limit=abc'), 400, 'PA_BAD_REQUEST');
  });

  it("reports cluster stats with the seed's fields", async () => {
    const stats = (await app.inject('/api/cluster/stats')).json();
    for (const field of [
      'watch_mode',
      'polling_interval',
      'current_command',
      'current_version',
      'last_updated',
      'updated_by',
      'reason',
    ]) {
      assert.ok(field in stats, field);
    }
    assert.equal(stats.watch_mode, 'file_events');
    assert.equal(stats.polling_interval, 0.2);
    assert.equal(stats.current_version, 2);
  });

  it('refuses reasons that are too long or carry control characters, and changes nothing', async () => {
    const before = await version();
    const long = assertCleanError(
      await app.inject({ method: 'POST', url: `/api/cluster/pause?reason=${'x'.repeat(257)}` }),
      400,
      'PA_BAD_REQUEST',
    );
    assert.match(String(long.message), /reason/);
    assertCleanError(
      await app.inject({ method: 'POST', url: '/api/cluster/pause?updated_by=a%0Ab' }),
      400,
      'PA_BAD_REQUEST',
    );
    assertCleanError(
      await app.inject({ method: 'POST', url: '/api/cluster/pause?reason=%1B%5B31m' }),
      400,
      'PA_BAD_REQUEST',
    );
    assert.equal(await version(), before);
    assert.equal(agent.state, 'running');
  });

  it('refuses a command whose expected version moved (409) and accepts If-Match', async () => {
    const current = await version();
    const conflict = assertCleanError(
      await app.inject({ method: 'POST', url: `/api/cluster/pause?expected_version=${current - 1}` }),
      409,
      'PA_VERSION_CONFLICT',
    );
    assert.equal(conflict.current_version, current);
    assert.equal(await version(), current);
    const ok = await app.inject({
      method: 'POST',
      url: '/api/cluster/resume',
      headers: { 'if-match': `"${current}"` },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().version, current + 1);
  });

  it('answers unknown paths with 404 and wrong methods with 405 and Allow', async () => {
    assertCleanError(await app.inject('/api/nope'), 404, 'PA_NOT_FOUND');
    const wrong = await app.inject('/api/cluster/pause');
    assertCleanError(wrong, 405, 'PA_METHOD_NOT_ALLOWED');
    assert.equal(wrong.headers.allow, 'POST');
    assertCleanError(await app.inject({ method: 'DELETE', url: '/health' }), 405, 'PA_METHOD_NOT_ALLOWED');
  });

  it('stores documents from a JSON array and answers with their ids', async () => {
    await app.inject({ method: 'POST', url: '/api/agent/pause' });
    const response = await app.inject({
      method: 'POST',
      url: '/api/documents',
      payload: [{ a: 1 }, 'two', [3]],
    });
    assert.equal(response.statusCode, 201, response.body);
    const { ids, count } = response.json();
    assert.equal(count, 3);
    const doc = (await app.inject(`/api/documents/${ids[0]}`)).json();
    assert.deepEqual(doc.payload, { a: 1 });
    assert.equal(doc.status, 'pending');
    assertCleanError(await app.inject('/api/documents/999999'), 404, 'PA_NOT_FOUND');
    await app.inject({ method: 'POST', url: '/api/agent/resume' });
    await waitFor(async () => (await app.inject('/api/documents')).json().counts.processed === 3, {
      what: 'three documents processed',
    });
  });

  it('refuses bad document bodies with a clear 4xx and stores nothing', async () => {
    const before = await box.store.countDocuments();
    const post = (payload: string, type = 'application/json') =>
      app.inject({ method: 'POST', url: '/api/documents', payload, headers: { 'content-type': type } });
    assertCleanError(await post('{"not":"an array"}'), 400, 'PA_BAD_REQUEST');
    assertCleanError(await post('[]'), 400, 'PA_BAD_REQUEST');
    assertCleanError(await post('[1, 2'), 400, 'PA_INVALID_JSON');
    assertCleanError(await post(''), 400, 'PA_BAD_REQUEST');
    const unsupported = assertCleanError(await post('hello', 'text/plain'), 415, 'PA_UNSUPPORTED_MEDIA_TYPE');
    assert.match(String(unsupported.message), /Content-Type: application\/json/);
    const tooLarge = assertCleanError(
      await post(JSON.stringify([{ big: 'x'.repeat(70 * 1024) }])),
      413,
      'PA_PAYLOAD_TOO_LARGE',
    );
    assert.match(String(tooLarge.message), /limit of \d+ bytes/);
    assertCleanError(
      await post(JSON.stringify(Array.from({ length: 10_001 }, () => 1))),
      400,
      'PA_BAD_REQUEST',
    );
    assert.deepEqual(await box.store.countDocuments(), before);
  });

  it('controls this agent only through /api/agent/*', async () => {
    const paused = await app.inject({ method: 'POST', url: '/api/agent/pause' });
    assert.equal(paused.json().state, 'paused');
    const clusterVersion = await version();
    assert.equal((await app.inject('/readiness')).statusCode, 503);
    assert.equal((await app.inject({ method: 'POST', url: '/api/agent/resume' })).json().state, 'running');
    assert.equal(await version(), clusterVersion, 'a local command is not persisted');
  });

  it('shows its settings without secrets, its counters and its store', async () => {
    const config = (await app.inject('/api/config')).body;
    assert.ok(!config.includes('s3cret'));
    const stats = (await app.inject('/api/stats')).json();
    for (const field of [
      'batches',
      'documents_processed',
      'documents_failed',
      'errors',
      'uptime_seconds',
      'last_heartbeat',
    ]) {
      assert.ok(field in stats, field);
    }
    assert.ok(stats.documents_processed >= 3);
    for (const path of ['/api/store/status', '/api/mongo/status']) {
      const status = (await app.inject(path)).json();
      assert.equal(status.reachable, true);
      assert.equal(status.store, 'sqlite');
      assert.ok(status.latency_ms >= 0);
    }
  });

  it('lists the registered agents with a summary', async () => {
    await waitFor(async () => (await app.inject('/api/cluster/agents')).json().agents.length === 1, {
      what: 'the heartbeat',
    });
    const { summary, desired, agents } = (await app.inject('/api/cluster/agents')).json();
    assert.equal(agents[0].agent_id, agent.settings.agentId);
    assert.equal(desired.version, await version());
    assert.equal(summary.live, 1);
    assert.deepEqual(summary.stragglers, []);
  });

  it('serves its OpenAPI document, generated from the route schemas', async () => {
    const doc = (await app.inject('/openapi.json')).json();
    assert.equal(doc.openapi.startsWith('3.'), true);
    for (const path of [
      '/api/cluster/pause',
      '/api/cluster/control-state',
      '/api/agent/state',
      '/api/documents',
      '/health',
    ]) {
      assert.ok(path in doc.paths, path);
    }
    assert.equal((await app.inject('/docs')).statusCode < 400, true);
  });
});

describe('HTTP API with distributed control disabled', () => {
  it('answers the cluster endpoints with 503 and keeps local control', async () => {
    const box = await sandbox();
    const agent = box.agent({ distributedControl: false });
    await agent.start();
    const app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
    try {
      const response = await app.inject({ method: 'POST', url: '/api/cluster/pause' });
      assertCleanError(response, 503, 'PA_DISTRIBUTED_CONTROL_DISABLED');
      assert.equal((await box.store.readControl()).version, 0);
      assert.equal(agent.state, 'running');
      assert.equal((await app.inject({ method: 'POST', url: '/api/agent/pause' })).json().state, 'paused');
    } finally {
      await app.close();
      await box.cleanup();
    }
  });
});

describe('metrics', () => {
  it('exposes the agent state, applied version, apply latency and document counters to Prometheus', async () => {
    const box = await sandbox();
    const agent = box.agent();
    await agent.start();
    const app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
    try {
      await app.inject({ method: 'POST', url: '/api/documents', payload: [1, 2] });
      await waitFor(async () => (await box.store.countDocuments()).processed === 2, {
        what: 'two processed',
      });
      await app.inject({ method: 'POST', url: '/api/cluster/pause' });
      const response = await app.inject('/metrics');
      assert.equal(response.statusCode, 200);
      assert.match(response.headers['content-type'] as string, /text\/plain/);
      const text = response.body;
      const value = (series: string) => {
        const line = text.split('\n').find((l) => l.startsWith(series));
        assert.ok(line, `no ${series} in the metrics`);
        return Number(line.slice(line.lastIndexOf(' ') + 1));
      };
      assert.equal(value('pulling_agent_state{state="paused",agent_id="agent-1"}'), 1);
      assert.equal(value('pulling_agent_state{state="running",agent_id="agent-1"}'), 0);
      assert.equal(value('pulling_agent_ready{agent_id="agent-1"}'), 0);
      assert.equal(value('pulling_agent_control_version_applied{agent_id="agent-1"}'), 1);
      assert.equal(value('pulling_agent_watch_mode{mode="file_events",agent_id="agent-1"}'), 1);
      assert.equal(value('pulling_agent_documents_processed_total{agent_id="agent-1"}'), 2);
      assert.equal(value('pulling_agent_control_apply_latency_seconds_count{agent_id="agent-1"}'), 1);
      assert.ok(
        value('pulling_agent_handler_duration_seconds_count{agent_id="agent-1",outcome="processed"}') >= 2,
      );
      // Counters only go up between scrapes.
      assert.equal(
        Number(
          /pulling_agent_documents_processed_total\{[^}]*\} (\d+)/.exec(
            (await app.inject('/metrics')).body,
          )?.[1],
        ),
        2,
      );
    } finally {
      await app.close();
      await box.cleanup();
    }
  });
});
