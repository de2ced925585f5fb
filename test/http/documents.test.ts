// When documents fail, through the API (app.inject) on the embedded store with a real agent: the
// list of a status with its cursor, one document's attempts and error, retry of one and of every
// failed one, discard, scheduled documents (run_at, delay) and deduplication keys on
// POST /api/documents; every bad input answers a 4xx naming the problem and changes nothing; roles.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import type { Agent } from '../../src/agent/agent.js';
import { loadConfig } from '../../src/config.js';
import { type App, buildApp } from '../../src/http/app.js';
import type { ClaimedDocument } from '../../src/stores/types.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';
import { waitFor } from '../helpers/wait.js';

function assertError(
  response: { statusCode: number; body: string },
  status: number,
  code: string,
  message?: RegExp,
): Record<string, unknown> {
  assert.equal(response.statusCode, status, response.body);
  const body = JSON.parse(response.body) as Record<string, unknown>;
  assert.equal(body.status, 'error');
  assert.equal(body.error, code, response.body);
  if (message) assert.match(String(body.message), message);
  return body;
}

interface Doc {
  id: string;
  status: string;
  attempts: number;
  error: string | null;
  run_at: string | null;
  key: string | null;
  updated_at: string;
  payload?: unknown;
}

/**
 * The handler: a payload {fail: true} throws (MAX_RETRIES=0, so it is failed at once), {hold: true}
 * waits until release(); anything else is processed.
 */
function controllableHandler() {
  let release!: () => void;
  let gate = new Promise<void>((resolve) => (release = resolve));
  const handler = async (doc: ClaimedDocument) => {
    const payload = doc.payload as { fail?: boolean; hold?: boolean } | null;
    if (payload?.hold) await gate;
    if (payload?.fail) throw new Error(`boom ${doc.id}`);
  };
  return {
    handler,
    release: () => {
      release();
      gate = new Promise<void>((resolve) => (release = resolve));
    },
  };
}

