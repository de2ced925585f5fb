// /docs, the interactive API viewer: loaded on its first request (not at start, to keep an idle
// agent small), then serving the same OpenAPI document as /openapi.json, its static files, and
// our error shape for a page it does not have.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';

const require = createRequire(import.meta.url);
/** Whether swagger-ui's module has been loaded into this process (it is CommonJS). */
const viewerLoaded = () => Object.keys(require.cache).some((path) => path.includes('@fastify/swagger-ui/'));

describe('API viewer (/docs)', () => {
  let box: Sandbox;
  let app: App;

  before(async () => {
    box = await sandbox();
    const agent = box.agent();
    await agent.start();
    app = await buildApp({
      plane: agent.plane,
      view: agent.view,
      logger: pino({ level: 'silent' }),
      publicConfig: {},
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  it('is loaded on the first request to /docs, not before', async () => {
    assert.equal(viewerLoaded(), false, 'swagger-ui was loaded at start');
    const page = await app.inject('/docs');
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.payload, /swagger/i);
    assert.equal(viewerLoaded(), true);
  });

  it('serves the OpenAPI document this app generates, and its static files', async () => {
    const viewerDoc = (await app.inject('/docs/json')).json() as unknown;
    const doc = (await app.inject('/openapi.json')).json() as unknown;
    assert.deepEqual(viewerDoc, doc);
    const css = await app.inject('/docs/static/swagger-ui.css');
    assert.equal(css.statusCode, 200);
    assert.match(String(css.headers['content-type']), /^text\/css/);
    assert.ok(css.payload.length > 1000);
    const head = await app.inject({ method: 'HEAD', url: '/docs/static/swagger-ui.css' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(css.rawPayload.length));
    const moved = await app.inject('/docs/static/index.html');
    assert.equal(moved.statusCode, 302);
    assert.equal(moved.headers.location, '/docs/');
    // This app's hooks apply: security headers as on every answer.
    assert.equal(css.headers['x-content-type-options'], 'nosniff');
  });

  it('answers a page it does not have, or another method, in our error shape', async () => {
    const missing = await app.inject('/docs/static/nope.js');
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), {
      status: 'error',
      error: 'PA_NOT_FOUND',
      message: 'no documentation page /docs/static/nope.js',
    });
    const post = await app.inject({ method: 'POST', url: '/docs' });
    assert.equal(post.statusCode, 405);
    assert.equal((post.json() as { error: string }).error, 'PA_METHOD_NOT_ALLOWED');
  });

  it('is not listed in the OpenAPI document', async () => {
    const doc = (await app.inject('/openapi.json')).json() as { paths: Record<string, unknown> };
    assert.deepEqual(
      Object.keys(doc.paths).filter((path) => path.startsWith('/docs')),
      [],
    );
  });
});
