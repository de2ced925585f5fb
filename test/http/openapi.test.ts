// Every operation of /openapi.json describes its success body: a 2xx answer with content (a
// schema, or the media type of a stream), so that a client (agentctl among them) can rely on it
// and Fastify's serializer keeps exactly the fields documented.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Fastify from 'fastify';
import { pino } from 'pino';

import type { App } from '../../src/http/app.js';
import { buildApp } from '../../src/http/app.js';
import { FleetBody } from '../../src/http/responses.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';

interface Operation {
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

describe('OpenAPI document', () => {
  let box: Sandbox;
  let app: App;

  before(async () => {
    box = await sandbox();
    const agent = box.agent();
    await agent.start();
    app = await buildApp({ agent, logger: pino({ level: 'silent' }), publicConfig: {} });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  it('describes a success body for every operation', async () => {
    const doc = (await app.inject('/openapi.json')).json() as {
      paths: Record<string, Record<string, Operation>>;
    };
    const missing: string[] = [];
    let operations = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        operations++;
        const success = Object.entries(operation.responses ?? {}).filter(([code]) => code.startsWith('2'));
        const described = success.some(([, response]) =>
          Object.values(response.content ?? {}).some((media) => media.schema !== undefined),
        );
        if (!described) missing.push(`${method.toUpperCase()} ${path}`);
      }
    }
    assert.ok(operations >= 20, `${operations} operations`);
    assert.deepEqual(missing, [], `operations without a 2xx response schema:\n  ${missing.join('\n  ')}`);
  });
});

describe('response schemas', () => {
  it('let a field they do not list through on an agent row (instance_id, say)', async () => {
    const row = {
      agent_id: 'a',
      host: 'h',
      software_version: '1',
      state: 'running',
      reported_state: 'running',
      applied_version: 3,
      applied_at: null,
      batch_in_flight: false,
      watch_mode: 'polling',
      started_at: '2026-01-01T00:00:00.000Z',
      heartbeat_at: '2026-01-01T00:00:01.000Z',
      heartbeat_age_seconds: 0.5,
      counters: { batches: 2, brand_new_counter: 1 },
      instance_id: 'i-1',
      nested: { kept: true },
    };
    const body = {
      desired: { command: 'running', version: 3 },
      summary: {
        total: 1,
        live: 1,
        lost: 0,
        applied: 1,
        drained: 1,
        stragglers: [],
        duplicate_agent_ids: [],
      },
      agents: [row],
    };
    const app = Fastify();
    app.get('/', { schema: { response: { 200: FleetBody } } }, async () => body);
    try {
      assert.deepEqual((await app.inject('/')).json(), body);
    } finally {
      await app.close();
    }
  });
});
