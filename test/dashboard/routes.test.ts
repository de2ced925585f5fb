// The dashboard's files through app.inject(): served from the allow-list only (no path escapes),
// with their content types, the security headers, an ETag, hidden from the OpenAPI document, and
// small; the page runs no inline script or style, so the strict policy holds.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';

describe('dashboard routes', () => {
  let box: Sandbox;
  let app: App;

  before(async () => {
    box = await sandbox();
    app = await buildApp({ agent: box.agent(), logger: pino({ level: 'silent' }), publicConfig: {} });
    await app.ready();
  });

  after(async () => {
    await app.close();
    await box.cleanup();
  });

  it('serves the page and its assets with their types and the security headers', async () => {
    const types: Record<string, RegExp> = {
      '/': /^text\/html; charset=utf-8$/,
      '/dashboard/dashboard.js': /^text\/javascript; charset=utf-8$/,
      '/dashboard/dashboard.css': /^text\/css; charset=utf-8$/,
      '/dashboard/favicon.svg': /^image\/svg\+xml$/,
    };
    for (const [url, type] of Object.entries(types)) {
      const response = await app.inject({ url });
      assert.equal(response.statusCode, 200, url);
      assert.match(String(response.headers['content-type']), type, url);
      assert.match(String(response.headers['content-security-policy']), /^default-src 'self';/);
      assert.equal(response.headers['x-content-type-options'], 'nosniff');
      assert.equal(response.headers['referrer-policy'], 'no-referrer');
      assert.equal(response.headers['x-frame-options'], 'DENY');
      const etag = String(response.headers.etag);
      const again = await app.inject({ url, headers: { 'if-none-match': etag } });
      assert.equal(again.statusCode, 304, url);
      assert.equal(again.body, '');
    }
  });

  it('refuses anything outside the allow-list, encoded traversals included', async () => {
    for (const url of [
      '/dashboard/',
      '/dashboard/nope.js',
      '/dashboard/..%2f..%2fpackage.json',
      '/dashboard/%2e%2e%2fapp.js',
      '/dashboard/../../package.json',
      '/dashboard/constructor',
      '/dashboard/dashboard.js%00.css',
      '/index.html',
    ]) {
      const response = await app.inject({ url });
      assert.equal(response.statusCode, 404, `${url}: ${response.body}`);
      assert.equal((response.json() as { error: string }).error, 'PA_NOT_FOUND', url);
      assert.ok(!response.body.includes('"version"'), url);
    }
  });

  it('stays out of the OpenAPI document', async () => {
    const spec = app.swagger() as { paths: Record<string, unknown> };
    assert.deepEqual(
      Object.keys(spec.paths).filter((path) => path === '/' || path.startsWith('/dashboard')),
      [],
    );
  });

  it('has no inline script, style or handler, loads nothing from elsewhere, and is small', async () => {
    const html = (await app.inject({ url: '/' })).body;
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'inline script');
    assert.doesNotMatch(html, /<style|\sstyle=/, 'inline style');
    assert.doesNotMatch(html, /\son[a-z]+=/, 'inline event handler');
    let total = 0;
    for (const url of [
      '/',
      '/dashboard/dashboard.js',
      '/dashboard/dashboard.css',
      '/dashboard/favicon.svg',
    ]) {
      const body = (await app.inject({ url })).body;
      assert.doesNotMatch(body, /(?:src|href)=["']?(?:https?:)?\/\//, `${url} loads from elsewhere`);
      assert.doesNotMatch(body, /\burl\(\s*["']?(?:https?:)?\/\//, `${url} loads from elsewhere`);
      total += Buffer.byteLength(body);
    }
    const js = (await app.inject({ url: '/dashboard/dashboard.js' })).body;
    assert.doesNotMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    assert.doesNotMatch(js, /localStorage\.setItem\(TOKEN_KEY/, 'the token stays out of localStorage');
    // 45 KB before the Queues card and the throttle control (issue 14), 58 KB with them: still no
    // framework and no build step. A page that outgrows this should lose code, not raise it again.
    assert.ok(total < 64 * 1024, `the page weighs ${total} bytes`);
  });
});
