// Queues through the API (app.inject) on the embedded store with a real agent that serves only the
// queue `served` (QUEUES), so that the documents of every other queue stay pending to be counted:
// POST /api/documents?queue= and the envelope's own queue, GET /api/documents?queue=, every
// document showing its queue, GET /api/queues, the gauge per queue, and bad names refused with a
// 400 naming the rule, storing nothing.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import type { Agent } from '../../src/agent/agent.js';
import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

const EMPTY = { pending: 0, scheduled: 0, processing: 0, processed: 0, failed: 0 };

describe('queues through the API (sqlite)', () => {
  let box: Sandbox;
  let agent: Agent;
  let app: App;

  before(async () => {
    box = await sandbox();
    agent = box.agent({ queues: ['served'] });
    await agent.start();
    app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  const post = async (url: string, payload: unknown) => {
    const response = await app.inject({ method: 'POST', url, payload: payload as object });
    assert.equal(response.statusCode, 201, response.body);
    return (response.json() as { ids: string[] }).ids;
  };
  const queueOf = async (id: string) => (await app.inject(`/api/documents/${id}`)).json().queue as string;

  it('stores into default, into the query’s queue, and into a document’s own queue, which wins', async () => {
    const [plain] = await post('/api/documents', [{ n: 1 }]);
    const [byQuery] = await post('/api/documents?queue=emails', [{ n: 2 }]);
    const [own, inherited, nulled] = await post('/api/documents?queue=emails', {
      documents: [{ payload: 3, queue: 'reports' }, { payload: 4 }, { payload: 5, queue: null }],
    });
    const [envelopeOnly] = await post('/api/documents', { documents: [{ payload: 6, queue: 'reports' }] });
    assert.deepEqual(
      await Promise.all([plain, byQuery, own, inherited, nulled, envelopeOnly].map((id) => queueOf(id!))),
      ['default', 'emails', 'reports', 'emails', 'emails', 'reports'],
    );
    // Every list row shows its queue too.
    const list = (await app.inject('/api/documents?limit=500')).json() as { documents: { queue: string }[] };
    assert.ok(list.documents.every((d) => typeof d.queue === 'string'));
  });

  it('lists one queue with its own counts; a queue without documents is empty, not an error', async () => {
    const ids = await post('/api/documents?queue=lists', [1, 2, 3]);
    const page = (await app.inject('/api/documents?queue=lists&limit=2')).json();
    assert.deepEqual(
      page.documents.map((d: { id: string; queue: string }) => [d.id, d.queue]),
      ids.slice(0, 2).map((id) => [id, 'lists']),
    );
    assert.deepEqual(page.counts, { ...EMPTY, pending: 3 });
    const rest = (await app.inject(`/api/documents?queue=lists&cursor=${page.next_cursor}`)).json();
    assert.deepEqual(
      rest.documents.map((d: { id: string }) => d.id),
      ids.slice(2),
    );
    const none = (await app.inject('/api/documents?queue=nothing-here')).json();
    assert.deepEqual([none.documents, none.counts], [[], EMPTY]);
  });

  it('answers GET /api/queues with every queue’s counts, by name, and the agent claims only QUEUES', async () => {
    await post('/api/documents?queue=served', [{ s: 1 }]);
    await post('/api/documents?queue=waiting', [{ w: 1 }, { w: 2 }]);
    await waitFor(
      async () => {
        const { queues } = (await app.inject('/api/queues')).json() as {
          queues: { queue: string; counts: typeof EMPTY }[];
        };
        return queues.find((q) => q.queue === 'served')?.counts.processed === 1;
      },
      { what: 'the served queue processed' },
    );
    const response = await app.inject('/api/queues');
    assert.equal(response.statusCode, 200);
    const body = response.json() as { queues: { queue: string; counts: typeof EMPTY }[]; count: number };
    assert.equal(body.count, body.queues.length);
    const names = body.queues.map((q) => q.queue);
    assert.deepEqual(names, [...names].sort());
    assert.deepEqual(body.queues.find((q) => q.queue === 'waiting')?.counts, { ...EMPTY, pending: 2 });
    assert.deepEqual(body.queues.find((q) => q.queue === 'served')?.counts, { ...EMPTY, processed: 1 });
    const openapi = (await app.inject('/openapi.json')).json() as {
      paths: Record<string, { get?: unknown }>;
    };
    assert.ok(openapi.paths['/api/queues']?.get);
  });

  it('shows pulling_agent_queue_documents per queue and status beside the seed’s gauge', async () => {
    await post('/api/documents?queue=metered', [1, 2]);
    const gauge = /^pulling_agent_queue_documents\{queue="metered",status="pending"[^}]*\} 2$/m;
    await waitFor(async () => gauge.test((await app.inject('/metrics')).body), {
      what: 'the gauge of the metered queue',
      timeoutMs: 20_000,
    });
    const text = (await app.inject('/metrics')).body;
    assert.match(text, /^pulling_agent_documents\{status="pending"[^}]*\} \d+$/m);
    assert.doesNotMatch(text, /^pulling_agent_documents\{[^}]*queue=/m);
  });

  it('refuses a bad queue name with a 400 naming the rule, and stores nothing', async () => {
    const before = await box.store.countDocuments();
    const cases: [string, unknown, RegExp][] = [
      ['/api/documents?queue=Emails', [1], /queue.*lowercase letters/],
      ['/api/documents?queue=a%20b', [1], /queue.*lowercase letters/],
      [`/api/documents?queue=${'q'.repeat(65)}`, [1], /queue.*1-64 characters/],
      [
        '/api/documents',
        { documents: [{ payload: 1 }, { payload: 2, queue: '-x' }] },
        /documents\[1\] queue/,
      ],
      ['/api/documents', { documents: [{ payload: 1, queue: 7 }] }, /documents\[0\] queue/],
    ];
    for (const [url, payload, message] of cases) {
      const response = await app.inject({ method: 'POST', url, payload: payload as object });
      assert.equal(response.statusCode, 400, `${url} ${response.body}`);
      assert.equal(response.json().error, 'PA_BAD_REQUEST');
      assert.match(response.json().message, message);
    }
    const list = await app.inject('/api/documents?queue=Bad');
    assert.equal(list.statusCode, 400, list.body);
    assert.match(list.json().message, /query parameter queue must be a queue name: 1-64 characters/);
    assert.deepEqual(await box.store.countDocuments(), before);
  });
});
