// agentctl against a scripted HTTP server, for what a real agent does not easily produce: the
// Authorization header, a 401, an answer that is not JSON, no answer at all, an older agent
// without --wait, --expires-in or the events stream, an events stream that drops, and a URL whose
// scheme (http:// or https://) is not what the server speaks.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import { waitFor } from '../helpers/wait.js';
import { agentctl, killAll, startAgentctl } from './run-agentctl.js';

type Route = (request: IncomingMessage, response: ServerResponse) => void;

const json = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
};

const CONTROL = {
  command: 'pause',
  version: 4,
  timestamp: new Date().toISOString(),
  reason: null,
  updated_by: 'ops',
};
const AGENTS = {
  desired: { command: 'pause', version: 4 },
  summary: { total: 1, live: 1, lost: 0, applied: 1, drained: 1, stragglers: [] },
  agents: [
    {
      agent_id: 'a1',
      host: 'h1',
      state: 'paused',
      applied_version: 4,
      batch_in_flight: false,
      watch_mode: 'polling',
      heartbeat_age_seconds: 0.2,
    },
  ],
};

describe('agentctl against a scripted server', () => {
  let server: Server;
  let url: string;
  let route: Route;
  const requests: IncomingMessage[] = [];
  const open = new Set<ServerResponse>();

  before(async () => {
    server = createServer((request, response) => {
      requests.push(request);
      open.add(response);
      response.on('close', () => open.delete(response));
      route(request, response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterEach(async () => {
    requests.length = 0;
    for (const response of open) response.destroy();
    assert.equal(await killAll(), 0, 'an agentctl process was left running');
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends --token (or AGENT_TOKEN) as a bearer token, and shows a 401 with its message', async () => {
    route = (request, response) =>
      request.headers.authorization === 'Bearer s3cret'
        ? json(response, 200, { history: [], count: 0 })
        : json(response, 401, {
            status: 'error',
            error: 'PA_UNAUTHORIZED',
            message: 'a valid bearer token is required',
          });
    const denied = await agentctl(['history', '--url', url]);
    assert.equal(denied.code, 1);
    assert.equal(
      denied.stderr,
      'agentctl: 401 PA_UNAUTHORIZED: a valid bearer token is required (set --token or AGENT_TOKEN)\n',
    );
    assert.equal(requests[0]!.headers.authorization, undefined);
    assert.match(String(requests[0]!.headers['user-agent']), /^agentctl\//);

    const flag = await agentctl(['history', '--token', 's3cret', '--url', url]);
    assert.equal(flag.code, 0, flag.stderr);
    const env = await agentctl(['history', '--json', '--url', url], { env: { AGENT_TOKEN: 's3cret' } });
    assert.equal(env.code, 0, env.stderr);
    assert.deepEqual(JSON.parse(env.stdout), { history: [], count: 0 });
  });

  it('an answer that is not JSON, and a server that does not answer, exit 1 saying so', async () => {
    route = (_request, response) => {
      response.writeHead(502, { 'content-type': 'text/html' });
      response.end('<html><body>Bad Gateway</body></html>');
    };
    const html = await agentctl(['status', '--url', url]);
    assert.equal(html.code, 1);
    assert.match(
      html.stderr,
      /answered HTTP 502 with something that is not JSON \(text\/html\): <html><body>Bad Gateway/,
    );

    route = () => undefined; // never answers
    const silent = await agentctl(['agents', '--timeout-ms', '300', '--url', url]);
    assert.equal(silent.code, 1);
    assert.equal(silent.stderr, `agentctl: no answer from ${url} within 300 ms (raise --timeout-ms)\n`);
  });

  it('https:// to an agent that speaks plain HTTP says to use http://, on one line', async () => {
    route = (_request, response) => json(response, 200, CONTROL);
    const tls = url.replace(/^http:/, 'https:');
    const run = await agentctl(['status', '--url', tls]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `agentctl: cannot connect to ${tls}: this agent speaks HTTP, not HTTPS: use ${url} (--url or AGENT_URL)\n`,
    );
  });

  it('an agent without the drain barrier or expiries: the command is written, and exit 1 says what did not happen', async () => {
    const answer = {
      status: 'success',
      ...CONTROL,
      propagation: { watch_mode: 'polling', expected_delay_seconds: 11, agents_registered: 1 },
    };
    route = (_request, response) => json(response, 200, answer);
    const wait = await agentctl(['pause', '--wait', '--url', url]);
    assert.equal(wait.code, 1);
    assert.match(wait.stdout, /^Cluster paused: version 4 written by ops/m);
    assert.match(wait.stderr, /does not support --wait .*version 4 was written but not waited for/);
    const query = new URL(requests[0]!.url!, url).searchParams;
    assert.equal(query.get('wait'), 'true');
    assert.equal(query.get('timeout'), '30');

    const expiry = await agentctl(['pause', '--expires-in', '2h', '--url', url]);
    assert.equal(expiry.code, 1);
    assert.match(expiry.stderr, /ignored --expires-in .*does not end by itself/);
    assert.equal(new URL(requests[1]!.url!, url).searchParams.get('expires_in'), '2h');
  });

  it('watch: a 404 for the events stream is an error at once; a dropped stream is reopened', async () => {
    route = (_request, response) =>
      json(response, 404, {
        status: 'error',
        error: 'PA_NOT_FOUND',
        message: 'Route GET:/api/cluster/events not found',
      });
    const old = await agentctl(['watch', '--url', url]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /404 PA_NOT_FOUND: .*an older version\?/);

    let connections = 0;
    route = (request, response) => {
      assert.equal(request.headers.accept, 'text/event-stream');
      connections++;
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      // The first connection is cut after its events; the second converges (CRLF, split chunks, a comment).
      response.write(
        `retry: 50\r\nevent: control\r\ndata: ${JSON.stringify(CONTROL)}\r\n\r\n: keep-alive\r\n\r\n`,
      );
      if (connections === 1) {
        const behind = { ...AGENTS, summary: { ...AGENTS.summary, applied: 0, stragglers: ['a1'] } };
        response.end(`event: agents\ndata: ${JSON.stringify(behind)}\n\n`);
      } else {
        const text = `event: agents\ndata: ${JSON.stringify(AGENTS)}\n\n`;
        response.write(text.slice(0, 20));
        setTimeout(() => response.write(text.slice(20)), 20);
      }
    };
    const watch = startAgentctl(['watch', '--until-converged', '--json', '--url', url]);
    const run = await watch.done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(connections, 2);
    assert.match(run.stderr, /event stream lost \(the server closed the stream\); reconnecting in [\d.]+ s/);
    const events = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; data: { summary?: { stragglers: string[] } } });
    assert.deepEqual(
      events.map((e) => e.event),
      ['control', 'agents', 'control', 'agents'],
    );
    assert.deepEqual(events[3]!.data.summary!.stragglers, []);
  });

  it('watch --timeout exits 3 when the fleet does not converge in time', async () => {
    route = (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const behind = { ...AGENTS, summary: { ...AGENTS.summary, applied: 0, stragglers: ['a1'] } };
      response.write(`event: agents\ndata: ${JSON.stringify(behind)}\n\n`);
    };
    const watch = startAgentctl(['watch', '--until-converged', '--timeout', '0.5', '--url', url]);
    await waitFor(() => /stragglers: a1/.test(watch.stdout()), { what: 'the agents line' });
    const run = await watch.done;
    assert.equal(run.code, 3, run.stderr);
    assert.match(
      run.stderr,
      /^agentctl: not converged after 0\.5 s: 1 agent \(1 live, 0 lost\): 0\/1 applied/m,
    );
  });
});

/** A throwaway self-signed certificate made by the openssl command, or why there is none. */
function selfSignedCertificate(): { key: Buffer; cert: Buffer } | string {
  const dir = mkdtempSync(join(tmpdir(), 'pa-tls-'));
  try {
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    if (made.error || made.status !== 0) {
      const why = 'the https:// test skipped: the openssl command could not make a certificate';
      if (process.env.CI === 'true') throw new Error(`CI=true but ${why}`);
      return why;
    }
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CERTIFICATE = selfSignedCertificate();

describe(
  'agentctl against an HTTPS server',
  { skip: typeof CERTIFICATE === 'string' ? CERTIFICATE : false },
  () => {
    it('http:// to an agent that speaks HTTPS says to use https://, on one line', async () => {
      const tls = CERTIFICATE as { key: Buffer; cert: Buffer };
      const server = createHttpsServer(tls, (_request, response) => json(response, 200, CONTROL));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        const run = await agentctl(['status', '--url', url]);
        assert.equal(run.code, 1);
        assert.equal(
          run.stderr,
          `agentctl: cannot connect to ${url}: this agent speaks HTTPS, not HTTP: use ${url.replace(/^http:/, 'https:')} (--url or AGENT_URL)\n`,
        );
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  },
);
