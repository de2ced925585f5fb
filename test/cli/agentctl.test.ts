// agentctl end to end: the compiled CLI as a child process against three real agent processes on
// the SQLite store: the views and their --json, pause/resume reaching every agent, the drain
// barrier (--wait) and its timeout, compare-and-set, enqueue, watch, and the exit codes.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { type AgentProcess, Fleet } from '../helpers/processes.js';
import { sqliteTarget, type TargetDatabase } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import { agentctl, killAll, startAgentctl } from './run-agentctl.js';

interface AgentState {
  state: string;
  batch_in_flight: boolean;
  applied_version: number;
}

async function states(agents: AgentProcess[]): Promise<AgentState[]> {
  return Promise.all(agents.map(async (a) => (await a.get<AgentState>('/api/agent/state')).body));
}

async function allReach(agents: AgentProcess[], state: string): Promise<void> {
  await Promise.all(
    agents.map((a) => waitFor(async () => (await a.state()) === state, { what: `${a.id} to be ${state}` })),
  );
}

/** A port where nothing listens (taken, then freed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function enqueueDirect(agent: AgentProcess, documents: unknown[]): Promise<string[]> {
  const response = await fetch(`${agent.url}/api/documents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(documents),
  });
  assert.equal(response.status, 201);
  return ((await response.json()) as { ids: string[] }).ids;
}

/** Until some agent of the registry reports a batch in flight. */
async function someBatchInFlight(agents: AgentProcess[]): Promise<void> {
  await waitFor(async () => (await states(agents)).some((s) => s.batch_in_flight), {
    what: 'an agent with a batch in flight',
    intervalMs: 10,
  });
}