describe('documents that fail, through the API (sqlite)', () => {
  let box: Sandbox;
  let agent: Agent;
  let app: App;
  const control = controllableHandler();

  before(async () => {
    box = await sandbox();
    agent = box.agent({ handler: control.handler, maxRetries: 0 });
    await agent.start();
    app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
  });
  after(async () => {
    control.release();
    await app.close();
    await box.cleanup();
  });

  const post = (url: string, payload: unknown) =>
    app.inject({ method: 'POST', url, payload: payload as object });
  const get = async (id: string) => (await app.inject(`/api/documents/${id}`)).json() as Doc;
  const enqueue = async (payloads: unknown[], url = '/api/documents') => {
    const response = await post(url, payloads);
    assert.equal(response.statusCode, 201, response.body);
    return response.json() as { ids: string[]; duplicates: string[]; count: number };
  };
  const failed = async (payloads: unknown[]) => {
    const { ids } = await enqueue(payloads);
    for (const id of ids)
      await waitFor(async () => (await get(id)).status === 'failed', { what: `${id} failed` });
    return ids;
  };
  /** Everything the store holds, for "nothing changed", once the agent has nothing due left to run. */
  const snapshot = async () => {
    await waitFor(
      async () => {
        const c = await box.store.countDocuments();
        return c.pending === 0 && c.processing === 0;
      },
      { what: 'the agent to finish what is due' },
    );
    const { documents } = await box.store.listDocuments({ limit: 10_000 });
    return documents.map((d) => ({ ...d, updated_at: d.updated_at.toISOString() }));
  };

  it('keeps the seed answers: a JSON array stores pending documents, GET counts them', async () => {
    const answer = await enqueue([{ a: 1 }, 'two']);
    assert.equal(answer.count, 2);
    assert.deepEqual(answer.duplicates, []);
    await waitFor(async () => (await get(answer.ids[1]!)).status === 'processed', { what: 'processed' });
    const body = (await app.inject('/api/documents')).json();
    for (const status of ['pending', 'scheduled', 'processing', 'processed', 'failed'])
      assert.equal(typeof body.counts[status], 'number', status);
    assert.ok(Array.isArray(body.documents));
    assert.ok('next_cursor' in body);
    const row = body.documents.find((d: Doc) => d.id === answer.ids[0]);
    assert.ok(row, 'the new document is listed');
    assert.equal(row.payload, undefined, 'no payload in the list');
    for (const field of [
      'status',
      'attempts',
      'error',
      'created_at',
      'updated_at',
      'processed_at',
      'run_at',
      'key',
      'claimed_by',
    ])
      assert.ok(field in row, field);
  });

  it('shows a failed document: attempts, its last error, no due time; the list of failed ones', async () => {
    const [id] = await failed([{ fail: true, n: 1 }]);
    const doc = await get(id!);
    assert.equal(doc.status, 'failed');
    assert.equal(doc.attempts, 1);
    assert.match(doc.error ?? '', /boom/);
    assert.equal(doc.run_at, null);
    assert.deepEqual(doc.payload, { fail: true, n: 1 });
    const list = (await app.inject('/api/documents?status=failed')).json();
    assert.ok(list.documents.every((d: Doc) => d.status === 'failed'));
    assert.ok(list.documents.some((d: Doc) => d.id === id));
    assert.ok(list.counts.failed >= 1);
  });

  it('pages through a status with limit and cursor, null at the end', async () => {
    await failed([{ fail: true }, { fail: true }, { fail: true }]);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/api/documents?status=failed&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = (await app.inject(url)).json() as { documents: Doc[]; next_cursor: string | null };
      assert.ok(page.documents.length <= 2);
      seen.push(...page.documents.map((d) => d.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null && pages < 20);
    assert.equal(cursor, null);
    assert.equal(new Set(seen).size, seen.length, 'no document twice');
    assert.equal(seen.length, (await box.store.countDocuments()).failed);
  });

  it('retries one failed document: pending (or processed) again, earlier attempts kept', async () => {
    const [id] = await failed([{ fail: true, retry: 'one' }]);
    const response = await post(`/api/documents/${id}/retry`, undefined);
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.status, 'success');
    assert.equal(body.count, 1);
    assert.equal(body.document.id, id);
    assert.notEqual(body.document.status, 'failed');
    // It fails again (the handler always throws): a fresh budget, one more attempt counted.
    await waitFor(async () => (await get(id!)).attempts === 2 && (await get(id!)).status === 'failed', {
      what: 'the retried document failed again with 2 attempts',
    });
  });

  it('refuses to retry an unknown or a document that is not failed, changing nothing', async () => {
    const { ids } = await enqueue([{ plain: true }]);
    await waitFor(async () => (await get(ids[0]!)).status === 'processed', { what: 'processed' });
    const before = await snapshot();
    assertError(await post('/api/documents/999999999/retry', undefined), 404, 'PA_NOT_FOUND');
    const body = assertError(
      await post(`/api/documents/${ids[0]}/retry`, undefined),
      409,
      'PA_NOT_FAILED',
      /processed/,
    );
    assert.equal(body.document_status, 'processed');
    assert.deepEqual(await snapshot(), before);
  });

  it('retries every failed document; count 0 when none is failed; only status=failed', async () => {
    await failed([{ fail: true }, { fail: true }]);
    const failedBefore = (await box.store.countDocuments()).failed;
    assert.ok(failedBefore >= 2);
    const before = await snapshot();
    assertError(
      await post('/api/documents/retry?status=pending', undefined),
      400,
      'PA_BAD_REQUEST',
      /status/,
    );
    assertError(await post('/api/documents/retry', undefined), 400, 'PA_BAD_REQUEST', /status/);
    assert.deepEqual(await snapshot(), before);

    // Held by a pause, the retried documents stay pending, so none fails again before the count.
    await post('/api/agent/pause', undefined);
    try {
      const response = await post('/api/documents/retry?status=failed', undefined);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), { status: 'success', count: failedBefore });
      assert.equal((await box.store.countDocuments()).failed, 0);
      assert.deepEqual((await post('/api/documents/retry?status=failed', undefined)).json(), {
        status: 'success',
        count: 0,
      });
    } finally {
      await post('/api/agent/resume', undefined);
    }
    await waitFor(async () => (await box.store.countDocuments()).failed === failedBefore, {
      what: 'the retried documents failed again',
    });
  });

  it('discards a document; 404 when unknown, 409 while processing', async () => {
    const [gone] = await failed([{ fail: true, discard: true }]);
    const response = await app.inject({ method: 'DELETE', url: `/api/documents/${gone}` });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().status, 'success');
    assertError(await app.inject(`/api/documents/${gone}`), 404, 'PA_NOT_FOUND');
    assertError(await app.inject({ method: 'DELETE', url: `/api/documents/${gone}` }), 404, 'PA_NOT_FOUND');

    const { ids } = await enqueue([{ hold: true }]);
    await waitFor(async () => (await get(ids[0]!)).status === 'processing', { what: 'processing' });
    const body = assertError(
      await app.inject({ method: 'DELETE', url: `/api/documents/${ids[0]}` }),
      409,
      'PA_DOCUMENT_PROCESSING',
      /processed/,
    );
    assert.equal(body.document_status, 'processing');
    assert.equal((await get(ids[0]!)).status, 'processing');
    control.release();
    await waitFor(async () => (await get(ids[0]!)).status === 'processed', { what: 'released' });
  });

  it('schedules documents with delay or run_at (query or per document); a past run_at is due now', async () => {
    const soon = Date.now();
    const { ids: delayed } = await enqueue([{ later: 1 }, { later: 2 }], '/api/documents?delay=1h');
    for (const id of delayed) {
      const doc = await get(id);
      assert.equal(doc.status, 'scheduled');
      const due = Date.parse(doc.run_at!);
      assert.ok(due >= soon + 3_590_000 && due <= Date.now() + 3_610_000, doc.run_at!);
    }
    const at = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const { ids: atTime } = await enqueue([{ at: 1 }], `/api/documents?run_at=${encodeURIComponent(at)}`);
    assert.equal(Date.parse((await get(atTime[0]!)).run_at!), Date.parse(at));

    const envelope = await post('/api/documents?delay=1h', {
      documents: [
        { payload: { own: 'delay' }, delay: '2h' },
        { payload: { own: 'none' } },
        { payload: { own: 'past' }, run_at: '2020-01-01T00:00:00Z' },
      ],
    });
    assert.equal(envelope.statusCode, 201, envelope.body);
    const [twoHours, oneHour, past] = envelope.json().ids as string[];
    const dueIn = async (id: string) => Date.parse((await get(id)).run_at ?? 'x') - Date.now();
    assert.ok((await dueIn(twoHours!)) > 1.9 * 3_600_000, 'its own delay wins');
    assert.ok((await dueIn(oneHour!)) > 0.9 * 3_600_000 && (await dueIn(oneHour!)) < 1.1 * 3_600_000);
    await waitFor(async () => (await get(past!)).status === 'processed', {
      what: 'the past run_at processed',
    });

    const list = (await app.inject('/api/documents?status=scheduled&limit=500')).json();
    assert.ok(delayed.every((id) => list.documents.some((d: Doc) => d.id === id)));
    assert.ok(list.counts.scheduled >= 4);
  });

  it('deduplicates by key while the first is unfinished, answering its id as a duplicate', async () => {
    const first = await post('/api/documents?delay=1h', {
      documents: [{ payload: { k: 1 }, key: 'invoice-42' }],
    });
    assert.equal(first.statusCode, 201, first.body);
    const [id] = first.json().ids as string[];
    assert.deepEqual(first.json().duplicates, []);
    assert.equal((await get(id!)).key, 'invoice-42');
    const again = await post('/api/documents', {
      documents: [
        { payload: { k: 2 }, key: 'invoice-42' },
        { payload: { k: 3 }, key: 'invoice-43' },
      ],
    });
    assert.equal(again.statusCode, 201, again.body);
    const body = again.json();
    assert.equal(body.count, 2);
    assert.equal(body.ids[0], id);
    assert.deepEqual(body.duplicates, [id]);
    assert.notEqual(body.ids[1], id);
    assert.deepEqual((await get(id!)).payload, { k: 1 }, 'the first one is kept');
  });

  it('refuses bad scheduling and key input with a 400 naming the problem, and stores nothing', async () => {
    const before = await snapshot();
    const cases: [string, unknown, RegExp][] = [
      ['/api/documents?run_at=tomorrow', [1], /run_at/],
      ['/api/documents?run_at=2026-01-11T10:30:00', [1], /run_at.*zone/],
      [`/api/documents?run_at=${new Date(Date.now() + 400 * 86_400_000).toISOString()}`, [1], /1 year/],
      ['/api/documents?run_at=2030-01-01T00:00:00Z&delay=1h', [1], /not both/],
      ['/api/documents?delay=-5s', [1], /delay/],
      ['/api/documents?delay=soon', [1], /delay/],
      ['/api/documents?delay=400d', [1], /delay/],
      ['/api/documents?bogus=1', [1], /bogus/],
      ['/api/documents', { documents: [{ payload: 1, key: '' }] }, /key/],
      ['/api/documents', { documents: [{ payload: 1, key: 'k'.repeat(513) }] }, /key.*512/],
      ['/api/documents', { documents: [{ payload: 1, key: 7 }] }, /key/],
      ['/api/documents', { documents: [{ payload: 1, run_at: 'x' }] }, /documents\[0\] run_at/],
      [
        '/api/documents',
        { documents: [{ payload: 1, delay: '1h', run_at: '2030-01-01T00:00:00Z' }] },
        /not both/,
      ],
      [
        '/api/documents',
        { documents: [{ payload: 1 }, { payload: 2, delay: '-1m' }] },
        /documents\[1\] delay/,
      ],
      ['/api/documents', { documents: [{ run_at: '2030-01-01T00:00:00Z' }] }, /payload/],
      ['/api/documents', { documents: [{ payload: 1, colour: 'red' }] }, /colour/],
      ['/api/documents', { documents: [] }, /1 to 10000/],
      ['/api/documents', { not: 'an array' }, /array/],
    ];
    for (const [url, payload, message] of cases) {
      assertError(await post(url, payload), 400, 'PA_BAD_REQUEST', message);
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('refuses a bad list query: limit out of range, unknown status, malformed cursor', async () => {
    assertError(await app.inject('/api/documents?limit=0'), 400, 'PA_BAD_REQUEST', /limit/);
    assertError(await app.inject('/api/documents?limit=501'), 400, 'PA_BAD_REQUEST', /limit/);
    assertError(await app.inject('/api/documents?status=lost'), 400, 'PA_BAD_REQUEST', /status/);
    assertError(await app.inject('/api/documents?cursor=%01'), 400, 'PA_BAD_REQUEST', /cursor/);
    assertError(
      await app.inject('/api/documents?cursor=not-a-cursor-%7B%7D'),
      400,
      'PA_BAD_REQUEST',
      /cursor/,
    );
    assert.equal((await app.inject('/api/documents?limit=500')).statusCode, 200);
  });

  it('describes every new operation with a response schema', async () => {
    const doc = (await app.inject('/openapi.json')).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    assert.ok(doc.paths['/api/documents/{id}/retry']?.post);
    assert.ok(doc.paths['/api/documents/retry']?.post);
    assert.ok(doc.paths['/api/documents/{id}']?.delete);
  });
});

const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';
const TOKENS = `grafana:viewer:${VIEWER},deploy-bot:operator:${OPERATOR}`;

describe('documents endpoints with authentication on', () => {
  let box: Sandbox;
  let app: App;
  const lines: Record<string, unknown>[] = [];

  before(async () => {
    box = await sandbox();
    const agent = box.agent({ maxRetries: 0 });
    await agent.start();
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    app = await buildApp({
      agent,
      logger,
      publicConfig: {},
      security: { tokens: loadConfig({ API_TOKENS: TOKENS }).apiTokens, rateLimitDocuments: 1000 },
    });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  const as = (token: string, method: 'GET' | 'POST' | 'DELETE', url: string) =>
    app.inject({ method, url, headers: { authorization: `Bearer ${token}` } });

  it('lets a viewer read documents but not retry or discard them', async () => {
    const [id] = await box.store.insertDocuments([{ x: 1 }]);
    assert.equal((await as(VIEWER, 'GET', '/api/documents?status=failed')).statusCode, 200);
    assert.equal((await as(VIEWER, 'GET', `/api/documents/${id}`)).statusCode, 200);
    for (const [method, url] of [
      ['POST', `/api/documents/${id}/retry`],
      ['POST', '/api/documents/retry?status=failed'],
      ['DELETE', `/api/documents/${id}`],
    ] as const) {
      const denied = await as(VIEWER, method, url);
      assert.equal(denied.statusCode, 403, `${method} ${url}`);
      assert.equal(denied.json().required_role, 'operator');
    }
    assert.ok(await box.store.getDocument(id!), 'not discarded');
  });

  it('lets an operator retry and discard, logging each with the token name as the actor', async () => {
    const bulk = await as(OPERATOR, 'POST', '/api/documents/retry?status=failed&updated_by=mallory');
    assert.equal(bulk.statusCode, 200, bulk.body);
    const [id] = await box.store.insertDocuments([{ y: 1 }]);
    await waitFor(async () => (await box.store.getDocument(id!))?.status === 'processed', {
      what: 'processed',
    });
    const gone = await as(OPERATOR, 'DELETE', `/api/documents/${id}`);
    assert.equal(gone.statusCode, 200, gone.body);
    const actions = lines.filter((l) => typeof l.action === 'string');
    assert.deepEqual(
      actions.map((l) => [l.action, l.actor]),
      [
        ['retry_all_failed', 'deploy-bot'],
        ['discard', 'deploy-bot'],
      ],
    );
  });
});
