// Per-queue pause and the fleet throttle through the HTTP API, with two agents on one SQLite file:
// the barrier waits for the paused queue's running documents, other queues keep flowing, a new
// agent adopts the policy before it claims, bad input writes nothing.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Database from 'better-sqlite3';
import { pino } from 'pino';

import type { Agent } from '../../src/agent/agent.js';
import type { DocumentHandler } from '../../src/agent/pipeline.js';
import { loadConfig, publicConfig } from '../../src/config.js';
import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

interface Run {
  id: string;
  queue: string;
  agent: string;
}

describe('queues and the throttle over HTTP (two agents, SQLite)', () => {
  let box: Sandbox;
  let agents: Agent[];
  let app: App;
  const started: Run[] = [];
  const finished = new Set<string>();
  /** Documents whose payload says `hold` wait here until released. */
  const held = new Map<string, () => void>();

  const handler: DocumentHandler = async (doc, { agentId }) => {
    started.push({ id: doc.id, queue: doc.queue, agent: agentId });
    if ((doc.payload as { hold?: boolean }).hold)
      await new Promise<void>((resolve) => held.set(doc.id, resolve));
    finished.add(doc.id);
  };

  const post = async (url: string) => {
    const response = await app.inject({ method: 'POST', url });
    return {
      status: response.statusCode,
      body: response.json() as Record<string, unknown> & { message: string },
    };
  };
  const policyVersion = async () => (await box.store.readPolicy()).version;
  const enqueue = async (queue: string, n: number, payload: Record<string, unknown> = {}) =>
    (
      await box.store.enqueueDocuments(
        Array.from({ length: n }, (_, i) => ({ payload: { i, ...payload }, queue })),
      )
    ).map((d) => d.id);

  before(async () => {
    box = await sandbox();
    agents = [box.agent({ handler, concurrency: 4 }), box.agent({ handler, concurrency: 4 })];
    await Promise.all(agents.map((a) => a.start()));
    app = await buildApp({
      agent: agents[0]!,
      logger: pino({ level: 'silent' }),
      publicConfig: publicConfig(loadConfig({})),
    });
  });
  after(async () => {
    for (const release of held.values()) release();
    await app.close();
    await box.cleanup();
  });

  it('pauses one queue: wait=true answers once its running document finished, and the others keep flowing', async () => {
    const [running] = await enqueue('emails', 1, { hold: true });
    await waitFor(() => held.has(running!), { what: 'the emails document to start' });
    const pausing = post(
      '/api/cluster/pause?queue=emails&reason=smtp%20down&updated_by=ops&wait=true&timeout=20',
    );
    // The barrier cannot answer while the handler runs: the answer comes only after the release.
    await waitFor(async () => (await policyVersion()) === 1, { what: 'the queue pause to be written' });
    let answered = false;
    void pausing.then(() => (answered = true));
    await waitFor(
      async () => {
        const fleet = (await app.inject({ url: '/api/cluster/agents' })).json() as {
          agents: { applied_policy_version: number | null }[];
        };
        return fleet.agents.every((a) => a.applied_policy_version === 1);
      },
      { what: 'both agents to apply policy version 1' },
    );
    assert.equal(answered, false, 'the barrier answered while a document of the paused queue was running');
    held.get(running!)!();
    const { status, body } = await pausing;
    assert.equal(status, 200, body.message);
    assert.equal(body.command, 'pause');
    assert.equal(body.queue, 'emails');
    assert.equal(body.policy_version, 1);
    assert.equal((body.barrier as { complete: boolean }).complete, true);
    assert.deepEqual(Object.keys((body.policy as { paused_queues: object }).paused_queues), ['emails']);

    const before = started.length;
    const emails = await enqueue('emails', 5);
    const others = await enqueue('default', 10);
    await waitFor(() => others.every((id) => finished.has(id)), {
      what: 'the default queue to be processed',
    });
    assert.ok(
      !started.slice(before).some((r) => r.queue === 'emails'),
      'a document of the paused queue started',
    );
    for (const a of agents) {
      assert.equal(a.state, 'running', 'a queue pause leaves the agents running');
      assert.equal(a.ready, true);
    }
    const control = (await app.inject({ url: '/api/cluster/control-state' })).json() as {
      command: string;
      policy: { paused_queues: Record<string, { reason: string; updated_by: string }> };
    };
    assert.equal(control.command, 'running', 'the global command is untouched');
    assert.equal(control.policy.paused_queues.emails?.reason, 'smtp down');

    const resumed = await post('/api/cluster/resume?queue=emails&wait=true');
    assert.equal(resumed.status, 200, resumed.body.message);
    await waitFor(() => emails.every((id) => finished.has(id)), {
      what: 'the emails queue to run after its resume',
    });
    const history = (await app.inject({ url: '/api/cluster/policy/history' })).json() as {
      history: { command: string; queue: string; version: number }[];
    };
    assert.deepEqual(
      history.history.slice(0, 2).map((h) => [h.command, h.queue, h.version]),
      [
        ['resume', 'emails', 2],
        ['pause', 'emails', 1],
      ],
    );
  });

  it('a global pause still pauses everything, whatever the queues say', async () => {
    assert.equal((await post('/api/cluster/pause?wait=true')).status, 200);
    const ids = await enqueue('default', 3);
    assert.equal((await post('/api/cluster/resume?queue=default')).status, 200);
    await waitFor(() => agents.every((a) => a.policy.policy?.version === 3), {
      what: 'the queue resume to apply',
    });
    assert.ok(!ids.some((id) => started.some((r) => r.id === id)), 'a document started under a global pause');
    assert.equal((await post('/api/cluster/resume?wait=true')).status, 200);
    await waitFor(() => ids.every((id) => finished.has(id)), {
      what: 'the documents to run after the global resume',
    });
  });

  it("caps every agent's slots with concurrency=, and goes back to CONCURRENCY with off", async () => {
    const capped = await post('/api/cluster/throttle?concurrency=2&reason=db%20load&wait=true');
    assert.equal(capped.status, 200, capped.body.message);
    assert.match(capped.body.message, /Throttle of the fleet \(concurrency 2\) issued/);
    for (const a of agents) assert.equal(a.runtime.concurrency, 2);
    const policy = (await app.inject({ url: '/api/cluster/policy' })).json() as {
      throttle: { concurrency: number; rate: null; reason: string };
      this_agent: { concurrency: number };
    };
    assert.deepEqual(
      [policy.throttle.concurrency, policy.throttle.rate, policy.throttle.reason],
      [2, null, 'db load'],
    );
    assert.equal(policy.this_agent.concurrency, 2);
    assert.equal((await post('/api/cluster/throttle?concurrency=off&wait=true')).status, 200);
    for (const a of agents) assert.equal(a.runtime.concurrency, 4);
    assert.equal((await box.store.readPolicy()).throttle, null, 'nothing left of the throttle');
  });

  it('a rate shows in the policy, applies on every agent, and documents still all run under it', async () => {
    const { status, body } = await post('/api/cluster/throttle?rate=40&wait=true');
    assert.equal(status, 200, body.message);
    await waitFor(() => agents.every((a) => a.policy.live_agents === 2), {
      what: 'each agent to count two sharing the rate',
    });
    assert.deepEqual(
      agents.map((a) => a.policy.share),
      [0.5, 0.5],
    );
    const ids = await enqueue('default', 20);
    await waitFor(() => ids.every((id) => finished.has(id)), { what: 'the documents to run under the rate' });
    assert.equal((await post('/api/cluster/throttle?rate=off&wait=true')).status, 200);
  });

  it('ends a throttle by itself after expires_in, written by system', async () => {
    const v = await policyVersion();
    assert.equal((await post('/api/cluster/throttle?rate=1000&expires_in=1s')).status, 200);
    await waitFor(async () => (await box.store.readPolicy()).version === v + 2, {
      what: 'the expired throttle to be removed',
    });
    const [last] = await box.store.listPolicyHistory(1);
    assert.equal(last?.updated_by, 'system');
    assert.match(last?.reason ?? '', /fleet throttle rate expired/);
    assert.equal((await box.store.readPolicy()).throttle, null);
  });

  it('refuses bad input with a 400 naming the problem, and writes nothing', async () => {
    const v = await policyVersion();
    const cases: [string, RegExp][] = [
      ['/api/cluster/throttle?rate=0', /rate must be a number of documents per second above 0/],
      // A value that is not a number is told the rule in words, not the schema's regular expression.
      [
        '/api/cluster/throttle?rate=fast',
        /^query parameter rate must be a number of documents per second above 0/,
      ],
      ['/api/cluster/throttle?rate=-3', /^query parameter rate must be a number .* or off$/],
      [
        '/api/cluster/throttle?concurrency=two',
        /^query parameter concurrency must be a whole number from 1 to 10000, or off$/,
      ],
      ['/api/cluster/throttle?rate=1000000', /at most 100000/],
      ['/api/cluster/throttle?concurrency=0', /concurrency must be a whole number from 1/],
      ['/api/cluster/throttle', /throttle needs rate/],
      ['/api/cluster/throttle?queue=emails&concurrency=2', /without queue=/],
      ['/api/cluster/throttle?rate=5&expires_in=31d', /expires_in/],
      ['/api/cluster/pause?queue=Emails!', /queue name/],
      ['/api/cluster/shutdown?queue=emails', /query parameter queue is not accepted here/],
      ['/api/cluster/resume?queue=emails&expires_in=1h', /expires_in is not accepted/],
    ];
    for (const [url, message] of cases) {
      const { status, body } = await post(url);
      assert.equal(status, 400, `${url}: ${body.message}`);
      assert.match(body.message, message, url);
      assert.ok(!/\bat .+:\d+:\d+/.test(JSON.stringify(body)), `stack trace for ${url}`);
    }
    assert.equal(await policyVersion(), v, 'a refused request wrote a policy');
    assert.equal((await box.store.readControl()).command, 'running', 'a refused shutdown changed the fleet');
  });

  it('refuses a stale expected_version with 409 and writes nothing', async () => {
    const v = await policyVersion();
    const { status, body } = await post(`/api/cluster/pause?queue=emails&expected_version=${v + 5}`);
    assert.equal(status, 409, body.message);
    assert.match(
      body.message,
      new RegExp(`expected policy version ${v + 5} but the current version is ${v}`),
    );
    assert.equal(await policyVersion(), v);
  });

  it('a new agent adopts a paused queue before its first claim', async () => {
    assert.equal((await post('/api/cluster/pause?queue=reports&wait=true')).status, 200);
    const reports = await enqueue('reports', 3);
    const third = box.agent({ handler, agentId: 'agent-late' });
    await third.start();
    const others = await enqueue('default', 6);
    await waitFor(() => others.every((id) => finished.has(id)), { what: 'the default documents to run' });
    assert.ok(
      !reports.some((id) => started.some((r) => r.id === id)),
      'a document of the paused queue started',
    );
    assert.equal(third.policy.policy?.paused_queues.reports !== undefined, true);
    assert.equal((await post('/api/cluster/resume?queue=reports&wait=true')).status, 200);
    await waitFor(() => reports.every((id) => finished.has(id)), {
      what: 'the reports to run after the resume',
    });
  });
});