describe('agentctl against three agent processes (sqlite)', () => {
  let db: TargetDatabase;
  let fleet: Fleet;

  beforeEach(async () => {
    db = await sqliteTarget.create();
    fleet = new Fleet(db.env);
  });

  afterEach(async () => {
    try {
      const left = await killAll();
      assert.equal(left, 0, `${left} agentctl process(es) left running`);
      await fleet.stopAll();
    } finally {
      await db.cleanup();
    }
  });

  it('status, agents and history: readable tables, and --json that parses', async () => {
    const agents = await fleet.startMany(3);
    const url = ['--url', agents[0]!.url];
    await waitFor(
      async () =>
        (await agents[0]!.get<{ agents: unknown[] }>('/api/cluster/agents')).body.agents.length === 3,
      {
        what: 'three agents registered',
      },
    );
    // wait=true: the registry (which the table shows) has every agent on the new version.
    await agents[1]!.post('/api/cluster/pause?reason=Maintenance&updated_by=admin&wait=true');
    await allReach(agents, 'paused');

    const status = await agentctl(['status', ...url]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Command: +pause, version 1$/m);
    assert.match(status.stdout, /^Written: +.+ by admin$/m);
    assert.match(status.stdout, /^Reason: +Maintenance$/m);
    assert.match(status.stdout, /^Watch mode: +file_events/m);
    assert.match(status.stdout, /^Agents: +3 live; \d\/3 applied version 1/m);

    const table = await agentctl(['agents', ...url]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^AGENT +STATE +APPLIED +HEARTBEAT +BATCH +CLOCK +WATCH +HOST$/);
    for (const id of ['agent-1', 'agent-2', 'agent-3']) {
      const row = lines.find((line) => line.startsWith(`${id} `));
      assert.ok(row, `${id} missing from:\n${table.stdout}`);
      assert.match(row, /^agent-\d +paused +1 +\d+\.\d s +- +\+0\.0 s +file_events +\S+$/);
      // Columns line up: the STATE column starts at the same place on every line.
      assert.equal(row.indexOf('paused'), lines[0]!.indexOf('STATE'));
    }
    assert.match(
      lines.at(-1)!,
      /^3 agents \(3 live, 0 lost\): 3\/3 applied version 1 \(pause\), 3\/3 drained; stragglers: none$/,
    );

    const history = await agentctl(['history', '--limit', '5', ...url]);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /^VERSION +COMMAND +WHEN +BY +REASON$/m);
    assert.match(
      history.stdout,
      /^1 +pause +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(.+ ago\) +admin +Maintenance$/m,
    );

    const statusJson = JSON.parse((await agentctl(['status', '--json', ...url])).stdout) as {
      control_state: { command: string; version: number };
      agents: { summary: { live: number } };
    };
    assert.equal(statusJson.control_state.command, 'pause');
    assert.equal(statusJson.control_state.version, 1);
    assert.equal(statusJson.agents.summary.live, 3);
    const agentsJson = JSON.parse((await agentctl(['--json', 'agents', ...url])).stdout) as {
      agents: { agent_id: string }[];
    };
    assert.deepEqual(agentsJson.agents.map((a) => a.agent_id).sort(), ['agent-1', 'agent-2', 'agent-3']);
    const historyJson = JSON.parse((await agentctl(['history', '--json', ...url])).stdout) as {
      history: { command: string; updated_by: string }[];
      count: number;
    };
    assert.equal(historyJson.count, 1);
    assert.deepEqual(historyJson.history[0], {
      ...historyJson.history[0],
      command: 'pause',
      updated_by: 'admin',
    });
  });

  it('pause and resume reach every agent, recorded with the reason and who', async () => {
    const agents = await fleet.startMany(3);
    const url = ['--url', agents[2]!.url];
    const pause = await agentctl(['pause', '--reason', 'deploy', '--by', 'tester', ...url]);
    assert.equal(pause.code, 0, pause.stderr);
    assert.match(pause.stdout, /^Cluster paused: version 1 written by tester, reason "deploy"/m);
    await allReach(agents, 'paused');

    // --url from AGENT_URL, and --by defaulting to the OS user name.
    const resume = await agentctl(['resume'], { env: { AGENT_URL: agents[0]!.url } });
    assert.equal(resume.code, 0, resume.stderr);
    assert.match(resume.stdout, /^Cluster resumed: version 2 written by \S+/m);
    await allReach(agents, 'running');

    const { body } = await agents[1]!.get<{
      history: { command: string; reason: string | null; updated_by: string }[];
    }>('/api/cluster/history');
    assert.equal(body.history[1]!.command, 'pause');
    assert.equal(body.history[1]!.reason, 'deploy');
    assert.equal(body.history[1]!.updated_by, 'tester');
    assert.equal(body.history[0]!.command, 'running');
  });

  it('pause --wait returns only once all three are paused and drained, printing the table', async (t) => {
    const agents = await fleet.startMany(3, { HANDLER_DELAY_MS: '300', BATCH_SIZE: '4' });
    await enqueueDirect(
      agents[0]!,
      Array.from({ length: 30 }, (_, n) => ({ n })),
    );
    await someBatchInFlight(agents);

    const run = await agentctl(['pause', '--wait', '--reason', 'deploy', '--url', agents[0]!.url]);
    // No waitFor: when the command returns, the fleet must already be there.
    const after = await states(agents);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      after.map((s) => [s.state, s.batch_in_flight, s.applied_version]),
      [
        ['paused', false, 1],
        ['paused', false, 1],
        ['paused', false, 1],
      ],
    );
    assert.match(run.stdout, /^All 3 live agents applied version 1 and drained in \d+/m);
    for (const id of ['agent-1', 'agent-2', 'agent-3'])
      assert.match(run.stdout, new RegExp(`^${id} +paused +1 `, 'm'));
    assert.match(run.stdout, /3\/3 applied version 1 \(pause\), 3\/3 drained; stragglers: none/);
    t.diagnostic(`agentctl pause --wait with batches in flight (300 ms handler): ${Math.round(run.ms)} ms`);

    const resume = await agentctl(['resume', '--wait', '--json', '--url', agents[1]!.url]);
    assert.equal(resume.code, 0, resume.stderr);
    const body = JSON.parse(resume.stdout) as {
      version: number;
      barrier: { complete: boolean; summary: { applied: number } };
    };
    assert.equal(body.version, 2);
    assert.equal(body.barrier.complete, true);
    assert.equal(body.barrier.summary.applied, 3);
    assert.deepEqual(
      (await states(agents)).map((s) => s.state),
      ['running', 'running', 'running'],
    );
  });

  it('pause --wait exits 3 when the drain outlasts --timeout, naming the stragglers', async () => {
    const agents = await fleet.startMany(3, { HANDLER_DELAY_MS: '2500', BATCH_SIZE: '2' });
    await enqueueDirect(
      agents[0]!,
      Array.from({ length: 6 }, (_, n) => ({ n })),
    );
    await someBatchInFlight(agents);

    const run = await agentctl(['pause', '--wait', '--timeout', '0.3', '--url', agents[0]!.url]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(
      run.stderr,
      /^agentctl: wait timed out after 0\.3 s: \d agent\(s\) had not applied it and drained: agent-\d/m,
    );
    assert.match(run.stdout, /^Not converged after/m);
    assert.match(run.stdout, /^agent-\d +paused +1 +\S+ s +draining /m);

    const json = await agentctl(['pause', '--json', '--wait', '--timeout', '0.3', '--url', agents[1]!.url]);
    if (json.code === 3) {
      const body = JSON.parse(json.stdout) as {
        error: string;
        version: number;
        barrier: { timed_out: boolean };
      };
      assert.equal(body.error, 'PA_WAIT_TIMEOUT');
      assert.equal(body.version, 2);
      assert.equal(body.barrier.timed_out, true);
    } else assert.equal(json.code, 0, 'drained already: the only other valid outcome');
  });

  it('shutdown --wait asks nothing, says what it did, and every agent exits 0', async (t) => {
    const agents = await fleet.startMany(3);
    const run = await agentctl(['shutdown', '--wait', '--reason', 'end of test', '--url', agents[0]!.url]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^Cluster shut down: version 1 written by \S+, reason "end of test"; every agent drains/m,
    );
    assert.match(
      run.stdout,
      /^Every agent applied version 1 and drained in .+; they leave the registry and exit\.$/m,
    );
    assert.deepEqual(await Promise.all(agents.map((a) => a.exited)), [0, 0, 0]);
    t.diagnostic(`agentctl shutdown --wait against 3 agents: ${Math.round(run.ms)} ms`);
  });

  it('with tokens configured: --token or AGENT_TOKEN is sent, a missing one is a 401, a low role a 403', async () => {
    const operator = 'operator-token-0123456789';
    const [agent] = await fleet.startMany(1, { API_TOKENS: `deploy-bot:operator:${operator}` });
    const url = ['--url', agent!.url];
    const denied = await agentctl(['pause', ...url]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^agentctl: 401 PA_UNAUTHORIZED: .+ \(set --token or AGENT_TOKEN\)$/m);

    const paused = await agentctl(['pause', '--by', 'someone-else', ...url], {
      env: { AGENT_TOKEN: operator },
    });
    assert.equal(paused.code, 0, paused.stderr);
    // The history records the token's name, and --by as on whose behalf.
    assert.match(paused.stdout, /^Cluster paused: version 1 written by deploy-bot \(for someone-else\)/m);
    const history = await agentctl(['history', ...url], { env: { AGENT_TOKEN: operator } });
    assert.match(history.stdout, /^1 +pause +.+ ago\) +deploy-bot \(for someone-else\) +-$/m);

    const shutdown = await agentctl(['shutdown', '--token', operator, ...url]);
    assert.equal(shutdown.code, 1);
    assert.match(shutdown.stderr, /^agentctl: 403 PA_FORBIDDEN: /m);
    const state = await fetch(`${agent!.url}/api/agent/state`, {
      headers: { authorization: `Bearer ${operator}` },
    });
    assert.equal(((await state.json()) as AgentState).state, 'paused');
  });

  it('pause --expires-in: the answer and status show the expiry, and the fleet resumes by itself', async () => {
    const agents = await fleet.startMany(2);
    const url = ['--url', agents[0]!.url];
    const run = await agentctl(['pause', '--expires-in', '2h', '--reason', 'night', ...url]);
    assert.doesNotMatch(run.stderr, /ignored --expires-in/);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (1 h 59 min|2 h)\b/m);
    const status = await agentctl(['status', ...url]);
    assert.match(status.stdout, /^Expires: +.+\(in (1 h 59 min|2 h)\b/m);

    const short = await agentctl(['pause', '--expires-in', '1', '--wait', ...url]);
    assert.equal(short.code, 0, short.stderr);
    await allReach(agents, 'running');
    const history = await agentctl(['history', '--json', ...url]);
    const latest = (JSON.parse(history.stdout) as { history: { command: string; updated_by: string }[] })
      .history[0]!;
    assert.deepEqual([latest.command, latest.updated_by], ['running', 'system']);
  });

  it('pause --queue, throttle and resume --queue: written as policy, shown by status, agents stay running', async () => {
    const agents = await fleet.startMany(2);
    const url = ['--url', agents[0]!.url];
    const paused = await agentctl(['pause', '--queue', 'emails', '--reason', 'smtp down', '--wait', ...url]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^Pause of queue emails issued \(policy version 1\)\.$/m);
    assert.match(paused.stdout, /queue emails paused by .+ \("smtp down"\)/);
    assert.match(
      paused.stdout,
      /All 2 live agents applied policy version 1 and finished every document of queue emails/,
    );
    const throttled = await agentctl(['throttle', '--rate', '30', '--concurrency', '2', '--wait', ...url]);
    assert.equal(throttled.code, 0, throttled.stderr);
    assert.match(throttled.stdout, /throttled: 30 documents\/s for the fleet, at most 2 slots per agent/);
    const status = await agentctl(['status', ...url]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Policy: +version 2: queue emails paused .+; throttled: 30 documents\/s/m);
    assert.match(status.stdout, /^Command: +running \(resumed\), version 0$/m);
    for (const a of agents) assert.equal(await a.state(), 'running');

    const bad = await agentctl(['throttle', '--rate', '0', ...url]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /above 0/);
    const none = await agentctl(['throttle', ...url]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give --rate/);
    const badQueue = await agentctl(['pause', '--queue', 'No Spaces', ...url]);
    assert.equal(badQueue.code, 2);
    assert.match(badQueue.stderr, /not a valid queue name/);

    const off = await agentctl(['throttle', '--rate', 'off', '--concurrency', 'off', ...url]);
    assert.equal(off.code, 0, off.stderr);
    const resumed = await agentctl(['resume', '--queue', 'emails', '--wait', '--json', ...url]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const body = JSON.parse(resumed.stdout) as {
      policy_version: number;
      policy: { paused_queues: object; throttle: null };
    };
    assert.equal(body.policy_version, 4);
    assert.deepEqual([body.policy.paused_queues, body.policy.throttle], [{}, null]);
    const after = await agentctl(['status', ...url]);
    assert.match(after.stdout, /^Policy: +version 4: no queue paused, no throttle$/m);
  });

  it('--expected-version: a conflict exits 1 with the current version, and writes nothing', async () => {
    const [agent] = await fleet.startMany(1);
    await agent!.post('/api/cluster/pause');
    await agent!.post('/api/cluster/resume');
    const run = await agentctl(['pause', '--expected-version', '0', '--url', agent!.url]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^agentctl: version conflict: expected 0, the current version is 2\b/m);
    assert.equal(run.stdout, '');
    const json = await agentctl(['pause', '--expected-version', '1', '--json', '--url', agent!.url]);
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as { current_version: number }).current_version, 2);
    assert.equal((await agent!.get<{ version: number }>('/api/cluster/control-state')).body.version, 2);

    const ok = await agentctl(['pause', '--expected-version', '2', '--url', agent!.url]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /version 3/);
  });

  it('enqueue: a JSON array from a file, JSON lines and a single object from stdin', async () => {
    const [agent] = await fleet.startMany(1);
    const url = ['--url', agent!.url];
    await agent!.post('/api/cluster/pause'); // keep them pending, to read them back as sent
    const file = join(fleet.dir, 'docs.json');
    writeFileSync(file, JSON.stringify([{ invoice: 1 }, { invoice: 2 }, { invoice: 3 }]));
    const fromFile = await agentctl(['enqueue', file, ...url]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromFile.stdout, 'Enqueued 3 documents: ids 1, 2, 3\n');

    const lines = await agentctl(['enqueue', '-', '--json', ...url], {
      input: '{"invoice": 4}\n\n{"invoice": 5}\n',
    });
    assert.equal(lines.code, 0, lines.stderr);
    assert.deepEqual(JSON.parse(lines.stdout), {
      status: 'success',
      count: 2,
      ids: ['4', '5'],
      duplicates: [],
    });

    const single = await agentctl(['enqueue', ...url], { input: '{"invoice": 6}' });
    assert.equal(single.code, 0, single.stderr);
    assert.equal(single.stdout, 'Enqueued 1 document: ids 6\n');

    for (const [id, invoice] of [
      ['1', 1],
      ['5', 5],
      ['6', 6],
    ] as const) {
      const { body } = await agent!.get<{ payload: unknown }>(`/api/documents/${id}`);
      assert.deepEqual(body.payload, { invoice });
    }

    const bad = await agentctl(['enqueue', ...url], { input: '{"invoice": 7}\nnot json\n' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^agentctl: standard input line 2 is not JSON/m);
    const missing = await agentctl(['enqueue', join(fleet.dir, 'nope.json'), ...url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*nope\.json: no such file/);
  });

  it('documents list, show, retry (one, --all-failed) and discard; status shows the counts', async () => {
    const [agent] = await fleet.startMany(1, { MAX_RETRIES: '0' });
    const url = ['--url', agent!.url];
    const ids = await enqueueDirect(agent!, [{ fail: true }, { fail: true }, { fail: true }, { ok: 1 }]);
    const statusOf = async (id: string) =>
      (await agent!.get<{ status: string }>(`/api/documents/${id}`)).body.status;
    await waitFor(
      async () => (await Promise.all(ids.slice(0, 3).map(statusOf))).every((s) => s === 'failed'),
      {
        what: 'three failed documents',
      },
    );

    const status = await agentctl(['status', ...url]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      /^Documents: +\d+ pending, \d+ scheduled, \d+ processing, \d+ processed, 3 failed$/m,
    );

    const list = await agentctl(['documents', 'list', '--status', 'failed', '--limit', '2', ...url]);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID +STATUS +QUEUE +ATTEMPTS +UPDATED +ERROR$/);
    assert.match(lines[1]!, /^\S+ +failed +default +1 +\d{4}-\d\d-\d\d .+ asked to fail$/);
    const hint = /^More: agentctl documents list --status failed --limit 2 --cursor (\S+)$/m.exec(
      list.stdout,
    );
    assert.ok(hint, list.stdout);
    const rest = await agentctl([
      'documents',
      'list',
      '--status',
      'failed',
      '--limit',
      '2',
      '--cursor',
      hint[1]!,
      '--json',
      ...url,
    ]);
    assert.equal(rest.code, 0, rest.stderr);
    const page = JSON.parse(rest.stdout) as { documents: { id: string }[]; next_cursor: string | null };
    assert.equal(page.documents.length, 1);
    assert.equal(page.next_cursor, null);

    const show = await agentctl(['documents', 'show', ids[0]!, ...url]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^Status: +failed$/m);
    assert.match(show.stdout, /^Attempts: +1$/m);
    assert.match(show.stdout, /^Error: +document .+ asked to fail$/m);
    assert.match(show.stdout, /"fail": true/);
    assert.equal((await agentctl(['documents', 'show', '999999', ...url])).code, 1);

    const retried = await agentctl(['documents', 'retry', ids[0]!, ...url]);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, new RegExp(`^Document ${ids[0]} is (pending|processing|failed) again`));
    const notFailed = await agentctl(['documents', 'retry', ids[3]!, ...url]);
    assert.equal(notFailed.code, 1);
    assert.match(notFailed.stderr, /409 PA_NOT_FAILED: .*processed/);
    assert.equal((await agentctl(['documents', 'retry', ...url])).code, 2);
    assert.equal((await agentctl(['documents', 'retry', ids[1]!, '--all-failed', ...url])).code, 2);

    const all = await agentctl(['documents', 'retry', '--all-failed', '--json', ...url]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal((JSON.parse(all.stdout) as { status: string }).status, 'success');
    await waitFor(
      async () => (await Promise.all(ids.slice(0, 3).map(statusOf))).every((s) => s === 'failed'),
      {
        what: 'the retried documents failed again',
      },
    );

    const discarded = await agentctl(['documents', 'discard', ids[2]!, ...url]);
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.match(discarded.stdout, /discarded/);
    const again = await agentctl(['documents', 'discard', ids[2]!, ...url]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /404 PA_NOT_FOUND/);
  });

  it('enqueue --queue, documents --queue and queues; a bad queue name is a usage error', async () => {
    // The agent serves only `served`, so that the documents of `emails` stay pending to be counted.
    const [agent] = await fleet.startMany(1, { QUEUES: 'served' });
    const url = ['--url', agent!.url];
    const file = join(fleet.dir, 'emails.json');
    writeFileSync(file, '[{"to": "a"}, {"to": "b"}]');
    const stored = await agentctl(['enqueue', file, '--queue', 'emails', ...url]);
    assert.equal(stored.code, 0, stored.stderr);
    const bad = await agentctl(['enqueue', file, '--queue', 'Emails', ...url]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /queue "Emails" is not a valid queue name \(1-64 characters: lowercase letters/);
    assert.equal((await agentctl(['documents', '--queue', 'no such', ...url])).code, 2);

    const list = await agentctl(['documents', '--queue', 'emails', ...url]);
    assert.equal(list.code, 0, list.stderr);
    const rows = list.stdout.trim().split('\n');
    assert.match(rows[0]!, /^ID +STATUS +QUEUE +ATTEMPTS/);
    assert.equal(rows.length, 3, list.stdout);
    assert.ok(
      rows.slice(1).every((row) => /^\S+ +pending +emails +0 /.test(row)),
      list.stdout,
    );

    const queues = await agentctl(['queues', ...url]);
    assert.equal(queues.code, 0, queues.stderr);
    assert.match(queues.stdout, /^QUEUE +PENDING +SCHEDULED +PROCESSING +PROCESSED +FAILED$/m);
    assert.match(queues.stdout, /^emails +2 +0 +0 +0 +0$/m);
    const json = await agentctl(['queues', '--json', ...url]);
    assert.equal(json.code, 0, json.stderr);
    const body = JSON.parse(json.stdout) as { queues: { queue: string }[]; count: number };
    assert.deepEqual(
      body.queues.map((q) => q.queue),
      ['emails'],
    );
    assert.equal(body.count, 1);
  });

  it('watch --until-converged follows a pause until every agent drained, one line per event', async () => {
    const agents = await fleet.startMany(3, { HANDLER_DELAY_MS: '700', BATCH_SIZE: '2' });
    await enqueueDirect(
      agents[0]!,
      Array.from({ length: 12 }, (_, n) => ({ n })),
    );
    await someBatchInFlight(agents);
    await agentctl(['pause', '--url', agents[0]!.url]);

    const run = await agentctl(['watch', '--until-converged', '--url', agents[1]!.url]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.match(lines[0]!, /^\S+Z control pause version 1 by \S+$/);
    assert.match(
      lines.at(-1)!,
      /agents 3 agents \(3 live, 0 lost\): 3\/3 applied version 1 \(pause\), 3\/3 drained; stragglers: none; converged on version 1$/,
    );
    assert.deepEqual(
      (await states(agents)).map((s) => [s.state, s.batch_in_flight]),
      [
        ['paused', false],
        ['paused', false],
        ['paused', false],
      ],
    );

    const json = await agentctl(['watch', '--json', '--until-converged', '--url', agents[2]!.url]);
    assert.equal(json.code, 0, json.stderr);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; data: { version?: number } });
    assert.deepEqual(events.map((e) => e.event).sort(), ['agents', 'control']);
    assert.equal(events.find((e) => e.event === 'control')!.data.version, 1);
  });

  it('watch shows a change live, reconnects when its agent is replaced, and ends with Ctrl-C (130)', async () => {
    const port = await closedPort();
    const [first, other] = await Promise.all([fleet.start({ PORT: String(port) }, 'watched'), fleet.start()]);
    const watch = startAgentctl(['watch', '--url', first!.url]);
    await waitFor(() => /control running version 0/.test(watch.stdout()), {
      what: 'the first control event',
    });

    await other!.post('/api/cluster/pause?reason=live');
    await waitFor(() => /control pause version 1 by api \(reason: live\)/.test(watch.stdout()), {
      what: 'the pause to show in watch',
    });

    // The watched agent dies and a new one takes its port.
    first!.child.kill('SIGKILL');
    await first!.exited;
    await waitFor(() => /event stream lost/.test(watch.stderr()), { what: 'watch to notice the drop' });
    await fleet.start({ PORT: String(port) }, 'watched-again');
    await waitFor(() => /event stream reopened/.test(watch.stderr()), {
      what: 'watch to reconnect',
      timeoutMs: 30_000,
    });
    await other!.post('/api/cluster/resume');
    await waitFor(() => /control running version 2/.test(watch.stdout()), {
      what: 'the resume after reconnecting',
    });

    watch.child.kill('SIGINT');
    const run = await watch.done;
    assert.equal(run.code, 130, run.stderr);
  });

  it('an agent told to shut down exits even while agentctl watch is connected to it', async () => {
    const [agent] = await fleet.startMany(1);
    const watch = startAgentctl(['watch', '--url', agent!.url]);
    await waitFor(() => /control running version 0/.test(watch.stdout()), { what: 'the first event' });
    try {
      agent!.child.kill('SIGTERM');
      const code = await Promise.race([
        agent!.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running after 10 s'), 10_000).unref()),
      ]);
      assert.equal(code, 0);
      await waitFor(() => /event stream lost/.test(watch.stderr()), { what: 'watch to notice the drop' });
    } finally {
      watch.child.kill('SIGINT');
      await watch.done;
    }
  });
});

