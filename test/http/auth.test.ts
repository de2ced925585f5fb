import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { pino } from 'pino';

import { loadApiTokens, parseApiTokens } from '../../src/auth/tokens.js';
import { loadConfig, publicConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { type App, buildApp } from '../../src/http/app.js';
import { type Sandbox, sandbox } from '../helpers/agents.js';

const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';
const ADMIN = 'admin-token-0123456789abc';
const TOKENS = `grafana:viewer:${VIEWER},deploy-bot:operator:${OPERATOR},alice:admin:${ADMIN}`;

describe('API tokens', () => {
  it('parses name:role:token entries and keeps only a digest of each token', () => {
    const { tokens, problems } = loadApiTokens(TOKENS, undefined);
    assert.deepEqual(problems, []);
    assert.deepEqual(
      tokens.map((t) => [t.name, t.role]),
      [
        ['grafana', 'viewer'],
        ['deploy-bot', 'operator'],
        ['alice', 'admin'],
      ],
    );
    assert.ok(!JSON.stringify(tokens).includes(VIEWER));
  });

  it('names every bad entry without ever echoing a token', () => {
    const secret = 'super-secret-token-value';
    const { problems } = parseApiTokens([
      { text: `bob:root:${secret}`, where: 'API_TOKENS entry 1' },
      { text: 'carol:admin:short', where: 'API_TOKENS entry 2' },
      { text: 'no-colons', where: 'API_TOKENS entry 3' },
      { text: `dave:viewer:${secret}`, where: 'API_TOKENS entry 4' },
      { text: `dave:admin:${secret}x`, where: 'API_TOKENS entry 5' },
      { text: `erin:viewer:${secret}`, where: 'API_TOKENS entry 6' },
    ]);
    assert.deepEqual(problems, [
      'API_TOKENS entry 1 (bob): role "root" must be viewer, operator or admin',
      'API_TOKENS entry 2 (carol): the token must be at least 16 characters without spaces',
      'API_TOKENS entry 3: expected name:role:token',
      'API_TOKENS entry 5: the name dave is used twice',
      'API_TOKENS entry 6 (erin): the same token is given twice',
    ]);
    assert.ok(!problems.join().includes(secret));
  });

  it('is a start-up error through the configuration, and /api/config shows names and roles only', () => {
    assert.throws(() => loadConfig({ API_TOKENS: 'x:admin:short' }), ConfigError);
    assert.throws(
      () => loadConfig({ API_TOKENS_FILE: '/no/such/file' }),
      /API_TOKENS_FILE=\/no\/such\/file: cannot read it \(ENOENT\)/,
    );
    const shown = JSON.stringify(publicConfig(loadConfig({ API_TOKENS: TOKENS })));
    for (const token of [VIEWER, OPERATOR, ADMIN]) assert.ok(!shown.includes(token));
    assert.ok(shown.includes('"enabled":true'));
    assert.match(JSON.stringify(publicConfig(loadConfig({}))), /Authentication is OFF/);
  });
});

describe('HTTP API with authentication on', () => {
  let box: Sandbox;
  let app: App;

  before(async () => {
    box = await sandbox();
    const agent = box.agent();
    await agent.start();
    app = await buildApp({
      agent,
      logger: pino({ level: 'silent' }),
      publicConfig: {},
      security: { tokens: loadConfig({ API_TOKENS: TOKENS }).apiTokens, rateLimitCommands: 5 },
    });
  });
  after(async () => {
    await app.close();
    await box.cleanup();
  });

  const as = (token: string | null, method: 'GET' | 'POST', url: string) =>
    app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers 401 without a token or with a bad one, and never says which tokens exist', async () => {
    const none = await as(null, 'GET', '/api/cluster/control-state');
    assert.equal(none.statusCode, 401);
    assert.equal(none.json().error, 'PA_UNAUTHORIZED');
    assert.match(none.headers['www-authenticate'] as string, /^Bearer/);
    const bad = await as('not-a-valid-token-at-all', 'GET', '/api/cluster/control-state');
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.json().message, 'the bearer token is not valid');
    const malformed = await app.inject({ url: '/api/stats', headers: { authorization: 'Basic abc' } });
    assert.equal(malformed.statusCode, 401);
  });

  it('keeps the probes, the metrics and the API description open', async () => {
    for (const path of ['/health', '/metrics', '/openapi.json']) {
      assert.equal((await as(null, 'GET', path)).statusCode, 200, path);
    }
    assert.equal((await as(null, 'GET', '/readiness')).statusCode < 500, true);
  });

  it('has every route name its role: a viewer reads every GET, no POST is open', async () => {
    // A route that forgot its config.role would need admin: a viewer's GET would be a 403.
    const { paths } = (await as(null, 'GET', '/openapi.json')).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [path, methods] of Object.entries(paths)) {
      const url = path.replace(/\{\w+\}/g, 'x');
      if ('get' in methods && path !== '/api/cluster/events') {
        const read = await as(VIEWER, 'GET', url);
        assert.ok(![401, 403].includes(read.statusCode), `GET ${path}: ${read.statusCode} ${read.body}`);
      }
      if ('post' in methods) {
        assert.equal((await as(null, 'POST', url)).statusCode, 401, `POST ${path}`);
        const denied = await as(VIEWER, 'POST', url);
        assert.equal(denied.statusCode, 403, `POST ${path}`);
        assert.ok(['operator', 'admin'].includes(denied.json().required_role), `POST ${path}`);
      }
    }
  });

  it('lets a viewer read but not command', async () => {
    assert.equal((await as(VIEWER, 'GET', '/api/cluster/agents')).statusCode, 200);
    const denied = await as(VIEWER, 'POST', '/api/cluster/pause');
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().error, 'PA_FORBIDDEN');
    assert.equal(denied.json().required_role, 'operator');
    assert.equal((await box.store.readControl()).version, 0);
  });

  it('records the authenticated name as the actor, whatever updated_by claims', async () => {
    const paused = await as(OPERATOR, 'POST', '/api/cluster/pause?reason=deploy&updated_by=mallory');
    assert.equal(paused.statusCode, 200, paused.body);
    assert.equal(paused.json().updated_by, 'deploy-bot');
    assert.equal(paused.json().on_behalf_of, 'mallory');
    const [entry] = await box.store.listHistory(1);
    assert.equal(entry?.updated_by, 'deploy-bot');
    assert.equal(entry?.on_behalf_of, 'mallory');
    await as(OPERATOR, 'POST', '/api/cluster/resume');
  });

  it('keeps shutdown for admins', async () => {
    const denied = await as(OPERATOR, 'POST', '/api/cluster/shutdown');
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().required_role, 'admin');
    assert.equal((await as(OPERATOR, 'POST', '/api/agent/shutdown')).statusCode, 403);
    assert.notEqual((await box.store.readControl()).command, 'shutdown');
  });

  it('sends security headers and no CORS permission', async () => {
    const response = await app.inject({ url: '/health', headers: { origin: 'https://evil.example' } });
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
    assert.equal(response.headers['access-control-allow-origin'], undefined);
  });

  it('limits how many commands one client sends per minute, and writes nothing past it', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await as(ADMIN, 'POST', '/api/agent/pause')).statusCode);
    assert.ok(statuses.includes(429), `statuses ${statuses.join(',')}`);
    const limited = await as(ADMIN, 'POST', '/api/cluster/pause');
    const before = (await box.store.readControl()).version;
    if (limited.statusCode === 429) {
      assert.equal(limited.json().error, 'PA_RATE_LIMITED');
      assert.ok(limited.headers['retry-after']);
      assert.equal((await box.store.readControl()).version, before);
    }
    // Another client has its own budget.
    assert.equal((await as(VIEWER, 'GET', '/api/cluster/control-state')).statusCode, 200);
  });
});

describe('metrics behind a token', () => {
  it('asks for a viewer token on /metrics with METRICS_AUTH=true', async () => {
    const box = await sandbox();
    const agent = box.agent();
    await agent.start();
    const app = await buildApp({
      agent,
      logger: pino({ level: 'silent' }),
      publicConfig: {},
      security: { tokens: loadConfig({ API_TOKENS: TOKENS }).apiTokens, metricsAuth: true },
    });
    try {
      assert.equal((await app.inject('/metrics')).statusCode, 401);
      assert.equal(
        (await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${VIEWER}` } })).statusCode,
        200,
      );
    } finally {
      await app.close();
      await box.cleanup();
    }
  });
});