describe('queues and the throttle over HTTP: edges an adversary tries (SQLite)', () => {
  let box: Sandbox;
  let agents: Agent[];
  let app: App;

  const post = async (url: string, headers: Record<string, string> = {}) => {
    const response = await app.inject({ method: 'POST', url, headers });
    return {
      status: response.statusCode,
      body: response.json() as Record<string, unknown> & { message: string; error?: string },
    };
  };
  const policyVersion = async () => (await box.store.readPolicy()).version;
  const noStack = (body: unknown, what: string) =>
    assert.ok(!/\bat .+:\d+:\d+/.test(JSON.stringify(body)), `stack trace for ${what}`);

  before(async () => {
    box = await sandbox();
    agents = [box.agent({ heartbeatIntervalMs: 200 }), box.agent({ heartbeatIntervalMs: 200 })];
    await Promise.all(agents.map((a) => a.start()));
    app = await buildApp({
      agent: agents[0]!,
      logger: pino({ level: 'silent' }),
      publicConfig: publicConfig(loadConfig({})),
    });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  it('a throttle honours If-Match like every other command: a stale one is 409 and writes nothing', async () => {
    assert.equal((await post('/api/cluster/throttle?rate=50')).status, 200);
    const v = await policyVersion();
    const stale = await post('/api/cluster/throttle?rate=5', { 'if-match': `"${v + 3}"` });
    assert.equal(stale.status, 409, stale.body.message);
    assert.equal(await policyVersion(), v, 'a throttle with a stale If-Match was written');
    assert.equal((await box.store.readPolicy()).throttle?.rate, 50);
    const queued = await post('/api/cluster/pause?queue=emails', { 'if-match': `${v + 3}` });
    assert.equal(queued.status, 409, queued.body.message);
    const ok = await post('/api/cluster/throttle?rate=off', { 'if-match': `"${v}"` });
    assert.equal(ok.status, 200, ok.body.message);
  });

  it('takes each parameter up to its edge and refuses one step beyond, naming it, writing nothing', async () => {
    const good = [
      `/api/cluster/pause?queue=${'q'.repeat(64)}`,
      '/api/cluster/pause?queue=a.b:c_d-e&expires_in=30d',
      '/api/cluster/throttle?rate=100000&expires_in=2592000',
      '/api/cluster/throttle?rate=0.001',
      '/api/cluster/throttle?concurrency=10000',
      '/api/cluster/throttle?queue=nodocs&rate=3',
    ];
    for (const url of good) {
      const { status, body } = await post(url);
      assert.equal(status, 200, `${url}: ${body.message}`);
    }
    const v = await policyVersion();
    const bad: [string, RegExp][] = [
      [`/api/cluster/pause?queue=${'q'.repeat(65)}`, /queue/],
      ['/api/cluster/pause?queue=Emails', /queue name/],
      [`/api/cluster/pause?queue=${encodeURIComponent('émails')}`, /queue name/],
      ['/api/cluster/pause?queue=', /queue/],
      ['/api/cluster/pause?queue=emails&expires_in=2592001', /expires_in/],
      ['/api/cluster/throttle?rate=1&expires_in=30d1s', /expires_in/],
      ['/api/cluster/throttle?rate=1e-9', /rate/],
      ['/api/cluster/throttle?rate=1.5e3', /rate/],
      ['/api/cluster/throttle?rate=-5', /rate/],
      ['/api/cluster/throttle?rate=100000.5', /at most 100000/],
      ['/api/cluster/throttle?concurrency=10001', /concurrency must be a whole number from 1 to 10000/],
      ['/api/cluster/throttle?concurrency=2.5', /concurrency/],
      ['/api/cluster/throttle?rate=1&bogus=1', /bogus/],
    ];
    for (const [url, message] of bad) {
      const { status, body } = await post(url);
      assert.equal(status, 400, `${url}: ${body.message}`);
      assert.match(body.message, message, url);
      noStack(body, url);
    }
    assert.equal(await policyVersion(), v, 'a refused request wrote a policy');
    for (const queue of ['q'.repeat(64), 'a.b:c_d-e']) {
      assert.equal((await post(`/api/cluster/resume?queue=${queue}`)).status, 200);
    }
  });

  it('a policy edited by hand into garbage: agents keep theirs and say so, the API answers clearly, and a command at the stored version repairs it', async () => {
    assert.equal((await post('/api/cluster/pause?queue=keepme&wait=true')).status, 200);
    // Edited as an operator would: the version moves with the body, so the agents read it.
    const v = (await policyVersion()) + 1;
    const raw = new Database(box.dbPath);
    try {
      raw
        .prepare(`UPDATE fleet_policy SET body = ?, version = version + 1 WHERE id = 'fleet_policy'`)
        .run(JSON.stringify({ paused_queues: { emails: 'yes' }, throttle: { rate: -1 } }));
    } finally {
      raw.close();
    }
    const shown = await app.inject({ url: '/api/cluster/policy' });
    assert.equal(shown.statusCode, 200, shown.body);
    const view = shown.json() as { policy_error?: string; paused_queues: object; version: number };
    assert.match(view.policy_error ?? '', /paused_queues\.emails is not an object/);
    assert.ok('keepme' in view.paused_queues, 'the policy shown is the one the agent still applies');
    await waitFor(() => agents.every((a) => a.policy.policy_error !== null), {
      what: 'every agent to notice the malformed policy',
    });
    for (const a of agents) assert.ok(a.policy.policy?.paused_queues.keepme, 'an agent dropped its policy');

    const blind = await post('/api/cluster/throttle?rate=5');
    assert.match(blind.body.message, /malformed: paused_queues\.emails is not an object/);
    noStack(blind.body, 'a command over a malformed policy');

    const repaired = await post(`/api/cluster/pause?queue=emails&expected_version=${v}&reason=repair`);
    assert.equal(repaired.status, 200, repaired.body.message);
    const policy = await box.store.readPolicy();
    assert.equal(policy.version, v + 1);
    assert.deepEqual(Object.keys(policy.paused_queues).sort(), ['emails', 'keepme']);
    await waitFor(
      () => agents.every((a) => a.policy.policy_error === null && a.policy.policy?.version === v + 1),
      {
        what: 'every agent to apply the repaired policy',
      },
    );
    assert.equal((await post('/api/cluster/resume?queue=emails')).status, 200);
    assert.equal((await post('/api/cluster/resume?queue=keepme')).status, 200);
  });

  it('a global pause does not make each agent take the whole fleet rate: after the resume each still takes 1/N', async () => {
    assert.equal((await post('/api/cluster/throttle?rate=40&wait=true')).status, 200);
    await waitFor(() => agents.every((a) => a.policy.live_agents === 2), {
      what: 'each agent to count two sharing the rate',
    });
    assert.equal((await post('/api/cluster/pause?wait=true')).status, 200);
    // Let every agent's tick recount while the fleet is paused: a tick runs at least once per
    // heartbeat, so three more heartbeats of each agent cover one.
    const beats = async () =>
      new Map((await box.store.listAgents()).map((r) => [r.instance_id, r.heartbeat_at.getTime()]));
    const first = await beats();
    for (let i = 0; i < 3; i++) {
      const seen = await beats();
      await waitFor(async () => [...(await beats())].every(([id, at]) => at > (seen.get(id) ?? 0)), {
        what: 'every agent to write another heartbeat',
      });
    }
    assert.ok(first.size === 2);
    assert.equal((await post('/api/cluster/resume?wait=true')).status, 200);
    assert.deepEqual(
      agents.map((a) => a.policy.share),
      [0.5, 0.5],
      'right after a global resume each agent took more than its share of the fleet rate',
    );
    assert.equal((await post('/api/cluster/throttle?rate=off&wait=true')).status, 200);
  });
});