describe('agentctl exit codes without a fleet', () => {
  afterEach(async () => assert.equal(await killAll(), 0));

  it('connection refused: exit 1, naming the URL and how to set it', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await agentctl(['status', '--url', url]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `agentctl: cannot connect to ${url} (connection refused) — is an agent running? set --url or AGENT_URL\n`,
    );
    const fromEnv = await agentctl(['pause'], { env: { AGENT_URL: url } });
    assert.equal(fromEnv.code, 1);
    assert.match(fromEnv.stderr, new RegExp(`cannot connect to ${url} \\(connection refused\\)`));
  });

  it('usage errors exit 2: unknown option, unknown command, bad values, no command', async () => {
    for (const args of [
      ['status', '--bogus'],
      ['frobnicate'],
      ['history', '--limit', '0'],
      ['pause', '--timeout', 'soon'],
      ['pause', '--expected-version', '-1'],
      ['pause', '--expires-in', 'tomorrow'],
      ['resume', '--expires-in', '2h'],
      ['--url', 'localhost:8000', 'status'],
      [],
    ]) {
      const run = await agentctl(args);
      assert.equal(run.code, 2, `agentctl ${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /agentctl|Usage/);
    }
    const unknown = await agentctl(['status', '--bogus']);
    assert.match(unknown.stderr, /^agentctl: unknown option '--bogus'$/m);
    const help = await agentctl(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes: 0 done, 1 error, 2 usage error, 3 wait timed out/);
  });
});
